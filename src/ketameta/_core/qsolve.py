"""The generalized Q equation ``Q(tau²) = target``, vectorised: the Paule-Mandel estimator and
the Q-profile bounds of tau² (metafor's ``confint()``).

Re-exported by :mod:`ketameta._core.iterative`; with numba the searches run as the kernel
``_jit_kernels.q_rows``.
"""

from __future__ import annotations

import numpy as np

from ketameta._core import jit
from ketameta._core.arrays import rowsum, vdot
from ketameta._core.solver_base import _flatten, _per_problem, _take, newton_converged


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
    the step is at most ``tol * max(1, tau²)``, when a Newton step's estimated remaining error
    is below ``tol * tau² / 100`` (:func:`ketameta._core.solver_base.newton_converged`), or
    when Q equals the target.
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
