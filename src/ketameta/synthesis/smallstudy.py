"""The Henmi-Copas interval (metafor's ``hc()``) and the test of excess significance (``tes()``)
on a fitted meta-analysis; the numerics live in :mod:`ketameta._core.smallstudy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ketameta._core import smallstudy as core
from ketameta.synthesis import printing as pr
from ketameta.synthesis.results import ResultMixin
from ketameta.synthesis.selection import _check_result, _ro

__all__ = ["ExcessSignificanceResult", "HenmiCopasResult", "excess_significance", "henmi_copas"]


def _frame_lines(header: list[str], rows: list[list[str]], names: list[str], gap: str = " "):
    """R's ``print(data.frame, right=TRUE)``: right-aligned cells one space apart."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    name_w = max(len(n) for n in names)
    out = [" " * name_w + "".join(gap + h.rjust(w) for h, w in zip(header, widths, strict=True))]
    for name, row in zip(names, rows, strict=True):
        out.append(
            name.ljust(name_w) + "".join(gap + c.rjust(w) for c, w in zip(row, widths, strict=True))
        )
    return out


@dataclass(frozen=True, eq=False, repr=False)
class HenmiCopasResult(ResultMixin):
    """Henmi & Copas (2010): the fixed-effect estimate with an interval allowing for
    heterogeneity (metafor's ``hc()``; its names in brackets).

    ``estimate`` [beta] (inverse-variance estimate), ``se`` (sqrt((tau² W2 + 1) / W1)),
    ``ci_low``/``ci_high`` (estimate -/+ ``u0`` se), ``tau2`` (DerSimonian-Laird), ``t0``,
    ``u0``; the random-effects fit it is compared with: ``rma_method``, ``rma_tau2``,
    ``rma_estimate``, ``rma_se``, ``rma_ci_low``, ``rma_ci_high``; ``k``, ``level``, ``measure``.
    """

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    tau2: float
    t0: float
    u0: float
    rma_method: str
    rma_tau2: float
    rma_estimate: float
    rma_se: float
    rma_ci_low: float
    rma_ci_high: float
    level: float
    measure: str | None = None

    _title = "Henmi-Copas"

    def summary(self) -> pd.DataFrame:
        """Two rows, ``rma`` and ``hc``: ``method, tau2, estimate, se, ci_low, ci_high``."""
        return pd.DataFrame(
            {
                "method": [self.rma_method, "DL"],
                "tau2": [self.rma_tau2, self.tau2],
                "estimate": [self.rma_estimate, self.estimate],
                "se": [self.rma_se, self.se],
                "ci_low": [self.rma_ci_low, self.ci_low],
                "ci_high": [self.rma_ci_high, self.ci_high],
            },
            index=["rma", "hc"],
        )

    def text(self, *, digits: int = pr.DIGITS) -> str:
        """``print.hc.rma.uni``: the random-effects and the Henmi-Copas rows."""
        t = self.summary()
        rows = [
            [
                str(r.method),
                *(
                    pr.fmtx(getattr(r, c), digits)
                    for c in ("tau2", "estimate", "se", "ci_low", "ci_high")
                ),
            ]
            for r in t.itertuples()
        ]
        header = ["method", "tau2", "estimate", "se", "ci.lb", "ci.ub"]
        return "\n".join(_frame_lines(header, rows, ["rma", "hc"]))

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        ci = f"[{pr.fmtx(self.ci_low)}, {pr.fmtx(self.ci_high)}]"
        return f"<HenmiCopasResult k={self.k} estimate={pr.fmtx(self.estimate)} {ci}>"

    def _repr_html_(self) -> str:
        rows = [
            [
                ("Model", "index", name),
                ("Method", "method", str(r.method)),
                ("τ²", "tau2", pr.fmtx(r.tau2)),
                ("Estimate", "estimate", pr.fmtx(r.estimate)),
                ("Standard error", "se", pr.fmtx(r.se)),
                (
                    f"{self.level:g}% CI",
                    "ci_low, ci_high",
                    f"{pr.fmtx(r.ci_low)} to {pr.fmtx(r.ci_high)}",
                ),
            ]
            for name, r in zip(("rma", "hc"), self.summary().itertuples(), strict=True)
        ]
        return pr.html_table(f"Henmi-Copas interval (k = {self.k})", rows)


