"""Forest plots of a `MetaResult` or a `SubgroupResult`, drawn only from what the result holds.

Layout: a left text panel (study label and, where the data have them, per-arm n with mean (SD)
or events/total), the plot panel (squares sized by weight, CI whiskers with arrows where a CI
runs past the axis, diamonds for pooled estimates, an optional prediction-interval bar, the null
line and "favours" labels that follow the sign convention) and a right text panel (estimate
[CI] and weight). Ratio measures are drawn on a log axis with plain tick labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from matplotlib.ticker import FixedLocator, NullLocator

from ketameta.plots._style import fmt, is_ratio, shorten, style_context

ROW_HEIGHT_IN = 0.26


@dataclass
class _Row:
    kind: str  # "study", "heading", "diamond", "text", "blank", "pi"
    label: str = ""
    est: float = np.nan
    low: float = np.nan
    high: float = np.nan
    weight: float = np.nan
    left: tuple[str, ...] = ()
    right: str = ""
    gid: str = ""


def _arm_text(data: Any, i: int) -> tuple[str, ...]:
    if data is None:
        return ()
    row = data.iloc[i]

    def num(name: str) -> float:
        try:
            return float(row.get(name, np.nan))
        except (TypeError, ValueError):
            return np.nan

    if np.isfinite(num("events1")) and np.isfinite(num("n1")) and np.isfinite(num("n2")):
        return (f"{num('events1'):.0f}/{num('n1'):.0f}", f"{num('events2'):.0f}/{num('n2'):.0f}")
    cols = []
    for arm in ("1", "2"):
        n, m, sd = num(f"n{arm}"), num(f"mean{arm}"), num(f"sd{arm}")
        if np.isfinite(n) and np.isfinite(m) and np.isfinite(sd):
            cols.append(f"{n:.0f}  {fmt(m, 1)} ({sd:.1f})")
        elif np.isfinite(n):
            cols.append(f"{n:.0f}")
        else:
            cols.append("")
    return tuple(cols)


def _study_rows(res: Any, order: str | None, label_chars: int, arms: bool) -> list[_Row]:
    z = res.ci_z if hasattr(res, "ci_z") else 1.959963984540054
    se = np.sqrt(res.vi)
    idx = np.arange(res.k)
    if order == "effect":
        idx = np.argsort(res.yi, kind="stable")
    elif order == "weight":
        idx = np.argsort(-np.asarray(res.weights), kind="stable")
    elif order == "year" and res.data is not None and "year" in res.data.columns:
        idx = np.argsort(res.data["year"].to_numpy(dtype=float), kind="stable")
    rows = []
    for i in idx:
        low, high = res.yi[i] - z * se[i], res.yi[i] + z * se[i]
        rows.append(
            _Row(
                "study",
                shorten(res.labels[i], label_chars),
                res.yi[i],
                low,
                high,
                float(res.weights[i]),
                _arm_text(res.data, int(i)) if arms else (),
                gid="study",
            )
        )
    return rows


def _het_text(res: Any) -> str:
    if res.k < 2:
        return "Heterogeneity: not estimable (k = 1)"
    return (
        f"Heterogeneity: τ² = {res.tau2:.3f}; I² = {res.i2:.1f}%; "
        f"Q = {res.q:.2f}, df = {res.q_df}, {_p(res.q_pvalue)}"
    )


def _p(p: float) -> str:
    """``p < 0.001`` or ``p = 0.042`` (the text includes its relation sign)."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pooled_label(res: Any, title: str) -> str:
    model = "common-effect" if res.method in ("EE", "FE") else f"random-effects, {res.method}"
    test = ", Hartung-Knapp" if res.test == "knha" else ""
    return f"{title} ({model}{test}; k = {res.k})"


