"""Risk-of-bias figures (robvis style) from a plain table of RoB 2 judgements.

`rob_traffic_light` draws one row per study and one column per domain (D1-D5 of RoB 2, when the
table has them) plus the overall judgement, each cell a coloured circle with a symbol (low:
green "+", some concerns: yellow "−", high: red "×", no information: grey "?"), and a legend of
the judgements and the domains. `rob_summary_bar` draws, per domain, the (optionally weighted)
share of studies with each judgement as a stacked horizontal bar. Nothing here reads the review:
the table is a DataFrame or a sequence of dicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ketameta.plots._style import FONT_SIZE, SMALL_SIZE, KetametaFigure, style_context
from ketameta.plots.flow import text_width_in

# judgement -> (legend name, face colour, symbol, symbol colour); the order of the legend
JUDGEMENTS: dict[str, tuple[str, str, str, str]] = {
    "low": ("Low", "#3aa845", "+", "white"),
    "some_concerns": ("Some concerns", "#f2cf1d", "\u2212", "#222222"),
    "high": ("High", "#d7301f", "\u00d7", "white"),
    "missing": ("No information", "#bdbdbd", "?", "#222222"),
}
ROB2_DOMAINS = {
    "D1": "Bias arising from the randomisation process",
    "D2": "Bias due to deviations from intended interventions",
    "D3": "Bias due to missing outcome data",
    "D4": "Bias in measurement of the outcome",
    "D5": "Bias in selection of the reported result",
}
_ALIASES = {"some": "some_concerns", "some_concern": "some_concerns", "no_information": "missing"}
_EMPTY = {"", "nan", "none", "na", "n/a", "missing", "no_information", "?"}
MARGIN_IN = 0.12
ROW_IN = 0.3
CELL_IN = 0.42
GAP_IN = 0.2
MARKER_PT = 15.0
INK = "#222222"


def _records(table: Any) -> list[Mapping]:
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        return table.to_dict("records")
    if isinstance(table, Sequence) and all(isinstance(r, Mapping) for r in table):
        return list(table)
    raise ValueError(f"table: expected a DataFrame or a sequence of dicts, got {type(table)}")


def _columns(records: list[Mapping], table: Any) -> list[str]:
    if hasattr(table, "columns"):
        return [str(c) for c in table.columns]
    return list(dict.fromkeys(str(k) for r in records for k in r))


def judgement(value: Any, where: str = "value") -> str:
    """Normalise one judgement: ``"low"``, ``"some_concerns"``, ``"high"`` or ``"missing"``.

    Case, spaces and hyphens are ignored (``"Some concerns"`` is ``"some_concerns"``); empty
    values (None, NaN, ``""``) are ``"missing"``; anything else is a ValueError naming ``where``.

    Examples
    --------
    >>> judgement("Some concerns"), judgement(None), judgement("HIGH")
    ('some_concerns', 'missing', 'high')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    key = re.sub(r"[\s\-]+", "_", str(value).strip().lower())
    if key in _EMPTY:
        return "missing"
    key = _ALIASES.get(key, key)
    if key not in JUDGEMENTS:
        raise ValueError(
            f"{where}: unknown judgement {value!r}; use 'low', 'some_concerns', 'high' or empty"
        )
    return key


def _prepare(table, domains, overall, labels):
    """(study labels, [(column, header, description)], judgements per row per column)."""
    records = _records(table)
    if not records:
        raise ValueError("table: no studies (rows) to draw")
    cols = _columns(records, table)
    if labels not in cols:
        raise ValueError(f"table: label column {labels!r} not found; columns are {cols}")
    if domains is None:
        found = [c for c in cols if re.fullmatch(r"[dD][1-5]", c)]
        found.sort(key=lambda c: int(c[1]))
        domains = {c: ROB2_DOMAINS[c.upper()] for c in found}
    elif isinstance(domains, str):
        domains = [domains]
    if not isinstance(domains, Mapping):
        domains = {d: ROB2_DOMAINS.get(str(d).upper(), "") for d in domains}
    for d in domains:
        if d not in cols:
            raise ValueError(f"domains: column {d!r} not found in the table; columns are {cols}")
    shown = [(str(d), str(d), str(desc)) for d, desc in domains.items()]
    if overall is not None and overall in cols:
        shown.append((overall, "Overall", ""))
    elif overall is not None and not shown:
        raise ValueError(f"overall: column {overall!r} not found and no domain columns (D1-D5)")
    if not shown:
        raise ValueError("table: no domain (D1-D5) or overall column to draw")
    names = [str(r.get(labels, "")) for r in records]
    grid = [
        [judgement(r.get(c), f"table column {c!r}, row {i} ({names[i]})") for c, _, _ in shown]
        for i, r in enumerate(records)
    ]
    return names, shown, grid


