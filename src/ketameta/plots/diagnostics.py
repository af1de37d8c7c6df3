"""Diagnostic figures that read sensitivity results: leave-one-out / cumulative estimates,
Baujat plot and GOSH scatter. They compute nothing; pass the DataFrames from
`ketameta.synthesis.sensitivity`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ketameta.plots._style import KetametaFigure, style_context


def estimates_plot(
    table: pd.DataFrame,
    *,
    title: str = "",
    reference: float | None = None,
    xlabel: str = "Estimate",
) -> Figure:
    """Estimates with CIs, one row per refit (``leave_one_out()`` or ``cumulative()`` output).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"estimate": [0.1, 0.2], "ci_low": [0.0, 0.1], "ci_high": [0.2, 0.3]},
    ...                  index=["a", "b"])
    >>> len(estimates_plot(t).axes[0].lines)
    3
    """
    n = len(table)
    with style_context():
        fig = KetametaFigure(figsize=(7.5, 0.3 * n + 1.4))
        ax = fig.add_subplot()
        y = np.arange(n, 0, -1)
        for yy, (_, row) in zip(y, table.iterrows(), strict=True):
            ax.plot([row["ci_low"], row["ci_high"]], [yy, yy], color="#2b2b2b", lw=1, gid="ci")
        ax.scatter(table["estimate"], y, marker="s", color="#1f4e79", zorder=3, gid="estimates")
        ax.axvline(0.0, color="0.4", lw=0.8)
        if reference is not None:
            ax.axvline(reference, color="0.6", lw=0.8, ls=":")
        ax.set_yticks(y, [str(i) for i in table.index])
        ax.set_ylim(0.4, n + 0.6)
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
        fig.tight_layout()
    return fig


def baujat_plot(table: pd.DataFrame, *, title: str = "Baujat plot") -> Figure:
    """Contribution to Q (x) against influence on the pooled estimate (y), labelled by study."""
    with style_context():
        fig = KetametaFigure(figsize=(6.0, 5.0))
        ax = fig.add_subplot()
        ax.scatter(table["x"], table["y"], color="#1f4e79", gid="studies")
        for label, row in table.iterrows():
            ax.annotate(
                str(label),
                (row["x"], row["y"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("Contribution to overall heterogeneity (Q)")
        ax.set_ylabel("Influence on the pooled estimate")
        ax.set_title(title, loc="left", fontweight="bold")
        fig.tight_layout()
    return fig


def gosh_plot(table: pd.DataFrame, *, title: str = "GOSH plot") -> Figure:
    """Pooled estimate against I² for every subset (hexbin density for many subsets)."""
    with style_context():
        fig = KetametaFigure(figsize=(6.0, 5.0))
        ax = fig.add_subplot()
        ok = table["k"] > 1
        if ok.sum() > 2000:
            ax.hexbin(
                table.loc[ok, "estimate"],
                table.loc[ok, "i2"],
                gridsize=60,
                bins="log",
                cmap="Blues",
                gid="density",
            )
        else:
            ax.scatter(
                table.loc[ok, "estimate"],
                table.loc[ok, "i2"],
                s=6,
                alpha=0.5,
                color="#1f4e79",
                gid="subsets",
            )
        ax.set_xlabel("Pooled estimate")
        ax.set_ylabel("I² (%)")
        ax.set_title(title, loc="left", fontweight="bold")
        fig.tight_layout()
    return fig


INFLUENCE_PANELS = (
    ("rstudent", "rstudent"),
    ("dffits", "DFFITS"),
    ("cooks_d", "Cook's distance"),
    ("cov_ratio", "covariance ratio"),
    ("tau2_del", "tau² (deleted)"),
    ("qe_del", "QE (deleted)"),
    ("hat", "hat"),
    ("weight", "weight (%)"),
)


def influence_panel(table: pd.DataFrame, *, title: str = "Influence diagnostics") -> Figure:
    """metafor-style panel of the `influence` table: one small plot per
    measure, studies on the x axis, influential studies marked in red."""
    flags = table["influential"].to_numpy(bool)
    x = np.arange(1, len(table) + 1)
    with style_context():
        fig = KetametaFigure(figsize=(10.0, 5.5))
        axes = fig.subplots(2, 4)
        for ax, (column, label) in zip(axes.ravel(), INFLUENCE_PANELS, strict=True):
            values = table[column].to_numpy(float)
            ax.plot(x, values, color="0.6", lw=0.8)
            ax.scatter(x[~flags], values[~flags], s=14, color="#1f4e79", gid="study")
            ax.scatter(x[flags], values[flags], s=18, color="#c0392b", gid="influential")
            ax.set_title(label, fontsize=9)
            ax.set_xticks(x if len(x) <= 20 else x[:: max(1, len(x) // 10)])
            ax.tick_params(labelsize=7)
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold")
        fig.tight_layout()
    return fig