def _build_rows(result: Any, order, label_chars, arms, show_pi) -> tuple[list[_Row], Any, str]:
    from ketameta.subgroup import SubgroupResult

    rows: list[_Row] = []
    footer = ""
    if isinstance(result, SubgroupResult):
        for level in result.levels:
            res = result.results[level]
            rows.append(_Row("heading", shorten(f"{result.by}: {level}", label_chars)))
            rows += _study_rows(res, order, label_chars, arms)
            if level in result.flagged:
                rows.append(_Row("text", "k = 1: not pooled"))
            else:
                rows.append(
                    _Row(
                        "diamond",
                        _pooled_label(res, "Subtotal"),
                        res.estimate,
                        res.ci_low,
                        res.ci_high,
                        gid=f"diamond-{level}",
                    )
                )
                rows.append(_Row("text", _het_text(res)))
            rows.append(_Row("blank"))
        overall = result.overall
        tests = []
        if result.test_separate is not None:
            t = result.test_separate
            tests.append(f"χ² = {t.statistic:.2f}, df = {t.df}, {_p(t.pvalue)} (separate τ²)")
        if result.test_common is not None:
            t = result.test_common
            name = "F" if t.test == "F" else "QM"
            df = f"{t.df[0]}, {t.df[1]}" if isinstance(t.df, tuple) else f"{t.df}"
            tests.append(f"{name} = {t.statistic:.2f}, df = {df}, {_p(t.pvalue)} (common τ²)")
        footer = "\n".join(
            ("Test for subgroup differences: " if i == 0 else "    ") + t
            for i, t in enumerate(tests)
        )
    else:
        overall = result
        rows += _study_rows(result, order, label_chars, arms)
        rows.append(_Row("blank"))
    if overall is not None:
        rows.append(
            _Row(
                "diamond",
                _pooled_label(overall, "Overall"),
                overall.estimate,
                overall.ci_low,
                overall.ci_high,
                gid="diamond-overall",
            )
        )
        if show_pi and overall.k > 1 and np.isfinite(overall.pi_low):
            rows.append(
                _Row(
                    "pi",
                    "Prediction interval",
                    overall.estimate,
                    overall.pi_low,
                    overall.pi_high,
                    gid="pi",
                )
            )
        rows.append(_Row("text", _het_text(overall)))
    for line in footer.split("\n") if footer else []:
        rows.append(_Row("text", line, gid="subgroup-test"))
    return rows, overall, footer


