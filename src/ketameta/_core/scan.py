"""The score scan for every local maximum of the ML/REML likelihood in tau², and the bound on
its stationary points that the scan and Fisher scoring use.

Re-exported by :mod:`ketameta._core.iterative`; with numba the score on the grid is the kernel
``_jit_kernels.score_on_grid``.
"""

from __future__ import annotations

import numpy as np

from ketameta._core import jit
from ketameta._core.solver_base import _flatten


def row_max_min(a, *, high=True, low=True):
    """Largest and/or smallest entry of each row (last axis): ``(max, min)``, or one of them.

    For an ``(n, k)`` array with short rows the reductions run down the columns of a
    transposed copy (numpy reduces a short last axis element by element, ~4x slower); max and
    min are exact, so the values are those of ``a.max(axis=-1)`` and ``a.min(axis=-1)``.
    """
    if a.ndim == 2 and a.shape[-1] <= 64 and a.shape[0] >= 64:
        a = np.ascontiguousarray(a.T)
        axis = 0
    else:
        axis = -1
    out = []
    if high:
        out.append(np.maximum.reduce(a, axis=axis))
    if low:
        out.append(np.minimum.reduce(a, axis=axis))
    return tuple(out) if len(out) > 1 else out[0]


def score_root_upper(y, v, mm, reml):
    """An upper bound on every stationary point of the (restricted) likelihood in tau².

    With R the range of the yi, every residual about a weighted mean has |e| <= R. ML: the
    score sum w (w e² - 1) is negative once tau² >= R². REML: y'PPy <= R² w_max sum w and
    tr P >= sum w - w_max; for tau² >= 2 max vi, w_max / sum w <= 3 / (2k) <= 3/4, so the score
    is negative once also tau² > 4 R². Returned with a 1% margin (at least 1e-300).
    """
    if mm is None:
        y_hi, y_lo = row_max_min(y)
        vmax = row_max_min(v, low=False)
    else:
        on = mm > 0
        y_hi = row_max_min(np.where(on, y, -np.inf), low=False)
        y_lo = row_max_min(np.where(on, y, np.inf), high=False)
        vmax = row_max_min(np.where(on, v, 0.0), low=False)
    r = y_hi - y_lo
    with np.errstate(over="ignore", invalid="ignore"):
        bound = np.maximum(2.0 * vmax, 4.0 * r * r) if reml else r * r
        return np.maximum(1.01 * bound, 1e-300)


_SCAN_CHUNK = 32768  # doubles per chunk of the score scan


def scan_grid(v, mm, up, *, per_decade=3, min_points=12, max_points=96):
    """The grid of :func:`scan_score` for flat ``(n, k)`` problems: ``(grid, vmin)``.

    tau² = 0, then ``G`` geometric points from ``min(0.1 min(vi), 1e-3 upper)`` to ``upper``;
    G (``per_decade`` points a decade, between ``min_points`` and ``max_points``) is set by
    the widest problem of the batch, so a subset of rows needs this batch's grid, not its own.
    """
    n = v.shape[0]
    vmin = row_max_min(v if mm is None else np.where(mm > 0, v, np.inf), high=False)
    low = np.minimum(0.1 * vmin, 1e-3 * up)
    with np.errstate(divide="ignore", invalid="ignore"):
        decades = np.log10(up / low)
    decades = decades[np.isfinite(decades)]
    widest = float(decades.max()) if decades.size else 1.0
    g = int(np.clip(np.ceil(per_decade * widest) + 1, min_points, max_points))
    frac = np.linspace(0.0, 1.0, g)
    grid = np.empty((n, g + 1))
    grid[:, 0] = 0.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        grid[:, 1:] = low[:, None] * (up / low)[:, None] ** frac
    return grid, vmin


def score_on_grid(y, v, mm, grid, reml):
    """Twice the ML/REML score at each ``grid[i, j]`` of problem i, from moment sums.

    Flat ``(n, k)`` problems; batched matrix products of the weights ``1/(v + grid)`` and
    their squares with ``1, y, y²`` (fine for the sign of the score on the centred and scaled
    problems of :func:`ketameta._core.arrays.normalize`). Works in row chunks so memory stays
    ~ 16 MB. Returns an array shaped like ``grid``.
    """
    n, k = y.shape
    g1 = grid.shape[1]
    kern = jit.kernels()
    if kern is not None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return kern.score_on_grid(y, v, mm, grid, reml)
    ones = np.ones(y.shape) if mm is None else mm
    moments = np.stack([ones, y, y * y], axis=-1)  # (n, k, 3): sums of w^p, w^p y, w^p y²
    score = np.empty((n, g1))
    step = max(1, _SCAN_CHUNK // max(1, g1 * k))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for a in range(0, n, step):
            b = min(n, a + step)
            w = np.add(v[a:b, None, :], grid[a:b, :, None])
            np.reciprocal(w, out=w)  # in place: ~3x faster than 1 / (v + t)
            mom = moments[a:b]  # masked-out studies have zero moments: no mask product
            s1 = np.matmul(w, mom[..., :2])  # sum w, sum w y
            np.multiply(w, w, out=w)
            s2 = np.matmul(w, mom)  # sum w², sum w² y, sum w² y²
            sw = s1[..., 0]
            mu = s1[..., 1] / sw
            sw2 = s2[..., 0]
            ypp = s2[..., 2] - mu * (2.0 * s2[..., 1] - mu * sw2)
            score[a:b] = ypp - (sw - sw2 / sw) if reml else ypp - sw
    return score


def scan_score(yi, vi, m, reml, upper, *, per_decade=3, min_points=12, max_points=96):
    """The sign pattern of the score on a grid, to find every local maximum.

    For each problem: tau² = 0 and a geometric grid from 0.1 min(vi) to ``upper`` (a bound
    on the stationary points, :func:`score_root_upper`), ``per_decade`` points a decade
    (between ``min_points`` and ``max_points``, the same count for the whole batch). Below
    0.1 min(vi) every weight changes by less than 10%, so the score is nearly linear there and
    cannot turn twice. Returns ``(grid, score)`` shaped ``(n, G + 1)`` (score: twice the
    score, see :func:`score_on_grid`): a local maximum of the likelihood lies in each
    interval ``[grid[j], grid[j + 1]]`` where the score goes from > 0 to <= 0.
    """
    n, (y, v, mm), (up,) = _flatten(yi, vi, m, upper)
    grid, _ = scan_grid(
        v, mm, up, per_decade=per_decade, min_points=min_points, max_points=max_points
    )
    return grid, score_on_grid(y, v, mm, grid, reml)
