"""Forest plot of a Bayesian random-effects result: each study's observed effect (open) and its
posterior (shrinkage) estimate (filled), the posterior of mu as a diamond and the posterior
predictive interval of a new study. It draws the rows of ``result.records()`` and the pooled
and predictive fields of the result; it computes nothing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ketameta.plots._style import (
    KetametaFigure,
    fmt,
    is_ratio,
    measure_names,
    set_ratio_axis,
    style_context,
)

INK = "#222222"
POSTERIOR = "#1f4e79"


def bayes_forest(result: Any, *, title: str | None = None, digits: int = 2) -> Figure:
    """Draw observed effects, shrinkage intervals and the posterior of mu.

    Parameters
    ----------
    result : BayesResult
        From `ketameta.meta_bayes`; the study rows are ``result.records()`` (observed
        interval and shrinkage median with its interval), the diamond is ``estimate``,
        ``ci_low``, ``ci_high`` and the predictive bar ``pi_low``, ``pi_high``.
    title : str, optional
        Shown at the top left.
    digits : int
        Decimals of the numbers on the right.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (plot, right-hand text); artists carry gids ``"observed"``, ``"shrinkage"``,
        ``"diamond-posterior"`` and ``"predictive"``.

    Examples
    --------
    >>> from ketameta import meta_bayes
    >>> fig = bayes_forest(meta_bayes([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    >>> len(fig.axes)
    2
    """
    rec = result.records()
    ratio = is_ratio(result.measure)
    tf = np.exp if ratio else (lambda v: np.asarray(v, dtype=float))
    k = len(rec)
    n_rows = k + 3
    height = 0.3 * (n_rows + 1) + 1.3
    lows = np.concatenate([rec["ci_low"], rec["shrink_low"], [result.pi_low]])
    highs = np.concatenate([rec["ci_high"], rec["shrink_high"], [result.pi_high]])
    lo, hi = float(np.min(lows)), float(np.max(highs))
    pad = 0.05 * (hi - lo or 1.0)
    with style_context():
        fig = KetametaFigure(figsize=(8.0, height))
        ax = fig.add_axes((0.30, 0.9 / height, 0.42, 1 - 1.3 / height))
        right = fig.add_axes((0.74, 0.9 / height, 0.25, 1 - 1.3 / height))
        right.set_axis_off()
        y = np.arange(n_rows, 0, -1, dtype=float)
        for i, row in enumerate(rec.itertuples(index=False)):
            yy = y[i]
            ax.plot(tf([row.ci_low, row.ci_high]), [yy + 0.12] * 2, color="#888888", lw=1,
                    gid="observed")  # fmt: skip
            ax.plot(tf(row.yi), yy + 0.12, "o", mfc="white", mec="#888888", ms=5,
                    gid="observed")  # fmt: skip
            ax.plot(tf([row.shrink_low, row.shrink_high]), [yy - 0.12] * 2, color=INK, lw=1.2,
                    gid="shrinkage")  # fmt: skip
            ax.plot(tf(row.shrink_median), yy - 0.12, "s", color=INK, ms=5, gid="shrinkage")
            right.text(0.0, yy, f"{fmt(float(tf(row.shrink_median)), digits)} "
                       f"[{fmt(float(tf(row.shrink_low)), digits)}, "
                       f"{fmt(float(tf(row.shrink_high)), digits)}]", va="center")  # fmt: skip
        yd = y[k + 1]
        xs = tf([result.ci_low, result.estimate, result.ci_high, result.estimate])
        ax.add_patch(
            Polygon(
                np.column_stack([xs, [yd, yd + 0.25, yd, yd - 0.25]]),
                closed=True,
                color=POSTERIOR,
                gid="diamond-posterior",
            )
        )
        yp = y[k + 2]
        ax.plot(tf([result.pi_low, result.pi_high]), [yp, yp], color=POSTERIOR, lw=2.5,
                gid="predictive")  # fmt: skip

        def show(value: float) -> str:
            return fmt(float(tf(value)), digits)

        pooled = f"{show(result.estimate)} [{show(result.ci_low)}, {show(result.ci_high)}]"
        for yy, text in ((yd, pooled), (yp, f"[{show(result.pi_low)}, {show(result.pi_high)}]")):
            right.text(0.0, yy, text, va="center", weight="bold" if yy == yd else "normal")
        null = 1.0 if ratio else 0.0
        ax.axvline(null, color=INK, lw=0.8)
        if ratio:
            ax.set_xscale("log")
            ax.set_xlim(math.exp(lo - pad), math.exp(hi + pad))
            set_ratio_axis(ax.xaxis, math.exp(lo - pad), math.exp(hi + pad))
        else:
            ax.set_xlim(lo - pad, hi + pad)
        for a in (ax, right):
            a.set_ylim(0.4, n_rows + 1.2)
        ax.set_yticks(
            [*y[:k], yd, yp],
            [*rec["label"], "Posterior of mu (median, interval)", "Predictive (new study)"],
        )
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(measure_names(result.measure)[1])
        right.text(0.0, n_rows + 0.85, f"Posterior median [{result.level:g}% interval]",
                   weight="bold", va="center")  # fmt: skip
        head = title or "Bayesian random-effects model"
        fig.text(0.01, 1 - 0.25 / height, head, weight="bold", va="center")
        fig.text(0.01, 0.25 / height, f"prior for tau: {result.prior}; open circles: observed "
                 "effects; squares: posterior (shrinkage) estimates", fontsize=7.5,
                 va="center")  # fmt: skip
    return fig
