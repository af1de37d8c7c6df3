"""Tables: digits chosen per kind of quantity, and export to Markdown, HTML and LaTeX.

`format_summary` turns a summary DataFrame (of any result, or the result itself) into text
cells; `to_markdown`, `to_html` and `to_latex` all go through it, so the three agree:

=====================  ==========================================================
quantity               shown as
=====================  ==========================================================
estimates, CIs, se     ``digits`` decimals (default 2)
p-values               ``<0.001`` below 0.001, else three decimals
I², weights (percent)  one decimal and ``%``
tau², tau, H², vi      three significant digits, never in exponent notation
k, df, n, counts       integers
=====================  ==========================================================

A table whose index is not the default 0..n-1 (e.g. leave-one-out, indexed by the study left
out) keeps its index as the first column. HTML and LaTeX escape all text.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

P_COLUMNS = frozenset({"pvalue", "q_pvalue", "qm_pvalue", "qe_pvalue", "pvalue_perm", "pval"})
PERCENT_COLUMNS = frozenset({"i2", "i2_ci_low", "i2_ci_high", "weight", "r2"})
COUNT_COLUMNS = frozenset(
    {"k", "k0", "q_df", "n", "n1", "n2", "qm_df", "qe_df", "events1", "events2", "year"}
)
SIGNIFICANT_COLUMNS = frozenset(
    {"tau2", "tau2_ci_low", "tau2_ci_high", "tau", "tau_ci_low", "tau_ci_high", "h2"}
    | {"h2_ci_low", "h2_ci_high", "vi", "se_tau2", "vt"}
)
SIGNIFICANT_DIGITS = 3
DEFAULT_DIGITS = 2  # estimates and CIs: two decimals (SMD, log ratios shown back-transformed)
RATIO_MEASURES = frozenset({"RR", "OR", "ROM", "PETO", "HR"})
BACK_TRANSFORMED = ("estimate", "ci_low", "ci_high", "pi_low", "pi_high")


def format_p(p: float) -> str:
    """``<0.001`` below 0.001, otherwise three decimals; empty for a missing p-value.

    Examples
    --------
    >>> format_p(0.00002), format_p(0.0423), format_p(float("nan"))
    ('<0.001', '0.042', '')
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_significant(x: float, digits: int = SIGNIFICANT_DIGITS) -> str:
    """``digits`` significant digits in plain notation (no ``e-05``).

    Examples
    --------
    >>> format_significant(0.31320), format_significant(0.0000123), format_significant(1234.6)
    ('0.313', '0.0000123', '1235')
    >>> format_significant(0.0)
    '0'
    """
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else _special(x)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def _special(x: float) -> str:
    if math.isnan(x):
        return ""
    return "inf" if x > 0 else "-inf"


def _cell(column: str, value: Any, digits: int) -> str:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return ", ".join(_cell(column, v, digits) for v in value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return _special(x)
    if column in P_COLUMNS:
        return format_p(x)
    if column in PERCENT_COLUMNS:
        return f"{x:.1f}%"
    if column in COUNT_COLUMNS or column.endswith("df") and x == round(x):
        return f"{x:.0f}"
    if column in SIGNIFICANT_COLUMNS:
        return format_significant(x)
    return f"{x:.{digits}f}"


def _frame(table: Any, back_transform: bool | None) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        if back_transform:
            raise ValueError("back_transform: give the result object, not a DataFrame")
        return table
    if not hasattr(table, "summary"):
        raise TypeError(
            f"table must be a DataFrame or a result with summary(), got {type(table).__name__}"
        )
    df = table.summary()
    measure = getattr(table, "measure", None) or getattr(
        getattr(table, "overall", None), "measure", None
    )
    ratio = (measure or "").upper() in RATIO_MEASURES
    if back_transform is None:
        back_transform = ratio
    elif back_transform and not ratio:
        raise ValueError(f"back_transform: measure {measure!r} is not a ratio measure")
    if back_transform:
        df = df.copy()
        for col in BACK_TRANSFORMED:
            if col in df.columns:
                df[col] = df[col].astype(float).map(math.exp)
        df = df.rename(columns={"estimate": measure, "se": "se (log scale)"})
    return df


def format_summary(
    table: pd.DataFrame | Any, *, digits: int | None = None, back_transform: bool | None = None
) -> pd.DataFrame:
    """A copy of a summary table (or of ``result.summary()``) with every cell formatted as text.

    Parameters
    ----------
    table : DataFrame or result object
        A result's ``summary()`` is used when a result is given.
    digits : int, optional
        Decimals of estimates, CIs and other plain numbers (default 2); the other kinds of
        quantity keep their own rule (see the module docstring).
    back_transform : bool, optional
        For a result of a ratio measure (RR, OR, ROM, PETO): exp() of estimate and CI/PI bounds,
        the estimate column named after the measure. Default: yes for ratio measures.

    Examples
    --------
    >>> from ketameta import meta
    >>> cells = format_summary(meta([-0.5, -0.2, -0.4, 0.3], [0.04, 0.05, 0.03, 0.02]))
    >>> cells[["k", "estimate", "pvalue", "i2", "tau2"]].iloc[0].tolist()
    ['4', '-0.18', '0.329', '77.1%', '0.110']
    """
    digits = DEFAULT_DIGITS if digits is None else digits
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 10:
        raise ValueError(f"digits must be an integer from 0 to 10, got {digits!r}")
    df = _frame(table, back_transform)
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(names=df.index.name or "")
    out = pd.DataFrame(index=range(len(df)))
    for position, column in enumerate(df.columns):
        values = df.iloc[:, position]
        integer = pd.api.types.is_integer_dtype(values)
        out[position] = [
            f"{int(v)}" if integer else _cell(str(column), v, digits) for v in values.tolist()
        ]
    out.columns = [str(c) for c in df.columns]
    return out


def to_markdown(table: Any, *, digits: int | None = None, back_transform=None) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped).

    Examples
    --------
    >>> import pandas as pd
    >>> print(to_markdown(pd.DataFrame({"study": ["A"], "pvalue": [0.0004]})))
    | study | pvalue |
    | --- | --- |
    | A | <0.001 |
    """
    df = format_summary(table, digits=digits, back_transform=back_transform)

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(esc(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def to_html(table: Any, *, digits: int | None = None, back_transform=None) -> str:
    """An HTML table; every cell and header is escaped (text from the data cannot inject markup).

    Examples
    --------
    >>> import pandas as pd
    >>> "<td>&lt;b&gt;A&lt;/b&gt;</td>" in to_html(pd.DataFrame({"study": ["<b>A</b>"]}))
    True
    """
    df = format_summary(table, digits=digits, back_transform=back_transform)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f'<table class="ketameta"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters (one pass, so escapes are not escaped again).

    Examples
    --------
    >>> latex_escape("50%_x & {y}")
    '50\\%\\_x \\& \\{y\\}'
    """
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(table: Any, *, digits: int | None = None, back_transform=None) -> str:
    """A LaTeX ``tabular`` with booktabs rules; text columns left, numbers right; escaped."""
    df = format_summary(table, digits=digits, back_transform=back_transform)
    source = _frame(table, back_transform)
    if not isinstance(source.index, pd.RangeIndex):
        source = source.reset_index(names=source.index.name or "")
    align = "".join(
        "r" if pd.api.types.is_numeric_dtype(source.iloc[:, i]) else "l"
        for i in range(source.shape[1])
    )
    lines = [
        r"\begin{tabular}{" + align + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(latex_escape(v) for v in row) + r" \\" for row in df.itertuples(index=False)
    ]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)
