"""Vectorised iterative solvers behind the tau² estimators and the Q-profile interval.

Each solver works on problems stacked as ``(n, k)`` arrays and keeps only the problems that
are still iterating ("active set"), so a batch costs about the sum of its problems' iterations,
and every problem has its own convergence check. ``m`` is the float mask or None.
"""

from __future__ import annotations

import numpy as np

from ketameta._core import jit
from ketameta._core.arrays import rowsum, vdot, weighted_residuals, weights


def _take(arrays, sel):
    return [None if a is None else a[sel] for a in arrays]


def _flatten(yi, vi, m, *per_problem):
    k = yi.shape[-1]
    n = int(np.prod(yi.shape[:-1], dtype=np.int64))
    flat = [yi.reshape(n, k), vi.reshape(n, k), None if m is None else m.reshape(n, k)]
    return n, flat, _per_problem(yi.shape[:-1], n, per_problem)


def newton_converged(change, d_now, d_prev, t_now, t_prev, scale):
    """Whether the Newton step of size ``change`` taken at ``t_now`` leaves an error below
    ``scale / 100`` (callers: ``tol`` times the new iterate, a relative accuracy), so that the
    step which would only confirm convergence is not needed.

    A Newton step for f(t) = 0 from t_n leaves the error |f''/(2 f')| e_n², and e_n is about
    the step. f' is known at the last two iterates (``d_now`` at ``t_now``, ``d_prev`` at
    ``t_prev``), so f'' is estimated by their secant; the test asks for four times that
    estimate of the error to be below ``scale / 100``. NaN where there is no previous iterate
    (``t_prev`` NaN) or the derivative vanishes: never converged by this test. Floats or
    arrays; the caller sets the floating-point state.
    """
    curv = np.abs(d_now - d_prev) / (np.abs(t_now - t_prev) * np.abs(d_now))
    return curv * change * change <= 0.005 * scale


def _per_problem(shape, n, arrays):
    """Per-problem arrays (None kept) broadcast to ``shape`` and flattened to length n."""
    extra = []
    for a in arrays:
        if a is not None:
            a = np.asarray(a, dtype=np.float64)
            a = a.reshape(n) if a.size == n else np.broadcast_to(a, shape).reshape(n)
        extra.append(a)
    return extra


def _q_and_slope(y, v, mm, t, tgt):
    """Q(t) - target and -dQ/dt = sum (w e)² at tau² = t."""
    kern = jit.kernels()
    if kern is not None and y.ndim == 2:  # every row the same way, whatever the batch
        n = y.shape[0]
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n,))
        tgt = np.broadcast_to(np.asarray(tgt, dtype=np.float64), (n,))
        return kern.q_and_slope(y, v, mm, t, tgt)
    w = v + np.asarray(t)[..., None]
    np.reciprocal(w, out=w)
    if mm is not None:
        w *= mm
    sw = rowsum(w)
    e = y - (vdot(w, y) / sw)[..., None]
    we = np.multiply(w, e, out=w)  # w is not needed again
    return vdot(we, e) - tgt, vdot(we, we)


