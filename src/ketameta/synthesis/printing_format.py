"""The pieces of the metafor-like printouts of `ketameta.synthesis.printing`.

metafor's number formats (`fmtx`, `fmtp`, `fmtt`, `stars`), the ratio-measure helpers
(`is_ratio`, `exp_label`, `apply_transform`, which ``summary(transform="exp")`` uses), aligned
text tables (`table_lines`) and the shared blocks of the printers: coefficient and exp()
tables, the significance legend, the exclusion note, the heterogeneity lines and the model
heading. `ketameta.synthesis.printing` re-exports all of them.
"""

from __future__ import annotations

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
