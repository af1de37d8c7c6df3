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
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from ketameta._core.pooling import T_TESTS
from ketameta.tables import RATIO_MEASURES

DIGITS = 4
EXP_COLUMNS = ("estimate", "ci_low", "ci_high", "pi_low", "pi_high")
SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
_FIXED = {"EE": "Equal-Effects Model", "FE": "Fixed-Effects Model"}
_TAU2_TOTAL = "tau^2 (estimated amount of total heterogeneity):"


def is_ratio(measure: str | None) -> bool:
    """True for the measures stored on the log scale (RR, OR, ROM, PETO, HR)."""
    return (measure or "").upper() in RATIO_MEASURES


def exp_label(measure: str | None) -> str:
    """Name of the back-transformed scale: the measure, ``OR`` for Peto's odds ratio."""
    return "OR" if (measure or "").upper() == "PETO" else str(measure)


def apply_transform(table: pd.DataFrame, measure: str | None, transform: str | None):
    """``summary(transform=...)``: the table as stored (None) or back-transformed ("exp").

    ``"exp"`` replaces ``estimate, ci_low, ci_high, pi_low, pi_high`` in place by their exp()
    named ``exp_estimate, exp_ci_low, ...``; ``se`` (log scale) becomes ``se_log``; ``scale``
    (if any) reads "exp"; z/t and p are kept; ``attrs["scale"]`` names the scale. ValueError
    for another ``transform`` or a measure that is not a ratio measure.
    """
    if transform is None:
        return table
    if transform != "exp":
        raise ValueError(f"transform must be None or 'exp', got {transform!r}")
    if not is_ratio(measure):
        raise ValueError(
            f"transform='exp': measure {measure!r} is not a ratio measure "
            f"({', '.join(sorted(RATIO_MEASURES))}); its summary is already on its own scale"
        )
    out = table.drop(columns=[f"exp_{c}" for c in EXP_COLUMNS], errors="ignore")
    for column in EXP_COLUMNS:
        if column in out.columns:
            out[column] = np.exp(out[column].astype(float))
    out = out.rename(columns={**{c: f"exp_{c}" for c in EXP_COLUMNS}, "se": "se_log"})
    if "scale" in out.columns:
        out["scale"] = "exp"
    out.attrs = {**table.attrs, "scale": f"exp ({exp_label(measure)})"}
    return out


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def fmtx(x: Any, digits: int = DIGITS) -> str:
    """Fixed decimals as R's ``formatC(x, format="f")``; ``NA`` for a missing value."""
    if x is None or math.isnan(float(x)):
        return "NA"
    if math.isinf(float(x)):
        return "Inf" if float(x) > 0 else "-Inf"
    return f"{float(x):.{digits}f}"


def fmtp(p: Any, digits: int = DIGITS, *, equal: bool = False, sep: bool = False, add0=False):
    """metafor's ``fmtp``: ``0.0012``, ``<.0001`` (``< 0.0001`` with ``add0``), ``= 0.31``.

    Examples
    --------
    >>> fmtp(0.00001), fmtp(0.3127), fmtp(0.00001, equal=True, sep=True)
    ('<.0001', '0.3127', '< .0001')
    """
    space = " " if sep else ""
    if p is None or math.isnan(float(p)):
        return f"{'=' if equal else ''}{space}NA"
    p = min(max(float(p), 0.0), 1.0)
    if p >= 10.0**-digits:
        return f"{'=' if equal else ''}{space}{p:.{digits}f}"
    return f"<{space}{'0' if add0 else ''}.{'0' * (digits - 1)}1"


def _df(df: Any) -> str:
    value = float(df)
    return str(int(value)) if value == round(value) else f"{round(value, 2):g}"


def fmtt(value, name, pvalue, *, df=None, df1=None, df2=None, digits=DIGITS) -> str:
    """A test line as metafor's ``fmtt``: ``Q(df = 12) = 152.2330, p-val < .0001``."""
    dfs = f"df = {_df(df)}" if df1 is None else f"df1 = {_df(df1)}, df2 = {_df(df2)}"
    p = fmtp(pvalue, digits, equal=True, sep=True)
    return f"{name}({dfs}) = {fmtx(value, digits)}, p-val {p}"


def stars(p: Any) -> str:
    """R's significance symbol of a p-value (``***``, ``**``, ``*``, ``.``, blank)."""
    if not _finite(p):
        return ""
    for cut, symbol in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return symbol
    return ""


