"""Multilevel / multivariate meta-analysis (metafor's ``rma.mv``) on numpy arrays.

``y ~ N(X b, M)`` with ``M = V + sum_j sigma2_j Z_j Z_j' + sum_t S_t o (Z_t G_t Z_t')`` (see
:mod:`ketameta._core.multilevel_struct` for the terms). The variance components maximise

* ML: ``-1/2 [k log 2pi + log|M| + r'M^-1 r]``,
* REML: ``-1/2 [(k-p) log 2pi - log|X'X| + log|M| + log|X'M^-1 X| + r'M^-1 r]``,

with ``r = y - X b`` at the GLS estimate ``b = (X'M^-1X)^-1 X'M^-1 y`` (metafor's ``logLik``).
Everything is computed block by block (one batched Cholesky/inverse per block size), with the
analytic score. The maximiser is L-BFGS-B on a transformed scale (variances scaled, >= 0 with
exact boundary zeros; correlations through tanh / logistic / canonical partial correlations),
polished by Newton steps on a finite-difference Hessian of the analytic score.

This module holds the fit (`fit_mv`, `MVFit`); the likelihood and its maximiser are in
:mod:`ketameta._core.multilevel_lik`, profiles, BLUPs, predictions and I² in
:mod:`ketameta._core.multilevel_post`, all importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ketameta._core.multilevel_lik import _LOG_2PI, _maximise, _Problem
from ketameta._core.multilevel_post import blup, predict_mv, profile_ci
from ketameta._core.multilevel_post import i2_multilevel as i2_multilevel
from ketameta._core.multilevel_post import mv_loglik as mv_loglik
from ketameta._core.multilevel_post import profile_loglik as profile_loglik
from ketameta._core.multilevel_struct import Array, InnerOuter, Intercept, residual_q

__all__ = ["Intercept", "InnerOuter", "MVFit", "fit_mv", "profile_ci", "blup", "predict_mv"]


@dataclass
class MVFit:
    """Result of :func:`fit_mv` (fields follow metafor's ``rma.mv`` object).

    Attributes
    ----------
    beta, vb, se, zval, pval, ci_low, ci_high
        GLS coefficients, ``(X'M^-1X)^-1``, Wald z tests and ``level`` % CIs.
    theta, theta_names
        All components in metafor's order; ``sigma2``, ``tau2``/``rho`` (first InnerOuter),
        ``gamma2``/``phi`` (second) are views of it by kind.
    loglik, deviance, aic, bic, aicc, n_params
        metafor's ``fitstats`` (REML: BIC/AICc with ``k - p``; ML deviance vs. the saturated
        model ``-1/2 (k log 2pi + log|V|)``); ``n_params = p + number of estimated components``.
    qe, qe_df, qe_pvalue, qm, qm_df, qm_pvalue, btt
        Residual heterogeneity ``r'V^-1 r`` and the Wald test of the coefficients ``btt``.
    problem, q, free, tol
        What :func:`profile_ci`, :func:`profile_loglik` and :func:`blup` need.
    """

    beta: Array
    vb: Array
    se: Array
    zval: Array
    pval: Array
    ci_low: Array
    ci_high: Array
    theta: Array  # all variance/correlation components, metafor's order
    theta_names: list[str]
    sigma2: Array
    tau2: Array
    rho: Array
    gamma2: Array
    phi: Array
    s_nlevels: list[int]
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    n_params: int
    qe: float
    qe_df: int
    qe_pvalue: float
    qm: float
    qm_df: int
    qm_pvalue: float
    btt: NDArray
    converged: bool
    iterations: int
    method: str
    level: float
    k: int
    p: int
    problem: _Problem = field(repr=False)
    q: Array = field(repr=False)
    free: NDArray = field(repr=False)
    tol: float = field(repr=False, default=1e-10)


def fit_mv(
    yi: Array,
    V: Array,
    X: Array,
    components: Sequence[Intercept | InnerOuter],
    *,
    method: str = "REML",
    tol: float = 1e-10,
    maxiter: int = 1000,
    start: Array | None = None,
    fixed: Array | None = None,
    level: float = 95.0,
) -> MVFit:
    """Fit the multilevel/multivariate model by REML or ML, as metafor's ``rma.mv``.

    Parameters
    ----------
    yi, V, X
        Effects ``(k,)``, sampling variances ``(k,)`` or covariance ``(k, k)``, design ``(k, p)``.
    components
        Random-effect terms: :class:`Intercept` (sigma2 each, in order) and :class:`InnerOuter`
        (tau2/rho for the first, gamma2/phi for the second), as metafor orders them.
    method
        ``"REML"`` or ``"ML"``.
    tol, maxiter
        Newton stopping rule (relative change of the transformed parameters) and L-BFGS-B limit.
    start, fixed
        Starting values / fixed values of ``theta`` (NaN entries of ``fixed`` are estimated).
    level
        Confidence level (percent) of the Wald intervals.

    Returns
    -------
    MVFit
    """
    if method not in ("REML", "ML"):
        raise ValueError("method must be 'REML' or 'ML'")
    prob = _Problem(yi, V, X, components)
    theta0 = prob.default_start() if start is None else np.asarray(start, dtype=np.float64)
    free, thfix = np.ones(theta0.size, dtype=bool), theta0
    if fixed is not None:
        fixed = np.asarray(fixed, dtype=np.float64)
        free = np.isnan(fixed)
        thfix = np.where(free, theta0, fixed)
    starts = [prob.q_from_theta(theta0)]
    cor = free & ~np.isin(np.array(prob.kinds), ("var", "sd"))
    if start is None and cor.any():  # likelihoods in correlations are often multimodal
        for zc in (-0.55, 0.55):  # all correlations (UN: partial ones) at -/+0.5
            z = prob.z_from_q(starts[0])
            starts.append(prob.q_from_z(np.where(cor, zc, z)))
    best, iters = None, 0
    for q0 in starts:
        res = _maximise(prob, method == "REML", q0, free, tol, maxiter, prob.q_from_theta(thfix))
        iters += res[3]
        if best is None or res[1]["ll"] > best[1]["ll"] + 1e-12 * abs(best[1]["ll"]):
            best = res
    q, ev, conv, _ = best
    return _finish(prob, method, q, ev, free, conv, iters, level, tol)


def _finish(prob, method, q, ev, free, conv, iters, level, tol) -> MVFit:
    k, p = prob.k, prob.p
    beta, vb, ll = ev["beta"], ev["vb"], float(ev["ll"])
    se = np.sqrt(np.diag(vb))
    zval = beta / se
    crit = stats.norm.ppf(0.5 + level / 200.0)
    intercept = np.flatnonzero(np.all(prob.X == 1.0, axis=0))
    btt = np.arange(p) if p == 1 or intercept.size == 0 else np.delete(np.arange(p), intercept[0])
    bt = beta[btt]
    qm = float(bt @ np.linalg.solve(vb[np.ix_(btt, btt)], bt))
    qe, logdet_v = residual_q(prob.groups, p)
    theta = prob.theta(q)
    parms = p + int(free.sum())
    n = k - p if method == "REML" else k
    dev = -2.0 * ll if method == "REML" else -2.0 * (ll + 0.5 * (k * _LOG_2PI + logdet_v))
    big = max(n, parms + 2)
    ns = len(prob.icodes)
    part = [theta[sl] for sl in prob.slices] + [np.array([])] * 2
    nv = [gt.n_var for gt in prob.gterms] + [0, 0]
    return MVFit(
        beta=beta,
        vb=vb,
        se=se,
        zval=zval,
        pval=2.0 * stats.norm.sf(np.abs(zval)),
        ci_low=beta - crit * se,
        ci_high=beta + crit * se,
        theta=theta,
        theta_names=list(prob.names),
        sigma2=theta[:ns],
        tau2=part[0][: nv[0]],
        rho=part[0][nv[0] :],
        gamma2=part[1][: nv[1]],
        phi=part[1][nv[1] :],
        s_nlevels=list(prob.nlevels),
        loglik=ll,
        deviance=float(dev),
        aic=-2.0 * ll + 2.0 * parms,
        bic=-2.0 * ll + parms * np.log(n),
        aicc=-2.0 * ll + 2.0 * parms * big / (big - parms - 1.0),
        n_params=parms,
        qe=qe,
        qe_df=k - p,
        qe_pvalue=float(stats.chi2.sf(qe, k - p)) if k > p else np.nan,
        qm=qm,
        qm_df=len(btt),
        qm_pvalue=float(stats.chi2.sf(qm, len(btt))),
        btt=btt,
        converged=bool(conv),
        iterations=int(iters),
        method=method,
        level=level,
        k=k,
        p=p,
        problem=prob,
        q=q,
        free=free,
        tol=tol,
    )
