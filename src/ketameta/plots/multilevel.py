"""Forest plot of a multilevel model: one block per study (cluster), its records beneath, and the
pooled estimate. It reads per-record rows and the pooled numbers; it computes nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ketameta.plots._style import KetametaFigure, fmt, shorten, style_context

INK = "#222222"
POOLED = "#1f4e79"


def forest_mv(
    yi: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    clusters: Sequence[str],
    records: Sequence[str],
    *,
    estimate: float,
    ci: tuple[float, float],
    pooled_label: str = "Pooled (multilevel model)",
    title: str | None = None,
    xlabel: str = "Standardized mean difference (Hedges' g)",
    group_labels: tuple[str, str] = ("ketamine", "control"),
    digits: int = 2,
) -> KetametaFigure:
    """Draw study blocks (bold heading) with their records beneath, and the pooled diamond.

    Parameters
    ----------
    yi, ci_low, ci_high : sequences
        Each record's effect and interval (e.g. `MetaMVResult.records`); the plot computes
        nothing.
    clusters, records : sequences of str
        Each record's study (block heading) and its own label within the study.
    estimate, ci : float, (float, float)
        The pooled estimate and its interval (e.g. cluster-robust).

    Returns
    -------
    KetametaFigure
        Three axes (plot, right-hand text, left-hand labels); record markers have gid
        ``"record"``, headings ``"study-heading"``, the diamond ``"diamond-overall"``.

    Examples
    --------
    >>> fig = forest_mv([-0.5, -0.3, -0.4], [-0.9, -0.7, -0.7], [-0.1, 0.1, -0.1], ["A", "A", "B"],
    ...                 ["24 h", "day 7", "24 h"], estimate=-0.4, ci=(-0.6, -0.2))
    >>> len(fig.axes)
    3
    """
    y_ = np.asarray(yi, dtype=float)
    low, high = np.asarray(ci_low, dtype=float), np.asarray(ci_high, dtype=float)
    order = list(dict.fromkeys(clusters))
    rows: list[tuple[str, str, int | None]] = []  # (kind, text, record index)
    for study in order:
        rows.append(("heading", study, None))
        for i, c in enumerate(clusters):
            if c == study:
                rows.append(("record", str(records[i]), i))
    rows += [("blank", "", None), ("pooled", pooled_label, None)]
    n = len(rows)
    height = 0.24 * n + 1.4
    lo = float(min(low.min(), ci[0]))
    hi = float(max(high.max(), ci[1], 0.0))
    pad = 0.05 * (hi - lo or 1.0)
    with style_context():
        fig = KetametaFigure(figsize=(8.0, height))
        ax = fig.add_axes((0.36, 1.0 / height, 0.38, 1 - 1.35 / height))
        right = fig.add_axes((0.76, 1.0 / height, 0.23, 1 - 1.35 / height))
        left = fig.add_axes((0.01, 1.0 / height, 0.34, 1 - 1.35 / height))
        for a in (ax, right, left):
            a.set_ylim(0.4, n + 0.8)
        for a in (right, left):
            a.set_axis_off()
        ys = np.arange(n, 0, -1, dtype=float)
        for (kind, text, i), yy in zip(rows, ys, strict=True):
            if kind == "heading":
                left.text(0.0, yy, text, weight="bold", va="center", gid="study-heading")
            elif kind == "record":
                left.text(0.06, yy, shorten(text, 44), va="center")
                ax.plot([low[i], high[i]], [yy, yy], color=INK, lw=1)
                ax.plot(y_[i], yy, "s", color=INK, ms=4, gid="record")
                right.text(0.0, yy, f"{fmt(y_[i], digits)} [{fmt(low[i], digits)}, "
                           f"{fmt(high[i], digits)}]", va="center")  # fmt: skip
            elif kind == "pooled":
                left.text(0.0, yy, text, weight="bold", va="center")
                xs = [ci[0], estimate, ci[1], estimate]
                ax.fill(xs, [yy, yy + 0.3, yy, yy - 0.3], color=POOLED, gid="diamond-overall")
                right.text(0.0, yy, f"{fmt(estimate, digits)} [{fmt(ci[0], digits)}, "
                           f"{fmt(ci[1], digits)}]", va="center", weight="bold")  # fmt: skip
        ax.axvline(0.0, color=INK, lw=0.8)
        ax.axvline(estimate, color=POOLED, lw=0.6, ls=":")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks([])
        ax.set_xlabel(xlabel)
        for x, ha, words in ((0.0, "left", f"← Favours {group_labels[0]}"),
                             (1.0, "right", f"Favours {group_labels[1]} →")):  # fmt: skip
            ax.annotate(words, (x, 0.0), xycoords="axes fraction", xytext=(0, -36),
                        textcoords="offset points", ha=ha, va="top", fontsize=8)  # fmt: skip
        right.text(0.0, n + 0.55, "Estimate [95% CI]", weight="bold", va="center")
        if title:
            fig.text(0.01, 1 - 0.2 / height, title, weight="bold", va="center")
    return fig
