"""ML/REML tau² for the intercept-only model: metafor's Fisher scoring and the global maximum.

:func:`_ml_reml` runs Fisher scoring from max(0, HE) (metafor's path, so the same local maximum
when the likelihood has two; from 0 where the score at 0 is <= 0 and the scan shows no other
maximum), then checks a scan of the score for a higher local maximum the iteration did not
reach, then metafor's check that tau² = 0 is not better. The names are also importable from
:mod:`ketameta._core.tau2`.
"""

from __future__ import annotations

import math

import numpy as np

from ketameta._core.arrays import rowsum, vdot
from ketameta._core.iterative import (
    _flatten,
    _score_steps,
    _take,
    bracketed_score_root,
    fisher_scoring,
    row_max_min,
    scan_grid,
    score_on_grid,
    score_root_upper,
)


def _loglik_parts(yi, vi, m, tau2):
    """``(sum w, Q, log det V, w, w e)`` at tau²: the pieces of :func:`_loglik` (and of the
    fit statistics of :mod:`ketameta._core.fitstats` and of the Q-profile search, computed
    the same way)."""
    x = vi + tau2[..., None]
    w = 1.0 / x
    if m is not None:
        w *= m
    sw = rowsum(w)
    e = yi - (vdot(w, yi) / sw)[..., None]
    we = w * e
    q = vdot(we, e)
    np.log(x, out=x)
    if m is not None:
        x *= m
    return sw, q, rowsum(x), w, we


def _loglik_from(sw, q, logdet, k, reml):
    if reml:
        return -0.5 * (k - 1.0) * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * np.log(sw) - 0.5 * q
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * q


def _loglik(yi, vi, m, k, tau2, reml):
    """The (restricted) log-likelihood at tau² (without metafor's constant 1/2 log k)."""
    return _loglik_from(*_loglik_parts(yi, vi, m, tau2)[:3], k, reml)


def _ml_reml(yi, vi, m, k, *, reml, tol, maxiter, start, parts=None):
    """The global maximum of the (restricted) likelihood on [0, inf).

    Fisher scoring from ``start`` (metafor's path: max(0, HE)), every step kept below a bound on
    the stationary points (:func:`ketameta._core.iterative.score_root_upper`); from 0 instead
    where the score at 0 is <= 0 and the score scan shows no local maximum (a change from
    > 0 to <= 0): the maximum is then at 0, which the first step keeps, where metafor's path
    halves its steps from HE a few dozen times to reach ~tol and is then set to 0 (rows with
    such a candidate keep metafor's path, so their roots do not depend on the grid's
    brackets). The score is then scanned on a grid (:func:`ketameta._core.iterative.scan_score`);
    on the few problems where it shows a local maximum the iteration did not reach (a bimodal
    likelihood, or a maximum at 0 with a higher interior one), or where the iteration failed
    (NaN steps), each such maximum is solved inside its bracket and the highest likelihood wins (the
    iteration's own root on ties). Finally metafor's check that tau² = 0 is not better.
    ``converged`` is True only for a finite result. A dict ``parts`` receives the final
    tau² (``"tau2"``) and ``sum w, Q, log det V`` and the weights at it (``"sw", "q",
    "logdet", "w"``), for the fit statistics, and Q(0) and -Q'(0) (``"at_zero"``) and tau²,
    Q and -Q' at the estimate (``"at_tau2"``), where the Q-profile searches start.
    """
    upper = score_root_upper(yi, vi, m, reml)
    _, flat, (up,) = _flatten(yi, vi, m, upper)
    grid = scan_grid(*flat[1:], up)  # the batch's grid, shared with _other_maxima
    with np.errstate(divide="ignore", invalid="ignore"):
        at0 = _loglik_parts(yi, vi, m, np.zeros(yi.shape[:-1]))
        sw0, w0, we0 = at0[0], at0[3], at0[4]
        tr0 = sw0 - vdot(w0, w0) / sw0 if reml else sw0  # twice the score at 0, as _score_steps
        moved = ((vdot(we0, we0) - tr0 <= 0) & (start > 0)).reshape(-1)
    sel = np.flatnonzero(moved)
    if sel.size:  # the boundary start, unless the scan shows a candidate (as for tau² = 0)
        score = score_on_grid(*_take(flat, sel), grid[0][sel], reml)
        with np.errstate(invalid="ignore"):
            moved[sel] = ~((score[:, :-1] > 0) & (score[:, 1:] <= 0)).any(axis=1)
        start = np.where(moved.reshape(yi.shape[:-1]), 0.0, start)
    if yi.ndim == 1 and m is None:  # one problem: the same steps on scalars (~5x faster)
        tau2, converged, iterations = (
            np.asarray(a)
            for a in _fisher_one(yi, vi, float(start), reml, tol, maxiter, float(upper))
        )
    else:
        tau2, converged, iterations = fisher_scoring(
            yi, vi, m, start, reml=reml, tol=tol, maxiter=maxiter, upper=upper
        )
    tau2, converged, iterations = _other_maxima(
        yi, vi, m, k, tau2, converged, iterations, upper, reml=reml, tol=tol, maxiter=maxiter,
        grid=grid,
    )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        at1 = _loglik_parts(yi, vi, m, tau2)
        ll0 = _loglik_from(*at0[:3], k, reml)
        ll = _loglik_from(*at1[:3], k, reml)
    stuck = converged & (ll0 - ll > tol) & (tau2 > tol)
    zero = stuck | (k <= 1)
    tau2 = np.where(zero, 0.0, tau2)
    converged = (converged & np.isfinite(tau2)) | (k <= 1)
    if parts is not None:
        parts["tau2"] = tau2
        for key, a0, a1 in zip(("sw", "q", "logdet"), at0[:3], at1[:3], strict=True):
            parts[key] = np.where(zero, a0, a1)
        parts["w"] = np.where(zero[..., None], at0[3], at1[3])
        parts["at_zero"] = (at0[1], vdot(at0[4], at0[4]))
        parts["at_tau2"] = (tau2, parts["q"], vdot(at1[4], at1[4]))  # used where tau2 > 0
    return tau2, converged, iterations


