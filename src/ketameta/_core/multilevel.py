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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from ketameta._core.multilevel_struct import (
    ZMAX,
    Array,
    InnerOuter,
    Intercept,
    ParamLayout,
    build_groups,
    residual_q,
)

__all__ = ["Intercept", "InnerOuter", "MVFit", "fit_mv", "profile_ci", "blup", "predict_mv"]
_LOG_2PI = np.log(2.0 * np.pi)


class _Problem(ParamLayout):
    """Data, terms, parameter layout (sigma2, then tau2/rho, gamma2/phi ...) and blocks."""

    def __init__(self, yi: Array, V: Array, X: Array, components: Sequence[Any]):
        self.y = np.asarray(yi, dtype=np.float64).ravel()
        self.V = np.asarray(V, dtype=np.float64)
        self.X = np.asarray(X, dtype=np.float64).reshape(self.y.size, -1)
        self.k, self.p = self.X.shape
        icomp = [c for c in components if isinstance(c, Intercept)]
        self.icodes = [
            np.unique(np.asarray(c.codes), return_inverse=True)[1].ravel() for c in icomp
        ]
        self.nlevels = [int(c.max()) + 1 for c in self.icodes]
        super().__init__(len(self.icodes), [c for c in components if isinstance(c, InnerOuter)])
        self.groups = build_groups(self.y, self.V, self.X, self.icodes, self.gterms)
        self.logdet_xtx = np.linalg.slogdet(self.X.T @ self.X)[1]
        vdiag = np.diag(self.V) if self.V.ndim == 2 else self.V
        b_ols = np.linalg.lstsq(self.X, self.y, rcond=None)[0]
        res = self.y - self.X @ b_ols
        tot = res @ res / max(self.k - self.p, 1) - vdiag.mean()
        self.scale = max(tot, 0.01 * max(vdiag.mean(), 1e-8)) / max(1, len(self.kinds))

    # ---- likelihood -----------------------------------------------------------------------
    def evaluate(self, q: Array, reml: bool, grad: bool = False) -> dict[str, Any]:
        """Log-likelihood (and score in ``q``), GLS ``b``, ``(X'M^-1X)^-1`` and block caches."""
        ns = len(self.icodes)
        gmats = [gt.gmatrix(q[sl]) for gt, sl in zip(self.gterms, self.slices, strict=True)]
        logdet, H, xy, cache = 0.0, np.zeros((self.p, self.p)), np.zeros(self.p), []
        for grp in self.groups:
            M = grp.V.copy()
            for s, A in zip(q[:ns], grp.A, strict=True):
                M += s * A
            for (G, _), S, ii in zip(gmats, grp.S, grp.inner, strict=True):
                M += S * G[ii[:, :, None], ii[:, None, :]]
            L = np.linalg.cholesky(M)
            logdet += 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum()
            Minv = np.linalg.inv(M)
            MX = Minv @ grp.X
            H += np.einsum("bnp,bnq->pq", grp.X, MX)
            xy += np.einsum("bnp,bn->p", MX, grp.y)
            cache.append((Minv, MX))
        Hinv = np.linalg.inv(H)
        beta = Hinv @ xy
        rss, es = 0.0, []
        for grp, (Minv, _) in zip(self.groups, cache, strict=True):
            r = grp.y - grp.X @ beta
            e = (Minv @ r[:, :, None])[:, :, 0]
            rss += (r * e).sum()
            es.append(e)
        if reml:
            n = self.k - self.p
            ll = -0.5 * (n * _LOG_2PI - self.logdet_xtx + logdet + np.linalg.slogdet(H)[1] + rss)
        else:
            ll = -0.5 * (self.k * _LOG_2PI + logdet + rss)
        out = {"ll": ll, "beta": beta, "vb": Hinv, "cache": cache, "e": es}
        if grad:
            g = np.zeros(q.size)
            for grp, (Minv, MX), e in zip(self.groups, cache, es, strict=True):
                for i, dM in enumerate(self._dM(grp, gmats)):
                    dMe = (dM @ e[:, :, None])[:, :, 0]
                    t = (Minv * dM).sum() - (e * dMe).sum()  # (no BLAS: tiny, many calls)
                    if reml:
                        T = np.einsum("bnp,bnq->pq", MX, dM @ MX)
                        t -= (Hinv * T).sum()
                    g[i] -= 0.5 * t
            out["grad"] = g
        return out

    def _dM(self, grp, gmats):
        yield from grp.A
        for (_, dGs), S, ii in zip(gmats, grp.S, grp.inner, strict=True):
            for dG in dGs:
                yield S * dG[ii[:, :, None], ii[:, None, :]]


