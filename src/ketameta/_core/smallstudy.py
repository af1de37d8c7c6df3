"""Small-study methods: the Henmi-Copas interval and the test of excess significance.

* :func:`henmi_copas` follows metafor's ``hc()`` (Henmi & Copas, 2010, Statistics in Medicine
  29, 2969-2983): the fixed-effect (inverse-variance) estimate, which is less affected by
  small-study effects than the random-effects estimate, with a confidence interval that allows
  for heterogeneity (DerSimonian-Laird tau²). The interval half-width is ``u0 * se`` where the
  percentage point u0 solves an integral equation built from a gamma approximation to the
  conditional distribution of Cochran's Q given the standardised estimate. The root is found
  to 1e-12 (metafor's ``uniroot()`` default stops at ~1.2e-4, so its bounds can differ by up to
  ~1e-4 relative unless ``control=list(tol=1e-12)`` is given).
* :func:`excess_significance` follows metafor's ``tes()`` (Ioannidis & Trikalinos, 2007,
  Clinical Trials 4, 245-253): the observed number O of significant studies against the
  expected number E = sum of the studies' powers when the pooled estimate is the true effect,
  by the exact (Poisson-binomial), binomial or chi-square test, plus the limit estimate
  ``theta_lim`` at which the test's p-value equals ``tes_alpha``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from scipy import integrate, optimize, special, stats

__all__ = ["ExcessSignificance", "HenmiCopas", "excess_significance", "henmi_copas"]

Alternative = Literal["two.sided", "greater", "less"]


class HenmiCopas(NamedTuple):
    """Result of :func:`henmi_copas`."""

    beta: float  # fixed-effect estimate
    se: float  # its standard error allowing for heterogeneity, sqrt((tau2 W2 + 1) / W1)
    ci_lb: float
    ci_ub: float
    tau2: float  # DerSimonian-Laird tau²
    t0: float  # root of the integral equation
    u0: float  # percentage point of U: CI = beta -/+ u0 * se


def henmi_copas(yi, vi, level: float = 95.0, *, tol: float = 1e-12) -> HenmiCopas:
    """Henmi-Copas confidence interval around the fixed-effect estimate (metafor's ``hc()``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and sampling variances (all vi > 0, k >= 2).
    level : float
        Confidence level in percent.
    tol : float
        Absolute tolerance of the root t0 (brentq); the integral is evaluated to ~1e-13.

    Returns
    -------
    HenmiCopas
        ``(beta, se, ci_lb, ci_ub, tau2, t0, u0)``.
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    k = y.size
    if k < 2:
        raise ValueError("henmi_copas needs at least 2 studies.")
    if np.any(v <= 0):
        raise ValueError("All sampling variances must be positive.")
    alpha = 1.0 - level / 100.0
    w = 1.0 / v
    w1 = w.sum()
    w2, w3, w4 = ((w**j).sum() / w1 for j in (2, 3, 4))
    beta = float((w * y).sum() / w1)
    q = float((w * (y - beta) ** 2).sum())
    tau2 = float(max(0.0, (q - (k - 1)) / (w1 - w2)))
    se = math.sqrt((tau2 * w2 + 1.0) / w1)
    vr = 1.0 + tau2 * w2
    sdr = math.sqrt(vr)
    d32 = w3 - w2**2

    def eq_mean(r):  # E(Q | R = r)
        return (k - 1) + tau2 * (w1 - w2) + tau2**2 * (r**2 / vr**2 - 1.0 / vr) * d32

    def eq_var(r):  # Var(Q | R = r)
        a = r**2 / vr**2 - 1.0 / vr
        return (
            2 * (k - 1)
            + 4 * tau2 * (w1 - w2)
            + 2 * tau2**2 * (w1 * w2 - 2 * w3 + w2**2)
            + 4 * tau2**2 * a * d32
            + 4 * tau2**3 * a * (w4 - 2 * w2 * w3 + w2**3)
            + 2 * tau2**4 * (1.0 / vr**2 - 2.0 * r**2 / vr**3) * d32**2
        )

    def integrand(r, x):
        m, s2 = eq_mean(sdr * r), eq_var(sdr * r)
        q_of_f = (w1 / w2 - 1.0) * ((r / x) ** 2 - 1.0) + (k - 1)
        # gamma(shape = m²/s2, scale = s2/m) cdf at q_of_f
        return (
            special.gammainc(m * m / s2, q_of_f * m / s2)
            * math.exp(-0.5 * r * r)
            / math.sqrt(2 * math.pi)
        )

    def eqn(x):
        val = integrate.quad(integrand, x, x + 40.0, args=(x,), epsabs=1e-15, epsrel=1e-13,
                             limit=200)[0]  # fmt: skip
        return val - alpha / 2.0

    t0 = optimize.brentq(eqn, 1e-8, 2.0, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=1000)
    u0 = sdr * t0
    lb, ub = beta - u0 * se, beta + u0 * se
    return HenmiCopas(beta, se, lb, ub, tau2, float(t0), float(u0))


class ExcessSignificance(NamedTuple):
    """Result of :func:`excess_significance`."""

    k: int
    observed: int  # O: number of significant studies
    expected: float  # E: sum of the powers
    oe_ratio: float
    test: str  # "exact", "binom" or "chi2"
    statistic: float  # X² for test="chi2", NaN otherwise
    pval: float
    power: np.ndarray  # power of each study at the assumed true effect
    significant: np.ndarray  # bool per study
    theta: float  # the assumed true effect
    theta_lim: float | tuple[float, float]  # effect at which pval = tes_alpha (NaN: none)


def _rejection(m, alternative, crit):
    """P(the study's Wald test rejects) when its z statistic is N(m, 1)."""
    if alternative == "two.sided":
        return special.ndtr(m - crit) + special.ndtr(-crit - m)
    return special.ndtr(m - crit) if alternative == "greater" else special.ndtr(crit - m)


def _powers(theta, sei, h0, alternative, crit, tau2, truncate):
    if tau2 is None:
        return _rejection((theta - h0) / sei, alternative, crit)
    tau = math.sqrt(tau2)
    if truncate is None:  # over the whole normal distribution of true effects: closed form
        s = np.sqrt(1.0 + tau2 / sei**2)
        return _rejection((theta - h0) / sei / s, alternative, crit / s)
    out = np.empty(sei.size)
    for i, s in enumerate(sei):  # metafor integrates over theta -/+ 5 tau only

        def f(x, s=s):
            dens = math.exp(-0.5 * ((x - theta) / tau) ** 2) / (tau * math.sqrt(2 * math.pi))
            return _rejection((x - h0) / s, alternative, crit) * dens

        lo, hi = theta - truncate * tau, theta + truncate * tau
        pts = [c for c in (h0 + crit * s, h0 - crit * s) if lo < c < hi]
        out[i] = integrate.quad(f, lo, hi, points=pts or None, epsabs=0.0, epsrel=1e-13,
                                limit=200)[0]  # fmt: skip
    return out


def excess_significance(
    yi,
    vi,
    estimate: float | None = None,
    *,
    tau2: float | None = None,
    h0: float = 0.0,
    alpha: float = 0.05,
    alternative: Alternative = "two.sided",
    tes_alternative: Alternative = "greater",
    test: Literal["exact", "binom", "chi2"] | None = None,
    correct: bool = False,
    truncate: float | None = 5.0,
    tes_alpha: float = 0.10,
    find_lim: bool = True,
) -> ExcessSignificance:
    """Test of excess significance (metafor's ``tes()``).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and sampling variances.
    estimate : float, optional
        The assumed true (average) effect; by default the weighted mean with weights
        1/(vi + tau2) (1/vi without tau2). ``tes(res)`` on an ``rma`` fit uses its estimate and
        its tau².
    tau2 : float, optional
        Heterogeneity: each study's power is then averaged over true effects
        N(estimate, tau2). Values <= 0 are ignored (as metafor's ``tau2.lb = 0``).
    h0 : float
        Null value of the studies' own Wald tests.
    alpha, alternative
        Significance level and sidedness of the studies' own tests.
    tes_alternative : {"greater", "less", "two.sided"}
        Alternative of the test of O against E (metafor's ``tes.alternative``).
    test : {"exact", "binom", "chi2"}, optional
        metafor's default: "exact" (Poisson-binomial distribution of O given the powers) when
        the number of study combinations summed over is at most 1e6, else "chi2".
    correct : bool
        Continuity correction of the chi-square test (as ``prop.test``).
    truncate : float or None
        With tau2, metafor integrates the power over estimate -/+ 5 tau only (the default here,
        for agreement); ``None`` integrates over the whole distribution (closed form).
    tes_alpha, find_lim
        With ``find_lim``, ``theta_lim`` is the assumed effect at which the p-value equals
        ``tes_alpha`` (metafor's ``theta.lim``; for a two-sided test the pair of one-sided limits
        at ``tes_alpha / 2``), found here to 1e-12 (metafor's ``uniroot()`` to ~1e-4).

    Returns
    -------
    ExcessSignificance
        ``(k, observed, expected, oe_ratio, test, statistic, pval, power, significant, theta,
        theta_lim)``.
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1).")
    tau2_eff = tau2 if (tau2 is not None and tau2 > 0) else None
    if estimate is None:
        w = 1.0 / (v + (tau2_eff or 0.0))
        estimate = float((w * y).sum() / w.sum())
    args = (y, v, tau2_eff, h0, alpha, alternative, correct, truncate)
    res = _tes(float(estimate), *args, tes_alternative, test)
    lim: float | tuple[float, float] = math.nan
    if find_lim:
        sides = ("greater", "less") if tes_alternative == "two.sided" else (tes_alternative,)
        a_lim = tes_alpha / len(sides)
        lims = tuple(_theta_lim(float(estimate), args, side, res.test, a_lim) for side in sides)
        lim = lims if len(lims) == 2 else lims[0]
    return res._replace(theta_lim=lim)


def _theta_lim(theta1, args, side, test, tes_alpha):
    """Root of pval(theta) = tes_alpha between h0 and the estimate (extended if needed)."""
    h0 = args[3]

    def diff(t):
        return _tes(t, *args, side, test).pval - tes_alpha

    d0 = diff(h0)
    if (side == "greater" and d0 >= 0) or (side == "less" and d0 <= 0):
        return math.nan
    far = theta1 if theta1 != h0 else h0 + 1.0
    for _ in range(60):  # extend the interval away from h0 until the sign changes
        if np.sign(diff(far)) != np.sign(d0):
            return float(optimize.brentq(diff, min(h0, far), max(h0, far), xtol=1e-12,
                                         rtol=4 * np.finfo(float).eps, maxiter=1000))  # fmt: skip
        far = h0 + 2.0 * (far - h0)
    return math.nan


def _tes(estimate, y, v, tau2_eff, h0, alpha, alternative, correct, truncate, tes_alt, test):
    k = y.size
    crit = {
        "two.sided": special.ndtri(1 - alpha / 2),
        "greater": special.ndtri(1 - alpha),
        "less": special.ndtri(alpha),
    }[alternative]
    sei = np.sqrt(v)
    pw = np.asarray(_powers(estimate, sei, h0, alternative, crit, tau2_eff, truncate))
    z = (y - h0) / sei
    sig = {"two.sided": np.abs(z) >= crit, "greater": z >= crit, "less": z <= crit}[alternative]
    e_num, o_num = float(pw.sum()), int(sig.sum())
    js = {"two.sided": range(0, k + 1), "greater": range(o_num, k + 1),
          "less": range(0, o_num + 1)}[tes_alt]  # fmt: skip
    if test is None:
        test = "exact" if sum(math.comb(k, j) for j in js) <= 10**6 else "chi2"
    stat = math.nan
    p0 = e_num / k
    if test == "chi2":
        dev = o_num - k * p0
        if correct:
            dev = math.copysign(max(abs(dev) - min(0.5, abs(dev)), 0.0), dev)
        stat = dev**2 / (k * p0 * (1 - p0))
        if tes_alt == "two.sided":
            pval = float(stats.chi2.sf(stat, 1))
        else:
            zz = math.copysign(math.sqrt(stat), dev)
            pval = float(special.ndtr(-zz) if tes_alt == "greater" else special.ndtr(zz))
    elif test == "binom":
        alt = {"two.sided": "two-sided", "greater": "greater", "less": "less"}[tes_alt]
        pval = float(stats.binomtest(o_num, k, p0, alternative=alt).pvalue)
    elif test == "exact":
        pmf = np.ones(1)
        for p in pw:  # Poisson-binomial distribution of the number of significant studies
            pmf = np.convolve(pmf, [1.0 - p, p])
        if tes_alt == "greater":
            pval = float(pmf[o_num:].sum())
        elif tes_alt == "less":
            pval = float(pmf[: o_num + 1].sum())
        else:
            pval = float(pmf[pmf <= pmf[o_num] + np.sqrt(np.finfo(float).eps)].sum())
        pval = min(pval, 1.0)
    else:
        raise ValueError(f"Unknown test {test!r}.")
    return ExcessSignificance(k, o_num, e_num, o_num / e_num, test, stat, pval, pw, sig,
                              estimate, math.nan)  # fmt: skip
