"""Bayesian random-effects meta-analysis by exact numerical integration (no MCMC).

Model: ``y_i ~ N(mu, v_i + tau²)``, ``mu`` flat or ``N(m0, s0²)``, ``tau ~ p(tau)`` on
``[0, inf)``. For fixed ``tau`` the ``mu`` integral is closed form, which gives

* the marginal posterior of ``tau``, ``p(tau | y) ∝ p(tau) ∫ Π N(y_i; mu, v_i + tau²) p(mu) dmu``;
* ``mu | tau, y ~ N(m(tau), V(tau))`` with ``V = 1 / (Σ w_i [+ 1/s0²])``,
  ``m = V (Σ w_i y_i [+ m0/s0²])``, ``w_i = 1 / (v_i + tau²)``;
* the predictive ``theta_new | tau, y ~ N(m, V + tau²)`` and the shrinkage
  ``theta_i | tau, y ~ N((tau² y_i + v_i m) / (v_i + tau²), v_i tau² / (v_i + tau²)
  + (v_i / (v_i + tau²))² V)``.

The ``tau`` integral is done by adaptive composite Gauss-Legendre quadrature (20 nodes per
panel, error estimated against 10 nodes, panels bisected until the relative error of the
integrals of ``p(tau|y)``, ``tau p`` and ``tau² p`` is below 1e-11) after the change of
variable ``tau = c (u / (1 - u))²``, ``u`` in ``[0, 1)``, with ``c`` the approximate posterior
median; the initial panels split at approximate posterior quantiles and at the prior's
breakpoints. The resulting nodes and normalised weights are a quadrature rule that integrates
every smooth function of ``tau`` against the posterior; the marginals of ``mu``, of the
predictive and of each ``theta_i`` are normal mixtures over this rule (density, CDF,
derivatives in closed form per node). Quantiles are found by safeguarded Newton iteration on
the CDFs (the ``tau`` CDF by exact partial integration of a panel), shortest intervals by a
Newton solve of ``F(b) - F(a) = level``, ``p(a) = p(b)`` (unimodal densities assumed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy import optimize

from ketameta._core.bayes_mixture import _check_proper, _Mixture, _tau_shortest, _vroot
from ketameta._core.bayes_priors import TauPrior, as_tau_prior

__all__ = ["BayesFit", "BayesPosterior", "Summary", "fit_bayes"]

_X20, _W20 = leggauss(20)
_X10, _W10 = leggauss(10)
_LOG2PI = float(np.log(2 * np.pi))
_RTOL = 1e-11
Arr = np.ndarray


class Summary(NamedTuple):
    """Posterior summary; fields are floats (``mu``, ``tau``, predictive) or arrays (shrinkage)."""

    mode: float | np.ndarray
    median: float | np.ndarray
    mean: float | np.ndarray
    sd: float | np.ndarray
    lower: float | np.ndarray  # equal-tailed interval
    upper: float | np.ndarray
    hpd_lower: float | np.ndarray  # shortest interval
    hpd_upper: float | np.ndarray


class _Likelihood:
    """``mu``-integrated likelihood and the conditional normal of ``mu`` given ``tau``."""

    def __init__(self, y: np.ndarray, v: np.ndarray, mu_prior: tuple[float, float] | None):
        self.y, self.v, self.normal = y, v, mu_prior is not None
        self.m0, self.p0 = (
            (float(mu_prior[0]), 1.0 / float(mu_prior[1]) ** 2) if mu_prior else (0.0, 0.0)
        )

    def __call__(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s2 = self.v + np.square(tau)[..., None]
        w = 1.0 / s2
        prec = w.sum(-1) + self.p0
        m = ((w * self.y).sum(-1) + self.p0 * self.m0) / prec
        q = (w * np.square(self.y - m[..., None])).sum(-1) + self.p0 * np.square(self.m0 - m)
        const = 0.5 * np.log(self.p0) if self.normal else 0.5 * _LOG2PI
        ll = -0.5 * (np.log(s2).sum(-1) + self.y.size * _LOG2PI + np.log(prec) + q) + const
        return m, 1.0 / prec, ll


class _TauRule:
    """Adaptive quadrature rule for the marginal posterior of ``tau``."""

    def __init__(self, lik: _Likelihood, prior: TauPrior):
        self.lik, self.prior = lik, prior
        s_ref = max(float(np.sqrt(np.median(lik.v))), float(np.std(lik.y)), 1e-300)
        grid = np.concatenate([[0.0], s_ref * np.logspace(-10, 5, 301)])
        lp = self.lp(grid)
        if not np.isfinite(lp).any():
            raise ValueError("the posterior density of tau is zero everywhere on the search grid")
        self.mode, self.lpmax = self._mode(grid, lp, int(np.nanargmax(lp)))
        dens = np.exp(lp - self.lpmax)
        crude = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (dens[1:] + dens[:-1]) / 2)])
        probs = [1e-6, 1e-3, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 0.999, 1 - 1e-6]
        qs = np.interp(np.array(probs) * crude[-1], crude, grid)
        self.c = max(float(qs[5]), 1e-300)
        big = 1e6 * max(self.c, s_ref)
        l1, l2 = self.lp(np.array([big, 10 * big]))
        self.tail = float((l1 - l2) / np.log(10)) if np.isfinite(l1) and np.isfinite(l2) else np.inf
        if not self.finite(0):
            raise ValueError("improper posterior: p(tau | y) decays no faster than 1 / tau")
        self._adapt(np.concatenate([qs, [b for b in prior.breakpoints if b > 0]]))

    def finite(self, r: int) -> bool:
        """Whether ``E[tau^r | y]`` is finite (``r = 0``: whether the posterior is proper).

        With a flat ``mu`` prior the ``mu``-integrated likelihood behaves like ``tau^-(k-1)``
        as ``tau -> inf`` (``tau^-k`` with a normal ``mu`` prior), so for a prior tail
        ``tau^-a (log tau)^-b`` the posterior decays like ``tau^-A (log tau)^-b`` with
        ``A = a + k - 1`` (or ``a + k``), and ``∫^inf tau^(r-A) (log tau)^-b dtau`` converges iff
        ``r < A - 1``, or ``r = A - 1`` and ``b > 1``. A prior without a known tail uses the
        exponent estimated from the density at ``1e6 c`` and ``1e7 c`` (``self.tail``).
        """
        if self.prior.tail is None:
            return bool(self.tail > r + 1 + 1e-6)
        a, b = self.prior.tail
        big_a = a + self.lik.y.size - (0 if self.lik.normal else 1)
        return bool(r < big_a - 1 or (r == big_a - 1 and b > 1))

    def lp(self, tau: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior density of ``tau``."""
        tau = np.asarray(tau, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = self.prior.logpdf(tau) + self.lik(np.where(np.isfinite(tau), tau, 0.0))[2]
        return np.where(np.isfinite(tau) & (tau >= 0) & ~np.isnan(out), out, -np.inf)

    def _mode(self, grid: np.ndarray, lp: np.ndarray, i: int) -> tuple[float, float]:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = optimize.minimize_scalar(lambda t: -self.lp(np.array(t)), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-9 * hi})  # fmt: skip
        best, lbest = (float(res.x), -float(res.fun)) if -res.fun > lp[i] else (grid[i], lp[i])
        if np.isfinite(lp[0]) and lp[0] >= lbest - 1e-10:  # flat at 0 to rounding: mode 0
            best, lbest = 0.0, max(float(lp[0]), lbest)
        return best, lbest

    def tau_of_u(self, u: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            r = u / (1 - u)
        return self.c * r * r

    def u_of_tau(self, t: np.ndarray) -> np.ndarray:
        r = np.sqrt(np.maximum(t, 0) / self.c)
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(r), 1.0, r / (1 + r))

    def g(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integrand in ``u`` (scaled by ``exp(-lpmax)``) and ``tau(u)``."""
        t = self.tau_of_u(u)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            val = np.exp(self.lp(t) - self.lpmax) * 2 * self.c * u / (1 - u) ** 3
        ok = np.isfinite(val) & (val > 0)  # u rounded to 1 gives tau = inf: weight 0
        return np.where(ok, val, 0.0), np.where(ok, t, 0.0)

    def _adapt(self, cuts: np.ndarray) -> None:
        edges = np.unique(np.concatenate([[0.0, 1.0], self.u_of_tau(cuts)]))
        a, b = edges[:-1], edges[1:]
        ncomp = 1 + self.finite(1) + self.finite(2)
        keep: list[tuple[np.ndarray, ...]] = []
        total = np.zeros(ncomp)
        self.converged = False
        for it in range(60):
            mid, half = (a + b) / 2, (b - a) / 2
            g20, t20 = self.g(mid[:, None] + half[:, None] * _X20)
            g10, t10 = self.g(mid[:, None] + half[:, None] * _X10)
            i20 = np.stack([(g20 * t20**j) @ _W20 * half for j in range(ncomp)])
            i10 = np.stack([(g10 * t10**j) @ _W10 * half for j in range(ncomp)])
            tot = total + i20.sum(axis=1)
            err = (np.abs(i20 - i10) / np.where(tot > 0, tot, 1.0)[:, None]).max(axis=0)
            ok = (err <= _RTOL) | (half < 1e-15) | (it == 59)
            keep.append((a[ok], b[ok], g20[ok], t20[ok], i20[0, ok]))
            total += i20[:, ok].sum(axis=1)
            if ok.all():
                self.converged = it < 59
                break
            a, b = a[~ok], b[~ok]
            a, b = np.concatenate([a, (a + b) / 2]), np.concatenate([(a + b) / 2, b])
        parts = [np.concatenate(x) for x in zip(*keep, strict=True)]
        order = np.argsort(parts[0])
        self.a, self.b, g20, self.nodes, ints = (p[order] for p in parts)
        self.zp = float(ints.sum())
        if not (self.zp > 0 and np.isfinite(self.zp)):
            raise ValueError("could not normalise the posterior of tau")
        self.weights = (g20 * ((self.b - self.a) / 2)[:, None] * _W20 / self.zp).ravel()
        self.nodes = self.nodes.ravel()
        self.cum = np.concatenate([[0.0], np.cumsum(ints) / self.zp])
        self.logz = self.lpmax + np.log(self.zp)

    def _cdf_u(self, u: np.ndarray, idx: np.ndarray) -> np.ndarray:
        mid, half = (self.a[idx] + u) / 2, (u - self.a[idx]) / 2
        gv, _ = self.g(mid[:, None] + half[:, None] * _X20)
        return self.cum[idx] + (gv @ _W20) * half / self.zp

    def pdf(self, t: np.ndarray) -> np.ndarray:
        return np.exp(self.lp(t) - self.lpmax) / self.zp

    def logpdf(self, t: np.ndarray) -> np.ndarray:
        return self.lp(t) - self.lpmax - np.log(self.zp)

    def dlogpdf(self, t: np.ndarray) -> np.ndarray:
        h = 1e-5 * np.maximum(t, 1e-300)
        return (self.lp(t + h) - self.lp(np.maximum(t - h, 0))) / (t + h - np.maximum(t - h, 0))

    def cdf(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=float))
        u = self.u_of_tau(t)
        idx = np.clip(np.searchsorted(self.a, u, side="right") - 1, 0, self.a.size - 1)
        return np.where(t <= 0, 0.0, np.clip(self._cdf_u(u, idx), 0.0, 1.0))

    def ppf(self, p: np.ndarray) -> np.ndarray:
        p = np.atleast_1d(np.asarray(p, dtype=float))
        idx = np.clip(np.searchsorted(self.cum, p, side="right") - 1, 0, self.a.size - 1)
        lo, hi = self.a[idx], self.b[idx]
        frac = (p - self.cum[idx]) / np.maximum(self.cum[idx + 1] - self.cum[idx], 1e-300)
        fun = lambda u: (self._cdf_u(u, idx) - p, self.g(u)[0] / self.zp)  # noqa: E731
        u0 = lo + np.clip(frac, 0, 1) * (hi - lo)
        u = _vroot(fun, lo, hi, u0, np.full(p.shape, 1e-15), ftol=1e-15)
        return np.where(p <= 0, 0.0, np.where(p >= 1, np.inf, self.tau_of_u(u)))


@dataclass(frozen=True)
class BayesPosterior:
    """Posterior densities, CDFs and quantile functions of a :func:`fit_bayes` fit.

    ``of`` selects the marginal: ``"tau"``, ``"mu"``, ``"pred"`` (a new study's ``theta``) or
    an integer ``i`` (shrinkage ``theta_i`` of study ``i``).
    """

    rule: _TauRule
    mixture: _Mixture

    def _call(self, fn: str, x: Arr | float, of: str | int) -> Arr:
        x = np.asarray(x, dtype=float)
        if of == "tau":
            return getattr(self.rule, fn)(x.ravel()).reshape(x.shape)
        d = {"mu": 0, "pred": 1}[of] if isinstance(of, str) else 2 + int(of)
        if not 0 <= d < self.mixture.m.shape[0]:
            raise IndexError(f"no study {of}")
        return getattr(self.mixture, fn)(np.full(x.size, d), x.ravel()).reshape(x.shape)

    def pdf(self, x: Arr | float, of: str | int = "mu") -> Arr:
        """Marginal posterior density of ``of`` (``"tau"``, ``"mu"``, ``"pred"`` or study ``i``)."""
        return self._call("pdf", x, of)

    def cdf(self, x: Arr | float, of: str | int = "mu") -> Arr:
        """Marginal posterior CDF of ``of``."""
        return self._call("cdf", x, of)

    def ppf(self, p: Arr | float, of: str | int = "mu") -> Arr:
        """Marginal posterior quantile function of ``of``."""
        return self._call("ppf", p, of)

    def mu_given_tau(self, tau: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Conditional posterior mean and sd of ``mu`` given ``tau``."""
        m, var, _ = self.rule.lik(np.asarray(tau, dtype=float))
        return m, np.sqrt(var)

    def joint_pdf(self, mu: np.ndarray | float, tau: np.ndarray | float) -> np.ndarray:
        """Joint posterior density ``p(mu, tau | y)``."""
        m, sd = self.mu_given_tau(tau)
        z = (np.asarray(mu, dtype=float) - m) / sd
        return self.pdf(tau, "tau") * np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * sd)


@dataclass(frozen=True)
class BayesFit:
    """Result of :func:`fit_bayes`.

    ``tau``, ``mu`` and ``pred`` (a new study's ``theta``) are :class:`Summary` of floats,
    ``shrinkage`` a :class:`Summary` of length-``k`` arrays. ``marginal_likelihood`` is
    ``p(y)`` (NaN with a flat ``mu`` prior or an improper ``tau`` prior); ``bf_mu0`` the
    Savage-Dickey Bayes factor ``BF01 = p(mu=0|y) / p(mu=0)`` (proper ``mu`` prior only);
    ``bf_tau0 = p(y | tau=0) / p(y)`` (proper ``tau`` prior only). ``tau_grid``/``tau_density``
    and ``mu_grid``/``mu_density`` are for plotting; ``posterior`` evaluates densities, CDFs
    and quantiles anywhere.

    A moment that is infinite (decided from the tail exponents, see ``_TauRule.finite``: e.g.
    the sd of tau, mu and a new study for ``k = 2`` under a half-Cauchy or log-t prior) is
    ``inf``; a mean that does not exist because ``E|mu| = inf`` is NaN. Shrinkage moments,
    medians and intervals are always finite.
    """

    k: int
    level: float
    tau: Summary
    mu: Summary
    pred: Summary
    shrinkage: Summary
    log_marginal_likelihood: float
    marginal_likelihood: float
    bf_mu0: float
    bf_tau0: float
    tau_grid: np.ndarray
    tau_density: np.ndarray
    mu_grid: np.ndarray
    mu_density: np.ndarray
    posterior: BayesPosterior
    tau_prior: TauPrior
    mu_prior: tuple[float, float] | None
    n_nodes: int
    converged: bool


def fit_bayes(
    yi: np.ndarray,
    vi: np.ndarray,
    tau_prior: TauPrior | Callable[[np.ndarray], np.ndarray],
    *,
    mu_prior: tuple[float, float] | None = None,
    level: float = 95.0,
) -> BayesFit:
    """Bayesian random-effects meta-analysis by numerical integration over ``tau``.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect estimates and their (known) sampling variances.
    tau_prior : TauPrior or callable
        Prior of ``tau`` (see :mod:`ketameta._core.bayes_priors`) or a vectorised density.
    mu_prior : (mean, sd) or None
        Normal prior of ``mu``; ``None`` (or ``sd = inf``) for the flat prior.
    level : float
        Interval level in percent.

    Returns
    -------
    BayesFit

    Raises
    ------
    ValueError
        For invalid input or an improper posterior.
    """
    y, v = np.asarray(yi, dtype=float).ravel(), np.asarray(vi, dtype=float).ravel()
    if y.size == 0 or y.shape != v.shape or not (np.isfinite(y).all() and np.isfinite(v).all()):
        raise ValueError("yi and vi must be finite arrays of the same, nonzero length")
    if (v <= 0).any():
        raise ValueError("vi must be positive")
    if not 0 < level < 100:
        raise ValueError("level is a percentage in (0, 100)")
    if mu_prior is not None and np.isinf(mu_prior[1]):
        mu_prior = None
    if mu_prior is not None and not (np.isfinite(mu_prior[0]) and mu_prior[1] > 0):
        raise ValueError("mu_prior must be (mean, sd) with finite mean and sd > 0")
    prior, lev = as_tau_prior(tau_prior), level / 100
    lik = _Likelihood(y, v, mu_prior)
    rule = _TauRule(lik, prior)
    proper = prior.proper if prior.proper is not None else _check_proper(prior, rule.c)
    k, tau_n, w = y.size, rule.nodes, rule.weights
    m, var, _ = lik(tau_n)
    t2 = tau_n**2
    sh = v[:, None] / (v[:, None] + t2)
    ms = np.vstack([m, m, (1 - sh) * y[:, None] + sh * m])
    ss = np.sqrt(np.vstack([var, var + t2, (1 - sh) * v[:, None] + sh**2 * var]))
    mix = _Mixture(w, ms, ss)
    dd = np.arange(k + 2)
    q = mix.ppf(np.repeat(dd, 3), np.tile([0.5, (1 - lev) / 2, (1 + lev) / 2], k + 2))
    q = q.reshape(k + 2, 3)
    h_lo, h_hi = mix.hpd(dd, lev)
    modes = mix.mode(dd, h_lo, h_hi)
    mean, sd = mix.mean.copy(), mix.scale.copy()
    fin1, fin2 = rule.finite(1), rule.finite(2)
    for d, normal in ((0, mu_prior is not None), (1, False)):
        mean[d] = mean[d] if (normal or fin1) else np.nan
        sd[d] = sd[d] if (normal or fin2) else np.inf
    summ = [Summary(*map(float, (modes[d], q[d, 0], mean[d], sd[d], q[d, 1], q[d, 2], h_lo[d],
                                 h_hi[d]))) for d in (0, 1)]  # fmt: skip
    shrink = Summary(modes[2:], q[2:, 0], mean[2:], sd[2:], q[2:, 1], q[2:, 2], h_lo[2:], h_hi[2:])
    # tau
    tq = rule.ppf(np.array([0.5, (1 - lev) / 2, (1 + lev) / 2, lev]))
    t_mean = float(w @ tau_n) if fin1 else np.inf
    t_sd = float(np.sqrt(max(w @ t2 - t_mean**2, 0.0))) if fin2 else np.inf
    t_lo, t_hi = _tau_shortest(rule, lev, tq)
    tau_s = Summary(*map(float, (rule.mode, tq[0], t_mean, t_sd, tq[1], tq[2], t_lo, t_hi)))
    # evidence
    logz = float(rule.logz)
    ml_ok = proper and mu_prior is not None
    bf_mu0 = np.nan
    if mu_prior is not None:
        z0, s0 = mu_prior[0] / mu_prior[1], mu_prior[1]
        prior0 = np.exp(-0.5 * z0 * z0) / (np.sqrt(2 * np.pi) * s0)
        bf_mu0 = float(mix.pdf(np.zeros(1, int), np.zeros(1))[0] / prior0)
    bf_tau0 = float(np.exp(lik(np.zeros(1))[2][0] - logz)) if proper else np.nan
    tg = np.linspace(0.0, float(rule.ppf(np.array([0.999]))[0]), 201)
    mg = np.linspace(*mix.ppf(np.zeros(2, int), np.array([5e-4, 1 - 5e-4])), 201)
    return BayesFit(
        k=k, level=level, tau=tau_s, mu=summ[0], pred=summ[1], shrinkage=shrink,
        log_marginal_likelihood=logz if ml_ok else np.nan,
        marginal_likelihood=float(np.exp(logz)) if ml_ok else np.nan,
        bf_mu0=bf_mu0, bf_tau0=bf_tau0, tau_grid=tg, tau_density=rule.pdf(tg), mu_grid=mg,
        mu_density=mix.pdf(np.zeros(mg.size, int), mg), posterior=BayesPosterior(rule, mix),
        tau_prior=prior, mu_prior=mu_prior, n_nodes=int(tau_n.size),
        converged=bool(rule.converged),
    )  # fmt: skip
