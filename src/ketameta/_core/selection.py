"""Selection models for publication bias, fitted by maximum likelihood (metafor's ``selmodel()``).

y_i ~ N(mu, v_i + tau²) is observed with relative probability w(p_i; delta), p_i the one-sided
(``"greater"``: 1 - Phi(y_i / sqrt(v_i)), ``"less"``: Phi(z_i)) or two-sided p-value; the
log-likelihood is sum_i [log w(p_i) + log N(y_i; mu, v_i + tau²) - log A_i] with
A_i = E[w(p(Y_i))], Y_i ~ N(mu, v_i + tau²). Selection functions (metafor 3.8-1; ``a`` is the
optional single ``steps`` value: w = 1 for p <= a, else divided by its value at a):

* ``stepfun`` (Vevea & Hedges 1995): w = delta_j for alpha_(j-1) < p <= alpha_j, alpha_c = 1,
  delta_1 = 1; A_i is a sum of normal probabilities. ``steps=(0.025,)`` is the 3PSM.
* ``beta`` (Citkowicz & Vevea 2017): p^(delta_1 - 1) (1 - p)^(delta_2 - 1), p censored to
  [1e-5, 1 - 1e-5] (``pval.min``); ``halfnorm`` exp(-delta p²), ``negexp`` exp(-delta p),
  ``logistic`` 2 exp(-delta p) / (1 + exp(-delta p)), ``power`` (1 - p)^delta (p censored).

Continuous A_i: composite 8-point Gauss-Legendre on the z = y / sqrt(v_i) scale, panel edges at
the kinks of w and on grids fine for both factors (error ~1e-13, smooth in the parameters, so
finite-difference Hessians are clean; metafor uses ``integrate()`` at rel.tol ~1.2e-4).

Fitting uses metafor's parametrisation and starts (mu; log tau²; each free delta mapped
logistically onto (delta_min, delta_max) = (0, 100), (1e-5, 100) for beta; start at the ML
random-effects fit, log(tau² + 1e-3), delta = 1, stepfun 1 ... 0.8): BFGS, then Newton steps to
the exact optimum (metafor's ``optim()`` stops at reltol 1e-8). Estimates at a limit (delta
within metafor's warning margin of delta_min/delta_max; tau² -> 0) are set to it, the rest is
refitted, they are flagged and left out of the Hessian (se NaN). Covariances: inverse Hessian
of -loglik in (mu, tau², delta) by Richardson-extrapolated differences (numDeriv's scheme,
r = 6); as in metafor, tau² < min(v_i / 10, 1e-4) and step deltas < 1e-4 are held fixed there.
The LRT compares with the ML random-effects (or equal-effects) model without selection.

This module holds the fit; the selection functions, p-values and the likelihood are in
:mod:`ketameta._core.selection_lik` (re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, special

from ketameta._core.selection_lik import (
    _EPS,
    TYPES,
    Alternative,
    _loglik,
    _spec,
    log_normalisers,
    p_values,
    selection_loglik,
    selection_weights,
)
from ketameta._core.tau2 import estimate_tau2

__all__ = ["TYPES", "SelectionFit", "log_normalisers", "p_values", "selection_loglik",
           "selection_model", "selection_weights"]  # fmt: skip


def _hessian(f, x, r=6, d=0.1):
    """Richardson-extrapolated central-difference Hessian (numDeriv's scheme: d=0.1, v=2)."""
    n = x.size
    h0 = d * np.abs(x) + 1e-4 * (np.abs(x) < math.sqrt(_EPS / 7e-7))
    f0, levels = f(x), []
    for m in range(r):
        h = h0 / 2.0**m
        hm = np.empty((n, n))
        for i in range(n):
            ei = np.zeros(n)
            ei[i] = h[i]
            hm[i, i] = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(n)
                ej[j] = h[j]
                hm[i, j] = hm[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                       + f(x - ei - ej)) / (4 * h[i] * h[j])  # fmt: skip
        levels.append(hm)
    for t in range(1, r):
        levels = [(4.0**t * levels[m + 1] - levels[m]) / (4.0**t - 1) for m in range(r - t)]
    return levels[0]


@dataclass(frozen=True)
class SelectionFit:
    """Result of :func:`selection_model` (names follow metafor's ``selmodel()`` object)."""

    type: str
    alternative: str
    steps: np.ndarray
    beta: float
    se: float
    zval: float
    pval: float
    ci_lb: float
    ci_ub: float
    tau2: float
    se_tau2: float
    ci_lb_tau2: float
    ci_ub_tau2: float
    delta: np.ndarray
    se_delta: np.ndarray
    zval_delta: np.ndarray
    pval_delta: np.ndarray
    ci_lb_delta: np.ndarray
    ci_ub_delta: np.ndarray
    delta_fixed: np.ndarray  # fixed by the user (or delta_1 of the step function)
    delta_at_bound: np.ndarray  # estimate at delta_min/delta_max: not an interior optimum
    tau2_at_bound: bool  # tau² estimated as 0
    loglik: float
    loglik0: float  # model without selection (ML random effects / equal effects)
    lrt: float
    lrt_df: int
    lrt_pval: float
    lrt_tau2: float
    lrt_pval_tau2: float
    ptable: np.ndarray  # studies per p-value interval (steps given), else empty
    pvals: np.ndarray
    vcov: np.ndarray  # inverse Hessian over the estimated, non-boundary parameters
    converged: bool
    warnings: tuple[str, ...] = field(default=())


def _fit(y, v, pv, spec, alt, delta_arg, tau2_arg, x0_mu, x0_t2, tol, init_d=None):
    """Maximise over mu, log tau² (if free) and the mapped free deltas: (ll, mu, t2, d, ok)."""
    free_d = np.isnan(delta_arg)
    lo, hi = spec.dmin[free_d], spec.dmax[free_d]
    free_t = tau2_arg is None
    init_d = (spec.init if init_d is None else init_d)[free_d]
    init_d = init_d.clip(lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo))
    x0 = np.concatenate(([x0_mu], [math.log(x0_t2 + 1e-3)] if free_t else [],
                         np.log((init_d - lo) / (hi - init_d))))  # fmt: skip

    def unpack(x):
        d = delta_arg.copy()
        d[free_d] = lo + (hi - lo) * special.expit(x[1 + free_t :])
        return x[0], (math.exp(min(x[1], 700.0)) if free_t else tau2_arg), d

    def nll(x):
        ll = _loglik(*unpack(x), y, v, pv, spec, alt)
        return -ll if np.isfinite(ll) else 1e300

    scale = np.ones(x0.size)
    scale[0] = math.sqrt(float(np.median(v)))

    def grad(x, five=False):
        g = np.empty(x.size)
        for j in range(x.size):
            e = np.zeros(x.size)
            e[j] = (1e-3 if five else 1e-4) * scale[j]
            g[j] = nll(x + e) - nll(x - e)
            if five:
                g[j] = 8 * g[j] - nll(x + 2 * e) + nll(x - 2 * e)
            g[j] /= (12 if five else 2) * e[j]
        return g

    res = optimize.minimize(nll, x0, jac=grad, method="BFGS",
                            options={"gtol": tol, "maxiter": 5000})  # fmt: skip
    x, fx = res.x, res.fun
    for _ in range(6):  # Newton steps (5-point gradient) to the exact optimum
        try:
            step = np.linalg.solve(_hessian(nll, x, r=2, d=0.01), grad(x, five=True))
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or nll(x - step) > fx + 1e-13:
            break
        x, fx = x - step, nll(x - step)
        if np.max(np.abs(step)) < 1e-10:
            break
    ok = bool(np.max(np.abs(grad(x, five=True))) < 1e-5)
    return -fx, *unpack(x), ok


