"""Tables: digits chosen per kind of quantity, and export to Markdown, HTML and LaTeX.

`format_summary` turns a summary DataFrame (of any result) into text cells: estimates and CIs
with ``digits`` decimals, p-values as ``<0.001`` or three decimals, I² with one decimal and a
percent sign, tau² with three significant digits, counts as integers. HTML output escapes text.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

P_COLUMNS = ("pvalue", "q_pvalue", "qm_pvalue", "qe_pvalue", "pvalue_perm")
PERCENT_COLUMNS = ("i2", "i2_ci_low", "i2_ci_high", "weight", "r2")
COUNT_COLUMNS = ("k", "q_df", "df", "n", "n1", "n2", "qm_df", "qe_df")
SIGNIFICANT_COLUMNS = ("tau2", "tau2_ci_low", "tau2_ci_high", "tau", "h2", "vi", "se_tau2")


def format_p(p: float) -> str:
    """``<0.001`` below 0.001, otherwise three decimals.

    Examples
    --------
    >>> format_p(0.00002), format_p(0.0423)
    ('<0.001', '0.042')
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(column: str, value: Any, digits: int) -> str:
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, str) or value is None:
        return "" if value is None else value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return ""
    if column in P_COLUMNS:
        return format_p(x)
    if column in PERCENT_COLUMNS:
        return f"{x:.1f}%"
    if column in COUNT_COLUMNS:
        return f"{x:.0f}"
    if column in SIGNIFICANT_COLUMNS:
        return f"{x:.3g}"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def format_summary(table: pd.DataFrame | Any, *, digits: int = 2) -> pd.DataFrame:
    """A copy of a summary table (or of ``result.summary()``) with every cell formatted as text."""
    df = table.summary() if hasattr(table, "summary") else table
    out = df.copy().astype(object)
    for column in df.columns:
        whole = pd.api.types.is_numeric_dtype(df[column]) and bool(
            (df[column].dropna() % 1 == 0).all() and str(column) in COUNT_COLUMNS + ("year",)
        )
        integer = pd.api.types.is_integer_dtype(df[column]) or whole
        out[column] = [
            (f"{int(v)}" if integer and v == v else _cell(str(column), v, digits))
            for v in df[column]
        ]
    return out


def to_markdown(table: Any, *, digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table."""
    df = format_summary(table, digits=digits)
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


def to_html(table: Any, *, digits: int = 2) -> str:
    """An HTML table; every cell is escaped (text from the data cannot inject markup)."""
    df = format_summary(table, digits=digits)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f'<table class="ketameta"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def to_latex(table: Any, *, digits: int = 2) -> str:
    """A LaTeX ``tabular`` (booktabs rules); special characters escaped."""
    df = format_summary(table, digits=digits)

    def esc(text: str) -> str:
        for a, b in (
            ("\\", r"\textbackslash{}"),
            ("&", r"\&"),
            ("%", r"\%"),
            ("$", r"\$"),
            ("#", r"\#"),
            ("_", r"\_"),
            ("{", r"\{"),
            ("}", r"\}"),
        ):
            text = text.replace(a, b)
        return text

    lines = [
        r"\begin{tabular}{" + "l" * len(df.columns) + "}",
        r"\toprule",
        " & ".join(esc(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(esc(str(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)
