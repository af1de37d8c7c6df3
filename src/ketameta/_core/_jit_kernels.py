"""numba kernels for the inner loops of the batched engine (loaded by :mod:`ketameta._core.jit`).

Each kernel works row by row on flat ``(n, k)`` float64 arrays (``m``: the float mask or
None) and evaluates the formulas of its numpy twin in :mod:`ketameta._core.iterative`, fused
into one or two passes over a row's studies, with the same steps, brackets and stopping rules;
only the order of the additions differs, so the numbers agree to rounding (tests/test_jit.py).
Compiled on first use and cached on disk (``cache=True``); IEEE arithmetic (numba's
``error_model="numpy"``: a division by zero gives inf or NaN, as in numpy).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ketameta._core.qprofile import q_step
from ketameta._core.reml import fisher_step

# the scalar iterations of the Python loops, compiled: one source for both
_fisher_step = njit(cache=True, nogil=True, error_model="numpy")(fisher_step)
_q_step = njit(cache=True, nogil=True, error_model="numpy")(q_step)


@njit(cache=True, nogil=True, error_model="numpy")
def _weights_row(y, v, m, i, t, w):
    """The weights of row i at tau² = t into ``w``; returns ``(sum w, sum w y)``."""
    sw = 0.0
    swy = 0.0
    for j in range(y.shape[1]):
        wj = 1.0 / (v[i, j] + t)
        if m is not None:
            wj *= m[i, j]
        w[j] = wj
        sw += wj
        swy += wj * y[i, j]
    return sw, swy


@njit(cache=True, nogil=True, error_model="numpy")
def _steps_row(y, v, m, i, t, reml, w):
    """``(fisher step, newton step, twice the observed information)`` of row i at tau² = t:
    the arithmetic of ``iterative._score_raw`` (``w``: scratch of length k)."""
    k = y.shape[1]
    sw, swy = _weights_row(y, v, m, i, t, w)
    mu = swy / sw
    sw2 = 0.0
    sw3 = 0.0
    ypp = 0.0
    sw2e = 0.0
    wwe2 = 0.0
    for j in range(k):
        wj = w[j]
        we = (y[i, j] - mu) * wj
        w2 = wj * wj
        sw2 += w2
        sw3 += w2 * wj
        ypp += we * we
        sw2e += we * wj
        wwe2 += we * wj * we
    yppp = wwe2 - sw2e * sw2e / sw
    if reml:
        tr_p = sw - sw2 / sw
        expected = sw2 - 2.0 * sw3 / sw + sw2 * sw2 / (sw * sw)
        twice = ypp - tr_p
    else:
        expected = sw2
        twice = ypp - sw
    observed = 2.0 * yppp - expected
    return twice / expected, twice / observed, observed


@njit(cache=True, nogil=True, error_model="numpy")
def fisher_rows(y, v, m, start, upper, reml, tol, maxiter):
    """``iterative.fisher_scoring`` row by row: ``(tau2, converged, iterations)``.

    The loop of ``reml.fisher_loop`` per row, each iteration the same ``reml.fisher_step``
    (compiled here), with the exact 0 for a result below 100 tol with a score <= 0 at 0. On a
    NaN step the row stops unconverged, at the numpy solver's value (NaN for NaN data)."""
    n, k = y.shape
    tau2 = np.empty(n)
    converged = np.zeros(n, dtype=np.bool_)
    iterations = np.full(n, maxiter, dtype=np.int64)
    w = np.empty(k)
    for i in range(n):
        t = start[i]
        up = upper[i]
        lo = -1.0
        hi = math.inf
        t_prev = math.nan
        o_prev = math.nan
        done = False
        for it in range(1, maxiter + 1):
            adj, newton, observed = _steps_row(y, v, m, i, t, reml, w)
            if adj != adj:  # NaN: score or information not finite; stop, not converged
                if not t <= up:  # as the numpy solver: a NaN bound (NaN data) gives NaN
                    t = 0.5 * (t + up)
                iterations[i] = it
                done = True
                break
            new, lo, hi, stop = _fisher_step(
                t, adj, newton, observed, lo, hi, t_prev, o_prev, tol, up
            )
            t_prev = t
            o_prev = observed
            t = new
            if stop:
                if 0 < t <= 100.0 * tol and _steps_row(y, v, m, i, 0.0, reml, w)[0] <= 0:
                    t = 0.0
                converged[i] = True
                iterations[i] = it
                done = True
                break
        tau2[i] = t
        if not done:
            iterations[i] = maxiter
    return tau2, converged, iterations


