"""Vectorised iterative solvers behind the tau² estimators and the Q-profile interval.

Each solver works on problems stacked as ``(n, k)`` arrays and keeps only the problems that
are still iterating ("active set"), so a batch costs about the sum of its problems' iterations,
and every problem has its own convergence check. ``m`` is the float mask or None. This module
holds Fisher scoring, the bracketed score root and DLIT; the Q-equation solver
(:mod:`ketameta._core.qsolve`), the score scan (:mod:`ketameta._core.scan`) and the shared
helpers (:mod:`ketameta._core.solver_base`) live beside it and are importable from here.
"""

from __future__ import annotations

import numpy as np

from ketameta._core import jit
from ketameta._core.arrays import rowsum, vdot, weighted_residuals, weights
from ketameta._core.qsolve import (  # noqa: F401 (re-exported)
    _q_and_slope,
    _q_rows_compiled,
    _q_start,
    solve_q_equation,
)
from ketameta._core.scan import (  # noqa: F401 (re-exported)
    _SCAN_CHUNK,
    row_max_min,
    scan_grid,
    scan_score,
    score_on_grid,
    score_root_upper,
)
from ketameta._core.solver_base import (  # noqa: F401 (re-exported)
    _flatten,
    _per_problem,
    _take,
    newton_converged,
)