def _other_maxima(
    yi, vi, m, k, tau2, converged, iterations, upper, *, reml, tol, maxiter, grid=None
):
    """Replace the iteration's root where the score scan finds a higher local maximum.

    The scan (:func:`ketameta._core.iterative.scan_score`) is evaluated only where it can
    matter, and only as far as it can: see :func:`_scan_needed`. Its candidates are the grid
    intervals where the score goes from > 0 to <= 0 that do not hold the iteration's root.
    ``grid``: the ``scan_grid`` of these problems when already computed.
    """
    shape = tau2.shape
    n = tau2.size
    kk = k.reshape(n)
    t1 = tau2.reshape(n).copy()
    ok1 = converged.reshape(n).copy()
    it1 = iterations.reshape(n).copy()
    failed = ~ok1 & (it1 < maxiter) & (kk > 1)
    _, (y, v, mm), (up,) = _flatten(yi, vi, m, upper)
    grid, score = _scan_needed(y, v, mm, up, t1, ok1 & (kk > 1), failed, reml, grid)
    with np.errstate(invalid="ignore"):  # NaN: a score not evaluated, never a candidate
        cand = (score[:, :-1] > 0) & (score[:, 1:] <= 0) & (kk > 1)[:, None]
    own = (grid[:, :-1] <= t1[:, None]) & (t1[:, None] <= grid[:, 1:]) & (ok1 & (t1 > 0))[:, None]
    other = cand & ~own
    rows, cols = np.nonzero(other & (ok1 | failed)[:, None])
    # failed rows with no bracket: the score is <= 0 on the whole grid, the maximum is at 0
    none = failed & ~cand.any(axis=1) & (score[:, 0] <= 0)
    t1[none], ok1[none] = 0.0, True
    if rows.size:
        sub_m = None if mm is None else mm[rows]
        root, ok, it = bracketed_score_root(
            y[rows], v[rows], sub_m, grid[rows, cols], grid[rows, cols + 1],
            reml=reml, tol=tol, maxiter=maxiter,
        )  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            ll_new = _loglik(y[rows], v[rows], sub_m, kk[rows], root, reml)
            ll_old = _loglik(
                y[rows], v[rows], sub_m, kk[rows], np.where(ok1[rows], t1[rows], 0), reml
            )
        margin = 1e-12 * np.maximum(1.0, np.abs(ll_old))
        better = ok & np.isfinite(root) & (~ok1[rows] | (ll_new > ll_old + margin))
        order = np.lexsort((-np.where(better, ll_new, -np.inf), rows))
        first = np.ones(order.size, dtype=bool)
        first[1:] = rows[order][1:] != rows[order][:-1]
        pick = order[first & better[order]]
        r = rows[pick]
        t1[r], ok1[r], it1[r] = root[pick], True, it1[r] + it[pick]
    return t1.reshape(shape), ok1.reshape(shape), it1.reshape(shape)


