"""The text printed by ``pool`` and ``subgroup``: compact, metafor-like layouts of the results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

RATIO_MEASURES = frozenset({"RR", "OR", "ROM", "PETO", "HR"})


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "NA"
    x = float(x)
    return "NA" if math.isnan(x) else f"{x:.{digits}f}"


def _pval(p: Any) -> str:
    if p is None or math.isnan(float(p)):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def _pval_eq(p: Any) -> str:
    text = _pval(p)
    return f"p-val {text[0]} {text[1:]}" if text.startswith("<") else f"p-val = {text}"


def _columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, names: bool = True
) -> list[str]:
    """Right-aligned columns; with ``names`` the first column (row names) left-aligned."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [c.rjust(w) for c, w in zip(r, widths, strict=True)]
        if names:
            cells[0] = r[0].ljust(widths[0])
        lines.append("  ".join(cells).rstrip())
    return lines


def _model_name(result) -> str:
    if result.method == "EE":
        return f"Equal-Effects Model (k = {result.k})"
    if result.method == "FE":
        return f"Fixed-Effects Model (k = {result.k})"
    return f"Random-Effects Model (k = {result.k}; tau^2 estimator: {result.method})"


def _format_meta(result, source: str, label: str) -> str:
    """A compact, metafor-like print of a `MetaResult`."""
    level = f"{result.level:g}%"
    measure = result.measure or ""
    lines = [_model_name(result), f"data: {source} (study labels: column {label!r})", ""]
    if result.method not in ("EE", "FE"):
        ci = result.tau2_ci
        lines.append(
            "tau^2 (estimated amount of total heterogeneity): "
            f"{_num(result.tau2)} (SE = {_num(result.se_tau2)}); "
            f"{level} CI [{_num(ci[0])}, {_num(ci[1])}]"
        )
        lines.append(f"tau (square root of estimated tau^2 value):      {_num(result.tau)}")
    lines.append(f"I^2 (total heterogeneity / total variability):   {_num(result.i2, 2)}%")
    lines.append(f"H^2 (total variability / sampling variability):  {_num(result.h2, 2)}")
    lines += [
        "",
        "Test for Heterogeneity:",
        f"Q(df = {result.q_df}) = {_num(result.q)}, {_pval_eq(result.q_pvalue)}",
        "",
        f"Model Results ({measure + '; ' if measure else ''}{level} CI; test: {result.test}):",
        "",
    ]
    stat = "zval" if result.test == "z" else "tval"
    header = ["estimate", "se", stat, *(["df"] if result.df is not None else [])]
    header += ["pval", "ci.lb", "ci.ub"]
    row = [_num(result.estimate), _num(result.se), _num(result.statistic)]
    row += [str(result.df)] if result.df is not None else []
    row += [_pval(result.pvalue), _num(result.ci_low), _num(result.ci_high)]
    lines += _columns(header, [row], names=False)
    if result.method not in ("EE", "FE") and result.k > 1:
        lines += ["", f"Prediction interval: [{_num(result.pi_low)}, {_num(result.pi_high)}]"]
    if measure.upper() in RATIO_MEASURES:
        exp = [math.exp(v) for v in (result.estimate, result.ci_low, result.ci_high)]
        lines.append(
            f"Back-transformed (exp): {measure} {_num(exp[0])}; "
            f"{level} CI [{_num(exp[1])}, {_num(exp[2])}]"
        )
    return "\n".join(lines)


def _format_subgroup(result, source: str) -> str:
    """Per-subgroup rows and the tests for subgroup differences, metafor-like."""
    first = next(iter(result.results.values()))
    measure = first.measure or "none given"
    if result.method in ("EE", "FE"):
        model = f"common-effect ({result.method})"
    else:
        model = f"random-effects ({result.method}, {result.tau2} tau^2)"
    lines = [
        f"Subgroup analysis by {result.by!r}: {model}; test: {result.test}; {result.level:g}% CI",
        f"data: {source}; measure: {measure}",
        "",
    ]
    header = ["subgroup", "k", "estimate", "se", "ci.lb", "ci.ub", "tau^2", "I^2", "Q", "pval(Q)"]
    rows = []
    for name in result.levels:
        r = result.results[name]
        flag = " *" if name in result.flagged else ""
        rows.append(
            [name + flag, str(r.k), _num(r.estimate), _num(r.se), _num(r.ci_low), _num(r.ci_high),
             _num(r.tau2), f"{_num(r.i2, 1)}%", _num(r.q, 2), _pval(r.q_pvalue)]
        )  # fmt: skip
    if result.overall is not None:
        o = result.overall
        rows.append(
            ["Overall", str(o.k), _num(o.estimate), _num(o.se), _num(o.ci_low), _num(o.ci_high),
             _num(o.tau2), f"{_num(o.i2, 1)}%", _num(o.q, 2), _pval(o.q_pvalue)]
        )  # fmt: skip
    lines += _columns(header, rows)
    if result.flagged:
        lines.append("* one study: shown, not pooled, and left out of the separate-tau2 test")
    lines += ["", "Test for subgroup differences:"]
    tests = (
        ("separate tau2 (Wald test on subgroup estimates)", result.test_separate),
        ("common tau2 (mixed-effects model, QM)", result.test_common),
    )
    for name, t in tests:
        if t is None:
            lines.append(f"  {name}: not available")
            continue
        if t.test == "F":
            df1, df2 = t.df
            stat = f"F(df1 = {df1}, df2 = {df2}) = {_num(t.statistic)}"
        else:
            stat = f"Q(df = {t.df}) = {_num(t.statistic)}"
        lines.append(f"  {name}: {stat}, {_pval_eq(t.pvalue)}")
    return "\n".join(lines)