def _score_steps(y, v, mm, t, reml):
    """Fisher-scoring and Newton steps for ML/REML at tau² = t (intercept-only model).

    With P the projection of the weighted model and e the weighted residuals, the score is
    (y'PPy - tr P) / 2 for REML and (y'PPy - sum w) / 2 for ML; the expected information is
    tr(PP) / 2 (REML) or sum w² / 2 (ML); the observed information subtracts it from y'PPPy.
    Returns ``(fisher_step, newton_step, observed_information)``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _score_raw(y, v, mm, t, reml)


def _score_raw(y, v, mm, t, reml):
    """:func:`_score_steps` without its floating-point state (the caller sets it)."""
    # few large temporaries, reused in place (fresh (n, k) arrays cost page faults)
    w = v + np.asarray(t)[..., None]
    np.reciprocal(w, out=w)
    if mm is not None:
        w *= mm
    sw = rowsum(w)
    mu = vdot(w, y) / sw
    we = y - mu[..., None]  # the residuals e, then w e in place
    np.multiply(we, w, out=we)
    sw2 = vdot(w, w)
    tmp = np.multiply(w, w)
    sw3 = vdot(tmp, w)
    ypp = vdot(we, we)  # y'PPy = sum w² e²
    sw2e = vdot(we, w)  # sum w² e
    np.multiply(we, w, out=tmp)
    yppp = vdot(tmp, we) - sw2e * sw2e / sw  # y'PPPy
    if reml:
        tr_p = sw - sw2 / sw
        expected = sw2 - 2.0 * sw3 / sw + sw2 * sw2 / (sw * sw)  # tr(PP)
        twice_score = ypp - tr_p
    else:
        expected = sw2
        twice_score = ypp - sw
    observed = 2.0 * yppp - expected  # twice the observed information
    return twice_score / expected, twice_score / observed, observed


def fisher_scoring(yi, vi, m, start, *, reml, tol=1e-12, maxiter=1000, upper=None):
    """ML/REML tau² by metafor's Fisher scoring, finished with Newton steps; vectorised.

    Each problem starts at ``start`` (metafor: max(0, HE)) and takes Fisher-scoring steps
    tau² <- tau² + score / expected information, halving a step while it would make tau²
    negative (metafor's step-halving, done here in closed form). Once a Fisher step is below
    half of tau² and the log-likelihood is locally concave, Newton steps (observed information)
    take over for quadratic convergence to the same stationary point. A problem stops when the
    change is at most ``tol * max(1, tau²)``, or after a Newton step whose estimated remaining
    error is below ``tol * tau² / 100`` (:func:`newton_converged`). Once the iterates straddle
    a root of the score
    (score > 0 at ``lo``, < 0 at ``hi``), every step stays inside (lo, hi): Newton if it lands
    there, else Fisher, else bisection; this ends the slow two-point oscillation Fisher scoring
    can fall into when the vi span many orders of magnitude (where metafor reports "Fisher
    scoring algorithm did not converge"). Each halved step at least halves tau², so a
    problem whose maximum is at the boundary reaches ~tol in a few dozen steps (metafor's own
    path); a result below ``100 * tol`` with a score <= 0 at tau² = 0 is then set to exactly 0.
    ``upper`` (see :func:`score_root_upper`) bounds every stationary point: a step that would
    pass it (or is infinite) goes half-way to it instead, so no iterate is ever infinite. A
    problem whose step is NaN (score or information not finite) stops with
    ``converged = False`` before ``maxiter``; the caller falls back to a bracketed root.
    Returns ``(tau2, converged, iterations)`` shaped like ``start``.

    A problem that has stopped stays in the working arrays, frozen, until an eighth of them
    have stopped (then they are compacted): the arithmetic of each problem is unchanged, and
    the many late rounds over a handful of problems gather their rows less often.
    """
    shape = yi.shape[:-1]
    n, (y, v, mm), (t, up) = _flatten(yi, vi, m, start, upper)
    kern = jit.kernels()
    if kern is not None:  # the same loop, compiled, row by row
        up = np.full(n, np.inf) if up is None else up
        tau2, converged, iterations = kern.fisher_rows(y, v, mm, t, up, reml, tol, maxiter)
        return tau2.reshape(shape), converged.reshape(shape), iterations.reshape(shape)
    yf, vf, mf = y, v, mm
    tau2 = t.copy()
    iterations = np.full(n, maxiter, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    lo = np.full(n, -1.0)  # largest tau² seen with a positive score (-1: none yet)
    hi = np.full(n, np.inf)  # smallest tau² seen with a negative score
    t_prev = np.full(n, np.nan)  # the previous iterate and its observed information
    o_prev = np.full(n, np.nan)
    nnz = np.count_nonzero  # the cheapest "any" on small boolean arrays
    live, n_dead = None, 0  # the stopped problems still in the working arrays
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for it in range(1, maxiter + 1):
            if idx.size == n_dead:
                break
            adj, newton, observed = _score_raw(y, v, mm, t, reml)
            failed = adj != adj  # NaN
            n_failed = nnz(failed)
            if n_failed:
                adj = np.where(failed, 0.0, adj)
            lo = np.where(adj > 0, np.maximum(lo, t), lo)
            hi = np.where(adj < 0, np.minimum(hi, t), hi)
            t_newton = t + newton
            newton_ok = (observed > 0) & (t_newton >= 0)
            fisher = adj
            adj = np.where(newton_ok & (np.abs(adj) <= 0.5 * t), newton, adj)
            new = t + adj
            neg = new < 0
            if nnz(neg):
                halvings = np.ceil(np.log2(np.where(neg & (t > 0), -adj / t, 1.0)))
                adj = np.where(neg, np.where(t > 0, np.ldexp(adj, -halvings.astype(int)), 0.0), adj)
                adj = np.where(t + adj < 0, -t, adj)  # round-off guard: land exactly on 0
                new = t + adj
            bracket = (lo >= 0) & (hi < np.inf)
            any_bracket = nnz(bracket)
            if any_bracket:
                t_fisher = t + fisher
                f_in = (t_fisher > lo) & (t_fisher < hi)
                n_in = newton_ok & (t_newton > lo) & (t_newton < hi)
                safe = np.where(n_in, t_newton, np.where(f_in, t_fisher, 0.5 * (lo + hi)))
                new = np.where(bracket, safe, new)
            if up is not None:
                inside = new <= up  # else past every stationary point, infinite or NaN
                if nnz(inside) < inside.size:
                    new = np.where(inside, new, 0.5 * (t + up))
            change = np.abs(new - t)
            scale = tol * np.maximum(new, 1.0)
            done = change <= scale
            if it > 1:
                done |= (
                    newton_ok & (new == t_newton)
                    & newton_converged(change, observed, o_prev, t, t_prev, tol * new)
                )  # fmt: skip
            t_prev, o_prev = t, observed
            if n_failed:
                done |= failed
            if any_bracket:
                done |= bracket & (hi - lo <= scale)
            if n_dead:
                done &= live
                t = np.where(live, new, t)  # stopped problems stay where they stopped
            else:
                t = new
            n_done = nnz(done)
            if n_done:
                rows = idx[done]
                tau2[rows] = t[done]
                converged[rows] = ~failed[done] if n_failed else True
                iterations[rows] = it
                n_dead += n_done
                if 8 * n_dead >= idx.size:  # compact once an eighth has stopped
                    keep = live & ~done if live is not None else ~done
                    idx = idx[keep]
                    y, v, mm, t, lo, hi, t_prev, o_prev = _take(
                        [y, v, mm, t, lo, hi, t_prev, o_prev], keep
                    )
                    up = None if up is None else up[keep]
                    live, n_dead = None, 0
                else:
                    live = ~done if live is None else live & ~done
    if live is not None:
        idx, t = idx[live], t[live]
    tau2[idx] = t
    tiny = converged & (tau2 > 0) & (tau2 <= 100.0 * tol)
    if tiny.any():
        sel = np.flatnonzero(tiny)
        score0 = _score_steps(*_take([yf, vf, mf], sel), np.zeros(sel.size), reml)[0]
        tau2[sel[score0 <= 0]] = 0.0
    return tau2.reshape(shape), converged.reshape(shape), iterations.reshape(shape)


def bracketed_score_root(yi, vi, m, lo, hi, *, reml, tol=1e-12, maxiter=1000):
    """A root of the ML/REML score inside ``[lo, hi]`` (score > 0 at lo, <= 0 at hi); vectorised.

    Safeguarded Newton: the Newton step (observed information), else the Fisher step, if it
    lands strictly inside the current bracket, else bisection (geometric while the bracket
    spans more than a factor of 4). Every iterate is finite; a problem stops when the step or
    the bracket is at most ``tol * max(1, tau²)`` or the score is exactly 0. Returns
    ``(tau2, converged, iterations)``, flat arrays of length n.
    """
    n, (y, v, mm), (lo, hi) = _flatten(yi, vi, m, lo, hi)
    lo, hi = lo.copy(), hi.copy()
    tau2 = 0.5 * (lo + hi)
    converged = np.zeros(n, dtype=bool)
    iterations = np.full(n, maxiter, dtype=np.int64)
    idx = np.arange(n)

    def middle(a, b):
        with np.errstate(invalid="ignore"):
            geo = np.where(a > 0, np.sqrt(a * b), 0.125 * b)
        return np.where(b > 4.0 * a, geo, 0.5 * (a + b))

    t = middle(lo, hi)
    for it in range(1, maxiter + 1):
        if idx.size == 0:
            break
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fisher, newton, observed = _score_steps(y, v, mm, t, reml)
        right = ~(fisher <= 0)  # positive score (or NaN: tiny tau² with huge weights)
        lo = np.where(right, t, lo)
        hi = np.where(right, hi, t)
        with np.errstate(invalid="ignore"):
            n_in = (observed > 0) & (t + newton > lo) & (t + newton < hi)
            f_in = (t + fisher > lo) & (t + fisher < hi)
        new = np.where(n_in, t + newton, np.where(f_in, t + fisher, middle(lo, hi)))
        scale = tol * np.maximum(new, 1.0)
        done = (np.abs(new - t) <= scale) | (hi - lo <= scale) | (fisher == 0)
        t = np.where(fisher == 0, t, new)
        if done.any():
            tau2[idx[done]] = t[done]
            converged[idx[done]] = True
            iterations[idx[done]] = it
            keep = ~done
            idx = idx[keep]
            y, v, mm, t, lo, hi = _take([y, v, mm, t, lo, hi], keep)
    tau2[idx] = t
    return tau2, converged, iterations


def _dlit_h(y, v, mm, k, t):
    """h(tau²) = Q(tau²) - (k - 1) - tau² tr P(tau²) and dh/dtau² (DLIT fixed point)."""
    w = weights(v, t, mm)
    sw, _, e = weighted_residuals(y, w)
    we = w * e
    sw2 = vdot(w, w)
    q = vdot(we, e)
    ypp = vdot(we, we)
    tr_p = sw - sw2 / sw
    tr_pp = sw2 - 2.0 * vdot(w * w, w) / sw + sw2 * sw2 / (sw * sw)
    return q - (k - 1.0) - t * tr_p, -ypp - tr_p + t * tr_pp


def solve_dlit(yi, vi, m, k, *, tol=1e-12, maxiter=1000):
    """Fixed point of metafor's iterated DL update, by Newton steps inside a bisection bracket.

    metafor iterates tau² <- max(0, (Q(tau²) - (k - 1)) / tr P(tau²)); a fixed point solves
    h(tau²) = Q(tau²) - (k - 1) - tau² tr P(tau²) = 0 (h(0) > 0 > h(inf) = -(k - 1)).
    tau² = 0 where h(0) <= 0. Returns ``(tau2, converged, iterations)``.
    """
    shape = yi.shape[:-1]
    n, (y, v, mm), (kk,) = _flatten(yi, vi, m, k)
    tau2 = np.zeros(n)
    iterations = np.zeros(n, dtype=np.int64)
    h0, _ = _dlit_h(y, v, mm, kk, tau2)
    act = (h0 > 0) & (kk > 1)
    converged = ~act
    idx = np.flatnonzero(act)
    y, v, mm, kk = _take([y, v, mm, kk], act)
    t = np.zeros(idx.size)
    lo = np.zeros(idx.size)
    hi = np.ones(idx.size)
    for _ in range(1100):  # find an upper end of the bracket
        grow = _dlit_h(y, v, mm, kk, hi)[0] > 0
        if not grow.any():
            break
        hi = np.where(grow, 2.0 * hi, hi)
    for it in range(1, maxiter + 1):
        if idx.size == 0:
            break
        h, dh = _dlit_h(y, v, mm, kk, t)
        lo = np.where(h > 0, t, lo)
        hi = np.where(h <= 0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = t - h / dh
        bad = ~np.isfinite(new) | (new <= lo) | (new >= hi)
        new = np.where(bad, 0.5 * (lo + hi), new)
        new = np.where(h == 0, t, new)  # an exact root (h == 0 also moved hi onto t)
        scale = tol * np.maximum(new, 1.0)
        done = (np.abs(new - t) <= scale) | (hi - lo <= scale) | (h == 0)
        t = new
        if done.any():
            tau2[idx[done]] = t[done]
            converged[idx[done]] = True
            iterations[idx[done]] = it
            keep = ~done
            idx = idx[keep]
            y, v, mm, kk, t, lo, hi = _take([y, v, mm, kk, t, lo, hi], keep)
    tau2[idx] = t
    iterations[idx] = maxiter
    return tau2.reshape(shape), converged.reshape(shape), iterations.reshape(shape)