def solve_q_equation(
    yi, vi, m, target, *, upper=None, tol=1e-12, maxiter=1000, at_zero=None, at_upper=None,
    at_start=None,
):  # fmt: skip
    """Root of the generalized Q equation ``Q(tau²) = target`` for each problem.

    Q(tau²) = sum w (y - mean_w)², w = 1/(vi + tau²), is positive, decreasing and convex in
    tau² (dQ/dtau² = -sum (w e)², second derivative 2 y'P³y >= 0), and 1/Q is nearly linear
    (exactly so when all vi are equal). Newton steps on 1/Q - 1/target therefore reach the
    root in a few iterations; they are kept inside a bracket [lo, hi] (Q(lo) > target >
    Q(hi)), and a step that would leave it is replaced by a Newton step on Q itself from the
    left (which, Q being convex, never passes the root) or by bisection. A problem stops when
    the step is at most ``tol * max(1, tau²)`` or Q equals the target.
    tau² = 0 where Q(0) <= target. With ``upper``, a root beyond ``upper`` is reported as
    ``upper`` (metafor's ``tau2.max`` for Q-profile bounds). ``at_zero = (Q(0), -Q'(0))``
    and ``at_upper = Q(upper)``, when given (broadcast against the problems), are used
    instead of evaluating them (two searches on the same data share them).
    ``at_start = (t_s, Q(t_s), -Q'(t_s))`` (with ``at_zero``), a point where Q is known (the
    ML/REML estimate), starts each search nearer its root: where Q(t_s) > target the root lies
    past t_s, else in (0, t_s), and the first iterate is where a quadratic model of 1/Q
    (through 0 and t_s, with its slope at t_s) meets 1/target (see :func:`_q_start`): about
    one Newton step closer than a start at 0.
    Returns ``(tau2, converged, iterations)`` shaped ``yi.shape[:-1]``.
    """
    shape = yi.shape[:-1]
    n = int(np.prod(shape, dtype=np.int64))
    tgt, up, q0, s0, q_up = _per_problem(
        shape, n, (target, upper, *(at_zero or (None, None)), at_upper)
    )
    if at_start is not None and q0 is None:
        raise ValueError("'at_start' needs 'at_zero'.")
    ts, qs, ss = _per_problem(shape, n, at_start or (None, None, None))
    kern = jit.kernels()
    if kern is not None and len(shape) > 0:  # the same searches, compiled, one by one
        return _q_rows_compiled(kern, yi, vi, m, shape, n, tgt, up, q0, s0, q_up, ts, qs, ss,
                                tol, maxiter)  # fmt: skip
    # with Q(0) (and Q(upper)) given, the data are first needed for the problems still
    # searching: gather those rows then, without flattening (copying) a broadcast stack first
    lazy = q0 is not None and (up is None or q_up is not None) and len(shape) > 0
    if not lazy:
        _, (y, v, mm), _ = _flatten(yi, vi, m)
    tau2 = np.zeros(n)
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    t = np.zeros(n)
    if q0 is None:
        f, slope = _q_and_slope(y, v, mm, t, tgt)
    else:
        f, slope = q0 - tgt, s0.copy()
    act = f > 0
    hi = np.full(n, np.inf)
    if up is not None:
        f_up = _q_and_slope(y, v, mm, up, tgt)[0] if q_up is None else q_up - tgt
        beyond = act & (f_up >= 0)
        tau2[beyond] = up[beyond]
        act &= ~beyond
        hi = up.copy()
    converged[act] = False
    idx = np.flatnonzero(act)
    if lazy:
        rows = np.unravel_index(idx, shape)
        y, v, mm = yi[rows], vi[rows], None if m is None else m[rows]
        if idx.size < n:
            tgt, f, slope, t, hi, ts, qs, ss = _take([tgt, f, slope, t, hi, ts, qs, ss], act)
    elif idx.size < n:
        y, v, mm, tgt, f, slope, t, hi, ts, qs, ss = _take(
            [y, v, mm, tgt, f, slope, t, hi, ts, qs, ss], act
        )
    t_prev = d_prev = None  # the previous iterate and d(1/Q)/dtau² there
    if ts is not None and idx.size:
        t, f, slope, lo, hi, t_prev, d_prev = _q_start(
            y, v, mm, tgt, t, f, slope, hi, ts, qs, ss
        )
    else:
        lo = t.copy()
    for it in range(1, maxiter + 1):
        if idx.size == 0:
            break
        right = f > 0
        lo = np.where(right, t, lo)
        hi = np.where(right, hi, t)
        q_step = f / slope  # Newton on Q
        q = f + tgt
        new = t + q_step * q / tgt  # Newton on 1/Q - 1/target
        bad = ~((new > lo) & (new < hi))
        n_bad = np.count_nonzero(bad)
        if n_bad:
            safe = np.where(right, t + q_step, 0.5 * (lo + hi))
            new = np.where(bad, safe, new)
        change = np.abs(new - t)
        done = change <= tol * np.maximum(new, 1.0)
        d_now = slope / (q * q)
        if t_prev is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                early = newton_converged(change, d_now, d_prev, t, t_prev, tol * new)
            done |= early & ~bad if n_bad else early
        t_prev, d_prev = t, d_now
        t = new
        for stop in range(2):  # the converged steps, then the exact roots (Q = target)
            if stop:
                f, slope = _q_and_slope(y, v, mm, t, tgt)  # only where the search goes on
                done = f == 0
            if np.count_nonzero(done):
                tau2[idx[done]] = t[done]
                converged[idx[done]] = True
                iterations[idx[done]] = it
                keep = ~done
                idx = idx[keep]
                y, v, mm, tgt, t, lo, hi, t_prev, d_prev = _take(
                    [y, v, mm, tgt, t, lo, hi, t_prev, d_prev], keep
                )
                if stop:
                    f, slope = f[keep], slope[keep]
    tau2[idx] = t
    iterations[idx] = maxiter
    return tau2.reshape(shape), converged.reshape(shape), iterations.reshape(shape)


