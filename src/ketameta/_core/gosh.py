"""GOSH fits of the DerSimonian-Laird and common-effect models by matrix products.

Every subset of a GOSH analysis (Olkin et al. 2012) shares one ``yi`` and one ``vi``: only the
0/1 membership matrix changes. For the closed-form estimators the per-subset sums are then
products of that ``(n, k)`` matrix with a few length-``k`` vectors, instead of ``n`` masked
copies of the data through the generic batch engine
(:func:`ketameta._core.batch.fit_batch`). The numbers are the engine's to rounding:

* the problem is centred and rescaled once, as :func:`ketameta._core.arrays.normalize` does
  per row (midrange centre, power-of-two scale, so the rescaling is exact), and mapped back;
* Cochran's Q is the two-pass sum ``sum w (y - mean)²`` about each subset's own mean, as the
  engine computes it (Q is insensitive to first order to the rounding of the mean), not the
  one-pass ``sum w y² - (sum w y)² / sum w`` that cancels catastrophically;
* a subset of one study has its own yi as the estimate, tau² = 0, I² = 0 and Q = 0, as
  metafor and the engine.

Inputs the single rescaling cannot carry (non-finite values, or ``vi / s²`` so small that its
reciprocal overflows) are left to the engine: :func:`fast_gosh_supported` says which.
"""

from __future__ import annotations

import numpy as np

from ketameta._core.arrays import normalize

#: Methods with a dedicated GOSH path (DerSimonian-Laird and the common-effect models).
FAST_METHODS = frozenset({"DL", "EE", "FE"})

# smallest rescaled vi handled here: 1/v and w² stay far from overflow (1e300 < float max)
_V_MIN = 1e-150
# scales s of the problem handled here (beyond: the engine's overflow handling)
_S_MIN = 1e-100


def fast_gosh_supported(yi: np.ndarray, vi: np.ndarray, method: str) -> bool:
    """Whether :func:`gosh_fits` handles this problem (else use the batch engine).

    Parameters
    ----------
    yi, vi : ndarray, shape (k,)
        Effect sizes and sampling variances of all studies.
    method : str
        tau² estimator.

    Returns
    -------
    bool
        True for methods in :data:`FAST_METHODS` with finite data, positive ``vi``, a
        rescaled ``vi`` whose weights cannot overflow and a scale ``s`` (see
        :func:`ketameta._core.arrays.normalize`) within 1e±100.
    """
    if method not in FAST_METHODS or yi.ndim != 1 or yi.shape != vi.shape or yi.size == 0:
        return False
    if not (np.isfinite(yi).all() and np.isfinite(vi).all() and (vi > 0).all()):
        return False
    with np.errstate(all="ignore"):
        _, v, _, s = normalize(yi, vi, None)
    scale_ok = _S_MIN <= float(s) <= 1.0 / _S_MIN  # s² tau² stays a normal float
    return bool(scale_ok and np.isfinite(v).all() and v.min() >= _V_MIN)


def gosh_fits(
    yi: np.ndarray, vi: np.ndarray, masks: np.ndarray, method: str = "DL"
) -> dict[str, np.ndarray]:
    """DL (or common-effect) fits of the subsets ``masks`` of one meta-analysis.

    Parameters
    ----------
    yi, vi : ndarray, shape (k,)
        Effect sizes and sampling variances of all studies (see :func:`fast_gosh_supported`).
    masks : ndarray of bool, shape (n, k)
        ``True`` where a study belongs to the subset; every row has at least one study.
    method : {"DL", "EE", "FE"}
        DerSimonian-Laird random effects, or a common-effect model (tau² = 0).

    Returns
    -------
    dict of ndarray
        ``k`` (int64 subset sizes), ``estimate``, ``tau2``, ``i2`` (percent) and ``q``, each of
        shape (n,), equal to :func:`ketameta._core.batch.fit_batch`'s to rounding. I² is
        metafor's: ``100 tau² / (vt + tau²)`` with the typical within-study variance
        ``vt = (k - 1) / (sum w - sum w² / sum w)`` for DL, ``max(0, 100 (Q - (k - 1)) / Q)``
        for EE/FE.

    Examples
    --------
    >>> import numpy as np
    >>> yi, vi = np.array([0.1, 0.5, 0.3]), np.array([0.02, 0.04, 0.03])
    >>> masks = np.array([[True, True, False], [True, True, True]])
    >>> fit = gosh_fits(yi, vi, masks, "DL")
    >>> fit["k"].tolist(), bool(fit["tau2"][1] >= 0)
    ([2, 3], True)
    """
    if method not in FAST_METHODS:
        raise ValueError(f"gosh_fits() fits {', '.join(sorted(FAST_METHODS))}, not {method!r}.")
    yi = np.asarray(yi, dtype=np.float64)
    vi = np.asarray(vi, dtype=np.float64)
    y, v, c, s = normalize(yi, vi, None)  # once for all subsets (the engine: once per subset)
    # studies x subsets: the elementwise steps then run along rows of n, and the sums over
    # studies are matrix products
    m = np.asarray(masks).T.astype(np.float64)
    w = 1.0 / v
    # the last row, sum yi, is the study's own yi (exactly) for a subset of one study
    ks, sw, swy, sww, sy = np.stack([np.ones_like(w), w, w * y, w * w, yi]) @ m
    mu = swy / sw
    e = y[:, None] - mu  # residuals about each subset's own mean (two-pass Q)
    e *= e
    e *= m
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        single = ks <= 1.0
        q_df = ks - 1.0
        q = np.where(single, 0.0, np.maximum(w @ e, 0.0))
        tr_p = sw - sww / sw  # sum w - sum w² / sum w: the DL denominator, and vt = df / tr_p
        if method == "DL":
            t = np.where(single, 0.0, np.maximum((q - q_df) / tr_p, 0.0))
            t = np.where(np.isnan(t), 0.0, t)
            t = np.where(np.isinf(t), np.nan, t)  # sum w - sum w² / sum w = 0: NaN, as the engine
            wr = v[:, None] + t  # random-effects weights 1 / (v + tau²) of each subset
            np.divide(1.0, wr, out=wr)
            wr *= m
            swr, swry = np.stack([np.ones_like(y), y]) @ wr
            est = swry / swr
            vt = q_df / tr_p
            i2 = 100.0 * t / (vt + t)
        else:
            t = np.zeros_like(mu)
            est = mu
            i2 = np.maximum(0.0, 100.0 * (q - q_df) / q)
            i2 = np.where(np.isnan(i2), 0.0, i2)
        i2 = np.where(single, 0.0, i2)
        # back to yi's units: s is a power of two, so only the centre shift rounds
        tau2 = t * s * s
        estimate = np.where(single, sy, c + s * est)
    return {
        "k": np.rint(ks).astype(np.int64),
        "estimate": estimate,
        "tau2": tau2,
        "i2": i2,
        "q": q,
    }