def henmi_copas(result: Any, *, level: float | None = None, tol: float = 1e-12) -> HenmiCopasResult:
    """Henmi-Copas confidence interval around the fixed-effect estimate (metafor's ``hc()``).

    Parameters
    ----------
    result : MetaResult
        A random-effects fit of :func:`ketameta.meta` (its estimate is shown for comparison).
    level : float, optional
        Confidence level in percent (default: the result's).
    tol : float
        Tolerance of the root t0. metafor's ``uniroot()`` stops at ~1.2e-4 by default, so its
        bounds can differ by ~1e-4 relative unless ``control=list(tol=1e-12)`` is given.

    Examples
    --------
    >>> import ketameta as km
    >>> res = km.meta([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79, -1.62, 0.01, -0.47, -1.37,
    ...                -0.34, 0.45, -0.02], [0.33, 0.19, 0.42, 0.02, 0.05, 0.01, 0.22, 0.004,
    ...                0.06, 0.07, 0.01, 0.53, 0.07], method="DL")
    >>> hc = henmi_copas(res)
    >>> hc.ci_high - hc.ci_low > res.ci_high - res.ci_low
    True
    """
    yi, vi = _check_result(result, "henmi_copas")
    level = float(result.level if level is None else level)
    fit = core.henmi_copas(yi, vi, level, tol=tol)
    return HenmiCopasResult(
        k=int(yi.size),
        estimate=float(fit.beta),
        se=float(fit.se),
        ci_low=float(fit.ci_lb),
        ci_high=float(fit.ci_ub),
        tau2=float(fit.tau2),
        t0=fit.t0,
        u0=fit.u0,
        rma_method=str(result.method),
        rma_tau2=float(result.tau2),
        rma_estimate=float(result.estimate),
        rma_se=float(result.se),
        rma_ci_low=float(result.ci_low),
        rma_ci_high=float(result.ci_high),
        level=level,
        measure=getattr(result, "measure", None),
    )


@dataclass(frozen=True, eq=False, repr=False)
class ExcessSignificanceResult(ResultMixin):
    """Test of excess significance (Ioannidis & Trikalinos 2007; metafor's ``tes()``).

    ``k``; ``observed`` [O] significant studies, ``expected`` [E] (sum of the powers),
    ``oe_ratio``; ``test`` ("exact", "binom" or "chi2"), ``statistic`` [X2] (chi2 only),
    ``pvalue``; ``power`` and ``significant`` per study (aligned with ``labels``); ``theta``
    (the assumed true effect), ``theta_lim`` (the effect at which p = ``tes_alpha``; a pair
    for a two-sided test; NaN: not estimable); the options ``alternative``, ``alpha``,
    ``tes_alternative``, ``tes_alpha``.
    """

    k: int
    observed: int
    expected: float
    oe_ratio: float
    test: str
    statistic: float
    pvalue: float
    power: np.ndarray
    significant: np.ndarray
    theta: float
    theta_lim: tuple[float, ...]
    labels: tuple[str, ...]
    alternative: str
    alpha: float
    tes_alternative: str
    tes_alpha: float

    _title = "Test of excess significance"

    def summary(self) -> pd.DataFrame:
        """One row: ``k, observed, expected, oe_ratio, test, statistic, pvalue, theta,
        theta_lim`` (two columns ``theta_lim_low``/``theta_lim_high`` for a two-sided test)."""
        row: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "k",
                "observed",
                "expected",
                "oe_ratio",
                "test",
                "statistic",
                "pvalue",
                "theta",
            )
        }
        if len(self.theta_lim) == 2:
            row.update(theta_lim_low=self.theta_lim[0], theta_lim_high=self.theta_lim[1])
        else:
            row["theta_lim"] = self.theta_lim[0]
        return pd.DataFrame([row], index=["tes"])

    def studies(self) -> pd.DataFrame:
        """Per study: ``label, power, significant``."""
        return pd.DataFrame(
            {"label": list(self.labels), "power": self.power, "significant": self.significant}
        )

    def text(self, *, digits: int = pr.DIGITS) -> str:
        """``print.tes``."""
        lines = [
            "Test of Excess Significance",
            "",
            f"Observed Number of Significant Findings: {self.observed} (out of {self.k})",
            f"Expected Number of Significant Findings: {pr.fmtx(self.expected, digits)}",
            f"Observed Number / Expected Number:       {pr.fmtx(self.oe_ratio, digits)}",
            "",
            f"Estimated Power of Tests (based on theta = {pr.fmtx(self.theta, digits)})",
            "",
        ]
        if self.k > 5:
            values = np.quantile(self.power, [0, 0.25, 0.5, 0.75, 1])
            names = ["min", "q1", "median", "q3", "max"]
        else:
            values, names = self.power, [str(j + 1) for j in range(self.k)]
        cells = [pr.fmtx(v, digits) for v in values]
        widths = [max(len(n), len(c)) for n, c in zip(names, cells, strict=True)]
        lines += [
            "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True)),
            "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)),
            "",
        ]
        kind = {
            "chi2": f" (X^2 = {pr.fmtx(self.statistic, digits)}, df = 1)",
            "binom": " (binomial test)",
            "exact": " (exact test)",
        }[self.test]
        p = pr.fmtp(self.pvalue, digits, equal=True, sep=True)
        lines.append(f"Test of Excess Significance: p {p}{kind}")
        lim = ", ".join(
            "not estimable" if math.isnan(t) else pr.fmtx(t, digits) for t in self.theta_lim
        )
        if not all(math.isnan(t) for t in self.theta_lim):
            at = self.tes_alpha / 2 if self.tes_alternative == "two.sided" else self.tes_alpha
            lim += f" (where p = {at:g})"
        lines.append(f"Limit Estimate (theta_lim):  {lim}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return (
            f"<ExcessSignificanceResult k={self.k} O={self.observed} "
            f"E={pr.fmtx(self.expected)} p={pr.fmtp(self.pvalue)} ({self.test})>"
        )

    def _repr_html_(self) -> str:
        lim = ", ".join(pr.fmtx(t) for t in self.theta_lim)
        row = [
            ("Studies (k)", "k", str(self.k)),
            ("Observed (O)", "observed", str(self.observed)),
            ("Expected (E)", "expected", pr.fmtx(self.expected)),
            ("O / E", "oe_ratio", pr.fmtx(self.oe_ratio)),
            ("Test", "test", self.test),
            ("p-value", "pvalue", pr.fmtp(self.pvalue)),
            ("θ", "theta", pr.fmtx(self.theta)),
            ("θ limit", "theta_lim", lim),
        ]
        return pr.html_table("Test of excess significance", [row])


