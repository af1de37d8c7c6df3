"""Between-study variance (tau²) estimators and the Q-profile confidence interval.

Every function works on arrays shaped ``(..., k)``: the last axis holds the studies, leading
axes index independent meta-analyses (all solved at once, each with its own convergence
check). An optional boolean ``mask`` of the same shape marks the studies that take part
(ragged problems); masked-out entries may hold any placeholder and never affect the result.

The estimators follow metafor's ``rma.uni()`` (intercept-only model, metafor 3.8-1):

* ``EE``/``FE``: tau² = 0.
* ``DL`` (DerSimonian-Laird), ``HE`` (Hedges), ``HS`` (Hunter-Schmidt), ``HSk`` (HS with the
  k/(k-1) correction), ``SJ`` (Sidik-Jonkman, started at the k-denominator variance of yi):
  closed form.
* ``ML``, ``REML``: Fisher scoring started at max(0, HE) with step-halving at 0, then metafor's
  check that tau² = 0 does not have a larger likelihood.
* ``PM``/``MP`` (Paule-Mandel), ``EB`` (empirical Bayes) and ``SJIT`` (iterated SJ): each is a
  fixed point of the same equation, generalized Q(tau²) = k - 1, so all are computed as its
  exact root (tau² = 0 when Q(0) < k - 1). ``PMM`` (median-unbiased PM) solves Q(tau²) = the
  chi-square(k - 1) median.
* ``DLIT`` (iterated DL, metafor's update tau² <- (Q(tau²) - (k - 1)) / tr P(tau²), truncated at
  0): its fixed point solves Q(tau²) - (k - 1) - tau² tr P(tau²) = 0, found here by safeguarded
  Newton-bisection. metafor's plain iteration oscillates slowly and can fail where this root
  exists (e.g. dat.hackshaw1998, where metafor stops with "did not converge").

All estimates are truncated at 0, as metafor truncates them.

Convergence: the roots are found to ``tol`` (default 1e-12), that is to the exact root.
metafor's defaults stop early (``threshold = 1e-5`` on the change in tau² for Fisher scoring,
``tol = .Machine$double.eps^0.25`` ≈ 1.2e-4 in ``uniroot()`` for PM/PMM and the Q-profile
bounds), so its default PM estimates can be off by up to ~4e-4 (relative) and its iterated
DL/SJ/EB estimates by more. To compare with metafor, fit there with
``control=list(tol=1e-12, threshold=1e-12, maxiter=1000)``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from scipy import special

Method = Literal[
    "EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM", "DLIT", "SJIT"
]
METHODS: tuple[str, ...] = (
    "EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM", "DLIT",
    "SJIT",
)  # fmt: skip
COMMON_METHODS = frozenset({"EE", "FE"})
_ROOT_METHODS = frozenset({"EB", "PM", "MP", "SJIT"})  # all solve Q(tau2) = k - 1


class Tau2Fit(NamedTuple):
    """Result of :func:`estimate_tau2`: arrays shaped like the leading axes of ``yi``."""

    tau2: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


class QProfileCI(NamedTuple):
    """Q-profile confidence bounds for tau² (NaN where a search failed or k < 2)."""

    tau2_low: np.ndarray
    tau2_high: np.ndarray


class HeterogeneityBounds(NamedTuple):
    """Bounds on tau, I² (percent) and H² derived from the tau² bounds, as metafor's confint()."""

    tau_low: np.ndarray
    tau_high: np.ndarray
    i2_low: np.ndarray
    i2_high: np.ndarray
    h2_low: np.ndarray
    h2_high: np.ndarray


# ---------------------------------------------------------------------------------------------
# shared helpers (also used by pooling.py and batch.py)