@njit(cache=True, nogil=True, error_model="numpy")
def q_and_slope(y, v, m, t, tgt):
    """``iterative._q_and_slope`` for flat problems: ``(Q(t) - tgt, -Q'(t))``."""
    n, k = y.shape
    f = np.empty(n)
    slope = np.empty(n)
    w = np.empty(k)
    for i in range(n):
        sw, swy = _weights_row(y, v, m, i, t[i], w)
        mu = swy / sw
        q = 0.0
        s = 0.0
        for j in range(k):
            e = y[i, j] - mu
            we = w[j] * e
            q += we * e
            s += we * we
        f[i] = q - tgt[i]
        slope[i] = s
    return f, slope


@njit(cache=True, nogil=True, error_model="numpy")
def score_on_grid(y, v, m, grid, reml):
    """``iterative.score_on_grid``: twice the score at each ``grid[i, c]``, from the moment
    sums of the weights and their squares (the same formula)."""
    n, k = y.shape
    g = grid.shape[1]
    out = np.empty((n, g))
    for i in range(n):
        for c in range(g):
            t = grid[i, c]
            s0 = 0.0
            s1 = 0.0
            q0 = 0.0
            q1 = 0.0
            q2 = 0.0
            for j in range(k):
                wj = 1.0 / (v[i, j] + t)
                if m is not None:
                    wj *= m[i, j]
                yj = y[i, j]
                s0 += wj
                s1 += wj * yj
                w2 = wj * wj
                q0 += w2
                q1 += w2 * yj
                q2 += w2 * yj * yj
            mu = s1 / s0
            ypp = q2 - mu * (2.0 * q1 - mu * q0)
            out[i, c] = ypp - (s0 - q0 / s0) if reml else ypp - s0
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _q_row(y, v, m, i, t, tgt, w):
    """Q(t) - tgt and -Q'(t) of row i (the arithmetic of ``q_and_slope``)."""
    sw, swy = _weights_row(y, v, m, i, t, w)
    mu = swy / sw
    q = 0.0
    s = 0.0
    for j in range(y.shape[1]):
        e = y[i, j] - mu
        we = w[j] * e
        q += we * e
        s += we * we
    return q - tgt, s


@njit(cache=True, nogil=True, error_model="numpy")
def q_rows(y, v, m, tgt, up, q0, s0, q_up, ts, qs, ss, tol, maxiter):
    """``iterative.solve_q_equation`` problem by problem (flat arrays; ``up`` inf for no limit,
    ``ts`` 0 where no start point is known): ``(tau2, converged, iterations)``.

    Q(0) <= target gives 0; Q(limit) >= target the limit; else the start of ``_q_start``
    (past ts, or the quadratic model of 1/Q) and the bracketed Newton steps on 1/Q with the
    stopping rules of the numpy loop."""
    n, k = y.shape
    tau2 = np.zeros(n)
    converged = np.ones(n, dtype=np.bool_)
    iterations = np.zeros(n, dtype=np.int64)
    w = np.empty(k)
    for i in range(n):
        c = tgt[i]
        f = q0[i] - c
        if not f > 0:
            continue
        hi = up[i]
        if hi < math.inf and q_up[i] - c >= 0:
            tau2[i] = hi
            continue
        slope = s0[i]
        t = 0.0
        lo = 0.0
        t_prev = math.nan
        d_prev = math.nan
        fs = qs[i] - c
        tsi = ts[i]
        if tsi > 0 and np.isfinite(fs) and ss[i] > 0 and tsi < hi:
            q_zero = f + c
            g0 = 1.0 / q_zero
            gs = 1.0 / qs[i]
            ds = ss[i] / (qs[i] * qs[i])
            a = (g0 - gs + ds * tsi) / (tsi * tsi)
            cc = gs - 1.0 / c
            first = tsi + (-2.0 * cc / (ds + np.sqrt(ds * ds - 4.0 * a * cc)))
            if fs >= 0:
                model = tsi < first < hi
                t, f, slope, lo = tsi, fs, ss[i], tsi
            else:
                model = 0 < first < tsi
                hi = tsi
            if model:
                t_prev, d_prev, t = tsi, ds, first
                f, slope = _q_row(y, v, m, i, t, c, w)
        found = False
        for it in range(1, maxiter + 1):
            new, lo, hi, done, d_now = _q_step(t, f, slope, c, lo, hi, t_prev, d_prev, tol)
            t_prev = t
            d_prev = d_now
            t = new
            if done:
                found = True
            else:
                f, slope = _q_row(y, v, m, i, t, c, w)
                found = f == 0
            if found:
                iterations[i] = it
                break
        tau2[i] = t
        if not found:
            converged[i] = False
            iterations[i] = maxiter
    return tau2, converged, iterations
