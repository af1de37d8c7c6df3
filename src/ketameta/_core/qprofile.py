"""The Q-profile confidence interval for tau² and the derived tau, I², H² bounds.

As metafor's ``confint()`` (type "QP"): the bounds solve the generalized Q equation
Q(tau²) = chi²_{k-1} quantiles (:func:`ketameta._core.iterative.solve_q_equation`). The names
are also importable from :mod:`ketameta._core.tau2`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import special

from ketameta._core.arrays import normalize, prepare, q_statistic, rowsum
from ketameta._core.iterative import _q_and_slope, solve_q_equation


class _QProfilePair(NamedTuple):
    tau2_low: np.ndarray
    tau2_high: np.ndarray


class QProfileCI(_QProfilePair):  # noqa: SLOT002 (instances carry the flags as attributes)
    """Q-profile confidence bounds for tau² (NaN where a search failed or k < 2).

    Unpacks as the pair ``(tau2_low, tau2_high)``, and carries boolean arrays saying which
    bound was not found, so that a caller can warn naming it: ``low_found`` / ``high_found``
    (the bound is the root of its equation, or 0 where that has no positive root) and
    ``low_at_limit`` / ``high_at_limit`` (the root lies beyond the search limit ``max_tau2``
    and the limit is reported, metafor's ">"). A bound neither found nor at the limit is NaN
    (the search failed, or k < 2).
    """

    low_found: np.ndarray
    high_found: np.ndarray
    low_at_limit: np.ndarray
    high_at_limit: np.ndarray

    def __new__(
        cls, tau2_low, tau2_high, low_found=None, high_found=None, low_at_limit=None,
        high_at_limit=None,
    ):  # fmt: skip
        self = super().__new__(cls, tau2_low, tau2_high)
        lo_ok = ~np.isnan(np.asarray(tau2_low, dtype=np.float64))
        hi_ok = ~np.isnan(np.asarray(tau2_high, dtype=np.float64))
        self.low_found = lo_ok if low_found is None else np.asarray(low_found, dtype=bool)
        self.high_found = hi_ok if high_found is None else np.asarray(high_found, dtype=bool)
        none = np.zeros(lo_ok.shape, dtype=bool)
        self.low_at_limit = none if low_at_limit is None else np.asarray(low_at_limit, bool)
        self.high_at_limit = none if high_at_limit is None else np.asarray(high_at_limit, bool)
        return self


class HeterogeneityBounds(NamedTuple):
    """Bounds on tau, I² (percent) and H² derived from the tau² bounds, as metafor's confint()."""

    tau_low: np.ndarray
    tau_high: np.ndarray
    i2_low: np.ndarray
    i2_high: np.ndarray
    h2_low: np.ndarray
    h2_high: np.ndarray


def _chi2_isf(df, p):
    """chi² quantile ``chdtri(df, p)``, computed once per distinct df in large batches.

    ``chdtri`` costs ~0.5 us per element, a large share of a batched fit; batches mostly share
    a few values of k, so the quantiles are looked up from the distinct ones (NaN df -> NaN).
    """
    df = np.asarray(df, dtype=np.float64)
    if df.size <= 64:
        return special.chdtri(df, p)
    distinct, where = np.unique(df, return_inverse=True)
    return special.chdtri(distinct, p)[where].reshape(df.shape)


def q_profile_ci(
    yi, vi, *, mask=None, level=95.0, tau2=None, tol=1e-12, maxiter=1000, max_tau2="metafor"
):
    """Q-profile confidence interval for tau², as metafor's ``confint()`` (type "QP").

    The bounds solve ``Q(tau²) = chi²_{k-1}`` upper and lower ``(1 - level/100)/2`` quantiles,
    where Q is the generalized Q statistic with weights 1/(vi + tau²). A bound whose equation
    has no positive root (Q(0) below the quantile) is 0, as in metafor. By default
    (``max_tau2="metafor"``) the search stops at metafor's limit ``tau2.max = max(100,
    10 * tau2)`` and a bound beyond it is set to that limit (metafor prints it as ">"); that
    limit is not scale free (it is in the units of yi²). With ``max_tau2=None`` the bracket
    is grown until it holds the root (its upper end starts at sum (yi - mean yi)² / quantile,
    beyond which Q is below the quantile, and is doubled while it is not), so both bounds are
    always roots; a number (or array) is used as the limit itself. Roots are found to ``tol``
    (metafor's default stops at ~1.2e-4), on the centred and rescaled problem
    (:func:`ketameta._core.arrays.normalize`), so bounds are scale equivariant.

    Parameters
    ----------
    yi, vi, mask : as :func:`estimate_tau2`.
    level : float
        Confidence level in percent.
    tau2 : array_like, optional
        The model's tau² estimate; only sets metafor's search limit ``max(100, 10 * tau2)``.
    max_tau2 : "metafor", None, float or array_like
        The search limit: metafor's (default), none (grow the bracket), or this value.

    Returns
    -------
    QProfileCI
        ``(tau2_low, tau2_high)``; NaN for problems with fewer than 2 studies or a failed
        search. Its ``low_found``, ``high_found``, ``low_at_limit``, ``high_at_limit``
        attributes say which bound was not found and why.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79])
    >>> vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01])
    >>> lo, hi = q_profile_ci(yi, vi)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0383, 1.4816)
    """
    yi, vi, m, k = prepare(yi, vi, mask)
    return _q_profile_prepared(
        yi, vi, m, k, level=level, tau2=tau2, tol=tol, maxiter=maxiter, max_tau2=max_tau2
    )


def _search_limit(shape, tau2, max_tau2):
    """The Q-profile search limit on the original scale (None: no limit)."""
    if max_tau2 is None:
        return None
    if isinstance(max_tau2, str):
        if max_tau2 != "metafor":
            raise ValueError(f"'max_tau2' must be 'metafor', None or a number, got {max_tau2!r}.")
        upper = np.full(shape, 100.0)
        if tau2 is not None:
            upper = np.maximum(upper, 10.0 * np.asarray(tau2, dtype=np.float64))
        return upper
    return np.broadcast_to(np.asarray(max_tau2, dtype=np.float64), shape).copy()


def _q_at_limit(yi, vi, m, k, limit, crit):
    """Q at the search limit, or an upper bound on it that is below ``crit`` (then neither
    root lies past the limit, and the bound is all the searches need): Q(t) <= sum w (y -
    ybar)² <= sum (y - ybar)² / t, the weighted mean minimising the weighted sum of squares
    and w <= 1 / t. Q itself is computed only on the rows where that bound is not enough."""
    mm = 1.0 if m is None else m
    d = yi - (rowsum(mm * yi) / k)[..., None]
    d *= d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q_up = rowsum(mm * d) / limit
    sel = np.flatnonzero(~(q_up < crit))
    if sel.size:
        rows = np.unravel_index(sel, q_up.shape)
        q_up = q_up.copy()
        q_up[rows] = _q_and_slope(
            yi[rows], vi[rows], None if m is None else m[rows], limit[rows], 0.0
        )[0]
    return q_up


def _q_profile_prepared(
    yi, vi, m, k, *, level, tau2, tol, maxiter, max_tau2="metafor", scaled=None, at_zero=None,
    at_tau2=None,
) -> QProfileCI:  # fmt: skip
    """:func:`q_profile_ci` on the output of :func:`ketameta._core.arrays.prepare`.

    ``at_zero = (Q(0), -Q'(0))`` and ``at_tau2 = (tau², Q(tau²), -Q'(tau²))`` at the
    estimate, on the normalized problem, when the caller has them (the searches start
    from them: :func:`ketameta._core.iterative.solve_q_equation`).
    """
    shape = yi.shape[:-1]
    alpha = 1.0 - level / 100.0
    df = np.where(k > 1, k - 1.0, np.nan)
    crit_u = _chi2_isf(df, alpha / 2.0)  # upper chi-square critical value
    crit_l = _chi2_isf(df, 1.0 - alpha / 2.0)  # lower chi-square critical value
    limit = _search_limit(shape, tau2, max_tau2)
    yi, vi, _, s = normalize(yi, vi, m) if scaled is None else (yi, vi, None, scaled)
    s2 = s * s
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if limit is None:  # grow the bracket: Q(t) <= sum (y - mean y)² / t
            mm = 1.0 if m is None else m
            ybar = (mm * yi).sum(axis=-1) / k
            rss = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1)
            reach = [np.maximum(1.01 * rss / c, 1e-300) for c in (crit_u, crit_l)]
            reach = [_grow(yi, vi, m, r, c) for r, c in zip(reach, (crit_u, crit_l), strict=True)]
        else:
            reach = [limit / s2, limit / s2]
    if yi.ndim == 1 and m is None:  # one problem: two scalar searches
        if k < 2:
            return QProfileCI(np.asarray(np.nan), np.asarray(np.nan))
        bounds = [
            _q_root_one(yi, vi, float(c), float(r), tol, maxiter)
            for c, r in zip((crit_u, crit_l), reach, strict=True)
        ]
        roots = np.array([r for r, _, _ in bounds])
        ok = np.array([o for _, o, _ in bounds])
        reach = np.array([float(r) for r in reach])
    else:
        # stack the two searches along a new leading axis: one vectorised Newton run
        ys = np.broadcast_to(yi, (2, *yi.shape))
        vs = np.broadcast_to(vi, (2, *vi.shape))
        ms = None if m is None else np.broadcast_to(m, (2, *m.shape))
        target = np.stack([np.where(k > 1, crit_u, np.inf), np.where(k > 1, crit_l, np.inf)])
        reach = np.stack([np.broadcast_to(r, shape) for r in reach])
        # Q(0) and its slope, and Q at a common search limit, once for both searches
        q0 = _q_and_slope(yi, vi, m, np.zeros(shape), 0.0) if at_zero is None else at_zero
        q_up = None
        if limit is not None:
            q_up = _q_at_limit(yi, vi, m, k, reach[0], np.fmin(crit_u, crit_l))
        roots, ok, _ = solve_q_equation(
            ys, vs, ms, target, upper=reach, tol=tol, maxiter=maxiter, at_zero=q0,
            at_upper=q_up, at_start=at_tau2,
        )  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = roots * s2
    at_limit = ok & (roots >= reach) & (k > 1) if limit is not None else np.zeros(ok.shape, bool)
    found = ok & (k > 1) & ~at_limit & np.isfinite(scaled)
    if limit is not None:  # report the limit exactly as given
        scaled = np.where(at_limit, np.broadcast_to(limit, scaled.shape), scaled)
    bounds = np.where(found | at_limit, scaled, np.nan)
    return QProfileCI(bounds[0], bounds[1], found[0], found[1], at_limit[0], at_limit[1])


