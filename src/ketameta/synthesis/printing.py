"""Text and HTML displays of the result objects, laid out as metafor's ``print.rma``.

``str(res)`` / ``print(res)`` give the block metafor prints for the same model (model line,
tau², tau, I², H², the heterogeneity test, the estimate table with metafor's digits and
p-value format, significance stars); ``repr(res)`` is one line; ``res._repr_html_()`` is a
small table with headers in words (each header's ``title`` names its ``summary()`` column).
These functions only read result objects: no statistic is computed here.

Ratio measures (RR, OR, ROM, PETO, HR) are stored on the log scale; the displays say so
("Model Results (log scale):") and add the back-transformed block ("Model Results (RR
scale):", exp() of the estimate and of the CI/PI bounds), as metafor's ``print.rma.mh``.
:func:`apply_transform` is what ``summary(transform="exp")`` uses.
The number formats and shared blocks live in `ketameta.synthesis.printing_format` and are
re-exported here.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from ketameta._core.pooling import T_TESTS
from ketameta.synthesis.printing_format import (
    _FIXED,
    _LABELS,
    DIGITS,
    EXP_COLUMNS,
    SIGNIF_LEGEND,
    _coef_table,
    _df,
    _exp_block,
    _finite,
    _heading,
    _het_lines,
    _legend,
    _note,
    _row,
    _test,
    apply_transform,
    exp_label,
    fmtp,
    fmtt,
    fmtx,
    is_ratio,
    stars,
    table_lines,
)

__all__ = [
    "DIGITS",
    "EXP_COLUMNS",
    "SIGNIF_LEGEND",
    "_FIXED",
    "is_ratio",
    "exp_label",
    "apply_transform",
    "fmtx",
    "fmtp",
    "_df",
    "fmtt",
    "stars",
    "table_lines",
    "_coef_table",
    "_exp_block",
    "_legend",
    "_note",
    "_het_lines",
    "format_binary",
    "format_meta",
    "format_metareg",
    "format_subgroup",
    "html_table",
    "short_repr",
    "to_html",
    "to_text",
]


# --- the printers ---------------------------------------------------------------------------


def format_meta(res, *, digits: int = DIGITS, signif_stars: bool = True) -> str:
    """``print.rma.uni`` of an intercept-only model (`MetaResult`)."""
    fixed = res.method in _FIXED
    lines = [_heading(res, False), "", *_het_lines(res, "total", digits, tau=not fixed)]
    if _finite(res.q):
        lines += ["Test for Heterogeneity:", _test("Q", res.q, res.q_df, res.q_pvalue, digits), ""]
    ratio = is_ratio(res.measure)
    lines += ["Model Results (log scale):" if ratio else "Model Results:", ""]
    lines += _coef_table([_row(res)], res.test, digits, signif_stars)
    if ratio:
        bounds = [(res.estimate, res.ci_low, res.ci_high, res.pi_low, res.pi_high)]
        lines += ["", *_exp_block(res.measure, bounds, digits, pi=not fixed)]
    lines += _legend(signif_stars)
    if not res.converged:
        lines += ["", "Note: the tau^2 iteration did not converge."]
    return "\n".join(lines + _note(res.excluded))


def format_metareg(res, *, digits: int = DIGITS, signif_stars: bool = True) -> str:
    """``print.rma.uni`` of a meta-regression (`MetaRegResult`): tau², I², R², QE, QM, coef."""
    fixed = res.method in _FIXED
    lines = [_heading(res, True), "", *_het_lines(res, "residual", digits, tau=not fixed)]
    if _finite(res.qe):
        qe = _test("QE", res.qe, res.qe_df, res.qe_pvalue, digits)
        lines += ["Test for Residual Heterogeneity:", qe, ""]
    if res.p > 1 and _finite(res.qm):
        first = 2 if res.coef.index[0] == "intrcpt" else 1
        btt = f"s {first}:{first + res.qm_df - 1}" if res.qm_df > 1 else f" {first}"
        df = (res.qm_df, res.k - res.p) if res.test in T_TESTS else res.qm_df
        lines += [f"Test of Moderators (coefficient{btt}):"]
        lines += [_test("QM", res.qm, df, res.qm_pvalue, digits), ""]
    rows = [_row(r, res.k - res.p) for r in res.coef.itertuples()]
    lines += [f"Model Results{' (log scale)' if is_ratio(res.measure) else ''}:", ""]
    lines += _coef_table(rows, res.test, digits, signif_stars, [str(t) for t in res.coef.index])
    return "\n".join(lines + _legend(signif_stars) + _note(res.excluded))


def format_subgroup(res, *, digits: int = DIGITS, signif_stars: bool = True) -> str:
    """Per-level model results and heterogeneity, the overall fit, and both tests."""
    parts = [(name, res.results[name]) for name in res.levels]
    parts += [("Overall", res.overall)] if res.overall is not None else []
    k = res.overall.k if res.overall is not None else sum(r.k for _, r in parts)
    scope = "separate tau^2 per subgroup" if res.tau2 == "separate" else "common tau^2"
    measure, ratio = parts[0][1].measure, is_ratio(parts[0][1].measure)
    lines = [
        f"Subgroup Analysis by {res.by} (k = {k}; {len(res.levels)} subgroups; "
        f"tau^2 estimator: {res.method}, {scope})",
        "",
        f"Model Results per Subgroup{' (log scale)' if ratio else ''}:",
        "",
    ]
    names = [name + (" (k = 1)" if name in res.flagged else "") for name, _ in parts]
    lines += _coef_table([_row(r) for _, r in parts], res.test, digits, signif_stars, names)
    if ratio:
        bounds = [(r.estimate, r.ci_low, r.ci_high, r.pi_low, r.pi_high) for _, r in parts]
        lines += ["", *_exp_block(measure, bounds, digits, names)]
    het = [
        [str(r.k), fmtx(r.tau2, digits), fmtx(math.sqrt(max(r.tau2, 0.0)), digits)]
        + [f"{fmtx(r.i2, 2)}%", fmtx(r.h2, 2), fmtx(r.q, digits), _df(r.q_df), fmtp(r.q_pvalue)]
        for _, r in parts
    ]
    header = ["k", "tau^2", "tau", "I^2", "H^2", "Q", "df", "pval"]
    lines += ["", "Heterogeneity per Subgroup:", "", *table_lines(header, het, names)]
    for label, name, t in (
        ("mixed-effects model, common tau^2", "QM", res.test_common),
        ("Wald-type test of the subgroup estimates", "Q", res.test_separate),
    ):
        if t is not None:
            test = _test(name, t.statistic, t.df, t.pvalue, digits)
            lines += ["", f"Test for Subgroup Differences ({label}):", test]
    lines += _legend(signif_stars)
    if res.flagged:
        lines += ["", f"Note: one study only in {', '.join(res.flagged)}: shown, not pooled."]
    if res.empty_levels:
        lines += [f"Note: no studies in level(s) {', '.join(res.empty_levels)}."]
    return "\n".join(lines + _note(res.excluded))


def format_binary(res, *, digits: int = DIGITS, signif_stars: bool = False) -> str:
    """``print.rma.mh`` / ``print.rma.peto`` (`BinaryResult`); metafor shows no stars here.

    The first line is the result's title (method, measure, k) where metafor prints
    "Equal-Effects Model (k = ...)".
    """
    lines = [res._title, ""]
    lines += _het_lines(res, "total", digits, tau=False, width=len(_LABELS["total"][1]) + 1)
    if _finite(res.q):
        lines += ["Test for Heterogeneity:", _test("Q", res.q, res.q_df, res.q_pvalue, digits), ""]
    ratio = is_ratio(res.measure)
    row = _row(res, float("nan"))
    lines += ["Model Results (log scale):" if ratio else "Model Results:", ""]
    lines += _coef_table([row], "z", digits, signif_stars)
    if ratio:
        lines += ["", *_exp_block(res.measure, [row[:1] + row[5:]], digits, pi=False)]
    if res.cmh is not None:
        cmh, ta = fmtx(res.cmh, digits), fmtx(res.tarone, digits)
        width, pad = max(len(cmh), len(ta)), " " * (len(str(res.k_pos)) - 1)
        p_cmh, p_ta = (
            fmtp(p, digits, equal=True, sep=True, add0=True)
            for p in (res.cmh_pvalue, res.tarone_pvalue)
        )
        lines += [
            "",
            f"Cochran-Mantel-Haenszel Test:    CMH = {cmh.rjust(width)}, df = 1,{pad} "
            f"p-val {p_cmh}",
            f"Tarone's Test for Heterogeneity: X^2 = {ta.rjust(width)}, df = {res.k_pos - 1}, "
            f"p-val {p_ta}",
        ]
    return "\n".join(lines + _legend(signif_stars) + _note(res.excluded))


# --- HTML, repr and dispatch -----------------------------------------------------------------


def _est(measure, level, test, r) -> list[tuple[str, str, str]]:
    """(header in words, summary() column, cell) of an estimate, its test, CI (and exp())."""
    ratio, label = is_ratio(measure), exp_label(measure)
    return [
        (f"Estimate{f' (log {label})' if ratio else ''}", "estimate", fmtx(r.estimate)),
        ("Standard error", "se", fmtx(r.se)),
        ("t value" if test in T_TESTS else "z value", "statistic", fmtx(r.statistic)),
        ("p-value", "pvalue", fmtp(r.pvalue)),
        (f"{level:g}% CI", "ci_low, ci_high", _interval(r.ci_low, r.ci_high)),
    ] + (
        [
            (label, "exp_estimate", fmtx(math.exp(r.estimate))),
            (
                f"{level:g}% CI ({label})",
                "exp_ci_low, exp_ci_high",
                _interval(r.ci_low, r.ci_high, True),
            ),
        ]
        if ratio
        else []
    )


def _interval(low, high, exp: bool = False) -> str:
    return " to ".join(fmtx(math.exp(v) if exp and _finite(v) else v) for v in (low, high))


def html_table(title: str, rows: list[list[tuple[str, str, str]]], notes=()) -> str:
    """A titled HTML table of (header, tooltip, cell) rows; every text escaped."""
    esc = html.escape
    head = "".join(f'<th title="{esc(tip)}">{esc(label)}</th>' for label, tip, _ in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for *_, c in row) + "</tr>" for row in rows
    )
    foot = "".join(f"<div>{esc(n)}</div>" for n in notes)
    table = f'<table class="ketameta"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f"<div><strong>{esc(title)}</strong>{table}{foot}</div>"


def _html_rows(res, parts, measure) -> list[list[tuple[str, str, str]]]:
    rows = []
    for name, r in parts:
        row = [("Subgroup", "subgroup", name)] if name is not None else []
        row += [("Studies (k)", "k", str(r.k)), *_est(measure, res.level, res.test, r)]
        if hasattr(r, "tau2_ci"):  # random-effects results (not BinaryResult)
            ratio = is_ratio(measure)
            pi = _interval(r.pi_low, r.pi_high, ratio)
            tip = "exp_pi_low, exp_pi_high" if ratio else "pi_low, pi_high"
            label = f"{r.level:g}% PI" + (f" ({exp_label(measure)})" if ratio else "")
            row += [(label, tip, pi), ("τ²", "tau2", fmtx(r.tau2))]
        row += [("I²", "i2", f"{fmtx(r.i2, 2)}%"), ("Q (df)", "q, q_df", f"{fmtx(r.q)} ({r.q_df})")]
        rows.append(row + [("p-value of Q", "q_pvalue", fmtp(r.q_pvalue))])
    return rows


def _html(result) -> str:
    text = to_text(result).splitlines()
    notes = [line for line in text if line.startswith(("tau^2", "I^2", "R^2"))]
    notes += [f"{a} {b}" for a, b in zip(text, text[1:], strict=False) if a.startswith("Test ")]
    name = type(result).__name__
    if hasattr(result, "coef"):  # MetaRegResult
        rows = [
            [("Term", "term", str(r[0])), *_est(result.measure, result.level, result.test, r)]
            for r in result.coef.itertuples()
        ]
        return html_table(text[0], rows, notes)
    if hasattr(result, "results"):  # SubgroupResult
        parts = [(n, result.results[n]) for n in result.levels]
        parts += [("Overall", result.overall)] if result.overall is not None else []
        return html_table(text[0], _html_rows(result, parts, parts[0][1].measure), notes[-2:])
    title = result._title if name == "BinaryResult" else f"Meta-analysis: {text[0]}"
    return html_table(title, _html_rows(result, [(None, result)], result.measure))


_PRINTERS = {
    "MetaResult": format_meta,
    "MetaRegResult": format_metareg,
    "SubgroupResult": format_subgroup,
    "BinaryResult": format_binary,
}


def _printer(result: Any):
    return next(
        (_PRINTERS[c.__name__] for c in type(result).__mro__ if c.__name__ in _PRINTERS), None
    )


def to_text(result: Any, **options: Any) -> str:
    """``str(res)``: the printed block (other results: the title and ``summary()``)."""
    printer = _printer(result)
    if printer is not None:
        return printer(result, **options)
    with pd.option_context("display.width", 120, "display.max_columns", 30):
        return f"{result._title}\n{result.summary().to_string()}"


def to_html(result: Any) -> str:
    """``_repr_html_``: formatted numbers, headers in words (tooltips: summary() columns)."""
    if _printer(result) is not None:
        return _html(result)
    table = result.summary().to_html(float_format=lambda x: f"{x:.4g}", border=0)
    return f"<div><strong>{html.escape(result._title)}</strong>{table}</div>"


def short_repr(result: Any) -> str:
    """One line, e.g. ``<MetaResult REML k=13 estimate=-0.7145 [-1.0669, -0.3622] (log RR)>``."""
    name, method = type(result).__name__, getattr(result, "method", "")
    if hasattr(result, "ci_low") and np.ndim(result.estimate) == 0:
        scale = f" (log {exp_label(result.measure)})" if is_ratio(result.measure) else ""
        ci = f"[{fmtx(result.ci_low)}, {fmtx(result.ci_high)}]"
        return f"<{name} {method} k={result.k} estimate={fmtx(result.estimate)} {ci}{scale}>"
    if hasattr(result, "coef"):
        qm = f"QM={fmtx(result.qm)} p={fmtp(result.qm_pvalue)}"
        return f"<{name} {method} k={result.k} mods={result.formula!r} {qm}>"
    if hasattr(result, "levels"):
        return f"<{name} by={result.by!r} levels={len(result.levels)} {method}>"
    return f"<{name} n={len(result)} {method}>" if hasattr(result, "__len__") else f"<{name}>"