def _scan_needed(y, v, mm, up, t1, ok, failed, reml, grid=None):
    """The score scan of :func:`_other_maxima` on the grid columns that can change a result.

    Returns ``(grid, score)`` as :func:`ketameta._core.iterative.scan_score` (flat problems),
    with NaN scores where none is needed (past the first columns). Rows that are neither
    converged (``ok``) nor ``failed`` need no scan; failed rows get the whole grid.

    For a converged row let T0 = max vi - 2 min vi. Above T0 the score crosses zero at most
    once, from + to -: where the score is 0, with P the projection and P y != 0 orthogonal to
    its null space, y'P³y >= mu_2 y'P²y and tr P² <= mu_max tr P (ML: sum w² <= w_max sum w),
    so the derivative -2 y'P³y + tr P² is < 0 when mu_max < 2 mu_2; the nonzero eigenvalues
    of P interlace the weights, mu_2 >= 1 / (max vi + tau²) and mu_max <= 1 / (min vi + tau²),
    which gives mu_max < 2 mu_2 for tau² > T0. So the scan up to the first grid point t_J
    above T0 decides: past t_J the only candidate interval holds the one root there, which
    is the iteration's own root if that lies past t_J (score(t_J) > 0), and there is none
    if score(t_J) <= 0. Rows where this does not settle it (score(t_J) > 0 with the
    iteration's root before t_J: another maximum lies past t_J) get the whole grid. The
    first columns are evaluated on every row (as many as minimise the work), the others only
    on the rows that need the whole grid. ``grid``: ``scan_grid(v, mm, up)`` if computed.
    """
    grid, vmin = scan_grid(v, mm, up) if grid is None else grid
    n, g1 = grid.shape
    score = np.full((n, g1), np.nan)
    vmax = row_max_min(v if mm is None else np.where(mm > 0, v, -np.inf), low=False)
    with np.errstate(invalid="ignore", over="ignore"):
        t0 = vmax - 2.0 * vmin
        need = np.count_nonzero(grid <= t0[:, None], axis=1)  # first column past T0
        part = ok & np.isfinite(t0) & np.isfinite(grid[:, -1]) & (need < g1)
    full = failed | (ok & ~part)
    c = 0  # columns evaluated on every row
    if part.any():
        cp = need[part] + 1  # columns a partial row needs
        below = np.cumsum(np.bincount(cp, minlength=g1 + 1))  # rows needing <= c columns
        c_all = np.arange(g1 + 1)
        cost = n * c_all + (g1 - c_all) * (np.count_nonzero(full) + below[-1] - below)
        c = int(np.argmin(cost[1:])) + 1
        part &= need + 1 <= c
        full |= ok & ~part
        score[:, :c] = score_on_grid(y, v, mm, grid[:, :c], reml)
        sel = np.flatnonzero(part)
        j = need[sel]
        s_j = score[sel, j]
        past = (t1[sel] > 0) & (t1[sel] > grid[sel, j])  # the iteration's root lies past t_J
        unsettled = ~np.isfinite(s_j) | ((s_j > 0) != past)
        full[sel[unsettled]] = True
    sel = np.flatnonzero(full)
    if sel.size and c < g1:
        sub_m = None if mm is None else mm[sel]
        score[sel, c:] = score_on_grid(y[sel], v[sel], sub_m, grid[sel, c:], reml)
    return grid, score


