"""What a fitted multilevel model gives beyond the fit: profiles, BLUPs, predictions, I².

Profile log-likelihoods and profile-likelihood CIs of the components (metafor's
``confint.rma.mv``), BLUPs of the random intercepts (``ranef``), predicted means with
prediction intervals (``predict.rma.mv``), the multilevel I² and the log-likelihood with its
gradient at given components; all from a `ketameta._core.multilevel.MVFit` or its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize, stats

from ketameta._core.multilevel_lik import _maximise, _Problem
from ketameta._core.multilevel_struct import ZMAX, Array, InnerOuter, Intercept

if TYPE_CHECKING:
    from ketameta._core.multilevel import MVFit


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
