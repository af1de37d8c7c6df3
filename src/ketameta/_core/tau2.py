"""Between-study variance (tau²) estimators and the Q-profile confidence interval.

Every function works on arrays shaped ``(..., k)``: the last axis holds the studies, leading
axes index independent meta-analyses (all solved at once, each with its own convergence
check). An optional boolean ``mask`` of the same shape marks the studies that take part
(ragged problems); masked-out entries may hold any placeholder and never affect the result.

The estimators follow metafor's ``rma.uni()`` (intercept-only model, metafor 3.8-1):

* ``EE``/``FE``: tau² = 0.
* ``DL`` (DerSimonian-Laird), ``HE`` (Hedges), ``HS`` (Hunter-Schmidt), ``HSk`` (HS with the
  k/(k-1) correction), ``SJ`` (Sidik-Jonkman, started at the k-denominator variance of yi):
  closed form.
* ``ML``, ``REML``: Fisher scoring started at max(0, HE) with step-halving at 0 (metafor's path,
  so the same local maximum when the likelihood has two), finished by Newton steps, then
  metafor's check that tau² = 0 does not have a larger likelihood.
* ``PM``/``MP`` (Paule-Mandel), ``EB`` (empirical Bayes) and ``SJIT`` (iterated SJ): each is a
  fixed point of the same equation, generalized Q(tau²) = k - 1, so all are computed as its
  exact root (tau² = 0 when Q(0) < k - 1). ``PMM`` (median-unbiased PM) solves Q(tau²) = the
  chi-square(k - 1) median. metafor stops with "Value of 'tau2.max' too low" when the root
  exceeds ``tau2.max = max(100, 10 mad(yi)²)``; here the root is returned.
* ``DLIT`` (iterated DL, metafor's update tau² <- (Q(tau²) - (k - 1)) / tr P(tau²), truncated at
  0): its fixed point solves Q(tau²) - (k - 1) - tau² tr P(tau²) = 0, found here by safeguarded
  Newton-bisection. metafor's plain iteration oscillates slowly and can fail where this root
  exists (e.g. dat.hackshaw1998, where metafor stops with "did not converge").

All estimates are truncated at 0, as metafor truncates them.

Convergence: the roots are found to ``tol`` (default 1e-12), that is to the exact root.
metafor's defaults stop early (``threshold = 1e-5`` on the change in tau² for Fisher scoring,
``tol = .Machine$double.eps^0.25`` ≈ 1.2e-4 in ``uniroot()`` for PM/PMM and the Q-profile
bounds), so its default PM estimates can be off by up to ~4e-4 (relative) and its iterated
DL/SJ/EB estimates by more. To compare with metafor, fit there with
``control=list(tol=1e-12, threshold=1e-12, maxiter=1000)``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from scipy import special

from ketameta._core.arrays import (
    normalize,
    prepare,
    q_statistic,
    vdot,
    weighted_residuals,
    weights,
)
from ketameta._core.iterative import (
    _flatten,
    _q_and_slope,
    _score_steps,
    bracketed_score_root,
    fisher_scoring,
    scan_score,
    score_root_upper,
    solve_dlit,
    solve_q_equation,
)

__all__ = [
    "COMMON_METHODS",
    "METHODS",
    "HeterogeneityBounds",
    "QProfileCI",
    "Tau2Fit",
    "estimate_tau2",
    "heterogeneity_bounds",
    "prepare",
    "q_profile_ci",
    "q_statistic",
    "weighted_residuals",
    "weights",
]

Method = Literal[
    "EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM", "DLIT", "SJIT"
]
METHODS: tuple[str, ...] = (
    "EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM", "DLIT",
    "SJIT",
)  # fmt: skip
COMMON_METHODS = frozenset({"EE", "FE"})
_ROOT_METHODS = frozenset({"EB", "PM", "MP", "SJIT"})  # all solve Q(tau2) = k - 1


class Tau2Fit(NamedTuple):
    """Result of :func:`estimate_tau2`: arrays shaped like the leading axes of ``yi``."""

    tau2: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray


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


# ---------------------------------------------------------------------------------------------
# closed-form estimators


def _dl(yi, vi, m, k):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = vdot(w * e, e)
    tr_p = sw - vdot(w, w) / sw
    return (q - (k - 1.0)) / tr_p


def _he(yi, vi, m, k):
    mm = 1.0 if m is None else m
    ybar = (mm * yi).sum(axis=-1) / k
    rss = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1)
    tr_pv = (k - 1.0) / k * (mm * vi).sum(axis=-1)
    return (rss - tr_pv) / (k - 1.0)


def _hs(yi, vi, m, k, *, kcorr):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = vdot(w * e, e)
    if kcorr:
        q = k / (k - 1.0) * q
    return (q - k) / sw


def _sj(yi, vi, m, k):
    mm = 1.0 if m is None else m
    ybar = (mm * yi).sum(axis=-1) / k
    tau2_0 = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1) / k
    q = q_statistic(yi, vi, tau2_0, m)
    return tau2_0 * q / (k - 1.0)


# ---------------------------------------------------------------------------------------------
# ML/REML likelihood check


def _loglik(yi, vi, m, k, tau2, reml):
    w = weights(vi, tau2, m)
    sw, _, e = weighted_residuals(yi, w)
    q = vdot(w * e, e)
    mm = 1.0 if m is None else m
    logdet = (mm * np.log(vi + tau2[..., None])).sum(axis=-1)
    if reml:
        return -0.5 * (k - 1.0) * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * np.log(sw) - 0.5 * q
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * q


def _ml_reml(yi, vi, m, k, *, reml, tol, maxiter):
    """The global maximum of the (restricted) likelihood on [0, inf).

    Fisher scoring from max(0, HE) (metafor's path), every step kept below a bound on the
    stationary points (:func:`ketameta._core.iterative.score_root_upper`). The score is then
    scanned on a grid (:func:`ketameta._core.iterative.scan_score`); on the few problems
    where it shows a local maximum the iteration did not reach (a bimodal likelihood, or a
    maximum at 0 with a higher interior one), or where the iteration failed (NaN steps),
    each such maximum is solved inside its bracket and the highest likelihood wins (the
    iteration's own root on ties). Finally metafor's check that tau² = 0 is not better.
    ``converged`` is True only for a finite result.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        start = np.maximum(_he(yi, vi, m, k), 0.0)
    start = np.where(np.isfinite(start) & (k > 1), start, 0.0)
    upper = score_root_upper(yi, vi, m, reml)
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
        yi, vi, m, k, tau2, converged, iterations, upper, reml=reml, tol=tol, maxiter=maxiter
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ll0 = _loglik(yi, vi, m, k, np.zeros_like(tau2), reml)
        ll = _loglik(yi, vi, m, k, tau2, reml)
    stuck = converged & (ll0 - ll > tol) & (tau2 > tol)
    tau2 = np.where(stuck | (k <= 1), 0.0, tau2)
    converged = (converged & np.isfinite(tau2)) | (k <= 1)
    return tau2, converged, iterations


def _other_maxima(yi, vi, m, k, tau2, converged, iterations, upper, *, reml, tol, maxiter):
    """Replace the iteration's root where the score scan finds a higher local maximum."""
    shape = tau2.shape
    n = tau2.size
    kk = k.reshape(n)
    grid, score = scan_score(yi, vi, m, reml, upper)
    t1 = tau2.reshape(n).copy()
    ok1 = converged.reshape(n).copy()
    it1 = iterations.reshape(n).copy()
    failed = ~ok1 & (it1 < maxiter) & (kk > 1)
    cand = (score[:, :-1] > 0) & (score[:, 1:] <= 0) & (kk > 1)[:, None]
    own = (grid[:, :-1] <= t1[:, None]) & (t1[:, None] <= grid[:, 1:]) & (ok1 & (t1 > 0))[:, None]
    other = cand & ~own
    rows, cols = np.nonzero(other & (ok1 | failed)[:, None])
    # failed rows with no bracket: the score is <= 0 on the whole grid, the maximum is at 0
    none = failed & ~cand.any(axis=1) & (score[:, 0] <= 0)
    t1[none], ok1[none] = 0.0, True
    if rows.size:
        n_all, (y, v, mm), _ = _flatten(yi, vi, m)
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


def _fisher_one(y, v, t, reml, tol, maxiter, upper=np.inf):
    """:func:`ketameta._core.iterative.fisher_scoring` for one unmasked problem.

    The same steps, brackets and stopping rule as the vectorised solver, with the per-problem
    quantities as scalars: a single fit spends its time in numpy call overhead, not arithmetic.
    The score and information come from the same function, so the iterates are identical.
    """
    lo, hi = -1.0, np.inf
    for it in range(1, maxiter + 1):
        adj, newton, observed = (float(a) for a in _score_steps(y, v, None, t, reml))
        if adj != adj:  # NaN: score or information not finite
            return t, False, it
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
                halvings = int(np.ceil(np.log2(-adj / t)))
                adj = float(np.ldexp(adj, -halvings))
            else:
                adj = 0.0
            if t + adj < 0:
                adj = -t  # round-off guard: land exactly on 0
        new = t + adj
        bracket = lo >= 0 and hi < np.inf
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
        t = new
        scale = tol * max(t, 1.0)
        if change <= scale or (bracket and hi - lo <= scale):
            if 0 < t <= 100.0 * tol and _score_steps(y, v, None, 0.0, reml)[0] <= 0:
                t = 0.0
            return t, True, it
    return t, False, maxiter


def _q_root_one(y, v, target, upper, tol, maxiter):
    """:func:`ketameta._core.iterative.solve_q_equation` for one unmasked problem (scalars)."""
    t = 0.0
    f, slope = (float(a) for a in _q_and_slope(y, v, None, t, target))
    if not f > 0:
        return 0.0, True, 0
    hi = np.inf
    if upper is not None:
        if _q_and_slope(y, v, None, upper, target)[0] >= 0:
            return upper, True, 0
        hi = upper
    lo = t
    for it in range(1, maxiter + 1):
        right = f > 0
        if right:
            lo = t
        else:
            hi = t
        q_step = f / slope  # Newton on Q
        new = t + q_step * (f + target) / target  # Newton on 1/Q - 1/target
        if not lo < new < hi:
            new = t + q_step if right else 0.5 * (lo + hi)
        done = abs(new - t) <= tol * max(new, 1.0)
        t = new
        f, slope = (float(a) for a in _q_and_slope(y, v, None, t, target))
        if done or f == 0:
            return t, True, it
    return t, False, maxiter


def estimate_tau2(yi, vi, method: Method, *, mask=None, tol=1e-12, maxiter=1000) -> Tau2Fit:
    """Estimate the between-study variance tau² for each meta-analysis.

    Parameters
    ----------
    yi, vi : array_like, shape (..., k)
        Effect sizes and their sampling variances (vi > 0); last axis = studies.
    method : {"EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM",
        "DLIT", "SJIT"}
        The estimator, as metafor's ``rma(method=)`` (see the module docstring).
    mask : array_like of bool, shape (..., k), optional
        ``True`` where the study takes part.
    tol : float
        Convergence tolerance of the iterative estimators (change in tau², relative above 1).
        The default 1e-12 gives the exact root; metafor's defaults stop much earlier (PM off
        by up to ~4e-4 relative), so compare with ``control=list(tol=1e-12, threshold=1e-12)``.
    maxiter : int
        Iteration limit; problems that reach it have ``converged = False``.

    Returns
    -------
    Tau2Fit
        ``(tau2, converged, iterations)``, arrays shaped ``yi.shape[:-1]``. tau² is 0 for
        problems with a single study.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79])
    >>> vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01])
    >>> fit = estimate_tau2(yi, vi, "DL")
    >>> round(float(fit.tau2), 6), bool(fit.converged)
    (0.208634, True)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.")
    yi, vi, m, k = prepare(yi, vi, mask)
    return _estimate_prepared(yi, vi, m, k, method, tol=tol, maxiter=maxiter)


def _estimate_prepared(yi, vi, m, k, method, *, tol, maxiter, scaled=None) -> Tau2Fit:
    """:func:`estimate_tau2` on the output of :func:`ketameta._core.arrays.prepare`.

    Every estimator runs on the centred and rescaled problem of
    :func:`ketameta._core.arrays.normalize` (yi -> (yi - c) / s, vi -> vi / s², s a power of
    two) and tau² is scaled back by s²: the estimates are location invariant and scale
    equivariant, and no intermediate overflows for yi ~ 1e±300 or vi ~ 1e±300. Where s² tau²
    itself is not a finite float, tau² is NaN and ``converged`` False. ``scaled=s`` says
    that yi, vi are already normalized with scale s.
    """
    if method in COMMON_METHODS:
        shape = yi.shape[:-1]
        return Tau2Fit(np.zeros(shape), np.ones(shape, dtype=bool), np.zeros(shape, np.int64))
    y, v, _, s = normalize(yi, vi, m) if scaled is None else (yi, vi, None, scaled)
    fit = _estimate_scaled(y, v, m, k, method, tol=tol, maxiter=maxiter)
    with np.errstate(over="ignore", invalid="ignore"):
        tau2 = fit.tau2 * s * s
    # vi / s² underflowing to 0 (vi below 1e-308 times the squared spread of yi): Q and the
    # weights at tau² = 0 are not floats, so neither is the answer of most estimators
    tiny = (v <= 0) if m is None else (v <= 0) & (m > 0)
    finite = np.isfinite(tau2) & ~(tiny.any(axis=-1) & (k > 1))
    return Tau2Fit(np.where(finite, tau2, np.nan), fit.converged & finite, fit.iterations)


def _estimate_scaled(yi, vi, m, k, method, *, tol, maxiter) -> Tau2Fit:
    """:func:`_estimate_prepared` on a normalized problem."""
    shape = yi.shape[:-1]
    zeros_i = np.zeros(shape, dtype=np.int64)
    ok = np.ones(shape, dtype=bool)
    if method in COMMON_METHODS:
        return Tau2Fit(np.zeros(shape), ok, zeros_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "DL":
            tau2 = _dl(yi, vi, m, k)
        elif method == "HE":
            tau2 = _he(yi, vi, m, k)
        elif method in ("HS", "HSk"):
            tau2 = _hs(yi, vi, m, k, kcorr=method == "HSk")
        elif method == "SJ":
            tau2 = _sj(yi, vi, m, k)
        elif method in ("ML", "REML"):
            return Tau2Fit(*_ml_reml(yi, vi, m, k, reml=method == "REML", tol=tol, maxiter=maxiter))
        elif method == "DLIT":
            return Tau2Fit(*solve_dlit(yi, vi, m, k, tol=tol, maxiter=maxiter))
        else:
            target = k - 1.0 if method in _ROOT_METHODS else _chi2_isf(k - 1.0, 0.5)
            target = np.where(k > 1, target, np.inf)
            tau2, ok, it = solve_q_equation(yi, vi, m, target, tol=tol, maxiter=maxiter)
            return Tau2Fit(tau2, ok, it)
    tau2 = np.where(k > 1, np.maximum(tau2, 0.0), 0.0)
    tau2 = np.where(np.isnan(tau2), 0.0, tau2)  # all yi equal (SJ start 0): 0/0
    return Tau2Fit(tau2, ok, zeros_i)


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


def _q_profile_prepared(
    yi, vi, m, k, *, level, tau2, tol, maxiter, max_tau2="metafor", scaled=None
) -> QProfileCI:
    """:func:`q_profile_ci` on the output of :func:`ketameta._core.arrays.prepare`."""
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
        roots, ok, _ = solve_q_equation(ys, vs, ms, target, upper=reach, tol=tol, maxiter=maxiter)
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