def selection_model(
    yi,
    vi,
    type: str = "stepfun",  # noqa: A002
    *,
    steps=None,
    alternative: Alternative = "greater",
    delta=None,
    method: Literal["ML", "EE", "FE"] = "ML",
    tau2: float | None = None,
    level: float = 95.0,
    delta_min=None,
    delta_max=None,
    pval_min: float | None = None,
    tol: float = 1e-6,
) -> SelectionFit:
    """Fit a selection model by maximum likelihood (metafor's ``selmodel()``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and sampling variances (vi > 0).
    type : {"stepfun", "beta", "halfnorm", "negexp", "logistic", "power"}
        Selection function; ``steps`` are the step function's cut points (1 appended) or, for
        halfnorm/negexp/logistic/power, a single threshold below which w = 1.
    alternative : {"greater", "less", "two.sided"}
        Sidedness of the p-values on which selection acts.
    delta : sequence of float, optional
        Fixed delta values; NaN entries are estimated (the step function's delta_1 is 1).
    method : {"ML", "EE", "FE"}
        Random-effects (tau² by ML, or fixed at ``tau2``) or equal-effects (tau² = 0) model.
    level : float
        Confidence level (percent) of the Wald intervals.
    delta_min, delta_max, pval_min : optional
        metafor's ``delta.min``/``delta.max`` limits and p-value censoring.
    tol : float
        Gradient tolerance of the BFGS stage (Newton steps then reach the optimum).

    Returns
    -------
    SelectionFit
    """
    spec = _spec(type, steps, delta_min, delta_max, pval_min)
    y, v = np.asarray(yi, float).ravel(), np.asarray(vi, float).ravel()
    if y.shape != v.shape or not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError("yi and vi must be finite and of the same length.")
    if np.any(v <= 0):
        raise ValueError("Cannot fit a selection model with non-positive sampling variances.")
    n_d = spec.h0.size
    delta_arg = np.full(n_d, np.nan) if delta is None else np.broadcast_to(
        np.asarray(delta, float), (n_d,)).copy()  # fmt: skip
    if type == "stepfun" and np.isnan(delta_arg[0]):
        delta_arg[0] = 1.0
    tau2_arg = 0.0 if method in ("EE", "FE") else tau2
    t2_ml = float(estimate_tau2(y, v, "ML").tau2) if tau2_arg is None else float(tau2_arg)
    w = 1.0 / (v + t2_ml)
    mu_ml = float((w * y).sum() / w.sum())
    ll0 = float(-0.5 * np.sum(np.log(2 * np.pi * (v + t2_ml)) + (y - mu_ml) ** 2 * w))
    k, free_d = y.size, np.isnan(delta_arg)
    if k < 1 + (tau2_arg is None) + free_d.sum():
        raise ValueError(f"Number of studies (k={k}) is too small to fit the selection model.")
    pv0 = p_values(y, v, alternative)
    pv = np.clip(pv0, spec.pval_min, 1 - spec.pval_min)
    msgs: list[str] = []
    ptable = np.zeros(0, dtype=int)
    if spec.type == "stepfun" or spec.steps[0] > 0:
        cuts = spec.steps if spec.type == "stepfun" else np.array([spec.steps[0], 1.0])
        ptable = np.bincount(np.searchsorted(cuts, pv, side="left"), minlength=cuts.size)
        if np.any(ptable == 0):
            msgs.append("One or more p-value intervals contain no observed p-values.")

    fit = _fit(y, v, pv, spec, alternative, delta_arg, tau2_arg, mu_ml, t2_ml, tol)
    ll, mu, t2, d, ok = fit
    # A delta within 1% of the range from delta_min/delta_max, or a tau² near 0, is set to that
    # limit when this fits at least as well (the likelihood rises towards it); such estimates
    # are flagged and held there, the others refitted.
    at_bound, t2_bound = np.zeros(n_d, dtype=bool), False
    near = free_d & (np.minimum(d - spec.dmin, spec.dmax - d) < 0.01 * (spec.dmax - spec.dmin))
    ll_tol = 1e-12 * max(1.0, abs(ll))
    for j in [*np.flatnonzero(near), -1]:  # -1: tau² = 0
        if j < 0 and not (tau2_arg is None and t2 < min(float(v.min()) / 10, 1e-4)):
            break
        d_c = np.where(at_bound, d, delta_arg)
        if j >= 0:
            d_c[j] = spec.dmin[j] if d[j] - spec.dmin[j] < spec.dmax[j] - d[j] else spec.dmax[j]
        alt_fit = _fit(y, v, pv, spec, alternative, d_c, 0.0 if j < 0 else tau2_arg, mu, t2,
                       tol, init_d=d)  # fmt: skip
        if alt_fit[0] >= ll - ll_tol:
            ll, mu, t2, d, ok = alt_fit
            if j >= 0:
                at_bound[j] = True
            else:
                t2_bound = True
    if at_bound.any():
        msgs.append("One or more delta estimates are at their limit (delta_min/delta_max); "
                    "they are not interior optima (se set to NaN).")  # fmt: skip
    # Hessian on the natural scale over the estimated, non-boundary parameters
    est_t2 = tau2_arg is None and not t2_bound and t2 >= min(float(v.min()) / 10, 1e-4)
    est_d = free_d & ~at_bound & ~((spec.type == "stepfun") & (d < 1e-4))
    x_hat = np.concatenate(([mu], [t2] if est_t2 else [], d[est_d]))

    def nll_nat(x):
        dd = d.copy()
        dd[est_d] = x[1 + est_t2 :]
        return -_loglik(x[0], x[1] if est_t2 else t2, dd, y, v, pv, spec, alternative)

    hess = _hessian(nll_nat, x_hat)
    try:
        vcov = np.linalg.inv(hess)
        np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        vcov = np.full_like(hess, np.nan)
        msgs.append("The Hessian is not positive definite: standard errors are NaN.")
    sd_all = np.sqrt(np.diag(vcov))
    crit = -special.ndtri((1 - level / 100) / 2)
    se = float(sd_all[0])
    se_t2 = float(sd_all[1]) if est_t2 else math.nan
    se_d = np.full(n_d, np.nan)
    se_d[est_d] = sd_all[1 + est_t2 :]
    z_d = (d - spec.h0) / se_d
    lb_d = np.maximum(np.maximum(d - crit * se_d, spec.lb), spec.dmin)
    ub_d = np.minimum(np.minimum(d + crit * se_d, spec.ub), spec.dmax)
    lrt = max(0.0, 2 * (ll - ll0))
    lrt_df = int(free_d.sum())
    lrt_t2 = lrt_p_t2 = math.nan
    if tau2_arg is None:
        ll_t0 = _fit(y, v, pv, spec, alternative, delta_arg, 0.0, mu, 0.0, tol)[0]
        lrt_t2 = max(0.0, 2 * (ll - ll_t0))
        lrt_p_t2 = float(special.chdtrc(1, lrt_t2))
    if not ok:
        msgs.append("The optimiser did not reach a zero gradient.")
    return SelectionFit(
        type=spec.type, alternative=alternative, steps=spec.steps, beta=float(mu), se=se,
        zval=mu / se, pval=float(2 * special.ndtr(-abs(mu / se))), ci_lb=mu - crit * se,
        ci_ub=mu + crit * se, tau2=float(t2), se_tau2=se_t2,
        ci_lb_tau2=max(0.0, t2 - crit * se_t2), ci_ub_tau2=t2 + crit * se_t2, delta=d,
        se_delta=se_d, zval_delta=z_d, pval_delta=2 * special.ndtr(-np.abs(z_d)),
        ci_lb_delta=lb_d, ci_ub_delta=ub_d, delta_fixed=~free_d, delta_at_bound=at_bound,
        tau2_at_bound=t2_bound, loglik=ll, loglik0=ll0, lrt=lrt, lrt_df=lrt_df,
        lrt_pval=float(special.chdtrc(lrt_df, lrt)) if lrt_df else math.nan, lrt_tau2=lrt_t2,
        lrt_pval_tau2=lrt_p_t2, ptable=ptable, pvals=pv0, vcov=vcov, converged=ok,
        warnings=tuple(msgs),
    )  # fmt: skip