def _maximise(
    prob: _Problem,
    reml: bool,
    q0: Array,
    free: NDArray,
    tol: float,
    maxiter: int,
    qfix: Array | None = None,
):
    """Maximise over the ``free`` parameters from ``q0`` with the others at ``qfix`` (default
    ``q0``); returns (q, ev, converged, iters)."""
    qfix = q0 if qfix is None else qfix
    prob = prob.for_fixed(free)
    z = prob.z_from_q(q0)
    for i in np.flatnonzero(~free):
        z[i] = prob.z_scalar(i, qfix[i])
    q0 = np.where(free, prob.q_from_z(z), qfix)
    kinds = np.array(prob.kinds)
    pos = np.isin(kinds, ("var", "sd"))
    bounds = [(0.0, None) if pos[i] else (-ZMAX, ZMAX) for i in np.flatnonzero(free)]
    if not free.any():
        return q0, prob.evaluate(q0, reml), True, 0

    def qz(zz: Array) -> Array:  # q at zz, the fixed entries exactly as given
        return np.where(free, prob.q_from_z(zz), q0)

    def score(zz: Array) -> tuple[float, Array]:
        ev = prob.evaluate(qz(zz), reml, grad=True)
        return ev["ll"], prob.jac(zz).T @ ev["grad"]

    def negative(zf: Array) -> tuple[float, Array]:
        zz = z.copy()
        zz[free] = zf
        try:
            ll, gz = score(zz)
        except np.linalg.LinAlgError:
            return 1e100, np.zeros(zf.size)
        return -ll, -gz[free]

    res = optimize.minimize(
        negative,
        z[free],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12},
    )
    z[free] = res.x
    iters, converged = int(res.nit), False
    ll, gz = score(z)
    for _ in range(50):  # Newton polish on the free, non-boundary parameters
        edge = (pos & (z <= 0.0) & (gz <= 0.0)) | (~pos & (np.abs(z) >= ZMAX) & (z * gz >= 0.0))
        act = free & ~edge
        idx = np.flatnonzero(act)
        if idx.size == 0:
            converged = True
            break
        hess = np.empty((idx.size, idx.size))
        try:  # (a difference step can leave the PD region: then keep the L-BFGS-B point)
            for j, col in enumerate(idx):
                h = 1e-5 * max(1.0, abs(z[col]))
                zp, zm = z.copy(), z.copy()
                zp[col] += h
                zm[col] -= h
                hess[:, j] = (score(zp)[1][idx] - score(zm)[1][idx]) / (2.0 * h)
            hess = 0.5 * (hess + hess.T)
            np.linalg.cholesky(-hess)
            step = np.linalg.solve(-hess, gz[idx])
        except np.linalg.LinAlgError:
            break
        iters += 1
        for _ in range(40):
            zn = z.copy()
            zn[idx] = z[idx] + step
            zn[pos] = np.maximum(zn[pos], 0.0)
            zn[~pos] = np.clip(zn[~pos], -ZMAX, ZMAX)
            try:
                lln, gzn = score(zn)
            except np.linalg.LinAlgError:
                lln = -np.inf
            if lln >= ll - 1e-12 * (1.0 + abs(ll)):
                break
            step = step / 2.0
        else:
            break
        done = np.all(np.abs(zn - z) <= tol * (1.0 + np.abs(z)))
        z, ll, gz = zn, lln, gzn
        if done:
            converged = True
            break
    q = qz(z)
    return q, prob.evaluate(q, reml, grad=True), converged or bool(res.success), iters


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


def profile_loglik(
    fit: MVFit, which: int, value: float, start: Array | None = None, out: list | None = None
) -> float:
    """Log-likelihood maximised over the other components with ``theta[which] = value``
    (from internal parameters ``start``, default the fit's; ``out`` receives the maximiser)."""
    prob = fit.problem
    qfix = prob.q_from_theta(np.where(np.arange(fit.q.size) == which, value, fit.theta))
    free = fit.free.copy()
    free[which] = False
    q0 = fit.q if start is None else start
    q, ev, _, _ = _maximise(prob, fit.method == "REML", q0, free, fit.tol, 1000, qfix)
    if out is not None:
        out[:] = [q]
    return float(ev["ll"])


def profile_ci(fit: MVFit, which: int, level: float = 95.0, xtol: float = 1e-12):
    """Profile-likelihood CI of ``theta[which]`` (metafor's ``confint.rma.mv``).

    The bounds solve ``2 (ll_max - ll_profile(t)) = chi2_1(level)``; a bound is the edge of the
    parameter space (0 for variances, -1/1 or 0/1 for correlations) when no root lies inside.

    Returns
    -------
    (estimate, lower, upper)
    """
    est = float(fit.theta[which])
    crit = stats.chi2.ppf(level / 100.0, 1)
    kind = fit.problem.kinds[which]

    last: list = []

    def f(t: float) -> float:  # warm start from the previous profile point
        ll = profile_loglik(fit, which, t, last[0] if last else None, last)
        return 2.0 * (fit.loglik - ll) - crit

    if kind in ("var", "sd"):
        lo_edge = 0.0
        hi = max(2.0 * est, 10.0 * fit.problem.scale)
        for _ in range(60):
            if f(hi) > 0:
                break
            hi *= 2.0
        hi_edge = hi
    else:
        edge = np.tanh(ZMAX)
        lo_edge, hi_edge = (1.0 - edge if kind == "cor01" else -edge), edge
    bounds = []
    for a, b in ((lo_edge, est), (est, hi_edge)):
        edge = a if b == est else b
        last.clear()
        if a == b or f(edge) < 0:  # no root inside: the edge of the parameter space
            bounds.append(float(np.round(edge)) if kind not in ("var", "sd") else edge)
        else:
            bounds.append(optimize.brentq(f, a, b, xtol=xtol * max(1.0, abs(est)), rtol=1e-12))
    return est, bounds[0], bounds[1]