def _text(ax, x, y, s, gid, size=SMALL_SIZE, bold=False, *, ha="left", va="center") -> None:
    ax.text(x, y, s, ha=ha, va=va, fontsize=size, fontweight="bold" if bold else "normal",
            color=INK, parse_math=False, gid=gid)  # fmt: skip


def _disc(ax, x: float, y: float, j: str, gid: str, size: float = MARKER_PT) -> None:
    _, face, symbol, colour = JUDGEMENTS[j]
    ax.add_line(
        Line2D(
            [x],
            [y],
            marker="o",
            ms=size,
            mfc=face,
            mec="#555555",
            mew=0.6,
            ls="none",
            gid=gid,
        )
    )
    ax.text(
        x,
        y,
        symbol,
        ha="center",
        va="center",
        fontsize=size * 0.72,
        fontweight="bold",
        color=colour,
        parse_math=False,
        gid=gid.replace("cell", "symbol", 1),
    )


def rob_traffic_light(
    table: Any,
    *,
    domains: Sequence[str] | Mapping[str, str] | None = None,
    overall: str | None = "overall",
    labels: str = "study",
    title: str | None = None,
) -> Figure:
    """Draw a risk-of-bias traffic-light plot: studies by RoB 2 domains and overall.

    Parameters
    ----------
    table : DataFrame or sequence of dicts
        One row per study: a label column and one column per domain with ``"low"``,
        ``"some_concerns"``, ``"high"`` or empty (no information; case, spaces and hyphens
        are ignored, so ``"Some concerns"`` works).
    domains : sequence of column names or mapping column -> description, optional
        The domain columns, in order. Default: the columns named ``D1`` ... ``D5`` that the
        table has, described with the RoB 2 domain names in the legend.
    overall : str or None
        The overall-judgement column (drawn last, headed "Overall"); left out when None, or
        when the table lacks it but has domain columns.
    labels : str
        The column with the study labels (rows are drawn in the table's order, top down).
    title : str, optional
        Shown above the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One axes in inches (y up). Cell ``(i, c)`` is a ``Line2D`` circle with gid
        ``"cell-<i>-<c>"`` and a text with gid ``"symbol-<i>-<c>"`` (``i`` the row, ``c`` the
        column name); study labels have gid ``"label"``, column headers ``"header"``, legend
        texts ``"legend-judgement"`` and ``"legend-domain"``.

    Raises
    ------
    ValueError
        A missing label or domain column, or an unknown judgement (naming column and row).

    Examples
    --------
    >>> rows = [{"study": "A 2020", "D1": "low", "D2": "high", "overall": "high"},
    ...         {"study": "B 2021", "D1": "some_concerns", "D2": "", "overall": "some_concerns"}]
    >>> fig = rob_traffic_light(rows)
    >>> [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "header"]
    ['D1', 'D2', 'Overall']
    >>> [ln.get_markerfacecolor() for ln in fig.axes[0].lines if ln.get_gid() == "cell-1-D2"]
    ['#bdbdbd']
    """
    names, shown, grid = _prepare(table, domains, overall, labels)
    n, m = len(names), len(shown)
    used = [j for j in JUDGEMENTS if j != "missing" or any("missing" in r for r in grid)]
    label_w = max(text_width_in(s, FONT_SIZE) for s in [*names, "Study"])
    grid_w = label_w + GAP_IN + CELL_IN * m
    legend_w = 0.3 + max(text_width_in(JUDGEMENTS[j][0], SMALL_SIZE) for j in used)
    legend_w = max(legend_w, text_width_in("Judgement", SMALL_SIZE, bold=True))
    domain_lines = [f"{h}: {desc}" if desc else h for _, h, desc in shown if h != "Overall"]
    domains_w = max([text_width_in(s, SMALL_SIZE) for s in domain_lines], default=0.0)
    width = 2 * MARGIN_IN + max(grid_w + GAP_IN + legend_w, domains_w)
    head_in = (0.3 if title else 0.0) + (0.5 if len(domain_lines) else 0.3)
    rows_h = ROW_IN * n
    legend_h = ROW_IN * (len(used) + 1)
    domains_h = (0.25 + 0.18 * len(domain_lines)) if domain_lines else 0.0
    height = MARGIN_IN + head_in + max(rows_h, legend_h) + domains_h + MARGIN_IN
    with style_context():
        fig = KetametaFigure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        x0 = MARGIN_IN + label_w + GAP_IN  # left edge of the first cell
        y_top = height - MARGIN_IN - head_in  # top edge of the first row
        y_head = y_top + 0.12
        if title:
            _text(ax, MARGIN_IN, height - MARGIN_IN, title, "title", FONT_SIZE + 2, True, va="top")
        if domain_lines:
            n_domains = m - (overall in [c for c, _, _ in shown])
            x_mid = x0 + CELL_IN * n_domains / 2
            _text(ax, x_mid, y_top + 0.36, "Risk of bias domains", "domains-title", bold=True,
                  ha="center")  # fmt: skip
        _text(ax, MARGIN_IN, y_head, "Study", "header-study", FONT_SIZE, True)
        for k, (_, header, _) in enumerate(shown):
            _text(ax, x0 + CELL_IN * (k + 0.5), y_head, header, "header", bold=True, ha="center")
        for i, (name, judged) in enumerate(zip(names, grid, strict=True)):
            y = y_top - ROW_IN * (i + 0.5)
            if i % 2 == 0:  # light banding guides the eye along a row
                band = Rectangle((MARGIN_IN - 0.05, y - ROW_IN / 2), grid_w - MARGIN_IN + 0.15,
                                 ROW_IN, facecolor="#f2f2f2", lw=0, zorder=0)  # fmt: skip
                ax.add_patch(band)
            _text(ax, MARGIN_IN, y, name, "label", FONT_SIZE)
            for k, (col, _, _) in enumerate(shown):
                _disc(ax, x0 + CELL_IN * (k + 0.5), y, judged[k], f"cell-{i}-{col}")
        xl = x0 + CELL_IN * m + GAP_IN  # the judgement legend, right of the grid
        _text(ax, xl, y_head, "Judgement", "legend-title", bold=True)
        for k, j in enumerate(used):
            y = y_top - ROW_IN * (k + 0.5)
            _disc(ax, xl + 0.1, y, j, f"legend-{j}", size=MARKER_PT * 0.8)
            _text(ax, xl + 0.26, y, JUDGEMENTS[j][0], "legend-judgement")
        y = y_top - max(rows_h, legend_h) - 0.2
        if domain_lines:
            _text(ax, MARGIN_IN, y, "Domains:", "legend-title", bold=True)
        for line in domain_lines:
            y -= 0.18
            _text(ax, MARGIN_IN, y, line, "legend-domain")
    return fig


