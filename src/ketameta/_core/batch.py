"""The whole ``meta()`` computation for many meta-analyses at once.

``fit_batch`` estimates tau², pools, and (optionally) computes the Q-profile interval for tau²
and the derived tau, I², H² bounds, for every leading index of ``(..., k)`` arrays in one
vectorised pass. It is the engine under ``meta()``, ``meta_batch()``, leave-one-out, GOSH and
permutation tests.
"""

from __future__ import annotations

import numpy as np

from ketameta._core.arrays import normalize, prepare, rowsum
from ketameta._core.fitstats import _LOG_2PI, fit_statistics, se_tau2
from ketameta._core.pooling import TESTS, TESTS_TEXT, _pool_prepared
from ketameta._core.tau2 import (
    COMMON_METHODS,
    METHODS,
    _estimate_prepared,
    _q_profile_prepared,
    heterogeneity_bounds,
)


def fit_batch(
    yi,
    vi,
    *,
    mask=None,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    ci_tau2: bool = True,
    stats: bool = True,
    tol: float = 1e-12,
    maxiter: int = 1000,
    max_tau2="metafor",
) -> dict[str, np.ndarray]:
    """Fit a random-effects (or common-effect) model to each meta-analysis of a batch.

    Parameters
    ----------
    yi, vi : array_like, shape (..., k)
        Effect sizes and sampling variances; last axis = studies, leading axes = analyses.
    mask : array_like of bool, shape (..., k), optional
        ``True`` where the study takes part (ragged batches).
    method : str
        tau² estimator (see :func:`ketameta._core.tau2.estimate_tau2`).
    test : {"z", "t", "knha", "adhoc"}
        Wald z, t(k - 1) with the unadjusted SE, Hartung-Knapp, or Hartung-Knapp with the
        factor truncated below at 1 (metafor's names; see :func:`ketameta._core.pooling.pool`).
    level : float
        Confidence level in percent.
    ci_tau2 : bool
        Also compute the Q-profile CI of tau² and the derived tau, I², H² bounds (NaN for
        EE/FE models and k < 2, where metafor has no such interval).
    stats : bool
        Also compute ``se_tau2`` and the fit statistics (default). ``False`` leaves those keys
        out, for callers that fit many subsets and need only the pooled numbers (GOSH,
        permutations): about a third of a DL batch.
    tol, maxiter
        Convergence settings of the iterative steps (exact roots by default).
    max_tau2 : "metafor", None, float or array_like
        Search limit of the Q-profile bounds (see :func:`ketameta._core.tau2.q_profile_ci`):
        metafor's ``max(100, 10 tau²)`` (default), None to grow the bracket until it holds
        the root, or a value.

    Returns
    -------
    dict of ndarray
        Every key of :func:`ketameta._core.pooling.pool` plus ``tau2, tau, converged,
        iterations``, with ``stats`` ``se_tau2`` and the fit statistics ``loglik, deviance, aic,
        bic, aicc`` (see :mod:`ketameta._core.fitstats`), and with ``ci_tau2`` also ``tau2_ci_low,
        tau2_ci_high, tau_ci_low, tau_ci_high, i2_ci_low, i2_ci_high, h2_ci_low, h2_ci_high,
        ci_converged`` and the flags ``ci_low_found, ci_high_found`` (the bound is a root, or 0
        with no positive root) and ``ci_low_at_limit, ci_high_at_limit`` (reported as the
        search limit), which name the bound that was not found.
        ``converged`` is False wherever tau² is not a finite root (the iteration limit, a
        failed search, or s² tau² overflowing for extreme inputs): rows to warn about.
        Everything is computed on the centred and rescaled problem
        (:func:`ketameta._core.arrays.normalize`) and mapped back, so the results are location
        invariant and scale equivariant.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> vi = rng.uniform(0.01, 0.1, size=(1000, 20))
    >>> yi = rng.normal(0.3, np.sqrt(vi + 0.05))
    >>> out = fit_batch(yi, vi, method="REML")
    >>> out["tau2"].shape, bool(out["converged"].all())
    ((1000,), True)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.")
    if test not in TESTS:
        raise ValueError(f"Unknown 'test' {test!r}; choose {TESTS_TEXT}.")
    if not 0.0 < float(level) < 100.0:
        raise ValueError(f"'level' must be a percentage in (0, 100), got {level!r}.")
    # prepare once (mask placeholders, k); the steps below take the prepared arrays
    yi, vi, m, k = prepare(yi, vi, mask)
    yi, vi, c, s = normalize(yi, vi, m)  # once: every step below works on this problem
    # the likelihood pieces at the estimate and Q(0), from the ML/REML fit
    parts = {} if (stats or ci_tau2) and method in ("ML", "REML") else None
    fit = _estimate_prepared(yi, vi, m, k, method, tol=tol, maxiter=maxiter, scaled=s, parts=parts)
    out = _pool_prepared(
        yi, vi, m, k, fit.tau2, test=test, level=level, method=method, scaled=(c, s)
    )
    out["tau2"] = fit.tau2
    out["tau"] = np.sqrt(fit.tau2)
    out["converged"] = fit.converged
    out["iterations"] = fit.iterations
    if stats:
        out.update(_scaled_statistics(yi, vi, m, k, fit.tau2, method, s, parts))
    if ci_tau2:
        shape = fit.tau2.shape
        if method in COMMON_METHODS:
            nan = np.full(shape, np.nan)
            lo, hi = nan, nan.copy()
            ci_ok = np.ones(shape, dtype=bool)
            no = np.zeros(shape, dtype=bool)
            flags = (no, no, no, no)
        else:
            ci = _q_profile_prepared(
                yi, vi, m, k, level=level, tau2=fit.tau2, tol=tol, maxiter=maxiter,
                max_tau2=max_tau2, scaled=s, at_zero=parts.get("at_zero") if parts else None,
                at_tau2=parts.get("at_tau2") if parts else None,
            )  # fmt: skip
            lo, hi = ci
            ci_ok = ~(np.isnan(lo) | np.isnan(hi)) | (k < 2)
            flags = (ci.low_found, ci.high_found, ci.low_at_limit, ci.high_at_limit)
        bounds = heterogeneity_bounds(lo, hi, out["vt"])
        out.update(
            tau2_ci_low=lo,
            tau2_ci_high=hi,
            tau_ci_low=bounds.tau_low,
            tau_ci_high=bounds.tau_high,
            i2_ci_low=bounds.i2_low,
            i2_ci_high=bounds.i2_high,
            h2_ci_low=bounds.h2_low,
            h2_ci_high=bounds.h2_high,
            ci_converged=ci_ok,
            ci_low_found=flags[0],
            ci_high_found=flags[1],
            ci_low_at_limit=flags[2],
            ci_high_at_limit=flags[3],
        )
    return out


def _scaled_statistics(y, v, m, k, tau2, method, s, parts=None):
    """se_tau2 and the fit statistics on the rescaled problem, mapped back to yi's units.

    With yi -> (yi - c) / s, vi -> vi / s², tau² -> tau² / s²: se_tau2 scales by s², the
    (restricted) log-likelihood shifts by -(k - 1) log s (REML) or -k log s, AIC/BIC/AICc by
    -2 times that, the REML deviance (-2 logLik) likewise; the ML deviance is scale free.
    ``y``, ``v`` are the normalized problem and ``s`` its scale. ``parts`` (REML): the pieces
    of the likelihood at the estimate from the fit (see :func:`_reml_statistics`).
    """
    s2 = s * s
    with np.errstate(over="ignore", invalid="ignore"):
        t = tau2 / s2
    if parts and method == "REML" and np.array_equal(t, parts["tau2"]):
        se, fs = _reml_statistics(k, parts)
        out = {"se_tau2": se * s2}
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out = {"se_tau2": se_tau2(y, v, t, method, m=m, k=k) * s2}
        fs = fit_statistics(y, v, t, method, m=m, k=k)
    shift = -((k - 1.0) if method == "REML" else k) * np.log(s)
    fs["loglik"] = fs["loglik"] + shift
    for key in ("aic", "bic", "aicc"):
        fs[key] = fs[key] - 2.0 * shift
    if method == "REML":
        fs["deviance"] = fs["deviance"] - 2.0 * shift
    out.update(fs)
    return out


def _reml_statistics(k, parts):
    """REML se_tau2 and fit statistics from the fit's weights and likelihood pieces.

    The arithmetic of :func:`ketameta._core.fitstats.se_tau2` (sqrt(2 / tr PP)) and
    :func:`ketameta._core.fitstats.fit_statistics` (REML branch), on ``sum w``, Q, log det V
    and the weights that the fit already computed at its estimate, so the values are the same
    without evaluating the weights, residuals and logarithms again.
    """
    w, sw = parts["w"], parts["sw"]
    w2 = w * w
    s2 = rowsum(w2)
    with np.errstate(divide="ignore", invalid="ignore"):
        tr_pp = s2 - 2.0 * rowsum(w2 * w) / sw + s2 * s2 / (sw * sw)
        se = np.where(k > 1, np.sqrt(2.0 / tr_pp), np.nan)
    n = k - 1.0
    parms = 2.0
    ll = (
        -0.5 * n * _LOG_2PI + 0.5 * np.log(k) - 0.5 * parts["logdet"] - 0.5 * np.log(sw)
        - 0.5 * parts["q"]
    )  # fmt: skip
    big = np.maximum(n, parms + 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fs = {
            "loglik": ll,
            "deviance": -2.0 * ll,
            "aic": -2.0 * ll + 2.0 * parms,
            "bic": -2.0 * ll + parms * np.log(n),
            "aicc": -2.0 * ll + 2.0 * parms * big / (big - parms - 1.0),
        }
    return se, fs