def forest(
    result: Any,
    *,
    title: str | None = None,
    sort: Literal["year", "effect", "weight"] | None = None,
    show_arms: bool = True,
    show_weights: bool = True,
    prediction_interval: bool = True,
    group_labels: tuple[str, str] = ("ketamine", "control"),
    xlim: tuple[float, float] | None = None,
    xlabel: str | None = None,
    label_chars: int = 45,
    width: float = 11.0,
) -> Figure:
    """Draw a forest plot of a pooled result or a subgroup result.

    Parameters
    ----------
    result : MetaResult or SubgroupResult
        What to draw; the plot computes no statistics.
    title : str, optional
    sort : {"year", "effect", "weight"}, optional
        Study order within each block (default: the result's order).
    show_arms, show_weights : bool
        Per-arm n with mean (SD) or events/total (when the result's data hold them); weights.
    prediction_interval : bool
        Draw the overall prediction interval as a bar under the overall diamond.
    group_labels : (str, str)
        Names of group 1 and group 2 for the "Favours ..." labels.
    xlim : (float, float), optional
        Axis limits on the display scale (ratios: back-transformed). CIs past them get arrows.
    label_chars : int
        Study labels longer than this are shortened with an ellipsis.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from ketameta import meta
    >>> fig = forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    >>> len([a for a in fig.axes[1].patches if a.get_gid() == "study"])
    3
    """
    ratio = is_ratio(
        getattr(result, "measure", None)
        or getattr(getattr(result, "overall", None), "measure", None)
    )
    rows, overall, _ = _build_rows(result, sort, label_chars, show_arms, prediction_interval)
    tf = np.exp if ratio else (lambda x: x)
    n = len(rows)
    y = np.arange(n, 0, -1, dtype=float)
    with style_context():
        fig = Figure(figsize=(width, ROW_HEIGHT_IN * (n + 4) + 0.6))
        grid = fig.add_gridspec(
            1,
            3,
            width_ratios=(4.2, 3.6, 2.4),
            wspace=0.02,
            left=0.01,
            right=0.99,
            top=1 - 0.55 / fig.get_figheight(),
            bottom=1.0 / fig.get_figheight(),
        )
        ax_left, ax, ax_right = (fig.add_subplot(grid[0, i]) for i in range(3))
        for a in (ax_left, ax_right):
            a.set_axis_off()
        for a in (ax_left, ax, ax_right):
            a.set_ylim(0.3, n + 1.3)
            a.patch.set_visible(False)  # text rows may run on over the (empty) plot panel
        finite = [v for r in rows for v in (r.low, r.high, r.est) if np.isfinite(v)]
        if xlim is None:
            lo, hi = (min(finite), max(finite)) if finite else (-1.0, 1.0)
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            pad = 0.05 * (hi - lo or 1.0)
            lims = (lo - pad, hi + pad)
        else:
            lims = (np.log(xlim[0]), np.log(xlim[1])) if ratio else tuple(xlim)
        ax.set_xlim(*lims)
        ax.axvline(0.0, color="0.35", lw=0.8, zorder=0)
        if overall is not None and np.isfinite(overall.estimate):
            ax.axvline(overall.estimate, color="0.6", lw=0.7, ls=":", zorder=0)
        max_w = max([r.weight for r in rows if r.kind == "study"] + [1e-9])
        header_y = n + 1.0
        ax_left.text(0.0, header_y, "Study", fontweight="bold", va="center", parse_math=False)
        arm_cols = show_arms and any(r.left for r in rows)
        if arm_cols:
            for x, name in (
                (0.62, group_labels[0].capitalize()),
                (0.84, group_labels[1].capitalize()),
            ):
                ax_left.text(
                    x, header_y, name, fontweight="bold", ha="center", va="center", parse_math=False
                )
        ax_right.text(
            0.05,
            header_y,
            "Estimate [95% CI]".replace("95", f"{_level(overall)}"),
            fontweight="bold",
            va="center",
        )
        if show_weights:
            ax_right.text(0.98, header_y, "Weight", fontweight="bold", ha="right", va="center")
        for r, yy in zip(rows, y, strict=True):
            bold = r.kind in ("heading", "diamond")
            style = "italic" if r.kind in ("text", "pi") else "normal"
            ax_left.text(
                0.0,
                yy,
                r.label,
                va="center",
                fontweight="bold" if bold else "normal",
                fontstyle=style,
                parse_math=False,
                fontsize=8 if r.kind == "text" else 9,
                gid=r.gid or f"label-{r.kind}",
                zorder=5,
            )
            if r.kind == "study":
                for x, txt in zip((0.62, 0.84), r.left, strict=False):
                    ax_left.text(x, yy, txt, ha="center", va="center", fontsize=8, parse_math=False)
                _whisker(ax, yy, r.low, r.high, lims)
                size = 0.12 + 0.28 * np.sqrt(r.weight / max_w)
                ax.add_patch(_square(r.est, yy, size, ax, lims))
            elif r.kind == "diamond":
                ax.add_patch(
                    Polygon(
                        [(r.low, yy), (r.est, yy + 0.3), (r.high, yy), (r.est, yy - 0.3)],
                        closed=True,
                        color="#1f4e79",
                        gid=r.gid,
                    )
                )
            elif r.kind == "pi":
                ax.plot(
                    [r.low, r.high],
                    [yy, yy],
                    color="#1f4e79",
                    lw=2.2,
                    solid_capstyle="butt",
                    gid="pi",
                )
            if r.kind in ("study", "diamond", "pi"):
                est_txt = f"{fmt(tf(r.est))} [{fmt(tf(r.low))}, {fmt(tf(r.high))}]"
                if r.kind == "pi":
                    est_txt = f"[{fmt(tf(r.low))}, {fmt(tf(r.high))}]"
                ax_right.text(0.05, yy, est_txt, va="center", fontweight="bold" if bold else None)
                if show_weights and r.kind == "study":
                    ax_right.text(0.98, yy, f"{r.weight:.1f}%", ha="right", va="center")
        ax.yaxis.set_major_locator(NullLocator())
        _x_axis(ax, lims, ratio)
        left_lab, right_lab = (f"Favours {group_labels[0]}", f"Favours {group_labels[1]}")
        fav = getattr(overall, "favours_group1", None) if overall is not None else None
        if fav == "positive":
            left_lab, right_lab = right_lab, left_lab
        if fav in ("negative", "positive"):
            for x, text, ha, gid in (
                (0.0, "← " + left_lab, "left", "favours-left"),
                (1.0, right_lab + " →", "right", "favours-right"),
            ):
                ax.annotate(
                    text,
                    xy=(x, 0.0),
                    xycoords="axes fraction",
                    xytext=(0, -24),
                    textcoords="offset points",
                    ha=ha,
                    va="top",
                    fontsize=8,
                    gid=gid,
                )
        if xlabel or getattr(overall, "measure", None):
            ax.set_xlabel(xlabel or _measure_label(overall.measure), labelpad=18 if fav else 4)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontweight="bold", parse_math=False)
    return fig


