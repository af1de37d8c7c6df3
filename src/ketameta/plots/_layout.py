"""Row model and column layout of the forest plot (text measured, never guessed).

The forest plot is a table whose middle column is a plot. `build_rows` turns a result into rows
(study, heading, diamond, prediction interval, free text); `layout_columns` measures every cell
with the Agg renderer and places the columns so that no two texts overlap, whatever the labels.
Nothing here computes a statistic: study intervals come from ``MetaResult.studies()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D

from ketameta.plots._style import FONT_FAMILY, FONT_SIZE, SMALL_SIZE, fmt, shorten

COLUMN_GAP_IN = 0.18  # white space between two text columns


@dataclass
class Row:
    """One line of the forest plot."""

    kind: str  # "study", "heading", "diamond", "pi", "text", "blank"
    label: str = ""
    est: float = math.nan
    low: float = math.nan
    high: float = math.nan
    weight: float = math.nan
    cells: dict[str, str] = field(default_factory=dict)
    gid: str = ""


@dataclass
class Column:
    """A text column: key into ``Row.cells``, header, optional spanning group header."""

    key: str
    header: str
    group: str = ""
    align: str = "center"  # "left", "center" or "right"
    x: float = 0.0  # anchor position in inches from the panel's left edge (set by the layout)
    width: float = 0.0


def _number(row: Any, *names: str) -> float:
    for name in names:
        if name in row.index:
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                return value
    return math.nan


ARM_ROLES = ("n1", "m1", "sd1", "events1", "n2", "m2", "sd2", "events2")


def arm_cells(data: Any, i: int, names: Mapping[str, str] | None = None) -> dict[str, str]:
    """Per-arm text cells of study ``i``: n and mean (SD), or events/total (what the data hold).

    ``names`` maps the roles ``n1, m1, sd1, events1`` (and ``...2``) to columns of ``data``;
    by default the roles are the column names (escalc's inputs), with ``mean1``/``mean2`` (the
    bundled data's names) as a fallback for the means. A cell is left out when the data do not
    have it.
    """
    if data is None:
        return {}
    names = dict(names or {})
    row = data.iloc[i]
    cells = {}
    for arm in ("1", "2"):

        def get(role: str, *fallback: str) -> float:
            return _number(row, *([names[role]] if role in names else [role, *fallback]))

        n, mean, sd = get(f"n{arm}"), get(f"m{arm}", f"mean{arm}"), get(f"sd{arm}")
        events = get(f"events{arm}")
        if math.isfinite(events) and math.isfinite(n):
            cells[f"events{arm}"] = f"{events:.0f}/{n:.0f}"
        elif math.isfinite(mean) and math.isfinite(sd):
            if math.isfinite(n):
                cells[f"n{arm}"] = f"{n:.0f}"
            cells[f"msd{arm}"] = f"{fmt(mean, 1)} ({sd:.1f})"
        elif math.isfinite(n):
            cells[f"n{arm}"] = f"{n:.0f}"
    return cells


def check_arm_columns(names: Mapping[str, str] | None, data_columns: Sequence[str]) -> None:
    """Raise a clear error for an unknown role or a column that is not in the data."""
    for role, column in (names or {}).items():
        if role not in ARM_ROLES:
            raise ValueError(f"arm_columns: unknown role {role!r}; use {', '.join(ARM_ROLES)}")
        if column not in data_columns:
            raise ValueError(f"arm_columns: {column!r} (for {role}) is not a column of the data")


def _order(res: Any, sort: str | None) -> np.ndarray:
    idx = np.arange(res.k)
    if sort is None:
        return idx
    if sort == "effect":
        return np.argsort(np.asarray(res.yi), kind="stable")
    if sort == "weight":
        return np.argsort(-np.asarray(res.weights), kind="stable")
    if sort == "year":
        if res.data is None or "year" not in res.data.columns:
            raise ValueError("sort='year' needs a 'year' column in the result's data")
        return np.argsort(res.data["year"].to_numpy(dtype=float), kind="stable")
    raise ValueError(f"sort must be 'year', 'effect', 'weight' or None, got {sort!r}")


def study_rows(
    res: Any,
    *,
    sort: str | None,
    label_chars: int,
    arms: bool | Mapping[str, str],
    columns: Mapping[str, str],
) -> list[Row]:
    """The study rows of one MetaResult, intervals read from ``res.studies()``.

    ``arms``: False, True (default column names) or a role -> column mapping.
    """
    table = res.studies()
    names = arms if isinstance(arms, Mapping) else None
    if names and res.data is not None:
        check_arm_columns(names, list(res.data.columns))
    rows = []
    for i in _order(res, sort):
        i = int(i)
        cells = arm_cells(res.data, i, names) if arms else {}
        for name in columns:
            if res.data is None or name not in res.data.columns:
                raise ValueError(f"columns: {name!r} is not a column of the result's data")
            value = res.data[name].iloc[i]
            cells[f"col:{name}"] = "" if value is None or value != value else str(value)
        rows.append(
            Row(
                "study",
                shorten(table["label"].iloc[i], label_chars),
                float(table["yi"].iloc[i]),
                float(table["ci_low"].iloc[i]),
                float(table["ci_high"].iloc[i]),
                float(table["weight"].iloc[i]),
                cells,
                gid="study",
            )
        )
    return rows


# common-effect methods, with how the pooled label names them
COMMON_EFFECT = {"EE": "", "FE": "", "MH": ", Mantel-Haenszel", "PETO": ", Peto"}


def p_text(p: float) -> str:
    """``p < 0.001`` or ``p = 0.042``."""
    if p is None or not math.isfinite(p):
        return "p = –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def het_text(res: Any) -> str:
    """The heterogeneity line of a pooled result (tau², I², Q and its p)."""
    if res.k < 2:
        return "Heterogeneity: not estimable (k = 1)"
    tau2 = "" if res.method in COMMON_EFFECT else f"τ² = {res.tau2:.3f}; "
    return (
        f"Heterogeneity: {tau2}I² = {res.i2:.1f}%; "
        f"Q = {res.q:.2f}, df = {res.q_df}, {p_text(res.q_pvalue)}"
    )


def pooled_label(res: Any, title: str) -> str:
    if res.method in COMMON_EFFECT:
        model = "common effect" + COMMON_EFFECT[res.method]
    else:
        model = f"random effects, {res.method}"
    test = {"knha": ", Hartung-Knapp", "adhoc": ", Hartung-Knapp (ad hoc)", "t": ", t test"}.get(
        getattr(res, "test", "z"), ""
    )
    return f"{title} ({model}{test}; k = {res.k})"


def _df_text(df: Any) -> str:
    if isinstance(df, (tuple, list)):
        return ", ".join(f"{d:g}" for d in df)
    return f"{df:g}"


def subgroup_test_lines(result: Any) -> list[str]:
    """'Test for subgroup differences' lines, read from the SubgroupResult's tests."""
    lines = []
    t = getattr(result, "test_separate", None)
    if t is not None:
        lines.append(
            "Test for subgroup differences (separate τ², Wald): "
            f"Q = {t.statistic:.2f}, df = {_df_text(t.df)}, {p_text(t.pvalue)}"
        )
    t = getattr(result, "test_common", None)
    if t is not None:
        name = "F" if getattr(t, "test", "") == "F" else "QM"
        lines.append(
            "Test for subgroup differences (common τ², mixed-effects model): "
            f"{name} = {t.statistic:.2f}, df = {_df_text(t.df)}, {p_text(t.pvalue)}"
        )
    return lines


def _pooled_rows(res: Any, title: str, gid: str, show_pi: bool) -> list[Row]:
    rows = [
        Row("diamond", pooled_label(res, title), res.estimate, res.ci_low, res.ci_high, gid=gid)
    ]
    if show_pi and res.k > 1 and res.method not in COMMON_EFFECT and math.isfinite(res.pi_low):
        rows.append(
            Row("pi", "Prediction interval", res.estimate, res.pi_low, res.pi_high, gid="pi")
        )
    rows.append(Row("text", het_text(res), gid="heterogeneity"))
    return rows


def build_rows(
    result: Any,
    *,
    sort: str | None,
    label_chars: int,
    arms: bool | Mapping[str, str],
    columns: Mapping[str, str],
    show_pi: bool,
    level_labels: Mapping[str, str] | None = None,
    show_tests: bool = True,
) -> tuple[list[Row], Any]:
    """Rows of a MetaResult or a SubgroupResult, and the result whose diamond is the overall.

    A single study (k = 1) is shown without a pooled diamond; ``level_labels`` names subgroup
    levels in words; ``show_tests=False`` leaves out the tests for subgroup differences.
    """
    opts = {"sort": sort, "label_chars": label_chars, "arms": arms, "columns": columns}
    if not hasattr(result, "results"):  # a single MetaResult
        rows = study_rows(result, **opts)
        if result.k < 2:
            return rows + [Row("text", "single study: shown, not pooled", gid="not-pooled")], None
        rows.append(Row("blank"))
        return rows + _pooled_rows(result, "Overall", "diamond-overall", show_pi), result
    rows = []
    flagged = getattr(result, "flagged", ())
    names = level_labels or {}
    for level in result.levels:
        heading = names.get(level, f"{result.by}: {level}")
        rows.append(Row("heading", shorten(heading, label_chars), gid="heading"))
        res = result.results.get(level)
        if res is None or res.k == 0:
            rows += [Row("text", "no studies in this subgroup", gid="empty"), Row("blank")]
            continue
        level_rows = study_rows(res, **opts)
        if level in flagged or res.k < 2:
            for row in level_rows:  # one study: no "100%" weight
                row.weight = math.nan
        rows += level_rows
        if level in flagged or res.k < 2:
            rows.append(Row("text", "k = 1: shown, not pooled", gid="not-pooled"))
        else:
            rows += _pooled_rows(res, "Subtotal", f"diamond-{level}", show_pi=False)
        rows.append(Row("blank"))
    overall = getattr(result, "overall", None)
    if overall is not None:
        rows += _pooled_rows(overall, "Overall", "diamond-overall", show_pi)
    for line in subgroup_test_lines(result) if show_tests else []:
        rows.append(Row("text", line, gid="subgroup-test"))
    return rows, overall


def _font(size: float, bold: bool = False, italic: bool = False) -> FontProperties:
    return FontProperties(
        family=FONT_FAMILY,
        size=size,
        weight="bold" if bold else "normal",
        style="italic" if italic else "normal",
    )


_RENDERER = RendererAgg(1, 1, 72)  # 72 dpi: one pixel is one point


def text_width_in(text: str, size: float = FONT_SIZE, bold: bool = False, italic=False) -> float:
    """Width of ``text`` in inches as the Agg renderer draws it (no mathtext)."""
    if not text:
        return 0.0
    width, _, _ = _RENDERER.get_text_width_height_descent(
        text, _font(size, bold, italic), ismath=False
    )
    return width / 72.0


def layout_columns(columns: Sequence[Column], rows: Sequence[Row], *, start: float = 0.0) -> float:
    """Place ``columns`` left to right from ``start`` (inches); return the total width used.

    Each column is as wide as its widest cell or header (measured), plus a fixed gap; a group
    header wider than its columns widens the last of them.
    """
    x = start
    groups: dict[str, list[Column]] = {}
    for col in columns:
        cells = [
            r.label if col.key == "label" else r.cells.get(col.key, "")
            for r in rows
            if r.kind == "study"
        ]
        widths = [text_width_in(c, SMALL_SIZE if col.key != "label" else FONT_SIZE) for c in cells]
        col.width = max([text_width_in(col.header, FONT_SIZE, bold=True), *widths])
        if col.group:
            groups.setdefault(col.group, []).append(col)
    for name, members in groups.items():
        span = sum(c.width for c in members) + COLUMN_GAP_IN * (len(members) - 1)
        need = text_width_in(name, FONT_SIZE, bold=True)
        if need > span:
            members[-1].width += need - span
    for col in columns:
        col.x = {"left": x, "center": x + col.width / 2, "right": x + col.width}[col.align]
        x += col.width + COLUMN_GAP_IN
    return x - COLUMN_GAP_IN - start if columns else 0.0


def free_text_width(rows: Sequence[Row]) -> float:
    """Widest text of the rows that are not study rows (headings, pooled labels, test lines)."""
    widths = [0.0]
    for r in rows:
        if r.kind in ("heading", "diamond"):
            widths.append(text_width_in(r.label, FONT_SIZE, bold=True))
        elif r.kind in ("text", "pi"):
            widths.append(text_width_in(r.label, SMALL_SIZE, italic=True))
    return max(widths)


def draw_headers(fig, left, right, panels, top, row_height, margin) -> None:
    """Column headers in figure space above the rows (group headers above theirs), and a rule
    under them; ``top``, ``row_height`` and ``margin`` in inches."""
    height = fig.get_figheight()
    y_last = 1 - (top - row_height * 0.5) / height
    for cols, panel in zip((left, right), panels, strict=True):
        x0 = panel.get_position().x0 * fig.get_figwidth()
        done = set()
        for col in cols:
            fig.text(
                (x0 + col.x) / fig.get_figwidth(),
                y_last,
                col.header,
                ha=col.align,
                va="center",
                fontweight="bold",
                parse_math=False,
                gid="header",
            )
            if col.group and col.group not in done:
                done.add(col.group)
                members = [c for c in cols if c.group == col.group]
                lo = members[0].x - {"left": 0, "center": 0.5, "right": 1}[members[0].align] * (
                    members[0].width
                )
                hi = members[-1].x + {"left": 1, "center": 0.5, "right": 0}[members[-1].align] * (
                    members[-1].width
                )
                fig.text(
                    (x0 + (lo + hi) / 2) / fig.get_figwidth(),
                    y_last + row_height / height,
                    col.group,
                    ha="center",
                    va="center",
                    fontweight="bold",
                    parse_math=False,
                    gid="group-header",
                )
                fig.add_artist(
                    Line2D(
                        [(x0 + lo) / fig.get_figwidth(), (x0 + hi) / fig.get_figwidth()],
                        [y_last + 0.5 * row_height / height] * 2,
                        color="0.5",
                        lw=0.6,
                    )
                )
    rule_y = 1 - (top + 0.02) / height
    fig.add_artist(
        Line2D(
            [margin / fig.get_figwidth(), 1 - margin / fig.get_figwidth()],
            [rule_y] * 2,
            color="0.3",
            lw=0.8,
        )
    )