def _grow(yi, vi, m, hi, target, *, limit=2100):
    """Double ``hi`` until Q(hi) < target (it already is but for round-off); NaN targets kept."""
    hi = np.array(hi, dtype=np.float64)
    for _ in range(limit):
        grow = q_statistic(yi, vi, hi, m) >= target
        grow &= np.isfinite(hi)
        if not grow.any():
            break
        hi = np.where(grow, 2.0 * hi, hi)
    return hi


def heterogeneity_bounds(tau2_low, tau2_high, vt) -> HeterogeneityBounds:
    """tau, I² (percent) and H² bounds from tau² bounds and the typical variance ``vt``.

    As metafor's ``confint()``: I² = 100 tau² / (vt + tau²), H² = tau² / vt + 1.
    """
    lo = np.asarray(tau2_low, dtype=np.float64)
    hi = np.asarray(tau2_high, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return HeterogeneityBounds(
            np.sqrt(lo),
            np.sqrt(hi),
            100.0 * lo / (vt + lo),
            100.0 * hi / (vt + hi),
            lo / vt + 1.0,
            hi / vt + 1.0,
        )


def _q_root_one(y, v, target, upper, tol, maxiter):
    """:func:`ketameta._core.iterative.solve_q_equation` for one unmasked problem (scalars)."""

    def f_slope(tau2):
        return tuple(float(a) for a in _q_and_slope(y, v, None, tau2, target))

    return q_root_loop(f_slope, target, upper, tol, maxiter)


def q_root_loop(f_slope, target, upper, tol, maxiter):
    """The scalar root of ``Q(tau²) = target`` from ``f_slope(tau2) -> (Q - target, dQ/dtau²)``:
    the brackets and Newton steps of the batched solver, shared by :func:`_q_root_one` (arrays)
    and the single-fit fast path (fused moments). Returns ``(tau2, converged, iterations)``."""
    t = 0.0
    f, slope = f_slope(t)
    if not f > 0:
        return 0.0, True, 0
    hi = math.inf
    if upper is not None:
        if f_slope(upper)[0] >= 0:
            return upper, True, 0
        hi = upper
    lo = t
    t_prev = d_prev = math.nan  # the previous iterate and d(1/Q)/dtau² there
    for it in range(1, maxiter + 1):
        new, lo, hi, done, d_now = q_step(t, f, slope, target, lo, hi, t_prev, d_prev, tol)
        t_prev, d_prev = t, d_now
        t = new
        if done:  # as the batched solver: no evaluation at the last iterate
            return t, True, it
        f, slope = f_slope(t)
        if f == 0:
            return t, True, it
    return t, False, maxiter


def q_step(t, f, slope, target, lo, hi, t_prev, d_prev, tol):
    """One iteration of the scalar Q-equation search from tau² = t, where Q - target = ``f``
    and -Q' = ``slope``: ``(new tau², lo, hi, done, d(1/Q)/dtau² at t)``.

    The rules of :func:`ketameta._core.iterative.solve_q_equation` on floats: the bracket from
    the sign of f, the Newton step on 1/Q - 1/target, replaced by a Newton step on Q from the
    left or by bisection when it would leave the bracket, and the stopping tests (the change at
    most ``tol * max(1, tau²)``, or a Newton step whose estimated remaining error, from the
    secant of d(1/Q)/dtau² through the previous iterate, is below ``tol * tau² / 100``). Plain
    float arithmetic: the numba kernel ``_jit_kernels.q_rows`` compiles this same function.
    """
    right = f > 0
    if right:
        lo = t
    else:
        hi = t
    q_newton = f / slope  # Newton on Q
    q = f + target
    new = t + q_newton * q / target  # Newton on 1/Q - 1/target
    newton = lo < new < hi
    if not newton:
        new = t + q_newton if right else 0.5 * (lo + hi)
    change = abs(new - t)
    done = change <= tol * max(new, 1.0)
    d_now = slope / (q * q)
    if not done and newton and t != t_prev and d_now != 0:
        # newton_converged on floats (a numba-compiled function cannot call the numpy one)
        curv = abs(d_now - d_prev) / (abs(t - t_prev) * abs(d_now))
        done = curv * change * change <= 0.005 * (tol * new)
    return new, lo, hi, done, d_now