def _level(res: Any) -> str:
    return f"{getattr(res, 'level', 95):g}" if res is not None else "95"


def _measure_label(measure: str) -> str:
    return {
        "SMD": "Standardized mean difference (Hedges' g)",
        "MD": "Mean difference",
        "RR": "Risk ratio (log scale)",
        "OR": "Odds ratio (log scale)",
        "RD": "Risk difference",
        "ROM": "Ratio of means (log scale)",
        "GEN": "Effect (generic inverse variance)",
    }.get(measure, measure)


def _square(x: float, y: float, half_height: float, ax: Any, lims) -> Polygon:
    # a square in display proportions: its half-width in data units follows the axis aspect
    fig_w, fig_h = ax.figure.get_size_inches()
    box = ax.get_position()
    x_per_in = (lims[1] - lims[0]) / (box.width * fig_w)
    y_lo, y_hi = ax.get_ylim()
    y_per_in = (y_hi - y_lo) / (box.height * fig_h)
    half_w = half_height * x_per_in / y_per_in
    return Polygon(
        [
            (x - half_w, y - half_height),
            (x + half_w, y - half_height),
            (x + half_w, y + half_height),
            (x - half_w, y + half_height),
        ],
        closed=True,
        color="#2b2b2b",
        gid="study",
    )


def _whisker(ax: Any, y: float, low: float, high: float, lims) -> None:
    lo_c, hi_c = max(low, lims[0]), min(high, lims[1])
    ax.plot([lo_c, hi_c], [y, y], color="#2b2b2b", lw=1.0, gid="ci")
    for end, past in ((lims[0], low < lims[0]), (lims[1], high > lims[1])):
        if past:
            inward = hi_c if end == lims[0] else lo_c
            ax.annotate(
                "",
                xy=(end, y),
                xytext=(inward, y),
                arrowprops={"arrowstyle": "->", "lw": 1.0, "color": "#2b2b2b"},
                gid="ci-arrow",
            )


def _x_axis(ax: Any, lims, ratio: bool) -> None:
    if not ratio:
        return
    candidates = np.array([0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 20])
    logs = np.log(candidates)
    inside = candidates[(logs >= lims[0]) & (logs <= lims[1])]
    ax.xaxis.set_major_locator(FixedLocator(np.log(inside)))
    ax.set_xticklabels([f"{c:g}" for c in inside])