def excess_significance(
    result: Any,
    *,
    alternative: Literal["two.sided", "greater", "less"] = "two.sided",
    alpha: float = 0.05,
    theta: float | None = None,
    tes_alternative: Literal["greater", "less", "two.sided"] = "greater",
    test: Literal["exact", "binom", "chi2"] | None = None,
    tes_alpha: float = 0.10,
    correct: bool = False,
    truncate: float | None = 5.0,
) -> ExcessSignificanceResult:
    """Test of excess significance (metafor's ``tes()``) on a fitted meta-analysis.

    Each study's power to reject H0: theta = 0 (its own Wald test at ``alpha``,
    ``alternative``) is computed at the assumed true effect ``theta`` (default: the result's
    estimate), averaged over N(theta, tau²) true effects for a random-effects result. The
    observed number O of significant studies is compared with E = sum of the powers.

    Parameters
    ----------
    result : MetaResult
        A fit of :func:`ketameta.meta` (its estimate and tau² are used).
    alternative, alpha
        Sidedness and level of the studies' own tests.
    theta : float, optional
        Assumed true effect (default: ``result.estimate``).
    tes_alternative, test, tes_alpha, correct
        metafor's ``tes.alternative``, ``test`` (default: "exact" when at most 1e6 outcome sets
        are summed over, else "chi2"), ``tes.alpha`` (for ``theta_lim``) and ``correct``.
    truncate : float or None
        The power integral over true effects runs over theta -/+ 5 tau, as metafor (None:
        the whole distribution).

    Examples
    --------
    >>> import ketameta as km
    >>> res = km.meta([0.42, 0.35, 0.61, 0.12, 0.55, 0.28], [0.02, 0.03, 0.05, 0.01, 0.04, 0.02],
    ...               method="REML")
    >>> tes = excess_significance(res)
    >>> tes.observed, tes.test
    (5, 'exact')
    """
    yi, vi = _check_result(result, "excess_significance")
    tau2 = float(result.tau2) if result.method not in ("EE", "FE") else None
    est = float(result.estimate if theta is None else theta)
    fit = core.excess_significance(
        yi,
        vi,
        est,
        tau2=tau2,
        alpha=alpha,
        alternative=alternative,
        tes_alternative=tes_alternative,
        test=test,
        correct=correct,
        truncate=truncate,
        tes_alpha=tes_alpha,
    )
    lim = fit.theta_lim if isinstance(fit.theta_lim, tuple) else (fit.theta_lim,)
    labels = tuple(getattr(result, "labels", ())) or tuple(f"Study {j + 1}" for j in range(yi.size))
    return ExcessSignificanceResult(
        k=fit.k,
        observed=fit.observed,
        expected=fit.expected,
        oe_ratio=fit.oe_ratio,
        test=fit.test,
        statistic=float(fit.statistic),
        pvalue=fit.pval,
        power=_ro(fit.power),
        significant=_ro(fit.significant),
        theta=float(fit.theta),
        theta_lim=tuple(float(t) for t in lim),
        labels=labels,
        alternative=alternative,
        alpha=alpha,
        tes_alternative=tes_alternative,
        tes_alpha=tes_alpha,
    )
