"""Numerical pieces of the Bayesian random-effects fit (`ketameta._core.bayes`): vectorised
safeguarded Newton root finding, shortest-interval solvers, the normal mixtures over the tau
quadrature rule that give the marginals of ``mu``, a new study and each ``theta_i``, the
shortest interval of tau and a numerical check that a tau prior integrates to one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import integrate, optimize, special

Arr = np.ndarray


def _vroot(fun: Callable, lo: Arr, hi: Arr, x0: Arr, xtol: Arr, ftol: float = 0.0) -> Arr:
    """Safeguarded Newton for increasing ``fun`` (returns value, derivative), vectorised.

    ``fun`` takes the full vector; converged entries are frozen.
    """
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    x = np.clip(x0, lo, hi)
    active = np.ones(x.shape, dtype=bool)
    for _ in range(200):
        val, der = fun(x)
        lo, hi = np.where(val < 0, x, lo), np.where(val > 0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - val / der
        ok = np.isfinite(step) & (der > 0) & (step >= lo) & (step <= hi)
        new = np.where(ok, step, 0.5 * (lo + hi))
        fin = (np.abs(val) <= ftol) | (np.abs(new - x) <= xtol) | (hi - lo <= xtol)
        x = np.where(active & (np.abs(val) > ftol), new, x)
        active &= ~fin
        if not active.any():
            break
    return x


def _hpd(cdf: Callable, logpdf: Callable, dlogpdf: Callable, a: Arr, b: Arr, level: float,
         lower_bound: float = -np.inf) -> tuple[Arr, Arr, Arr]:  # fmt: skip
    """Solve ``F(b) - F(a) = level``, ``log p(b) = log p(a)`` by damped Newton (vectorised)."""

    def resid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            return cdf(b) - cdf(a) - level, logpdf(b) - logpdf(a)

    r1, r2 = resid(a, b)
    for _ in range(60):
        done = (np.abs(r1) < 1e-13) & (np.abs(r2) < 1e-10)
        if done.all():
            break
        fa, fb, ga, gb = np.exp(logpdf(a)), np.exp(logpdf(b)), dlogpdf(a), dlogpdf(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            det = fb * ga - fa * gb
            da, db = -(gb * r1 - fb * r2) / det, -(ga * r1 - fa * r2) / det
        da, db = np.where(done | ~np.isfinite(da), 0, da), np.where(done | ~np.isfinite(db), 0, db)
        norm, t = np.hypot(r1, r2), np.ones_like(a)
        for _ in range(25):
            an, bn = np.maximum(a + t * da, lower_bound), b + t * db
            n1, n2 = resid(an, bn)
            better = (np.hypot(n1, n2) < norm) & (an < bn)
            if (better | done).all():
                break
            t = np.where(better | done, t, t / 2)
        if not (better & ~done).any():
            break
        a, b = np.where(better, an, a), np.where(better, bn, b)
        r1, r2 = np.where(better, n1, r1), np.where(better, n2, r2)
    return a, b, (np.abs(r1) < 1e-10) & (np.abs(r2) < 1e-7)


def _min_length(ppf2: Callable[[float], Arr], level: float) -> Arr:
    """Shortest interval ``[Q(p), Q(p + level)]`` by minimising its length over ``p``."""
    res = optimize.minimize_scalar(lambda p: float(np.diff(ppf2(p))[0]), bounds=(0.0, 1 - level),
                                   method="bounded", options={"xatol": 1e-11})  # fmt: skip
    return ppf2(float(res.x))


class _Mixture:
    """Normal mixtures ``Σ_j W_j N(M[d, j], S[d, j]²)`` over the tau rule, one per row ``d``."""

    def __init__(self, w: np.ndarray, m: np.ndarray, s: np.ndarray):
        self.w, self.m, self.s = w, m, s
        self.live = w > 1e-12 * w.max()
        self.lo = (m - 40 * s).min(axis=1)
        self.hi = (m + 40 * s).max(axis=1)
        self.mean = m @ w
        self.var = np.maximum(((s**2 + m**2) @ w) - self.mean**2, 0.0)
        self.scale = np.sqrt(self.var)
        self.width = np.sqrt((s**2)[:, self.live] @ w[self.live])  # typical sd, always finite

    def _phi(self, d: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.s[d]
        z = (x[:, None] - self.m[d]) / s
        return z, s, np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * s)

    def pdf(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self._phi(d, x)[2] @ self.w

    def cdf(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        return special.ndtr((x[:, None] - self.m[d]) / self.s[d]) @ self.w

    def dpdf(self, d: np.ndarray, x: np.ndarray, order: int = 1) -> np.ndarray:
        z, s, phi = self._phi(d, x)
        return (phi * (-z / s if order == 1 else (z * z - 1) / s**2)) @ self.w

    def ppf(self, d: np.ndarray, p: np.ndarray) -> np.ndarray:
        z = special.ndtri(np.clip(p, 1e-300, 1 - 1e-16))
        x0 = self.mean[d] + np.where(np.isfinite(self.scale[d]), self.scale[d], 1.0) * z
        # the mixture quantile lies between the component quantiles (heavy nodes first)
        qj = self.m[d][:, self.live] + self.s[d][:, self.live] * z[:, None]
        lo, hi = qj.min(axis=1), qj.max(axis=1)
        bad = (self.cdf(d, lo) > p) | (self.cdf(d, hi) < p)
        lo, hi = np.where(bad, self.lo[d], lo), np.where(bad, self.hi[d], hi)
        fun = lambda x: (self.cdf(d, x) - p, self.pdf(d, x))  # noqa: E731
        return _vroot(fun, lo, hi, x0, 1e-13 * self.width[d], ftol=1e-15)

    def hpd(self, d: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        a = self.ppf(d, np.full(d.shape, (1 - level) / 2))
        b = self.ppf(d, np.full(d.shape, (1 + level) / 2))

        def logpdf(x: np.ndarray, dd: np.ndarray = d) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return np.log(self.pdf(dd, x))

        dlog = lambda x: self.dpdf(d, x) / self.pdf(d, x)  # noqa: E731
        a, b, ok = _hpd(lambda x: self.cdf(d, x), logpdf, dlog, a, b, level)
        for j in np.flatnonzero(~ok):  # not unimodal enough for Newton: minimise the length
            dj = np.repeat(d[j : j + 1], 2)
            a[j], b[j] = _min_length(lambda p, dj=dj: self.ppf(dj, np.array([p, p + level])), level)
        return a, b

    def mode(self, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        fun = lambda x: (-self.dpdf(d, x), -self.dpdf(d, x, 2))  # noqa: E731
        return _vroot(fun, lo, hi, (lo + hi) / 2, 1e-13 * self.width[d])


def _tau_shortest(rule: Any, lev: float, tq: np.ndarray) -> tuple[float, float]:
    """Shortest interval of coverage ``lev`` for tau: Newton (unimodal), else minimise length."""
    if rule.pdf(np.array([0.0, 1e-12 * rule.c])).max() >= rule.pdf(tq[3:])[0]:
        return 0.0, float(tq[3])
    a, b, ok = _hpd(rule.cdf, rule.logpdf, rule.dlogpdf, tq[1:2], tq[2:3], lev, 0.0)
    if ok[0] and b[0] - a[0] <= tq[3]:
        return float(a[0]), float(b[0])
    a, b = _min_length(lambda p: rule.ppf(np.array([p, p + lev])), lev)
    return (float(a), float(b)) if b - a < tq[3] else (0.0, float(tq[3]))


def _check_proper(prior: Any, c: float) -> bool:
    def integrand(u: float) -> float:
        t = c * (u / (1 - u)) ** 2
        return float(prior.pdf(np.array([t]))[0]) * 2 * c * u / (1 - u) ** 3 if u < 1 else 0.0

    val, _ = integrate.quad(integrand, 0, 1, limit=200, epsabs=1e-12, epsrel=1e-10)
    return abs(val - 1) < 1e-6
