"""Between-study variance (tau²) estimators and the Q-profile confidence interval.

The ML/REML machinery lives in :mod:`ketameta._core.reml` and the Q-profile interval in
:mod:`ketameta._core.qprofile`; their names are importable from here as well.

Every function works on arrays shaped ``(..., k)``: the last axis holds the studies, leading
axes index independent meta-analyses (all solved at once, each with its own convergence
check). An optional boolean ``mask`` of the same shape marks the studies that take part
(ragged problems); masked-out entries may hold any placeholder and never affect the result.

The estimators follow metafor's ``rma.uni()`` (intercept-only model, metafor 3.8-1):

* ``EE``/``FE``: tau² = 0.
* ``DL`` (DerSimonian-Laird), ``HE`` (Hedges), ``HS`` (Hunter-Schmidt), ``HSk`` (HS with the
  k/(k-1) correction), ``SJ`` (Sidik-Jonkman, started at the k-denominator variance of yi):
  closed form.
* ``ML``, ``REML``: Fisher scoring started at max(0, HE) with step-halving at 0 (metafor's path,
  so the same local maximum when the likelihood has two; at 0 where the score there is <= 0
  and a score scan shows no other maximum), finished by Newton steps, then metafor's check
  that tau² = 0 does not have a larger likelihood.
* ``PM``/``MP`` (Paule-Mandel), ``EB`` (empirical Bayes) and ``SJIT`` (iterated SJ): each is a
  fixed point of the same equation, generalized Q(tau²) = k - 1, so all are computed as its
  exact root (tau² = 0 when Q(0) < k - 1). ``PMM`` (median-unbiased PM) solves Q(tau²) = the
  chi-square(k - 1) median. metafor stops with "Value of 'tau2.max' too low" when the root
  exceeds ``tau2.max = max(100, 10 mad(yi)²)``; here the root is returned.
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

from ketameta._core.arrays import (
    normalize,
    prepare,
    q_statistic,
    rowsum,
    vdot,
    weighted_residuals,
    weights,
)
from ketameta._core.iterative import solve_dlit, solve_q_equation
from ketameta._core.qprofile import (  # noqa: F401 (the public names live on here too)
    HeterogeneityBounds,
    QProfileCI,
    _chi2_isf,
    _grow,
    _q_profile_prepared,
    _q_root_one,
    _QProfilePair,
    _search_limit,
    heterogeneity_bounds,
    q_profile_ci,
)
from ketameta._core.reml import (  # noqa: F401 (importable from here as before)
    _fisher_one,
    _loglik,
    _ml_reml,
    _other_maxima,
    _scan_needed,
)

__all__ = [
    "COMMON_METHODS",
    "METHODS",
    "HeterogeneityBounds",
    "QProfileCI",
    "Tau2Fit",
    "estimate_tau2",
    "heterogeneity_bounds",
    "prepare",
    "q_profile_ci",
    "q_statistic",
    "weighted_residuals",
    "weights",
]

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


# ---------------------------------------------------------------------------------------------
# closed-form estimators


def _dl(yi, vi, m, k):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = vdot(w * e, e)
    tr_p = sw - vdot(w, w) / sw
    return (q - (k - 1.0)) / tr_p


def _he(yi, vi, m, k):
    if m is None:  # the masked formula with the multiplications by 1 left out
        ybar = rowsum(yi) / k
        d = yi - ybar[..., None]
        rss = rowsum(np.multiply(d, d, out=d))
        tr_pv = (k - 1.0) / k * rowsum(vi)
        return (rss - tr_pv) / (k - 1.0)
    ybar = (m * yi).sum(axis=-1) / k
    rss = (m * (yi - ybar[..., None]) ** 2).sum(axis=-1)
    tr_pv = (k - 1.0) / k * (m * vi).sum(axis=-1)
    return (rss - tr_pv) / (k - 1.0)


def _hs(yi, vi, m, k, *, kcorr):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = vdot(w * e, e)
    if kcorr:
        q = k / (k - 1.0) * q
    return (q - k) / sw


def _sj(yi, vi, m, k):
    mm = 1.0 if m is None else m
    ybar = (mm * yi).sum(axis=-1) / k
    tau2_0 = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1) / k
    q = q_statistic(yi, vi, tau2_0, m)
    return tau2_0 * q / (k - 1.0)


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
    (0.208634, True)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.")
    yi, vi, m, k = prepare(yi, vi, mask)
    return _estimate_prepared(yi, vi, m, k, method, tol=tol, maxiter=maxiter)


def _estimate_prepared(yi, vi, m, k, method, *, tol, maxiter, scaled=None, parts=None) -> Tau2Fit:
    """:func:`estimate_tau2` on the output of :func:`ketameta._core.arrays.prepare`.

    Every estimator runs on the centred and rescaled problem of
    :func:`ketameta._core.arrays.normalize` (yi -> (yi - c) / s, vi -> vi / s², s a power of
    two) and tau² is scaled back by s²: the estimates are location invariant and scale
    equivariant, and no intermediate overflows for yi ~ 1e±300 or vi ~ 1e±300. Where s² tau²
    itself is not a finite float, tau² is NaN and ``converged`` False. ``scaled=s`` says
    that yi, vi are already normalized with scale s. For ML/REML, a dict ``parts`` receives
    the pieces of the likelihood at the (normalized) estimate (see
    :func:`ketameta._core.reml._ml_reml`).
    """
    if method in COMMON_METHODS:
        shape = yi.shape[:-1]
        return Tau2Fit(np.zeros(shape), np.ones(shape, dtype=bool), np.zeros(shape, np.int64))
    y, v, _, s = normalize(yi, vi, m) if scaled is None else (yi, vi, None, scaled)
    fit = _estimate_scaled(y, v, m, k, method, tol=tol, maxiter=maxiter, parts=parts)
    with np.errstate(over="ignore", invalid="ignore"):
        tau2 = fit.tau2 * s * s
    # vi / s² underflowing to 0 (vi below 1e-308 times the squared spread of yi): Q and the
    # weights at tau² = 0 are not floats, so neither is the answer of most estimators
    tiny = (v <= 0) if m is None else (v <= 0) & (m > 0)
    finite = np.isfinite(tau2) & ~(tiny.any(axis=-1) & (k > 1))
    return Tau2Fit(np.where(finite, tau2, np.nan), fit.converged & finite, fit.iterations)


def _estimate_scaled(yi, vi, m, k, method, *, tol, maxiter, parts=None) -> Tau2Fit:
    """:func:`_estimate_prepared` on a normalized problem."""
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
            start = np.maximum(_he(yi, vi, m, k), 0.0)  # metafor's start: max(0, HE)
            start = np.where(np.isfinite(start) & (k > 1), start, 0.0)
            reml = method == "REML"
            fit = _ml_reml(
                yi, vi, m, k, reml=reml, tol=tol, maxiter=maxiter, start=start, parts=parts
            )
            return Tau2Fit(*fit)
        elif method == "DLIT":
            return Tau2Fit(*solve_dlit(yi, vi, m, k, tol=tol, maxiter=maxiter))
        else:
            target = k - 1.0 if method in _ROOT_METHODS else _chi2_isf(k - 1.0, 0.5)
            target = np.where(k > 1, target, np.inf)
            tau2, ok, it = solve_q_equation(yi, vi, m, target, tol=tol, maxiter=maxiter)
            return Tau2Fit(tau2, ok, it)
    tau2 = np.where(k > 1, np.maximum(tau2, 0.0), 0.0)
    tau2 = np.where(np.isnan(tau2), 0.0, tau2)  # all yi equal (SJ start 0): 0/0
    return Tau2Fit(tau2, ok, zeros_i)