def _q_rows_compiled(kern, yi, vi, m, shape, n, tgt, up, q0, s0, q_up, ts, qs, ss, tol, maxiter):
    """:func:`solve_q_equation` by the kernel ``q_rows``: the values it needs but was not
    given (Q(0), Q(upper)) computed first, absent options as neutral values."""
    _, (y, v, mm), _ = _flatten(yi, vi, m)
    y, v = np.ascontiguousarray(y), np.ascontiguousarray(v)
    mm = None if mm is None else np.ascontiguousarray(mm)
    zero = np.zeros(n)
    if q0 is None:
        q0, s0 = kern.q_and_slope(y, v, mm, zero, zero)
    if up is None:
        up, q_up = np.full(n, np.inf), zero
    elif q_up is None:
        q_up = kern.q_and_slope(y, v, mm, up, zero)[0]
    if ts is None:
        ts = qs = ss = zero
    tau2, converged, iterations = kern.q_rows(
        y, v, mm, tgt, up, q0, s0, q_up, ts, qs, ss, tol, maxiter
    )
    return tau2.reshape(shape), converged.reshape(shape), iterations.reshape(shape)


def _q_start(y, v, mm, tgt, t, f, slope, hi, ts, qs, ss):
    """The first iterate of :func:`solve_q_equation` from a point ``ts`` with Q = ``qs`` and
    -Q' = ``ss`` known (``t, f, slope`` hold the start at 0 and ``hi`` the search limit).

    g = 1/Q is modelled by the quadratic through g(0), g(ts) and g'(ts) = -Q'/Q²; where the
    root of g = 1/target it gives lies in the bracket that Q(ts) shows ((ts, hi) or (0, ts)),
    the search starts there (one evaluation of Q); elsewhere it starts at ts (root past ts,
    nothing to evaluate) or at 0. Returns ``(t, f, slope, lo, hi, t_prev, d_prev)``: the
    iterate, Q - target and -Q' there, the bracket, and ts and g'(ts) where the start came
    from ts (else NaN), for :func:`newton_converged`.
    """
    fs = qs - tgt
    lo = np.zeros(t.shape)
    t_prev = np.full(t.shape, np.nan)
    d_prev = np.full(t.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        known = (ts > 0) & np.isfinite(fs) & (ss > 0) & (ts < hi)
        past = known & (fs >= 0)  # Q(ts) >= target: the root lies in [ts, hi)
        inside = known & (fs < 0)  # in (0, ts)
        g0, gs, ds = 1.0 / (f + tgt), 1.0 / qs, ss / (qs * qs)
        a = (g0 - gs + ds * ts) / (ts * ts)
        c = gs - 1.0 / tgt
        x = -2.0 * c / (ds + np.sqrt(ds * ds - 4.0 * a * c))  # the root next to -c / ds
        first = ts + x
        model = (past & (first > ts) & (first < hi)) | (inside & (first > 0) & (first < ts))
    t = np.where(past, ts, t)
    f = np.where(past, fs, f)
    slope = np.where(past, ss, slope)
    lo = np.where(past, ts, lo)
    hi = np.where(inside, ts, hi)
    sel = np.flatnonzero(model)
    if sel.size:
        t_prev[sel], d_prev[sel], t[sel] = ts[sel], ds[sel], first[sel]
        f[sel], slope[sel] = _q_and_slope(*_take([y, v, mm], sel), t[sel], tgt[sel])
    return t, f, slope, lo, hi, t_prev, d_prev


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
