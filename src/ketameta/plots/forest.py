"""Forest plots of a `MetaResult` or a `SubgroupResult`, drawn only from what the result holds.

Layout: a left text table (study label and, where the data have them, per-arm n with mean (SD)
or events/total, plus any chosen data columns), the plot panel (squares with area proportional
to the weight, CI whiskers with arrows where a CI runs past the axis, diamonds for pooled
estimates, an optional prediction-interval bar, the null line and "favours" labels that follow
the sign convention) and a right text table (estimate [CI] and weight). Column widths are
measured from the text, and the figure's size follows from them and from the number of rows, so
3 to 100+ rows stay legible. Ratio measures are drawn on a log axis with plain tick labels and
back-transformed numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ketameta.plots._layout import (
    Column,
    Row,
    build_rows,
    draw_headers,
    free_text_width,
    layout_columns,
    text_width_in,
)
from ketameta.plots._style import (
    FONT_SIZE,
    SMALL_SIZE,
    KetametaFigure,
    fmt,
    is_ratio,
    measure_names,
    set_ratio_axis,
    style_context,
)

ROW_HEIGHT_IN = 0.25  # one table row; 9 pt text with ~11 pt between lines
MARGIN_IN = 0.12  # left and right figure margins
BOTTOM_IN = 0.95  # tick labels, favours labels and the axis label
INK = "#222222"
POOLED = "#1f4e79"
MAX_MARKER_PT = 11.0  # side of the heaviest study's square (fits a 0.25 in row)
MIN_MARKER_PT = 3.0


def forest(
    result: Any,
    *,
    title: str | None = None,
    sort: Literal["year", "effect", "weight"] | None = None,
    show_arms: bool = True,
    arm_columns: Mapping[str, str] | None = None,
    columns: Sequence[str] | Mapping[str, str] = (),
    show_weights: bool = True,
    prediction_interval: bool = True,
    group_labels: tuple[str, str] = ("ketamine", "control"),
    xlim: tuple[float, float] | None = None,
    xlabel: str | None = None,
    label_header: str = "Study",
    label_chars: int = 50,
    digits: int = 2,
    plot_width: float = 3.4,
    level_labels: Mapping[str, str] | None = None,
    subgroup_tests: bool = True,
) -> Figure:
    """Draw a forest plot of a pooled result or a subgroup result.

    Parameters
    ----------
    result : MetaResult, SubgroupResult or BinaryResult (Mantel-Haenszel or Peto)
        What to draw; the plot computes no statistics (study CIs come from ``result.studies()``).
    title : str, optional
        Shown at the top left.
    sort : {"year", "effect", "weight"}, optional
        Study order within each block (default: the result's order). ``"year"`` needs a
        ``year`` column in the result's data.
    show_arms : bool
        Per-arm columns: n and mean (SD), or events/total, when the result's data hold them
        (escalc's ``n1, m1, sd1, events1, ...`` or the bundled data's ``mean1``).
    arm_columns : mapping, optional
        Where the per-arm numbers are when the data name them otherwise: roles ``n1, m1, sd1,
        events1, n2, m2, sd2, events2`` to column names, e.g. ``{"events1": "tpos", ...}``.
    columns : sequence of str or mapping of column to header
        Further columns of the result's data to show on the left.
    show_weights : bool
        The weight column (percent of the pooled analysis; within a subgroup, of that subgroup).
    prediction_interval : bool
        Draw the overall prediction interval as a bar under the overall diamond (random-effects
        models with k > 1).
    group_labels : (str, str)
        Names of group 1 and group 2 for the arm headers and the "Favours ..." labels.
    xlim : (float, float), optional
        Axis limits on the display scale (ratios: back-transformed). CIs past them get arrows.
    xlabel, label_header : str
        Axis label (default: the measure's name) and the header of the study column.
    label_chars : int
        Study labels longer than this are shortened with an ellipsis.
    digits : int
        Decimals of the estimates and CIs in the right table.
    plot_width : float
        Width of the plot panel in inches; the text tables take the width they need.
    level_labels : mapping, optional
        Subgroup level -> heading (default ``"<by>: <level>"``).
    subgroup_tests : bool
        Print the tests for subgroup differences under a subgroup plot (``False`` where the
        question cannot be answered, so that no test reads as an answer).

    A single study (k = 1) is drawn without a pooled diamond and without a weight column.

    Returns
    -------
    matplotlib.figure.Figure
        Axes ``[left table, plot, right table]``; artists carry gids (``"study"`` squares,
        ``"ci"`` whiskers, ``"ci-arrow"``, ``"diamond-overall"``, ``"diamond-<level>"``,
        ``"pi"``, ``"favours-left"``/``"favours-right"``, ``"subgroup-test"``).

    Examples
    --------
    >>> from ketameta import meta
    >>> fig = forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    >>> len([a for a in fig.axes[1].lines if a.get_gid() == "study"])
    3
    """
    if label_chars < 4:
        raise ValueError(f"label_chars must be at least 4, got {label_chars}")
    if xlim is not None and (len(xlim) != 2 or not xlim[0] < xlim[1]):
        raise ValueError(f"xlim must be (low, high) with low < high, got {xlim!r}")
    overall_like = result if not hasattr(result, "results") else _first_result(result)
    missing = [a for a in ("studies", "weights", "tau2", "pi_low") if not hasattr(overall_like, a)]
    if missing:
        raise TypeError(
            "result: forest() draws a MetaResult, SubgroupResult or BinaryResult; "
            f"{type(result).__name__} has no {', '.join(missing)}"
        )
    measure = getattr(overall_like, "measure", None)
    ratio = is_ratio(measure)
    if ratio and xlim is not None and xlim[0] <= 0:
        raise ValueError(f"xlim must be positive for the ratio measure {measure}, got {xlim!r}")
    if isinstance(columns, str):
        columns = [columns]
    headers = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    rows, overall = build_rows(
        result,
        sort=sort,
        label_chars=label_chars,
        arms=(arm_columns or True) if show_arms else False,
        columns=headers,
        show_pi=prediction_interval,
        level_labels=level_labels,
        show_tests=subgroup_tests,
    )
    if not hasattr(result, "results") and result.k < 2:
        show_weights = False
    tf = np.exp if ratio else (lambda v: v)
    for r in rows:  # to the display scale (exp for ratios) once, here
        r.est, r.low, r.high = (float(tf(v)) for v in (r.est, r.low, r.high))
    short, long = measure_names(measure)
    level = f"{getattr(overall_like, 'level', 95):g}"
    left = _left_columns(rows, headers, group_labels, label_header)
    right = [Column("est", f"{short} [{level}% CI]", align="right")]
    if show_weights:
        right.append(Column("weight", "Weight", align="right"))
    for r in rows:
        if r.kind == "study" and not math.isfinite(r.est):
            r.cells["est"] = "not estimable"
        elif r.kind in ("study", "diamond", "pi"):
            ci = f"[{fmt(r.low, digits)}, {fmt(r.high, digits)}]"
            r.cells["est"] = ci if r.kind == "pi" else f"{fmt(r.est, digits)} {ci}"
        if r.kind == "study" and show_weights and math.isfinite(r.weight):
            r.cells["weight"] = f"{r.weight:.1f}%"
    left_w = layout_columns(left, rows)
    # pooled labels stay in the left panel: the diamond drawn on their row must not cover them
    pooled = [text_width_in(r.label, FONT_SIZE, bold=True) for r in rows if r.kind == "diamond"]
    left_w = max([left_w, *(w + 0.15 for w in pooled)])
    right_w = layout_columns(right, [*rows, Row("study", cells={"est": _widest_pooled(rows)})])
    plot_w = max(plot_width, free_text_width(rows) - left_w + 0.1)
    has_groups = any(c.group for c in left)
    n_header = 2 if has_groups else 1
    n = len(rows)
    top = (0.45 if title else 0.12) + ROW_HEIGHT_IN * n_header
    width = 2 * MARGIN_IN + left_w + plot_w + right_w + 4 * 0.18
    height = top + ROW_HEIGHT_IN * (n + 0.6) + BOTTOM_IN
    with style_context():
        fig = KetametaFigure(figsize=(width, height))
        x_plot = MARGIN_IN + left_w + 2 * 0.18
        x_right = x_plot + plot_w + 2 * 0.18
        axes = []
        for x0, w in ((MARGIN_IN, left_w), (x_plot, plot_w), (x_right, right_w)):
            ax_ = fig.add_axes(
                (x0 / width, BOTTOM_IN / height, w / width, (height - top - BOTTOM_IN) / height)
            )
            ax_.set_ylim(0.4, n + 0.6)
            ax_.patch.set_visible(False)
            axes.append(ax_)
        ax_left, ax, ax_right = axes
        for a, panel_w in ((ax_left, left_w), (ax_right, right_w)):
            a.set_axis_off()
            a.set_xlim(0.0, panel_w)  # x in inches from the panel's left edge
        y = np.arange(n, 0, -1, dtype=float)
        draw_headers(fig, left, right, (ax_left, ax_right), top, ROW_HEIGHT_IN, MARGIN_IN)
        lims = _limits(rows, xlim, ratio)
        if ratio:
            ax.set_xscale("log")
        ax.set_xlim(*lims)
        _draw_rows(ax_left, ax, ax_right, rows, y, left, right, lims)
        # vertical lines span the drawn rows only: text lines below them stay clear
        drawn_y = [
            yy for r, yy in zip(rows, y, strict=True) if r.kind in ("study", "diamond", "pi")
        ]
        span = [min(drawn_y, default=0.4) - 0.5, n + 0.6]
        null = 1.0 if ratio else 0.0
        ax.plot([null, null], span, color="0.35", lw=0.8, zorder=0, gid="null")
        if overall is not None and math.isfinite(overall.estimate):
            x_ov = float(tf(overall.estimate))
            ax.plot([x_ov, x_ov], span, color="0.6", lw=0.7, ls=":", zorder=0)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", left=False, labelleft=False)
        if ratio:
            set_ratio_axis(ax.xaxis, *lims)
        fav = getattr(overall_like, "favours_group1", None)
        _favours(ax, fav, group_labels)
        ax.set_xlabel(xlabel or long, labelpad=20 if fav in ("negative", "positive") else 4)
        if title:
            fig.text(
                MARGIN_IN / width,
                1 - 0.12 / height,
                title,
                ha="left",
                va="top",
                fontsize=FONT_SIZE + 2,
                fontweight="bold",
                parse_math=False,
            )
    return fig


def _first_result(result: Any) -> Any:
    overall = getattr(result, "overall", None)
    if overall is not None:
        return overall
    if not result.results:
        raise ValueError("result: the SubgroupResult has no subgroups to draw")
    return next(iter(result.results.values()))


def _widest_pooled(rows: list[Row]) -> str:
    pooled = [r.cells.get("est", "") for r in rows if r.kind == "diamond"]
    return max(pooled, key=lambda s: text_width_in(s, FONT_SIZE, bold=True), default="")


def _left_columns(rows, headers, group_labels, label_header) -> list[Column]:
    keys = {k for r in rows for k in r.cells}
    cols = [Column("label", label_header, align="left")]
    for arm, name in (("1", group_labels[0]), ("2", group_labels[1])):
        group = name[:1].upper() + name[1:]
        if f"events{arm}" in keys:
            cols.append(Column(f"events{arm}", "Events/Total", group))
        if f"n{arm}" in keys:
            cols.append(Column(f"n{arm}", "n", group, align="right"))
        if f"msd{arm}" in keys:
            cols.append(Column(f"msd{arm}", "Mean (SD)", group))
    cols += [Column(f"col:{name}", header) for name, header in headers.items()]
    return cols


def _limits(rows: list[Row], xlim, ratio: bool) -> tuple[float, float]:
    """Axis limits on the display scale: every finite CI and the null, wide CIs capped."""
    if xlim is not None:
        return float(xlim[0]), float(xlim[1])
    to = np.log if ratio else (lambda v: v)
    drawn = [r for r in rows if r.kind in ("study", "diamond", "pi")]
    # estimates (and the null) set the core; interval ends may widen it up to twice its span
    # (pooled intervals too: a Hartung-Knapp CI with k = 2 can span decades), longer ones get
    # arrows
    core = [to(r.est) for r in drawn if r.kind != "pi"] + [0.0]
    core = [v for v in core if math.isfinite(v)]
    bounds = [to(v) for r in drawn for v in (r.low, r.high) if v > 0 or not ratio]
    bounds = [v for v in bounds if math.isfinite(v)]
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1e-3)
    # whiskers may widen the axis up to twice the span of the estimates; longer ones get arrows
    lo = max(min([lo, *bounds]), lo - span)
    hi = min(max([hi, *bounds]), hi + span)
    pad = 0.04 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    return (math.exp(lo), math.exp(hi)) if ratio else (lo, hi)


def _draw_rows(ax_left, ax, ax_right, rows, y, left, right, lims) -> None:
    weights = [r.weight for r in rows if r.kind == "study" and math.isfinite(r.weight)]
    max_w = max([*weights, 1e-12])
    for r, yy in zip(rows, y, strict=True):
        bold = r.kind in ("heading", "diamond")
        italic = r.kind in ("text", "pi")
        if r.kind != "blank":
            ax_left.text(
                0.0,
                yy,
                r.label,
                va="center",
                fontweight="bold" if bold else "normal",
                fontstyle="italic" if italic else "normal",
                fontsize=SMALL_SIZE if r.kind == "text" else FONT_SIZE,
                parse_math=False,
                gid=r.gid if r.kind in ("text", "heading") else f"label-{r.kind}",
                zorder=5,
            )
        for panel, cols in ((ax_left, left[1:]), (ax_right, right)):
            for col in cols:
                if col.key in r.cells:
                    panel.text(
                        col.x,
                        yy,
                        r.cells[col.key],
                        ha=col.align,
                        va="center",
                        fontsize=SMALL_SIZE if panel is ax_left else FONT_SIZE,
                        fontweight="bold" if r.kind == "diamond" else "normal",
                        parse_math=False,
                        gid=f"cell-{col.key}",
                    )
        if r.kind == "study" and not math.isfinite(r.est):
            continue  # no effect (a table left out): text only, nothing drawn
        if r.kind == "study":
            _whisker(ax, yy, r.low, r.high, lims, gid="ci")
            w = r.weight if math.isfinite(r.weight) else 0.0
            size = max(MIN_MARKER_PT, MAX_MARKER_PT * math.sqrt(w / max_w))
            ax.plot([r.est], [yy], marker="s", ms=size, color=INK, ls="none", gid="study")
        elif r.kind == "diamond":
            _diamond(ax, yy, r, lims)
        elif r.kind == "pi":
            _whisker(ax, yy, r.low, r.high, lims, gid="pi", color=POOLED, lw=2.2)


def _diamond(ax, yy: float, r: Row, lims) -> None:
    if not math.isfinite(r.est):
        return
    low, high = max(r.low, lims[0]), min(r.high, lims[1])  # inf / off-axis ends are cut
    ax.add_patch(
        Polygon(
            [(low, yy), (r.est, yy + 0.32), (high, yy), (r.est, yy - 0.32)],
            closed=True,
            facecolor=POOLED,
            edgecolor=POOLED,
            gid=r.gid,
        )
    )
    for end, past in ((lims[0], not r.low >= lims[0]), (lims[1], not r.high <= lims[1])):
        if past:
            _arrow(ax, yy, end, r.est, POOLED, "ci-arrow")


def _whisker(ax, y, low, high, lims, *, gid, color=INK, lw=1.0) -> None:
    lo_c = lims[0] if not low >= lims[0] else low
    hi_c = lims[1] if not high <= lims[1] else high
    ax.plot([lo_c, hi_c], [y, y], color=color, lw=lw, solid_capstyle="butt", gid=gid)
    for end, inward, past in ((lims[0], hi_c, lo_c != low), (lims[1], lo_c, hi_c != high)):
        if past:
            _arrow(ax, y, end, inward, color, f"{gid}-arrow" if gid != "ci" else "ci-arrow")


def _arrow(ax, y, end, inward, color, gid) -> None:
    ax.annotate(
        "",
        xy=(end, y),
        xytext=(inward, y),
        arrowprops={
            "arrowstyle": "-|>",
            "lw": 0.0,
            "color": color,
            "shrinkA": 0,
            "shrinkB": 0,
            "mutation_scale": 8,
        },
        gid=gid,
    )


def _favours(ax, fav, group_labels) -> None:
    if fav not in ("negative", "positive"):
        return
    left_lab, right_lab = (f"Favours {group_labels[0]}", f"Favours {group_labels[1]}")
    if fav == "positive":
        left_lab, right_lab = right_lab, left_lab
    for x, text, ha, gid in (
        (0.0, "← " + left_lab, "left", "favours-left"),
        (1.0, right_lab + " →", "right", "favours-right"),
    ):
        ax.annotate(
            text,
            xy=(x, 0.0),
            xycoords="axes fraction",
            xytext=(0, -22),
            textcoords="offset points",
            ha=ha,
            va="top",
            fontsize=SMALL_SIZE,
            parse_math=False,
            gid=gid,
        )
