"""Bayesian random-effects meta-analysis: ``meta_bayes()`` (the normal-normal hierarchical model).

The posterior is computed by numerical integration over tau (`ketameta._core.bayes`, the
approach of R's bayesmeta), not by MCMC: the same data give the same numbers every time.
Priors for tau: half-normal, half-Cauchy, half-Student-t, exponential, uniform, the empirical
priors of Turner et al. (2015, log odds ratios) and Rhodes et al. (2015, standardised mean
differences), or any density. ``mu`` has a flat prior or a normal one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import bayes_priors as priors
from ketameta._core.bayes import BayesFit, fit_bayes
from ketameta.synthesis._inputs import read_effects

PRIORS = ("half-normal", "half-cauchy", "half-student-t", "exponential", "uniform", "turner",
          "rhodes")  # fmt: skip


def tau_prior_from(
    name: str | Callable | priors.TauPrior,
    scale: float = 0.5,
    *,
    df: float = 3.0,
    **empirical: Any,
) -> priors.TauPrior:
    """The prior for tau named by ``name`` (see `PRIORS`), with ``scale`` (or a callable).

    Examples
    --------
    >>> tau_prior_from("half-normal", 0.5).label
    'half-normal(scale=0.5)'
    """
    if isinstance(name, priors.TauPrior) or callable(name) and not isinstance(name, str):
        return priors.as_tau_prior(name)
    if name not in PRIORS:
        raise ValueError(f"tau_prior: choose one of {', '.join(PRIORS)} or pass a density")
    if name == "turner":
        return priors.turner_prior(**empirical)
    if name == "rhodes":
        return priors.rhodes_prior(**empirical)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ValueError(f"tau_scale must be a positive number, got {scale!r}")
    return {
        "half-normal": lambda: priors.half_normal(scale),
        "half-cauchy": lambda: priors.half_cauchy(scale),
        "half-student-t": lambda: priors.half_student_t(scale, df),
        "exponential": lambda: priors.exponential(scale),
        "uniform": lambda: priors.uniform(scale),
    }[name]()


def _row(summary: Any, i: int | None = None) -> dict[str, float]:
    pick = (lambda x: float(x)) if i is None else (lambda x: float(np.asarray(x)[i]))
    return {
        "median": pick(summary.median),
        "mean": pick(summary.mean),
        "sd": pick(summary.sd),
        "ci_low": pick(summary.lower),
        "ci_high": pick(summary.upper),
        "hpd_low": pick(summary.hpd_lower),
        "hpd_high": pick(summary.hpd_upper),
    }


def _num(x: float) -> str:
    """A summary number for print: ``inf`` for an infinite moment, ``undefined`` for NaN."""
    if math.isnan(x):
        return "undefined"
    return f"{x:.4f}" if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _moment_note(table: pd.DataFrame) -> str:
    """Why a moment is not a finite number (empty if all are)."""
    parts = []
    if np.isinf(table["sd"]).any() or np.isinf(table["mean"]).any():
        parts.append("inf = infinite posterior moment (heavy tail of p(tau | y))")
    if np.isnan(table["mean"]).any():
        parts.append("undefined = the mean does not exist (E|mu| = inf)")
    return "; ".join(parts)


@dataclass(frozen=True)
class BayesResult:
    """A Bayesian random-effects meta-analysis (see `meta_bayes`).

    ``estimate``, ``ci_low``, ``ci_high`` are the posterior median of mu and its equal-tailed
    interval; ``pi_low``/``pi_high`` the posterior predictive interval of a new study;
    ``tau`` (median) with ``tau_ci``. ``fit`` holds every summary and the densities.

    With few studies a posterior moment can be infinite: the ``mu``-integrated likelihood
    decays like ``tau^-(k-1)`` (flat ``mu`` prior), so with ``k = 2`` the sd of tau, mu and a
    new study is ``inf`` under a half-Cauchy or a Rhodes (log-t) prior. Such a field holds
    ``inf`` (printed ``inf``); a mean that does not exist (``E|mu| = inf``) is NaN, printed
    ``undefined``. Medians and intervals are always finite.
    """

    k: int
    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau: float
    tau_ci: tuple[float, float]
    level: float
    prior: str
    mu_prior: tuple[float, float] | None
    labels: tuple[str, ...]
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    measure: str | None = None
    fit: BayesFit | None = field(default=None, repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> pd.DataFrame:
        """Posterior summaries of mu, tau and a new study's effect (one row each).

        ``inf`` marks an infinite posterior moment, NaN a mean that does not exist; the
        table's ``attrs["note"]`` says so when either occurs.
        """
        f = self.fit
        rows = {"mu": _row(f.mu), "tau": _row(f.tau), "new study": _row(f.pred)}
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "parameter"
        note = _moment_note(table)
        if note:
            table.attrs["note"] = note
        return table

    def records(self) -> pd.DataFrame:
        """Per study: ``label, yi, vi``, the observed interval ``ci_low, ci_high``
        (``yi ± z·sqrt(vi)`` at ``level``) and the posterior (shrinkage) median
        ``shrink_median`` with its equal-tailed interval ``shrink_low, shrink_high`` (what
        `bayes_forest` draws).

        Examples
        --------
        >>> res = meta_bayes([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03], labels=["A", "B", "C"])
        >>> res.records()[["label", "yi", "ci_low", "ci_high"]].round(3)
          label   yi  ci_low  ci_high
        0     A -0.5  -0.892   -0.108
        1     B -0.2  -0.638    0.238
        2     C -0.4  -0.739   -0.061
        """
        half = stats.norm.ppf(0.5 + self.level / 200.0) * np.sqrt(self.vi)
        sh = self.fit.shrinkage
        return pd.DataFrame(
            {
                "label": list(self.labels),
                "yi": self.yi,
                "vi": self.vi,
                "ci_low": self.yi - half,
                "ci_high": self.yi + half,
                "shrink_median": np.asarray(sh.median, dtype=float),
                "shrink_low": np.asarray(sh.lower, dtype=float),
                "shrink_high": np.asarray(sh.upper, dtype=float),
            }
        )

    def shrinkage(self) -> pd.DataFrame:
        """Per-study posterior effects (shrunken towards mu), with their intervals."""
        rows = [
            {"study": lab, "yi": float(y), **_row(self.fit.shrinkage, i)}
            for i, (lab, y) in enumerate(zip(self.labels, self.yi, strict=True))
        ]
        return pd.DataFrame(rows)

    @property
    def bayes_factor_mu0(self) -> float:
        """Savage-Dickey BF01 for mu = 0 (NaN with a flat mu prior)."""
        return float(self.fit.bf_mu0)

    def __str__(self) -> str:
        level = f"{self.level:g}%"
        lines = [
            f"Bayesian random-effects model (k = {self.k}; numerical integration)",
            f"prior for tau: {self.prior}",
            "prior for mu: "
            + ("flat" if self.mu_prior is None else f"normal{tuple(self.mu_prior)}"),
            "",
            f"{'':10} {'median':>9} {'mean':>9} {'sd':>8} {level + ' CI':>22} {'shortest':>22}",
        ]
        table = self.summary()
        for name, r in table.iterrows():
            lines.append(
                f"{name:10} {_num(r['median']):>9} {_num(r['mean']):>9} {_num(r['sd']):>8} "
                f"{'[' + f'{r.ci_low:.4f}, {r.ci_high:.4f}' + ']':>22} "
                f"{'[' + f'{r.hpd_low:.4f}, {r.hpd_high:.4f}' + ']':>22}"
            )
        if "note" in table.attrs:
            lines.append(table.attrs["note"])
        if math.isfinite(self.bayes_factor_mu0):
            lines.append(f"\nBayes factor BF01 (mu = 0 vs mu free): {self.bayes_factor_mu0:.4g}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<BayesResult k={self.k} mu={self.estimate:.4f} "
            f"[{self.ci_low:.4f}, {self.ci_high:.4f}] tau={self.tau:.4f}; prior {self.prior}>"
        )

    def _repr_html_(self) -> str:
        table = self.summary().round(4).to_html(classes="ketameta")
        return f"<p>{html.escape(self.__repr__())}</p>{table}"

    def plot_forest(self, **options: Any):
        """Forest plot of the observed effects with their shrinkage intervals and the posterior."""
        from ketameta.plots.bayes import bayes_forest

        return bayes_forest(self, **options)


def meta_bayes(
    yi: Sequence[float] | str | None = None,
    vi: Sequence[float] | str | None = None,
    *,
    data: pd.DataFrame | None = None,
    tau_prior: str | Callable | priors.TauPrior = "half-normal",
    tau_scale: float = 0.5,
    tau_df: float = 3.0,
    mu_prior: tuple[float, float] | None = None,
    level: float = 95.0,
    labels: Sequence[str] | str | None = None,
    prior_setting: dict[str, str] | None = None,
) -> BayesResult:
    """Bayesian random-effects meta-analysis with exact numerical integration (no MCMC).

    Parameters
    ----------
    yi, vi : sequences, or column names of ``data``
        Effect sizes and sampling variances (as `meta`).
    data : DataFrame, optional
        An effects table (e.g. from `escalc`).
    tau_prior : str, callable or TauPrior
        ``"half-normal"`` (default), ``"half-cauchy"``, ``"half-student-t"`` (``tau_df``),
        ``"exponential"`` (mean ``tau_scale``), ``"uniform"`` (on ``[0, tau_scale]``),
        ``"turner"`` (Turner et al. 2015, for log odds ratios) or ``"rhodes"`` (Rhodes et al.
        2015, for SMDs), whose setting (outcome type, comparators, area) is ``prior_setting``;
        or any density of tau.
    tau_scale : float
        Scale of the named priors (default 0.5: a half-normal with median 0.34, suited to SMDs
        and log ratios).
    mu_prior : (mean, sd), optional
        Normal prior of mu; ``None`` is flat.
    level : float
        Interval level in percent.
    labels : sequence or column name, optional
        Study labels.

    Returns
    -------
    BayesResult

    Examples
    --------
    >>> res = meta_bayes([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03], tau_prior="half-normal")
    >>> round(res.estimate, 3), res.k
    (-0.377, 3)
    """
    effects = read_effects(yi, vi, data=data, labels=labels, caller="meta_bayes")
    prior = tau_prior_from(tau_prior, tau_scale, df=tau_df, **(prior_setting or {}))
    fit = fit_bayes(effects.yi, effects.vi, prior, mu_prior=mu_prior, level=level)
    measure = data.attrs.get("measure") if data is not None else None
    return BayesResult(
        k=fit.k,
        estimate=float(fit.mu.median),
        ci_low=float(fit.mu.lower),
        ci_high=float(fit.mu.upper),
        pi_low=float(fit.pred.lower),
        pi_high=float(fit.pred.upper),
        tau=float(fit.tau.median),
        tau_ci=(float(fit.tau.lower), float(fit.tau.upper)),
        level=float(level),
        prior=prior.label,
        mu_prior=mu_prior,
        labels=tuple(effects.labels),
        yi=np.asarray(effects.yi, dtype=float),
        vi=np.asarray(effects.vi, dtype=float),
        measure=measure,
        fit=fit,
        data=data,
    )
