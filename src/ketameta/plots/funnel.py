"""Funnel plot of a `MetaResult`: effects against their standard errors, with the pseudo-CI
region around the pooled estimate or, optionally, contour-enhanced (p < .01, .05, .10 regions
around the null), and trim-and-fill's filled studies as open circles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import special

from ketameta.plots._style import (
    KetametaFigure,
    is_ratio,
    measure_names,
    set_ratio_axis,
    style_context,
)

# significance contours, from the null outwards: (p, shade of the band beyond it); inside the
# innermost (p > 0.10) is white. Darker = more significant; the darkest still shows black dots.
CONTOURS = ((0.10, "0.90"), (0.05, "0.80"), (0.01, "0.70"))
OUTSIDE = "0.93"  # pseudo-CI mode: everything outside the funnel


def _z(two_sided_p: float) -> float:
    return float(-special.ndtri(two_sided_p / 2.0))


def _filled_arrays(filled: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(filled, "filled_yi"):
        fy, fv = filled.filled_yi, filled.filled_vi
    else:
        try:
            fy, fv = filled
        except (TypeError, ValueError):
            raise ValueError(
                "filled must be (yi, vi) arrays or a trim-and-fill result with filled_yi/filled_vi"
            ) from None
    fy, fv = np.atleast_1d(np.asarray(fy, float)), np.atleast_1d(np.asarray(fv, float))
    if fy.shape != fv.shape:
        raise ValueError(f"filled: yi and vi differ in length ({fy.size} and {fv.size})")
    bad = ~(np.isfinite(fy) & np.isfinite(fv) & (fv > 0))
    if bad.any():
        raise ValueError(
            f"filled: entries {np.flatnonzero(bad).tolist()} need finite yi and vi > 0"
        )
    return fy, fv


def funnel(
    result: Any,
    *,
    contours: bool = False,
    filled: Any = None,
    title: str | None = None,
    xlabel: str | None = None,
    width: float = 6.0,
    height: float = 5.0,
) -> Figure:
    """Draw a funnel plot (standard error on the y axis, 0 at the top).

    Parameters
    ----------
    result : MetaResult
        Read only: ``yi``, ``vi``, ``estimate``, ``level``, ``measure``.
    contours : bool
        Contour-enhanced: shade the regions where a study's two-sided p-value (against the
        null) is in (.05, .10], (.01, .05] and below .01, instead of the pseudo-confidence
        region around the pooled estimate.
    filled : (yi, vi) arrays or a trim-and-fill result, optional
        Studies imputed by trim-and-fill, drawn as open circles (from ``filled_yi``,
        ``filled_vi`` of a result); the adjusted estimate is drawn too when the result has it.
    title, xlabel : str, optional
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; gids: ``"studies"``, ``"filled"``, ``"pseudo-ci"``, ``"contour-0.1"``, ...

    Examples
    --------
    >>> from ketameta import meta
    >>> fig = funnel(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    >>> [len(c.get_offsets()) for c in fig.axes[0].collections if c.get_gid() == "studies"]
    [3]
    """
    ratio = is_ratio(getattr(result, "measure", None))
    tf = np.exp if ratio else (lambda v: v)
    yi, se = np.asarray(result.yi, float), np.sqrt(np.asarray(result.vi, float))
    fy, fse = np.empty(0), np.empty(0)
    adjusted = None
    if filled is not None:
        fy, fv = _filled_arrays(filled)
        fse = np.sqrt(fv)
        adjusted = getattr(getattr(filled, "result", None), "estimate", None)
    se_max = float(np.max(np.concatenate([se, fse]))) * 1.05 if se.size else 1.0
    centre = 0.0 if contours else float(result.estimate)
    z_level = _z(1 - result.level / 100.0)
    z_widest = _z(CONTOURS[-1][0]) if contours else z_level
    points = np.concatenate([yi, fy, [result.estimate]])
    half = max(float(np.max(np.abs(points - centre))), z_widest * se_max) * 1.06
    lims = (centre - half, centre + half)
    grid = np.linspace(0.0, se_max, 2)  # funnel edges are straight lines in (effect, se)
    with style_context():
        fig = KetametaFigure(figsize=(width, height))
        ax = fig.add_subplot()
        if ratio:
            ax.set_xscale("log")
        handles = []
        if contours:
            ax.set_facecolor(CONTOURS[-1][1])
            # |y| <= z(p) se is where p > p_cut: fill from the widest band to the narrowest
            for p, fill in zip(
                (0.01, 0.05, 0.10), (CONTOURS[1][1], CONTOURS[0][1], "white"), strict=True
            ):
                z = _z(p)
                ax.fill_betweenx(
                    grid,
                    tf(centre - z * grid),
                    tf(centre + z * grid),
                    color=fill,
                    lw=0,
                    zorder=0,
                    gid=f"contour-{p:g}",
                )
            labels = ["p > 0.10", "0.05 < p ≤ 0.10", "0.01 < p ≤ 0.05", "p ≤ 0.01"]
            handles = [
                Patch(facecolor=c, edgecolor="0.4", lw=0.5, label=lab)
                for lab, c in zip(labels, ("white", *(c for _, c in CONTOURS)), strict=True)
            ]
            ax.plot([tf(0.0)] * 2, [0, se_max], color="0.3", lw=0.8, zorder=1)
        else:
            ax.set_facecolor(OUTSIDE)
            ax.fill_betweenx(
                grid,
                tf(centre - z_level * grid),
                tf(centre + z_level * grid),
                color="white",
                zorder=0,
                gid="pseudo-ci",
            )
            for sign in (-1, 1):
                ax.plot(tf(centre + sign * z_level * grid), grid, color="0.45", lw=0.8, ls="--")
            handles.append(
                Patch(
                    facecolor="white",
                    edgecolor="0.45",
                    ls="--",
                    label=f"{result.level:g}% pseudo-confidence region",
                )
            )
        ax.plot([tf(result.estimate)] * 2, [0, se_max], color="0.2", lw=0.9, ls=":", zorder=1)
        handles.append(Line2D([], [], color="0.2", lw=0.9, ls=":", label="pooled estimate"))
        if adjusted is not None and math.isfinite(adjusted):
            ax.plot([tf(adjusted)] * 2, [0, se_max], color="#1f4e79", lw=0.9, ls="-.", zorder=1)
            handles.append(
                Line2D([], [], color="#1f4e79", lw=0.9, ls="-.", label="adjusted (trim-and-fill)")
            )
        ax.scatter(tf(yi), se, color="black", s=26, zorder=4, gid="studies")
        handles.append(Line2D([], [], color="black", marker="o", ls="none", ms=5, label="studies"))
        if fy.size:
            ax.scatter(
                tf(fy), fse, facecolors="white", edgecolors="black", s=26, zorder=3, gid="filled"
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    mfc="white",
                    mec="black",
                    marker="o",
                    ls="none",
                    ms=5,
                    label="filled studies (trim-and-fill)",
                )
            )
        ax.set_ylim(se_max, 0.0)
        ax.set_xlim(tf(lims[0]), tf(lims[1]))
        if ratio:
            set_ratio_axis(ax.xaxis, tf(lims[0]), tf(lims[1]))
        ax.set_ylabel("Standard error")
        ax.set_xlabel(xlabel or measure_names(getattr(result, "measure", None))[1])
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=3,
            frameon=False,
            handlelength=1.6,
            columnspacing=1.2,
        )
        if title:
            ax.set_title(title, loc="left", fontweight="bold")
        fig.subplots_adjust(
            bottom=0.25 if len(handles) > 3 else 0.2, top=0.92, left=0.12, right=0.97
        )
    return fig