def rob_summary_bar(
    table: Any,
    weights: str | Sequence[float] | None = None,
    *,
    domains: Sequence[str] | Mapping[str, str] | None = None,
    overall: str | None = "overall",
    labels: str = "study",
    title: str | None = None,
) -> Figure:
    """Draw the share of studies with each judgement per domain as stacked horizontal bars.

    Parameters
    ----------
    table, domains, overall, labels
        As in `rob_traffic_light`.
    weights : str or sequence of float, optional
        Weight of each study (a column name, or one number per row), e.g. its weight in the
        meta-analysis; default equal weights. Must be finite, non-negative, with positive sum.
    title : str, optional
        Shown above the axes.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; domains top down, the overall judgement last. Each bar segment is a
        ``Rectangle`` with gid ``"bar-<column>-<judgement>"`` and width the percentage.

    Examples
    --------
    >>> rows = [{"study": "A", "D1": "low", "overall": "high"},
    ...         {"study": "B", "D1": "low", "overall": "low"}]
    >>> fig = rob_summary_bar(rows, weights=[3, 1])
    >>> {p.get_gid(): p.get_width() for p in fig.axes[0].patches}["bar-overall-high"]
    75.0
    """
    names, shown, grid = _prepare(table, domains, overall, labels)
    w = _weights(table, weights, len(names))
    ylabels = [
        f"{h}: {d}" if d else ("Overall risk of bias" if h == "Overall" else h) for _, h, d in shown
    ]
    label_w = max(text_width_in(s, FONT_SIZE) for s in ylabels)
    plot_w, bar_in = 3.6, 0.32
    width = MARGIN_IN * 2 + label_w + 0.15 + plot_w + 0.25
    bottom = 0.85
    top = 0.15 + (0.3 if title else 0.0)
    height = bottom + top + bar_in * len(shown) + 0.1
    total = sum(w)
    with style_context():
        fig = KetametaFigure(figsize=(width, height))
        x_ax = MARGIN_IN + label_w + 0.15
        ax = fig.add_axes(
            (x_ax / width, bottom / height, plot_w / width, (height - bottom - top) / height)
        )
        ax.set_xlim(0, 100)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        for k, (col, _, _) in enumerate(shown):
            left = 0.0
            for j, (_, face, _, colour) in JUDGEMENTS.items():
                share = 100 * sum(wi for wi, r in zip(w, grid, strict=True) if r[k] == j) / total
                if share <= 0:
                    continue
                ax.add_patch(
                    Rectangle(
                        (left, k - 0.36),
                        share,
                        0.72,
                        facecolor=face,
                        edgecolor="white",
                        lw=0.8,
                        gid=f"bar-{col}-{j}",
                    )
                )
                text = f"{share:.0f}%" if abs(share - round(share)) < 0.05 else f"{share:.1f}%"
                if text_width_in(text, SMALL_SIZE) + 0.08 <= share / 100 * plot_w:  # fits
                    _text(ax, left + share / 2, k, text, "share", ha="center")
                    ax.texts[-1].set_color(colour)
                left += share
        ax.set_yticks(range(len(shown)), ylabels)
        for tick, (_, h, _) in zip(ax.get_yticklabels(), shown, strict=True):
            tick.set_fontweight("bold" if h == "Overall" else "normal")
        ax.tick_params(axis="y", length=0)
        ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_xlabel("Studies (weighted)" if weights is not None else "Studies")
        used = [j for j in JUDGEMENTS if any(j in r for r in grid)]
        fig.legend(
            [Rectangle((0, 0), 1, 1, facecolor=JUDGEMENTS[j][1]) for j in used],
            [JUDGEMENTS[j][0] for j in used],
            loc="lower right",
            ncols=4,
            frameon=False,
            bbox_to_anchor=((x_ax + plot_w + 0.1) / width, 0.0),  # under the bars, right-aligned
        )
        if title:
            fig.text(
                MARGIN_IN / width,
                1 - 0.1 / height,
                title,
                ha="left",
                va="top",
                fontsize=FONT_SIZE + 2,
                fontweight="bold",
                parse_math=False,
            )
    return fig


def _weights(table: Any, weights, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    if isinstance(weights, str):
        records = _records(table)
        if weights not in _columns(records, table):
            raise ValueError(f"weights: column {weights!r} not found in the table")
        values, where = [r.get(weights) for r in records], f"weights column {weights!r}"
    else:
        values, where = list(weights), "weights"
    if len(values) != n:
        raise ValueError(f"{where}: {len(values)} weights for {n} studies")
    out = []
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        if not (math.isfinite(f) and f >= 0):
            raise ValueError(f"{where}: row {i} has {v!r}; weights must be finite and >= 0")
        out.append(f)
    if sum(out) <= 0:
        raise ValueError(f"{where}: the weights sum to 0")
    return out