def blup(fit: MVFit, level: float = 95.0) -> list[dict[str, Array]]:
    """BLUPs of the random intercepts (metafor's ``ranef``), one dict per :class:`Intercept`.

    ``pred = sigma2 z'M^-1 r`` and ``se^2 = sigma2 - sigma2^2 z'Pz`` with
    ``P = M^-1 - M^-1 X (X'M^-1 X)^-1 X'M^-1`` and ``z`` the level's indicator.
    """
    prob = fit.problem
    ev = prob.evaluate(fit.q, fit.method == "REML")
    crit = stats.norm.ppf(0.5 + level / 200.0)
    out = []
    for j, (codes, s2) in enumerate(zip(prob.icodes, fit.sigma2, strict=True)):
        pred, var = np.zeros(prob.nlevels[j]), np.zeros(prob.nlevels[j])
        for grp, (Minv, MX), e in zip(prob.groups, ev["cache"], ev["e"], strict=True):
            A = grp.A[j]
            zmz = (A * (Minv @ A)).sum(axis=1)  # (nb, n): z'M^-1 z of each row's level
            xz = np.einsum("bip,bij->bjp", MX, A)  # (nb, n, p): X'M^-1 z
            zpz = zmz - np.einsum("bnp,pq,bnq->bn", xz, ev["vb"], xz)
            ok = grp.rows >= 0
            lev = codes[grp.rows[ok]]
            pred[lev] = (s2 * np.einsum("bij,bj->bi", A, e))[ok]
            var[lev] = (s2 - s2 * s2 * zpz)[ok]
        se = np.sqrt(np.maximum(var, 0.0))
        out.append(
            {
                "levels": np.arange(prob.nlevels[j]),
                "pred": pred,
                "se": se,
                "pi_low": pred - crit * se,
                "pi_high": pred + crit * se,
            }
        )
    return out


def predict_mv(fit: MVFit, Xnew: Array | None = None, level: float = 95.0) -> dict[str, Array]:
    """Predicted means with CIs and prediction intervals (metafor's ``predict.rma.mv``).

    The prediction interval adds ``sum(sigma2)`` and each homoscedastic tau2/gamma2.
    """
    if any(gt.n_var > 1 for gt in fit.problem.gterms):
        raise NotImplementedError("prediction intervals for heteroscedastic G need its levels")
    Xn = np.atleast_2d(fit.problem.X[:1] if Xnew is None else np.asarray(Xnew, dtype=float))
    pred = Xn @ fit.beta
    se = np.sqrt(np.einsum("ip,pq,iq->i", Xn, fit.vb, Xn))
    crit = stats.norm.ppf(0.5 + level / 200.0)
    extra = fit.sigma2.sum() + fit.tau2.sum() + fit.gamma2.sum()
    pse = np.sqrt(se**2 + extra)
    return {
        "pred": pred,
        "se": se,
        "ci_low": pred - crit * se,
        "ci_high": pred + crit * se,
        "pi_low": pred - crit * pse,
        "pi_high": pred + crit * pse,
    }


def i2_multilevel(vi: Array, sigma2: Array) -> tuple[Array, float]:
    """Multilevel I² (Cheung 2014): ``100 sigma2_j / (sum sigma2 + v~)`` per level and total,
    with the typical within variance ``v~ = (k-1) sum w / ((sum w)^2 - sum w^2)``, ``w = 1/vi``."""
    w = 1.0 / np.asarray(vi, dtype=np.float64)
    vt = (w.size - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum())
    s = np.asarray(sigma2, dtype=np.float64)
    i2 = 100.0 * s / (s.sum() + vt)
    return i2, float(i2.sum())


def mv_loglik(
    yi: Array,
    V: Array,
    X: Array,
    components: Sequence[Intercept | InnerOuter],
    theta: Array,
    method: str = "REML",
) -> tuple[float, Array]:
    """(Restricted) log-likelihood at ``theta`` and its gradient in ``theta`` (block-wise).

    The gradient of a heteroscedastic variance (HCS/UN/HAR, estimated on the sd scale) is
    converted by ``d/dtau2 = d/ds / (2 s)``.
    """
    prob = _Problem(yi, V, X, components)
    q = prob.q_from_theta(np.asarray(theta, dtype=np.float64))
    ev = prob.evaluate(q, method == "REML", grad=True)
    sd = np.array(prob.kinds) == "sd"
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(sd, ev["grad"] / (2.0 * q), ev["grad"])
    return float(ev["ll"]), g