def _fisher_one(y, v, t, reml, tol, maxiter, upper=np.inf):
    """:func:`ketameta._core.iterative.fisher_scoring` for one unmasked problem.

    The same steps, brackets and stopping rule as the vectorised solver, with the per-problem
    quantities as scalars: a single fit spends its time in numpy call overhead, not arithmetic.
    The score and information come from the same function, so the iterates are identical.
    """

    def steps(tau2):
        return tuple(float(a) for a in _score_steps(y, v, None, tau2, reml))

    return fisher_loop(steps, t, tol, maxiter, upper)


def fisher_loop(steps, t, tol, maxiter, upper=math.inf):
    """Scalar Fisher scoring on ``steps(tau2) -> (fisher step, newton step, observed info)``:
    the brackets, step halving, Newton switch and stopping rule of the batched solver. Shared
    by :func:`_fisher_one` (arrays) and the single-fit fast path (fused moments), which differ
    only in how they evaluate the score. Returns ``(tau2, converged, iterations)``."""
    lo, hi = -1.0, math.inf
    t_prev = o_prev = math.nan  # the previous iterate and its observed information
    for it in range(1, maxiter + 1):
        adj, newton, observed = steps(t)
        if adj != adj:  # NaN: score or information not finite
            return t, False, it
        new, lo, hi, done = fisher_step(
            t, adj, newton, observed, lo, hi, t_prev, o_prev, tol, upper
        )
        t_prev, o_prev, t = t, observed, new
        if done:
            if 0 < t <= 100.0 * tol and steps(0.0)[0] <= 0:
                t = 0.0
            return t, True, it
    return t, False, maxiter


def fisher_step(t, adj, newton, observed, lo, hi, t_prev, o_prev, tol, upper):
    """One iteration of scalar Fisher scoring from tau² = t, given the Fisher step ``adj``,
    the Newton step and the observed information there: ``(new tau², lo, hi, done)``.

    The step rules of :func:`ketameta._core.iterative.fisher_scoring` on floats: the bracket
    [lo, hi] of the score's sign changes, the Newton switch, closed-form halving of a step
    that would make tau² negative, the bound ``upper`` on every stationary point, and the
    stopping tests (the change at most ``tol * max(1, tau²)``, the bracket that narrow, or a
    Newton step whose estimated remaining error, from the secant of the observed information
    through the previous iterate, is below ``tol * tau² / 100``). Plain float arithmetic and
    :mod:`math`: the numba kernel of the batched engine compiles this same function
    (``_jit_kernels.fisher_rows``), so keep it to what numba compiles.
    """
    if adj > 0:
        lo = max(lo, t)
    elif adj < 0:
        hi = min(hi, t)
    newton_ok = observed > 0 and t + newton >= 0
    fisher = adj
    if newton_ok and abs(adj) <= 0.5 * t:
        adj = newton
    if t + adj < 0:
        if t > 0:
            r = math.log2(-adj / t)
            if r < 2000.0:  # else (an infinite step) the guard below lands on 0
                adj = math.ldexp(adj, -int(math.ceil(r)))
        else:
            adj = 0.0
        if t + adj < 0:
            adj = -t  # round-off guard: land exactly on 0
    new = t + adj
    bracket = lo >= 0 and hi < math.inf
    if bracket:
        if newton_ok and lo < t + newton < hi:
            new = t + newton
        elif lo < t + fisher < hi:
            new = t + fisher
        else:
            new = 0.5 * (lo + hi)
    if not new <= upper:  # past every stationary point, infinite or NaN
        new = 0.5 * (t + upper)
    change = abs(new - t)
    scale = tol * max(new, 1.0)
    done = change <= scale or (bracket and hi - lo <= scale)
    if not done and newton_ok and new == t + newton and t != t_prev and observed != 0:
        # newton_converged on floats (a numba-compiled function cannot call the numpy one)
        curv = abs(observed - o_prev) / (abs(t - t_prev) * abs(observed))
        done = curv * change * change <= 0.005 * (tol * new)
    return new, lo, hi, done