def prepare(yi, vi, mask=None):
    """Return ``(yi, vi, m, k)`` as float arrays; ``m`` is the float mask (None = all studies).

    Masked-out entries are replaced by harmless placeholders (yi = 0, vi = 1) so that NaN
    padding never leaks into sums.
    """
    yi = np.asarray(yi, dtype=np.float64)
    vi = np.asarray(vi, dtype=np.float64)
    if yi.shape != vi.shape:
        raise ValueError(f"'yi' and 'vi' must have the same shape, got {yi.shape} and {vi.shape}.")
    if yi.ndim == 0:
        raise ValueError("'yi' must have at least one axis (the studies).")
    if mask is None:
        k = np.full(yi.shape[:-1], float(yi.shape[-1]))
        return yi, vi, None, k
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != yi.shape:
        raise ValueError(f"'mask' must have the shape of 'yi' {yi.shape}, got {mask.shape}.")
    yi = np.where(mask, yi, 0.0)
    vi = np.where(mask, vi, 1.0)
    m = mask.astype(np.float64)
    return yi, vi, m, m.sum(axis=-1)


def weights(vi, tau2, m):
    """Inverse-variance weights ``1 / (vi + tau2)``; zero for masked-out studies."""
    w = 1.0 / (vi + np.asarray(tau2)[..., None])
    return w if m is None else w * m


def weighted_residuals(yi, w):
    """Return ``(sum w, weighted mean, residuals yi - mean)``."""
    sw = w.sum(axis=-1)
    mu = (w * yi).sum(axis=-1) / sw
    return sw, mu, yi - mu[..., None]


def q_statistic(yi, vi, tau2, m):
    """Generalized Q(tau²) = sum w (y - mean_w)², w = 1/(vi + tau²)."""
    w = weights(vi, tau2, m)
    _, _, e = weighted_residuals(yi, w)
    return (w * e * e).sum(axis=-1)


# ---------------------------------------------------------------------------------------------
# closed-form estimators


def _dl(yi, vi, m, k):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = (w * e * e).sum(axis=-1)
    tr_p = sw - (w * w).sum(axis=-1) / sw
    return (q - (k - 1.0)) / tr_p


def _he(yi, vi, m, k):
    mm = 1.0 if m is None else m
    ybar = (mm * yi).sum(axis=-1) / k
    rss = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1)
    tr_pv = (k - 1.0) / k * (mm * vi).sum(axis=-1)
    return (rss - tr_pv) / (k - 1.0)


def _hs(yi, vi, m, k, *, kcorr):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = (w * e * e).sum(axis=-1)
    if kcorr:
        q = k / (k - 1.0) * q
    return (q - k) / sw


def _sj(yi, vi, m, k):
    mm = 1.0 if m is None else m
    ybar = (mm * yi).sum(axis=-1) / k
    tau2_0 = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1) / k
    q = q_statistic(yi, vi, tau2_0, m)
    return tau2_0 * q / (k - 1.0)


# ---------------------------------------------------------------------------------------------
# iterative estimators


def solve_q_equation(yi, vi, m, target, *, upper=None, tol=1e-12, maxiter=1000):
    """Root of the generalized Q equation ``Q(tau²) = target`` for each problem (vectorised).

    Q is decreasing and convex in tau² (dQ/dtau² = -sum (w e)², d²Q/dtau²² = 2 y'P³y >= 0), so
    Newton's method started at 0 rises monotonically to the root without overshooting.
    Returns ``(tau2, converged, iterations)``; tau² = 0 where Q(0) <= target. With ``upper``,
    the search stops at ``upper`` (metafor's ``tau2.max`` for the Q-profile bounds).
    """
    target = np.broadcast_to(np.asarray(target, dtype=np.float64), yi.shape[:-1])
    tau2 = np.zeros(yi.shape[:-1])
    iterations = np.zeros(yi.shape[:-1], dtype=np.int64)
    converged = np.ones(yi.shape[:-1], dtype=bool)
    w = weights(vi, tau2, m)
    _, _, e = weighted_residuals(yi, w)
    we = w * e
    f = (we * e).sum(axis=-1) - target
    active = f > 0
    if upper is not None:
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), tau2.shape)
    converged = converged & ~active
    for _ in range(maxiter):
        if not active.any():
            break
        step = f / (we * we).sum(axis=-1)
        new = tau2 + step
        tau2 = np.where(active, new, tau2)
        iterations = iterations + active
        done = np.abs(step) <= tol * np.maximum(tau2, 1.0)
        if upper is not None:
            over = tau2 >= upper
            tau2 = np.where(active & over, upper, tau2)
            done = done | over
        converged = converged | (active & done)
        active = active & ~done
        if not active.any():
            break
        w = weights(vi, tau2, m)
        _, _, e = weighted_residuals(yi, w)
        we = w * e
        f = (we * e).sum(axis=-1) - target
        at_root = f <= 0  # Newton from the left never passes the root: f <= 0 is round-off
        converged = converged | (active & at_root)
        active = active & ~at_root
    return tau2, converged, iterations


