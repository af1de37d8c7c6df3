"""Selection models for publication bias on a fitted meta-analysis (metafor's ``selmodel()``).

:func:`selection_model` refits a `MetaResult` (``meta()``, any tau² method, or EE/FE) as a
selection model by maximum likelihood: the studies' effects are observed with a relative
probability w(p; delta) that depends on their p-values (one-sided by default). The numerics live
in :mod:`ketameta._core.selection`; this module checks the input, wraps the fit in a frozen
:class:`SelectionResult` and prints it as ``print.selmodel.rma.uni``. Estimates that sit at a
limit of the parameter space (a delta at ``delta_min``/``delta_max``, tau² at 0) are set to the
limit, flagged, and said so in the printout: they are not interior optima and have no SE.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd

from ketameta._core import selection as core
from ketameta.exceptions import ConvergenceWarning, KetametaWarning
from ketameta.synthesis import printing as pr
from ketameta.synthesis.results import ResultMixin

__all__ = ["SelectionResult", "selection_model"]

THREE_PSM: tuple[float, ...] = (0.025,)  # the default cut point: the three-parameter model
_FIXED_METHODS = ("EE", "FE")


@dataclass(frozen=True, eq=False, repr=False)
class SelectionResult(ResultMixin):
    """A fitted selection model (metafor's ``selmodel()`` object; its names in brackets).

    Attributes
    ----------
    type, steps, alternative
        Selection function, its cut points (step function: ending in 1; others: the threshold
        below which w = 1, or empty) and the sidedness of the p-values.
    k, estimate [beta], se, statistic [zval], pvalue [pval], ci_low, ci_high
        The selection-adjusted average effect and its Wald test and interval.
    tau2, se_tau2, tau2_ci
        ML tau² (0 for EE/FE), its SE from the Hessian and a Wald interval truncated at 0.
    delta, delta_se, delta_statistic, delta_pvalue, delta_ci_low, delta_ci_high
        Selection parameters (arrays); z tests of the no-selection value (1, or 0 for halfnorm,
        negexp, logistic, power); intervals clipped to ``[delta_min, delta_max]``.
    delta_fixed, delta_at_bound, delta_min, delta_max, tau2_at_bound
        Fixed deltas (the step function's first), estimates at a limit (not interior optima:
        SE NaN), the limits used.
    lrt, lrt_df, lrt_pvalue
        Likelihood-ratio test of the selection parameters against the model without selection.
    lrt_tau2, lrt_tau2_pvalue
        LRT of tau² = 0 within the selection model (metafor's "Test for Heterogeneity").
    loglik, loglik0
        Log-likelihoods with and without selection (ML).
    ptable
        Studies per p-value interval (step function or threshold; else empty).
    method ("ML", or "EE"/"FE"), level, measure, converged, warnings, vcov.
    """

    type: str
    steps: tuple[float, ...]
    alternative: str
    k: int
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_low: float
    ci_high: float
    tau2: float
    se_tau2: float
    tau2_ci: tuple[float, float]
    delta: np.ndarray
    delta_se: np.ndarray
    delta_statistic: np.ndarray
    delta_pvalue: np.ndarray
    delta_ci_low: np.ndarray
    delta_ci_high: np.ndarray
    delta_fixed: np.ndarray
    delta_at_bound: np.ndarray
    delta_min: np.ndarray
    delta_max: np.ndarray
    tau2_at_bound: bool
    lrt: float
    lrt_df: int
    lrt_pvalue: float
    lrt_tau2: float
    lrt_tau2_pvalue: float
    loglik: float
    loglik0: float
    ptable: np.ndarray
    method: str
    level: float
    measure: str | None = None
    converged: bool = True
    warnings: tuple[str, ...] = ()
    vcov: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    _title = "Selection model"

    @property
    def tau(self) -> float:
        """Square root of ``tau2``."""
        return math.sqrt(max(self.tau2, 0.0))

    def delta_labels(self) -> list[str]:
        """Row names of the deltas: p-value intervals (step function) or ``delta.1``, ..."""
        if self.type != "stepfun":
            return [f"delta.{j + 1}" for j in range(self.delta.size)]
        upper = [f"{s:g}" for s in self.steps]
        lower = ["0", *upper[:-1]]
        width = max(len(s) for s in lower)
        return [f"{lo.ljust(width)} < p <= {hi}" for lo, hi in zip(lower, upper, strict=True)]

    def notes(self) -> list[str]:
        """Plain-language notes: estimates at a limit, empty intervals, optimiser problems."""
        out = []
        for j in np.flatnonzero(self.delta_at_bound):
            d, lo, hi = self.delta[j], self.delta_min[j], self.delta_max[j]
            side, limit = ("lower", lo) if abs(d - lo) <= abs(hi - d) else ("upper", hi)
            out.append(
                f"delta[{j + 1}] is at its {side} limit ({limit:g}): not an interior "
                "optimum (no SE, test or CI)"
            )
        if self.tau2_at_bound:
            out.append("tau^2 is at its lower limit (0): not an interior optimum (no SE)")
        if self.ptable.size and (self.ptable == 0).any():
            empty = [lab for lab, n in zip(self._intervals(), self.ptable, strict=True) if n == 0]
            out.append(f"no observed p-values in {'; '.join(empty)}")
        skip = ("limit", "contain no observed")
        out += [m for m in self.warnings if not any(s in m for s in skip)]
        return out

    def _intervals(self) -> list[str]:
        cuts = list(self.steps) if self.type == "stepfun" else [self.steps[0], 1.0]
        return [f"{lo:g} < p <= {hi:g}" for lo, hi in zip([0.0, *cuts[:-1]], cuts, strict=True)]

    def summary(self) -> pd.DataFrame:
        """One row per parameter: ``mu`` (the average effect), ``tau2`` and each delta.

        Columns ``estimate, se, statistic, pvalue, ci_low, ci_high, k`` (studies per p-value
        interval, step function), ``fixed``, ``at_bound``. ``attrs`` holds the tests: ``lrt,
        lrt_df, lrt_pvalue, lrt_tau2, lrt_tau2_pvalue, loglik, loglik0``.
        """
        nan = math.nan
        columns = ("estimate", "se", "statistic", "pvalue", "ci_low", "ci_high", "k", "fixed")
        counts = self.ptable if self.type == "stepfun" else np.full(self.delta.size, nan)
        rows = [
            (self.estimate, self.se, self.statistic, self.pvalue, self.ci_low, self.ci_high,
             self.k, False, False),
            (self.tau2, self.se_tau2, nan, nan, *self.tau2_ci, nan,
             self.method in _FIXED_METHODS, self.tau2_at_bound),
        ]  # fmt: skip
        rows += zip(self.delta, self.delta_se, self.delta_statistic, self.delta_pvalue,
                    self.delta_ci_low, self.delta_ci_high, counts, self.delta_fixed.tolist(),
                    self.delta_at_bound.tolist(), strict=True)  # fmt: skip
        index = ["mu", "tau2", *self.delta_labels()]
        table = pd.DataFrame([list(r) for r in rows], index=index, columns=[*columns, "at_bound"])
        tests = ("lrt", "lrt_df", "lrt_pvalue", "lrt_tau2", "lrt_tau2_pvalue", "loglik", "loglik0")
        table.attrs = {name: getattr(self, name) for name in tests}
        return table

    def text(self, *, digits: int = pr.DIGITS, signif_stars: bool = True) -> str:
        """The printed block (``print.selmodel.rma.uni``) with options."""
        return format_selection(self, digits=digits, signif_stars=signif_stars)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        spec = f"{self.type}({', '.join(f'{s:g}' for s in self.steps if s < 1)})"
        ci = f"[{pr.fmtx(self.ci_low)}, {pr.fmtx(self.ci_high)}]"
        return (
            f"<SelectionResult {spec} k={self.k} estimate={pr.fmtx(self.estimate)} {ci} "
            f"LRT={pr.fmtx(self.lrt)} p={pr.fmtp(self.lrt_pvalue)}>"
        )

    def _repr_html_(self) -> str:
        table = self.summary()
        rows = [
            [
                ("Parameter", "index", str(name)),
                ("Estimate", "estimate", pr.fmtx(r.estimate)),
                ("Standard error", "se", pr.fmtx(r.se)),
                ("z value", "statistic", pr.fmtx(r.statistic)),
                ("p-value", "pvalue", pr.fmtp(r.pvalue)),
                (
                    f"{self.level:g}% CI",
                    "ci_low, ci_high",
                    f"{pr.fmtx(r.ci_low)} to {pr.fmtx(r.ci_high)}",
                ),
            ]
            for name, r in zip(table.index, table.itertuples(), strict=True)
        ]
        test = pr.fmtt(self.lrt, "LRT", self.lrt_pvalue, df=self.lrt_df)
        notes = [f"Test for selection model parameters: {test}", *self.notes()]
        title = f"Selection model ({self.type}, k = {self.k})"
        return pr.html_table(title, rows, notes)


def format_selection(
    res: SelectionResult, *, digits: int = pr.DIGITS, signif_stars: bool = True
) -> str:
    """``print.selmodel.rma.uni``: model, tau², LRT for tau², estimate, LRT and deltas."""
    fixed = res.method in _FIXED_METHODS
    if fixed:
        lines = [f"{pr._FIXED[res.method]} (k = {res.k})", ""]
    else:
        lines = [f"Random-Effects Model (k = {res.k}; tau^2 estimator: ML)", ""]
        het = SimpleNamespace(tau2=res.tau2, se_tau2=res.se_tau2, i2=math.nan, h2=math.nan)
        lines += pr._het_lines(het, "total", digits, tau=True)
        if math.isfinite(res.lrt_tau2):
            lines += [
                "Test for Heterogeneity:",
                pr.fmtt(res.lrt_tau2, "LRT", res.lrt_tau2_pvalue, df=1, digits=digits),
                "",
            ]
    ratio = pr.is_ratio(res.measure)
    lines += ["Model Results (log scale):" if ratio else "Model Results:", ""]
    row = (res.estimate, res.se, res.statistic, None, res.pvalue, res.ci_low, res.ci_high)
    lines += pr._coef_table([row], "z", digits, signif_stars)
    if ratio:
        lines += [
            "",
            *pr._exp_block(
                res.measure, [(res.estimate, res.ci_low, res.ci_high)], digits, pi=False
            ),
        ]
    if res.lrt_df > 0:
        lines += [
            "",
            "Test for Selection Model Parameters:",
            pr.fmtt(res.lrt, "LRT", res.lrt_pvalue, df=res.lrt_df, digits=digits),
        ]
    lines += ["", "Selection Model Results:", ""]
    header = (["k"] if res.type == "stepfun" else []) + [
        "estimate",
        "se",
        "zval",
        "pval",
        "ci.lb",
        "ci.ub",
    ]
    cells = []
    for j in range(res.delta.size):
        vals = [
            pr.fmtx(res.delta[j], digits),
            pr.fmtx(res.delta_se[j], digits),
            pr.fmtx(res.delta_statistic[j], digits),
            pr.fmtp(res.delta_pvalue[j], digits),
            pr.fmtx(res.delta_ci_low[j], digits),
            pr.fmtx(res.delta_ci_high[j], digits),
        ]
        if res.delta_fixed[j]:
            vals[1:] = ["---"] * 5
        row_cells = ([str(int(res.ptable[j]))] if res.type == "stepfun" else []) + vals
        cells.append(row_cells + ([pr.stars(res.delta_pvalue[j]).ljust(3)] if signif_stars else []))
    lines += pr.table_lines(header + ([""] if signif_stars else []), cells, res.delta_labels())
    lines += pr._legend(signif_stars)
    notes = res.notes()
    if notes:
        lines += ["", *[f"Note: {n}." if not n.endswith(".") else f"Note: {n}" for n in notes]]
    return "\n".join(lines)


def _check_result(result: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not all(hasattr(result, a) for a in ("yi", "vi", "method", "level")):
        raise TypeError(
            f"{name}() needs a MetaResult from ketameta.meta(), got {type(result).__name__}"
        )
    if getattr(result, "method", None) in ("MH", "PETO"):
        raise TypeError(
            f"{name}() needs a MetaResult from ketameta.meta(), not a "
            f"{result.method} BinaryResult: fit meta() on escalc() effects"
        )
    yi, vi = np.asarray(result.yi, float), np.asarray(result.vi, float)
    if yi.size < 2:
        raise ValueError(f"{name}() needs at least 2 studies; the result has {yi.size}")
    return yi, vi


def selection_model(
    result: Any,
    type: Literal["stepfun", "beta", "halfnorm", "negexp", "logistic", "power"] = "stepfun",  # noqa: A002
    steps: Sequence[float] | float | None = THREE_PSM,
    *,
    alternative: Literal["greater", "less", "two.sided"] = "greater",
    delta: Sequence[float] | float | None = None,
    tau2: float | None = None,
    level: float | None = None,
    delta_min: Sequence[float] | float | None = None,
    delta_max: Sequence[float] | float | None = None,
    pval_min: float | None = None,
) -> SelectionResult:
    """Fit a selection model to a meta-analysis by maximum likelihood (metafor's ``selmodel()``).

    Parameters
    ----------
    result : MetaResult
        A fit of :func:`ketameta.meta`. Random-effects fits (ML, REML or any tau² method) are
        refitted with tau² by ML, as metafor; EE/FE fits keep tau² = 0.
    type : {"stepfun", "beta", "halfnorm", "negexp", "logistic", "power"}
        Selection function: step function (Vevea & Hedges 1995; ``steps=(0.025,)`` is the
        three-parameter model, 3PSM), beta (Citkowicz & Vevea 2017), half-normal, negative
        exponential, logistic, power (Preston et al. 2004).
    steps : sequence of float
        Step function: the p-value cut points (1 is appended). Other types: an optional single
        threshold below which w = 1 (the default (0.025,) applies to the step function only).
    alternative : {"greater", "less", "two.sided"}
        The p-values selection acts on: one-sided for H1: theta > 0 (default), < 0, or two-sided.
    delta : sequence of float, optional
        Fixed delta values (NaN: estimated); the step function's first delta is 1.
    tau2 : float, optional
        Fix tau² at this value instead of estimating it.
    level : float, optional
        Confidence level in percent (default: the result's).
    delta_min, delta_max, pval_min : optional
        metafor's limits of delta (default 0 (1e-5 for beta) and 100) and p-value censoring.

    Returns
    -------
    SelectionResult
        Warnings: :class:`~ketameta.exceptions.KetametaWarning` for an estimate at a limit or
        an empty p-value interval, :class:`~ketameta.exceptions.ConvergenceWarning` when the
        optimiser or the Hessian fails.

    Examples
    --------
    >>> import ketameta as km
    >>> yi = [0.51, 0.32, 0.05, 0.71, 0.12, 0.43, -0.08, 0.38, 0.25, 0.62, 0.15, 0.02]
    >>> vi = [0.04, 0.03, 0.02, 0.09, 0.01, 0.05, 0.03, 0.02, 0.06, 0.08, 0.02, 0.04]
    >>> sel = selection_model(km.meta(yi, vi, method="ML"), "stepfun", steps=(0.025,))
    >>> sel.ptable.tolist(), sel.lrt_df
    ([4, 8], 1)
    >>> round(sel.estimate, 4) < round(km.meta(yi, vi, method="ML").estimate, 4)
    True
    """
    yi, vi = _check_result(result, "selection_model")
    if steps is THREE_PSM and type != "stepfun":
        steps = None
    fixed = result.method in _FIXED_METHODS
    level = float(result.level if level is None else level)
    fit = core.selection_model(
        yi, vi, type, steps=steps, alternative=alternative, delta=delta,
        method=result.method if fixed else "ML", tau2=tau2, level=level, delta_min=delta_min,
        delta_max=delta_max, pval_min=pval_min,
    )  # fmt: skip
    n_d = fit.delta.size
    lo = np.broadcast_to(
        np.asarray((1e-5 if type == "beta" else 0.0) if delta_min is None else delta_min, float),
        (n_d,),
    )
    hi = np.broadcast_to(np.asarray(100.0 if delta_max is None else delta_max, float), (n_d,))
    for message in fit.warnings:
        kind = (
            ConvergenceWarning
            if ("optimiser" in message or "Hessian" in message)
            else (KetametaWarning)
        )
        warnings.warn(f"selection_model(): {message}", kind, stacklevel=2)
    se_t2 = fit.se_tau2
    t2_ci = (fit.ci_lb_tau2, fit.ci_ub_tau2) if math.isfinite(se_t2) else (math.nan, math.nan)
    f, arrays = (
        fit,
        (
            "delta",
            "se_delta",
            "zval_delta",
            "pval_delta",
            "ci_lb_delta",
            "ci_ub_delta",
            "delta_fixed",
            "delta_at_bound",
            "ptable",
            "vcov",
        ),
    )
    ro = {name: _ro(getattr(f, name)) for name in arrays}
    return SelectionResult(
        type=f.type, steps=tuple(float(s) for s in f.steps if s > 0), alternative=alternative,
        k=int(yi.size), estimate=float(f.beta), se=float(f.se), statistic=float(f.zval),
        pvalue=float(f.pval), ci_low=float(f.ci_lb), ci_high=float(f.ci_ub), tau2=float(f.tau2),
        se_tau2=float(se_t2), tau2_ci=(float(t2_ci[0]), float(t2_ci[1])), delta=ro["delta"],
        delta_se=ro["se_delta"], delta_statistic=ro["zval_delta"], delta_pvalue=ro["pval_delta"],
        delta_ci_low=ro["ci_lb_delta"], delta_ci_high=ro["ci_ub_delta"],
        delta_fixed=ro["delta_fixed"], delta_at_bound=ro["delta_at_bound"], delta_min=_ro(lo),
        delta_max=_ro(hi), tau2_at_bound=bool(f.tau2_at_bound), lrt=float(f.lrt),
        lrt_df=int(f.lrt_df), lrt_pvalue=float(f.lrt_pval), lrt_tau2=float(f.lrt_tau2),
        lrt_tau2_pvalue=float(f.lrt_pval_tau2), loglik=float(f.loglik),
        loglik0=float(f.loglik0), ptable=ro["ptable"], method=result.method if fixed else "ML",
        level=level, measure=getattr(result, "measure", None), converged=bool(f.converged),
        warnings=tuple(f.warnings), vcov=ro["vcov"],
    )  # fmt: skip


def _ro(values) -> np.ndarray:
    out = np.array(values, copy=True)
    out.setflags(write=False)
    return out