def table_lines(header: list[str], rows: list[list[str]], names: list[str] | None = None):
    """Right-aligned columns two spaces apart, row names left-aligned (R's print.data.frame)."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    name_w = max((len(n) for n in names), default=0) if names else 0
    gap = "  " if names else ""

    def line(first: str, cells: list[str]) -> str:
        body = "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return (first.ljust(name_w) + gap + body).rstrip()

    out = [line("", header)]
    out += [line(names[i] if names else "", r) for i, r in enumerate(rows)]
    return out


def _coef_table(rows, test: str, digits: int, signif: bool, names=None):
    """Estimate table; ``rows`` are (estimate, se, statistic, df, p, ci_low, ci_high)."""
    knha = test in T_TESTS  # metafor prints tval and df for t, knha and adhoc
    header = ["estimate", "se", "tval" if knha else "zval"] + (["df"] if knha else [])
    header += ["pval", "ci.lb", "ci.ub"] + ([""] if signif else [])
    cells = []
    for est, se, stat, df, p, lo, hi in rows:
        row = [fmtx(est, digits), fmtx(se, digits), fmtx(stat, digits)]
        row += [_df(df) if _finite(df) else "NA"] if knha else []
        row += [fmtp(p, digits), fmtx(lo, digits), fmtx(hi, digits)]
        cells.append(row + ([stars(p).ljust(3)] if signif else []))
    return table_lines(header, cells, names)


def _exp_block(measure, rows, digits: int, names=None, pi: bool = True) -> list[str]:
    """``Model Results (RR scale):`` with exp() of estimate, CI and (optionally) PI bounds."""
    header = ["estimate", "ci.lb", "ci.ub"] + (["pi.lb", "pi.ub"] if pi else [])
    cells = [[fmtx(math.exp(v), digits) for v in r[: len(header)]] for r in rows]
    return [f"Model Results ({exp_label(measure)} scale):", "", *table_lines(header, cells, names)]


def _legend(signif: bool) -> list[str]:
    return ["", "---", SIGNIF_LEGEND] if signif else []


def _note(excluded) -> list[str]:
    return ["", f"Note: {len(excluded)} row(s) excluded (see .excluded)."] if excluded else []


_LABELS = {  # metafor's labels: intercept-only ("total") and with moderators ("residual")
    "total": (
        "I^2 (total heterogeneity / total variability):",
        "H^2 (total variability / sampling variability):",
    ),
    "residual": (
        "I^2 (residual heterogeneity / unaccounted variability):",
        "H^2 (unaccounted variability / sampling variability):",
    ),
}


def _het_lines(res, scope: str, digits: int, *, tau: bool, width: int | None = None):
    """tau², tau (unless ``tau`` is False), I², H² and (meta-regression) R², aligned."""
    pairs = []
    if tau:
        zero = _finite(res.tau2) and abs(res.tau2) <= 10 * np.finfo(float).eps
        se = f" (SE = {fmtx(res.se_tau2, digits)})" if _finite(res.se_tau2) else ""
        root = math.sqrt(max(res.tau2, 0.0)) if _finite(res.tau2) else float("nan")
        pairs += [
            (
                f"tau^2 (estimated amount of {scope} heterogeneity):",
                ("0" if zero else fmtx(res.tau2, digits)) + se,
            ),
            ("tau (square root of estimated tau^2 value):", fmtx(root, digits)),
        ]
    i2_label, h2_label = _LABELS[scope]
    if _finite(res.i2):
        pairs.append((i2_label, f"{fmtx(res.i2, 2)}%"))
    if _finite(res.h2):
        pairs.append((h2_label, fmtx(res.h2, 2)))
    if _finite(getattr(res, "r2", None)):
        pairs.append(("R^2 (amount of heterogeneity accounted for):", f"{fmtx(res.r2, 2)}%"))
    if width is None:  # rma.uni pads to its longest label, whether tau² is shown or not
        width = len(i2_label if scope == "residual" else _TAU2_TOTAL) + 1
    return [f"{label.ljust(width)}{value}" for label, value in pairs] + ([""] if pairs else [])


def _test(name: str, statistic, df, pvalue, digits: int) -> str:
    """A chi-square (``df`` a number) or F (``df`` a pair) test line."""
    if isinstance(df, tuple):
        return fmtt(statistic, "F", pvalue, df1=df[0], df2=df[1], digits=digits)
    return fmtt(statistic, name, pvalue, df=df, digits=digits)


def _row(r, df=None) -> tuple:
    df = getattr(r, "df", None) if df is None else df
    return (r.estimate, r.se, r.statistic, df, r.pvalue, r.ci_low, r.ci_high)


def _heading(res, moderators: bool) -> str:
    if res.method in _FIXED:
        model = "Fixed-Effects with Moderators Model" if moderators else _FIXED[res.method]
        return f"{model} (k = {res.k})"
    model = "Mixed-Effects Model" if moderators else "Random-Effects Model"
    return f"{model} (k = {res.k}; tau^2 estimator: {res.method})"


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