def _dlit_h(yi, vi, m, k, tau2):
    """h(tau²) = Q(tau²) - (k - 1) - tau² tr P(tau²) and its derivative (DLIT fixed point)."""
    w = weights(vi, tau2, m)
    sw, _, e = weighted_residuals(yi, w)
    w2 = w * w
    sw2 = w2.sum(axis=-1)
    q = (w * e * e).sum(axis=-1)
    ypp = (w2 * e * e).sum(axis=-1)
    tr_p = sw - sw2 / sw
    tr_pp = sw2 - 2.0 * (w2 * w).sum(axis=-1) / sw + sw2 * sw2 / (sw * sw)
    return q - (k - 1.0) - tau2 * tr_p, -ypp - tr_p + tau2 * tr_pp


def _solve_dlit(yi, vi, m, k, *, tol, maxiter):
    """Root of h(tau²) (see ``_dlit_h``) by Newton steps kept inside a bisection bracket."""
    shape = yi.shape[:-1]
    tau2 = np.zeros(shape)
    h0, _ = _dlit_h(yi, vi, m, k, tau2)
    active = (h0 > 0) & (k > 1)
    converged = ~active
    iterations = np.zeros(shape, dtype=np.int64)
    lo = np.zeros(shape)
    hi = np.ones(shape)
    for _ in range(1100):  # h(tau2) -> -(k - 1) as tau2 grows: find an upper bracket
        h_hi, _ = _dlit_h(yi, vi, m, k, hi)
        grow = active & (h_hi > 0)
        if not grow.any():
            break
        hi = np.where(grow, 2.0 * hi, hi)
    for _ in range(maxiter):
        if not active.any():
            break
        h, dh = _dlit_h(yi, vi, m, k, tau2)
        lo = np.where(active & (h > 0), tau2, lo)
        hi = np.where(active & (h <= 0), tau2, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = tau2 - h / dh
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        scale = tol * np.maximum(new, 1.0)
        done = (np.abs(new - tau2) <= scale) | (hi - lo <= scale) | (h == 0)
        tau2 = np.where(active, new, tau2)
        iterations = iterations + active
        converged = converged | (active & done)
        active = active & ~done
    return tau2, converged, iterations


def _loglik(yi, vi, m, k, tau2, reml):
    w = weights(vi, tau2, m)
    sw, _, e = weighted_residuals(yi, w)
    q = (w * e * e).sum(axis=-1)
    mm = 1.0 if m is None else m
    logdet = (mm * np.log(vi + tau2[..., None])).sum(axis=-1)
    if reml:
        return -0.5 * (k - 1.0) * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * np.log(sw) - 0.5 * q
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * q


def _fisher_scoring(yi, vi, m, k, *, reml, tol, maxiter):
    """metafor's Fisher scoring for ML/REML (start max(0, HE), step-halving at 0), vectorised.

    Stops per problem when the change in tau² is at most ``tol * max(1, tau²)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = np.maximum(_he(yi, vi, m, k), 0.0)
    tau2 = np.where(np.isfinite(tau2), tau2, 0.0)
    active = k > 1
    converged = ~active
    iterations = np.zeros(tau2.shape, dtype=np.int64)
    for _ in range(maxiter + 1):
        if not active.any():
            break
        w = weights(vi, tau2, m)
        sw, _, e = weighted_residuals(yi, w)
        w2 = w * w
        sw2 = w2.sum(axis=-1)
        ypp = (w2 * e * e).sum(axis=-1)
        if reml:
            tr_p = sw - sw2 / sw
            tr_pp = sw2 - 2.0 * (w2 * w).sum(axis=-1) / sw + sw2 * sw2 / (sw * sw)
            adj = (ypp - tr_p) / tr_pp
        else:
            adj = (ypp - sw) / sw2
        adj = np.where(np.isnan(adj), 0.0, adj)
        # step-halving, as metafor: halve adj until tau2 + adj >= 0
        neg = tau2 + adj < 0
        while neg.any():
            adj = np.where(neg, adj / 2.0, adj)
            neg = tau2 + adj < 0
        new = tau2 + adj
        change = np.abs(new - tau2)
        tau2 = np.where(active, new, tau2)
        iterations = iterations + active
        done = change <= tol * np.maximum(tau2, 1.0)
        converged = converged | (active & done)
        active = active & ~done
    # metafor's ll0check: if tau2 = 0 has the larger (restricted) likelihood, use 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ll0 = _loglik(yi, vi, m, k, np.zeros_like(tau2), reml)
        ll = _loglik(yi, vi, m, k, tau2, reml)
    stuck = converged & (ll0 - ll > tol) & (tau2 > tol)
    tau2 = np.where(stuck, 0.0, tau2)
    return tau2, converged, iterations


def estimate_tau2(yi, vi, method: Method, *, mask=None, tol=1e-12, maxiter=1000) -> Tau2Fit:
    """Estimate the between-study variance tau² for each meta-analysis.

    Parameters
    ----------
    yi, vi : array_like, shape (..., k)
        Effect sizes and their sampling variances (vi > 0); last axis = studies.
    method : {"EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM",
        "DLIT", "SJIT"}
        The estimator, as metafor's ``rma(method=)`` (see the module docstring).
    mask : array_like of bool, shape (..., k), optional
        ``True`` where the study takes part.
    tol : float
        Convergence tolerance of the iterative estimators (change in tau², relative above 1).
        The default 1e-12 gives the exact root; metafor's defaults stop much earlier (PM off
        by up to ~4e-4 relative), so compare with ``control=list(tol=1e-12, threshold=1e-12)``.
    maxiter : int
        Iteration limit; problems that reach it have ``converged = False``.

    Returns
    -------
    Tau2Fit
        ``(tau2, converged, iterations)``, arrays shaped ``yi.shape[:-1]``. tau² is 0 for
        problems with a single study.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79])
    >>> vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01])
    >>> fit = estimate_tau2(yi, vi, "DL")
    >>> round(float(fit.tau2), 6), bool(fit.converged)
    (0.220604, True)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.")
    yi, vi, m, k = prepare(yi, vi, mask)
    shape = yi.shape[:-1]
    zeros_i = np.zeros(shape, dtype=np.int64)
    ok = np.ones(shape, dtype=bool)
    if method in COMMON_METHODS:
        return Tau2Fit(np.zeros(shape), ok, zeros_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "DL":
            tau2 = _dl(yi, vi, m, k)
        elif method == "HE":
            tau2 = _he(yi, vi, m, k)
        elif method in ("HS", "HSk"):
            tau2 = _hs(yi, vi, m, k, kcorr=method == "HSk")
        elif method == "SJ":
            tau2 = _sj(yi, vi, m, k)
        elif method in ("ML", "REML"):
            tau2, ok, it = _fisher_scoring(
                yi, vi, m, k, reml=method == "REML", tol=tol, maxiter=maxiter
            )
            return Tau2Fit(np.where(k > 1, tau2, 0.0), ok | (k <= 1), it)
        elif method == "DLIT":
            return Tau2Fit(*_solve_dlit(yi, vi, m, k, tol=tol, maxiter=maxiter))
        else:
            target = k - 1.0 if method in _ROOT_METHODS else special.chdtri(k - 1.0, 0.5)
            target = np.where(k > 1, target, np.inf)
            tau2, ok, it = solve_q_equation(yi, vi, m, target, tol=tol, maxiter=maxiter)
            return Tau2Fit(tau2, ok, it)
    tau2 = np.where(k > 1, np.maximum(tau2, 0.0), 0.0)
    tau2 = np.where(np.isnan(tau2), 0.0, tau2)  # all yi equal (SJ start 0): 0/0
    return Tau2Fit(tau2, ok, zeros_i)


def q_profile_ci(yi, vi, *, mask=None, level=95.0, tau2=None, tol=1e-12, maxiter=1000):
    """Q-profile confidence interval for tau², as metafor's ``confint()`` (type "QP").

    The bounds solve ``Q(tau²) = chi²_{k-1}`` upper and lower ``(1 - level/100)/2`` quantiles,
    where Q is the generalized Q statistic with weights 1/(vi + tau²). A bound whose equation
    has no positive root (Q(0) below the quantile) is 0, as in metafor; a bound above
    metafor's search limit ``tau2.max = max(100, 10 * tau2)`` is set to that limit (metafor
    prints it as ">"). Roots are found to ``tol`` (metafor's default stops at ~1.2e-4).

    Parameters
    ----------
    yi, vi, mask : as :func:`estimate_tau2`.
    level : float
        Confidence level in percent.
    tau2 : array_like, optional
        The model's tau² estimate; only sets the search limit ``max(100, 10 * tau2)``.

    Returns
    -------
    QProfileCI
        ``(tau2_low, tau2_high)``; NaN for problems with fewer than 2 studies or a failed search.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79])
    >>> vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01])
    >>> lo, hi = q_profile_ci(yi, vi)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0561, 2.3287)
    """
    yi, vi, m, k = prepare(yi, vi, mask)
    alpha = 1.0 - level / 100.0
    df = np.where(k > 1, k - 1.0, np.nan)
    crit_u = special.chdtri(df, alpha / 2.0)  # upper chi-square critical value
    crit_l = special.chdtri(df, 1.0 - alpha / 2.0)  # lower chi-square critical value
    upper = np.full(yi.shape[:-1], 100.0)
    if tau2 is not None:
        upper = np.maximum(upper, 10.0 * np.asarray(tau2, dtype=np.float64))
    # stack the two searches along a new leading axis: one vectorised Newton run
    ys = np.broadcast_to(yi, (2, *yi.shape))
    vs = np.broadcast_to(vi, (2, *vi.shape))
    ms = None if m is None else np.broadcast_to(m, (2, *m.shape))
    target = np.stack([np.where(k > 1, crit_u, np.inf), np.where(k > 1, crit_l, np.inf)])
    roots, ok, _ = solve_q_equation(
        ys, vs, ms, target, upper=np.stack([upper, upper]), tol=tol, maxiter=maxiter
    )
    roots = np.where(ok & (k > 1), roots, np.nan)
    return QProfileCI(roots[0], roots[1])


def heterogeneity_bounds(tau2_low, tau2_high, vt) -> HeterogeneityBounds:
    """tau, I² (percent) and H² bounds from tau² bounds and the typical variance ``vt``.

    As metafor's ``confint()``: I² = 100 tau² / (vt + tau²), H² = tau² / vt + 1.
    """
    lo = np.asarray(tau2_low, dtype=np.float64)
    hi = np.asarray(tau2_high, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return HeterogeneityBounds(
            np.sqrt(lo),
            np.sqrt(hi),
            100.0 * lo / (vt + lo),
            100.0 * hi / (vt + hi),
            lo / vt + 1.0,
            hi / vt + 1.0,
        )
