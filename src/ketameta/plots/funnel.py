"""Funnel plot of a `MetaResult`: effects against their standard errors, pseudo-CI region,
optionally contour-enhanced (p < .01, .05, .10) and with filled (trim-and-fill) studies."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator
from scipy import stats

from ketameta.plots._style import is_ratio, style_context

# drawn widest first: |y| < z(p) * se shaded, so each band shows 0.01 < p < 0.05 etc.
CONTOURS = ((0.01, "0.65"), (0.05, "0.80"), (0.10, "0.92"))


def funnel(
    result: Any,
    *,
    contours: bool = False,
    filled: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
    width: float = 6.0,
    height: float = 5.0,
) -> Figure:
    """Draw a funnel plot.

    Parameters
    ----------
    result : MetaResult
    contours : bool
        Shade the regions where a study's two-sided p-value is below .10, .05 and .01
        (centred on 0), instead of the pseudo-confidence region around the pooled estimate.
    filled : (yi, vi), optional
        Studies imputed by trim-and-fill, drawn as open circles.

    Examples
    --------
    >>> from ketameta import meta
    >>> fig = funnel(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    >>> len(fig.axes[0].collections[-1].get_offsets())
    3
    """
    ratio = is_ratio(getattr(result, "measure", None))
    se = np.sqrt(np.asarray(result.vi))
    se_max = float(np.max(se)) * 1.08 if se.size else 1.0
    grid = np.linspace(0.0, se_max, 100)
    with style_context():
        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot()
        if contours:
            for p, shade in CONTOURS:
                z = stats.norm.ppf(1 - p / 2)
                ax.fill_betweenx(
                    grid, -z * grid, z * grid, color=shade, lw=0, zorder=0, gid=f"contour-{p}"
                )
            ax.axvline(0.0, color="0.3", lw=0.8)
            labels = [
                ("p < 0.01", "white"),
                ("0.01 < p < 0.05", "0.65"),
                ("0.05 < p < 0.10", "0.80"),
                ("p > 0.10", "0.92"),
            ]
            from matplotlib.patches import Patch

            ax.legend(
                handles=[Patch(facecolor=c, edgecolor="0.5", label=lab) for lab, c in labels],
                loc="upper center",
                bbox_to_anchor=(0.5, -0.13),
                ncol=4,
                fontsize=8,
                frameon=False,
            )
        else:
            z = stats.norm.ppf(1 - (1 - result.level / 100) / 2)
            centre = result.estimate
            ax.fill_betweenx(
                grid, centre - z * grid, centre + z * grid, color="0.92", zorder=0, gid="pseudo-ci"
            )
            ax.plot(centre - z * grid, grid, color="0.5", lw=0.8, ls="--")
            ax.plot(centre + z * grid, grid, color="0.5", lw=0.8, ls="--")
            ax.axvline(centre, color="0.3", lw=0.8)
        if filled is not None:
            fy, fv = (np.asarray(a, dtype=float) for a in filled)
            ax.scatter(
                fy,
                np.sqrt(fv),
                facecolors="white",
                edgecolors="black",
                s=28,
                zorder=3,
                gid="filled",
                label="filled (trim-and-fill)",
            )
        ax.scatter(result.yi, se, color="black", s=28, zorder=4, gid="studies")
        ax.set_ylim(se_max, 0.0)
        ax.set_ylabel("Standard error")
        all_y = np.concatenate([np.asarray(result.yi), [result.estimate]])
        span = float(np.max(np.abs(all_y - result.estimate))) if all_y.size else 1.0
        half = max(span, stats.norm.ppf(0.995) * se_max) * 1.1
        lo, hi = min(result.estimate - half, -0.1), max(result.estimate + half, 0.1)
        ax.set_xlim(lo, hi)
        if ratio:
            ticks = np.array([0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 20])
            inside = ticks[(np.log(ticks) >= lo) & (np.log(ticks) <= hi)]
            ax.xaxis.set_major_locator(FixedLocator(np.log(inside)))
            ax.set_xticklabels([f"{t:g}" for t in inside])
            ax.set_xlabel(f"{result.measure} (log scale)")
        else:
            ax.set_xlabel(getattr(result, "measure", None) or "Effect size")
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
    return fig
