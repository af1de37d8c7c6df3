"""Prior densities for the heterogeneity ``tau`` of a Bayesian random-effects meta-analysis.

Each factory returns a :class:`TauPrior`, a frozen bundle of the (log) density of ``tau`` on
``[0, inf)`` and, where available in closed form, its CDF and quantile function. Any callable
density ``p(tau)`` may be used instead (see :func:`as_tau_prior`).

The empirical priors of Turner et al. (2015) and Rhodes et al. (2015) are stated for the
*squared* heterogeneity ``tau²``; they are transformed here to ``tau`` (on the log scale
``log tau = log(tau²) / 2``, so location and scale are halved). Their parameter tables are
copied from R's bayesmeta (``TurnerEtAlParameters`` / ``RhodesEtAlParameters`` in
``R/bayesmeta.R``), which cites the tables of the two papers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ketameta._core.bayes_tables import (
    _COMPARATORS,
    _RHODES_COMPARISONS,
    _RHODES_LOCATION,
    _RHODES_OUTCOMES,
    _RHODES_SCALE,
    _TURNER_COMPARISONS,
    _TURNER_MU,
    _TURNER_OUTCOMES,
    _TURNER_PAIRS,
    _TURNER_SIGMA,
    _match,
)

__all__ = [
    "TauPrior",
    "as_tau_prior",
    "exponential",
    "half_cauchy",
    "half_normal",
    "half_student_t",
    "log_normal_tau2",
    "log_t_tau2",
    "rhodes_prior",
    "turner_prior",
    "uniform",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TauPrior:
    """A prior for ``tau`` on ``[0, inf)``.

    Attributes
    ----------
    logpdf : callable
        Vectorised log density of ``tau`` (``-inf`` outside the support).
    label : str
        Human-readable description.
    proper : bool or None
        ``True`` if the density integrates to 1, ``False`` if improper, ``None`` if unknown
        (then :func:`ketameta._core.bayes.fit_bayes` checks it numerically).
    cdf, ppf : callable or None
        Prior CDF and quantile function of ``tau`` when known in closed form.
    breakpoints : tuple of float
        Points where the density is not smooth (e.g. the upper end of a uniform prior);
        the quadrature splits there.
    params : dict
        The distribution's parameters (for the empirical priors: on ``tau²`` and ``tau``).
    tail : (float, float) or None
        ``(a, b)`` when the density decays like ``tau^-a (log tau)^-b`` as ``tau -> inf``
        (``a = inf`` for a bounded support or a tail lighter than every power); it decides
        which posterior moments are finite. ``None`` if unknown (then estimated numerically).
    """

    logpdf: ArrayFn
    label: str
    proper: bool | None = True
    cdf: ArrayFn | None = None
    ppf: ArrayFn | None = None
    breakpoints: tuple[float, ...] = ()
    params: dict[str, float] = field(default_factory=dict)
    tail: tuple[float, float] | None = None

    def pdf(self, tau: np.ndarray | float) -> np.ndarray:
        """Prior density of ``tau``."""
        return np.exp(self.logpdf(np.asarray(tau, dtype=float)))

    def __call__(self, tau: np.ndarray | float) -> np.ndarray:
        return self.pdf(tau)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _on_support(tau: np.ndarray, logd: np.ndarray) -> np.ndarray:
    return np.where(tau >= 0, logd, -np.inf)


def _t_logpdf(z: np.ndarray, nu: float) -> np.ndarray:
    """Log density of the standard Student-t (closed form; scipy.stats is slow per call)."""
    c = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    with np.errstate(over="ignore"):
        return c - (nu + 1) / 2 * np.log1p(z * z / nu)


def _log_of_positive(t: np.ndarray) -> np.ndarray:
    return np.log(np.where(t > 0, t, 1.0))


def half_normal(scale: float) -> TauPrior:
    """Half-normal prior: ``p(tau) = 2 / scale * phi(tau / scale)``, ``tau >= 0``."""
    s = _positive("scale", scale)
    c = np.log(2.0) - np.log(s) - 0.5 * np.log(2 * np.pi)
    return TauPrior(
        logpdf=lambda t: _on_support(t, c - 0.5 * (t / s) ** 2),
        label=f"half-normal(scale={s:g})",
        cdf=lambda t: np.where(t > 0, special.erf(np.maximum(t, 0) / (s * np.sqrt(2))), 0.0),
        ppf=lambda p: s * np.sqrt(2) * special.erfinv(p),
        params={"scale": s},
        tail=(np.inf, 0.0),
    )


def half_student_t(scale: float, df: float) -> TauPrior:
    """Half-Student-t prior with ``df`` degrees of freedom: ``2 / scale * t_df(tau / scale)``."""
    s, nu = _positive("scale", scale), _positive("df", df)
    c = np.log(2.0) - np.log(s)
    return TauPrior(
        logpdf=lambda t: _on_support(t, c + _t_logpdf(t / s, nu)),
        label=f"half-Student-t(scale={s:g}, df={nu:g})",
        cdf=lambda t: np.where(t > 0, 2 * special.stdtr(nu, np.maximum(t, 0) / s) - 1, 0.0),
        ppf=lambda p: s * special.stdtrit(nu, (1 + np.asarray(p)) / 2),
        params={"scale": s, "df": nu},
        tail=(nu + 1.0, 0.0),
    )


def half_cauchy(scale: float) -> TauPrior:
    """Half-Cauchy prior: ``p(tau) = 2 / (pi * scale * (1 + (tau / scale)²))``."""
    s = _positive("scale", scale)
    c = np.log(2.0 / np.pi) - np.log(s)
    return TauPrior(
        logpdf=lambda t: _on_support(t, c - np.log1p((t / s) ** 2)),
        label=f"half-Cauchy(scale={s:g})",
        cdf=lambda t: np.where(t > 0, 2 / np.pi * np.arctan(np.maximum(t, 0) / s), 0.0),
        ppf=lambda p: s * np.tan(np.pi / 2 * np.asarray(p)),
        params={"scale": s},
        tail=(2.0, 0.0),
    )


def exponential(scale: float) -> TauPrior:
    """Exponential prior with mean ``scale`` (rate ``1 / scale``): ``exp(-tau / scale) / scale``."""
    s = _positive("scale", scale)
    return TauPrior(
        logpdf=lambda t: _on_support(t, -np.log(s) - t / s),
        label=f"exponential(scale={s:g})",
        cdf=lambda t: -np.expm1(-np.maximum(t, 0) / s),
        ppf=lambda p: -s * np.log1p(-np.asarray(p)),
        params={"scale": s, "rate": 1 / s},
        tail=(np.inf, 0.0),
    )


def uniform(upper: float = np.inf) -> TauPrior:
    """Uniform prior on ``[0, upper]``; ``upper=inf`` gives the improper flat prior ``p = 1``."""
    u = float(upper)
    if not u > 0:
        raise ValueError(f"upper must be positive, got {upper!r}")
    if np.isinf(u):
        return TauPrior(
            logpdf=lambda t: np.where(t >= 0, 0.0, -np.inf),
            label="uniform(0, inf) (improper)",
            proper=False,
            tail=(0.0, 0.0),
        )
    c = -np.log(u)
    return TauPrior(
        logpdf=lambda t: np.where((t >= 0) & (t <= u), c, -np.inf),
        label=f"uniform(0, {u:g})",
        cdf=lambda t: np.clip(np.asarray(t) / u, 0.0, 1.0),
        ppf=lambda p: u * np.asarray(p),
        breakpoints=(u,),
        params={"upper": u},
        tail=(np.inf, 0.0),
    )


def log_normal_tau2(mu: float, sigma: float, label: str | None = None) -> TauPrior:
    """Log-normal prior for ``tau²``: ``log(tau²) ~ N(mu, sigma²)``.

    Equivalently ``log tau ~ N(mu / 2, (sigma / 2)²)``.
    """
    sig = _positive("sigma", sigma)
    m_t, s_t = float(mu) / 2, sig / 2
    c = -np.log(s_t) - 0.5 * np.log(2 * np.pi)

    def logpdf(t: np.ndarray) -> np.ndarray:
        lt = _log_of_positive(t)
        return np.where(t > 0, c - 0.5 * ((lt - m_t) / s_t) ** 2 - lt, -np.inf)

    return TauPrior(
        logpdf=logpdf,
        label=label or f"log-normal(mu={m_t:.3f}, sigma={s_t:.3f}) for tau",
        cdf=lambda t: np.where(t > 0, special.ndtr((_log_of_positive(t) - m_t) / s_t), 0.0),
        ppf=lambda p: np.exp(m_t + s_t * special.ndtri(p)),
        params={"tau2_mu": float(mu), "tau2_sigma": sig, "tau_mu": m_t, "tau_sigma": s_t},
        tail=(np.inf, 0.0),
    )


def log_t_tau2(
    location: float, scale: float, df: float = 5.0, label: str | None = None
) -> TauPrior:
    """Log-Student-t prior for ``tau²``: ``(log(tau²) - location) / scale ~ t_df``.

    For ``tau`` this is a log-t with halved location and scale.
    """
    sc, nu = _positive("scale", scale), _positive("df", df)
    l_t, s_t = float(location) / 2, sc / 2

    def logpdf(t: np.ndarray) -> np.ndarray:
        lt = _log_of_positive(t)
        return np.where(t > 0, _t_logpdf((lt - l_t) / s_t, nu) - np.log(s_t) - lt, -np.inf)

    return TauPrior(
        logpdf=logpdf,
        label=label or f"log-t{nu:g}(location={l_t:.3f}, scale={s_t:.3f}) for tau",
        cdf=lambda t: np.where(t > 0, special.stdtr(nu, (_log_of_positive(t) - l_t) / s_t), 0.0),
        ppf=lambda p: np.exp(l_t + s_t * special.stdtrit(nu, p)),
        params={
            "tau2_location": float(location),
            "tau2_scale": sc,
            "tau_location": l_t,
            "tau_scale": s_t,
            "df": nu,
        },
        tail=(1.0, nu + 1.0),  # (1 / tau) t_nu(log tau) ~ tau^-1 (log tau)^-(nu + 1)
    )


def as_tau_prior(prior: TauPrior | Callable[[np.ndarray], np.ndarray]) -> TauPrior:
    """Wrap a callable density ``p(tau)`` as a :class:`TauPrior` (propriety unknown).

    The callable should accept a numpy array; scalar-only callables are vectorised.
    """
    if isinstance(prior, TauPrior):
        return prior
    if not callable(prior):
        raise TypeError("tau_prior must be a TauPrior or a callable density")

    def logpdf(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        try:
            d = np.asarray(prior(t), dtype=float)
            if d.shape != t.shape:
                d = np.broadcast_to(d, t.shape) if d.ndim == 0 else d.reshape(t.shape)
        except (TypeError, ValueError):
            d = np.array([float(prior(x)) for x in t.ravel()]).reshape(t.shape)
        with np.errstate(divide="ignore"):
            return np.where(t >= 0, np.log(np.maximum(d, 0.0)), -np.inf)

    return TauPrior(logpdf=logpdf, label=getattr(prior, "__name__", "user density"), proper=None)


def turner_prior(
    outcome: str | None = None,
    comparator1: str = "pharmacological",
    comparator2: str = "placebo / control",
) -> TauPrior:
    """Empirical log-normal prior of Turner et al. (2015) for log odds ratios.

    R.M. Turner, D. Jackson, Y. Wei, S.G. Thompson, J.P.T. Higgins. Predictive distributions
    for between-study heterogeneity and simple methods for their application in Bayesian
    meta-analysis. *Statistics in Medicine* 34(6):984-998, 2015, doi:10.1002/sim.6381,
    Table IV; values as tabulated in R's bayesmeta (``TurnerEtAlParameters``), which prints,
    e.g., ``log(tau²) ~ N(-2.14, 1.74²)`` for surgical / device related success / failure,
    pharmacological vs. placebo / control. ``outcome=None`` gives the marginal setting
    ``N(-2.56, 1.74²)`` (p. 993).

    Parameters
    ----------
    outcome : str or None
        Outcome type (an exact name or unique prefix of ``_TURNER_OUTCOMES``).
    comparator1, comparator2 : str
        ``"pharmacological"``, ``"non-pharmacological"`` or ``"placebo / control"`` (not both
        placebo); prefixes allowed.

    Returns
    -------
    TauPrior
        Log-normal prior for ``tau`` with ``log tau ~ N(mu/2, (sigma/2)²)``.
    """
    if outcome is None:
        return log_normal_tau2(-2.56, 1.74, label="Turner et al. (2015), marginal")
    o = _TURNER_OUTCOMES.index(_match(outcome, _TURNER_OUTCOMES, "outcome"))
    pair = frozenset(
        {
            _match(comparator1, _COMPARATORS, "comparator1"),
            _match(comparator2, _COMPARATORS, "comparator2"),
        }
    )
    if pair not in _TURNER_PAIRS:
        raise ValueError("the comparators must not both be 'placebo / control'")
    c = _TURNER_PAIRS[pair]
    return log_normal_tau2(
        float(_TURNER_MU[c, o]),
        float(_TURNER_SIGMA[c, o]),
        label=f"Turner et al. (2015): {_TURNER_OUTCOMES[o]}, {_TURNER_COMPARISONS[c]}",
    )


def rhodes_prior(
    outcome: str | None = None,
    comparator1: str = "pharmacological",
    comparator2: str = "placebo / control",
    area: str = "other",
) -> TauPrior:
    """Empirical log-Student-t(5) prior of Rhodes et al. (2015) for standardised mean differences.

    K.M. Rhodes, R.M. Turner, J.P.T. Higgins. Predictive distributions were developed for the
    extent of heterogeneity in meta-analyses of continuous outcome data. *Journal of Clinical
    Epidemiology* 68(1):52-60, 2015, doi:10.1016/j.jclinepi.2014.08.012: Table 3 (medical area
    "other"), Tables A.3.1 ("respiratory") and A.3.2 ("cancer"); values as tabulated in R's
    bayesmeta (``RhodesEtAlParameters``). ``(log(tau²) - location) / scale ~ t_5``;
    ``outcome=None`` gives the general setting ``location=-3.44, scale=2.59`` (Sec. 3.3).

    Parameters
    ----------
    outcome : str or None
        Outcome type (exact name or unique prefix of ``_RHODES_OUTCOMES``).
    comparator1, comparator2 : str
        As in :func:`turner_prior`; any non-pharmacological comparison is one category.
    area : {"other", "respiratory", "cancer"}
        Medical area.

    Returns
    -------
    TauPrior
        Log-t(5) prior for ``tau`` with halved location and scale.
    """
    if outcome is None:
        return log_t_tau2(-3.44, 2.59, 5.0, label="Rhodes et al. (2015), general")
    o = _RHODES_OUTCOMES.index(_match(outcome, _RHODES_OUTCOMES, "outcome"))
    a = _match(area, ("other", "respiratory", "cancer"), "area")
    c1 = _match(comparator1, _COMPARATORS, "comparator1")
    c2 = _match(comparator2, _COMPARATORS, "comparator2")
    if c1 == c2 == "placebo / control":
        raise ValueError("the comparators must not both be 'placebo / control'")
    if "non-pharmacological" in (c1, c2):
        c = 2
    else:
        c = 1 if c1 == c2 else 0
    return log_t_tau2(
        float(_RHODES_LOCATION[a][c, o]),
        float(_RHODES_SCALE[a][c, o]),
        5.0,
        label=f"Rhodes et al. (2015): {_RHODES_OUTCOMES[o]}, {_RHODES_COMPARISONS[c]}, area {a}",
    )
