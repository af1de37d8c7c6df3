"""A lean path for one meta-analysis: the same numbers as :func:`ketameta._core.batch.fit_batch`.

A single fit of k ~ 20 studies costs numpy call overhead, not arithmetic: the batched engine
spends ~10 numpy calls on each Q or score evaluation, plus the masks, reshapes and per-problem
bookkeeping of a batch. Here one unmasked problem of ``k <= FAST_MAX_K`` studies runs the same
algorithms (normalization, estimators, Fisher scoring with its brackets and stopping rule, the
score scan for other maxima, metafor's tau² = 0 check, pooling) with every per-problem quantity
a Python float and each evaluation fused into two small matrix products that give all the
weighted moments at once. The batched path stays the reference: anything unusual (an
estimator without a fused version, a second local maximum, a failed iteration, a division by
zero or a value that is not finite) falls back to it, so the answers agree to round-off
(``tests/test_performance_paths.py`` checks 1e-12 for every method).

The Q-profile interval and the secondary statistics (se(tau²), fit statistics) are not part of
the fit: :func:`deferred` computes them from the fit on demand (``MetaResult`` asks on first
access), with the batched engine's own functions, so they are identical.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ketameta._core.arrays import normalize
from ketameta._core.qprofile import q_root_loop
from ketameta._core.reml import fisher_loop

#: Largest k the lean path takes (above it the batched engine's vector work dominates anyway).
FAST_MAX_K = 4096

_FUSED = frozenset(
    {"EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "SJIT", "PMM"}
)
_ROOT = frozenset({"EB", "PM", "MP", "SJIT"})
_TESTS = frozenset({"z", "t", "knha", "adhoc"})  # every test of the batched engine
_EPS = float(np.finfo(np.float64).eps)
_LOG_2PI = math.log(2.0 * math.pi)
_CRIT: dict = {}


class _Fallback(Exception):
    """The lean path declines this problem; the batched engine fits it."""


class _Problem:
    """One normalized problem, shifted by its common-effect mean, with fused evaluations.

    Each evaluation is one matrix product of the weight powers ``w, w², w³`` (w = 1/(v + t))
    with ``1, x, x²`` (x = y - the common-effect mean, a fixed shift that keeps the central
    moments below free of cancellation: the heavily weighted studies sit near 0) and a few
    float operations for the central moments about the weighted mean at t.
    """

    __slots__ = ("W", "X", "k", "range", "shift", "v", "y")

    def __init__(self, y, v, rng):
        n = y.size
        self.y, self.v, self.k = y, v, float(n)
        w = 1.0 / v
        self.shift = float(w @ y) / float(w.sum())
        X = self.X = np.empty((n, 3))  # columns 1, x, x²
        X[:, 0] = 1.0
        x = X[:, 1]
        np.subtract(y, self.shift, out=x)
        np.multiply(x, x, out=X[:, 2])
        self.W = np.empty((3, n))
        self.range = rng

    def mean(self, t):
        """``sum w`` and the weighted mean at tau² = t (``W[0]`` holds w)."""
        w = self.W[0]
        np.add(self.v, t, out=w)
        np.reciprocal(w, out=w)
        a0, a1 = (w @ self.X[:, :2]).tolist()
        return a0, self.shift + a1 / a0

    def moments(self, t):
        """Central weighted moments at tau² = t: ``M[p - 1][j] = sum w^p e^j`` (e = y - the
        weighted mean), with ``sw`` and the weighted mean ``mu``."""
        W = self.W
        w = W[0]
        np.add(self.v, t, out=w)
        np.reciprocal(w, out=w)
        np.multiply(w, w, out=W[1])
        np.multiply(W[1], w, out=W[2])
        (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = (W @ self.X).tolist()
        d = a1 / a0  # weighted mean of x
        # sum w^p (x - d)^j from the raw sums of w^p x^j
        m = [
            [a0, a1 - d * a0, a2 - d * (2.0 * a1 - d * a0)],
            [b0, b1 - d * b0, b2 - d * (2.0 * b1 - d * b0)],
            [c0, c1 - d * c0, c2 - d * (2.0 * c1 - d * c0)],
        ]
        return m, a0, self.shift + d


_FRACTIONS: dict = {}


def _fractions(g):
    out = _FRACTIONS.get(g)
    if out is None:
        out = _FRACTIONS[g] = np.linspace(0.0, 1.0, g)
    return out


def _crit(kind, level, df=None):
    key = (kind, level, df)
    out = _CRIT.get(key)
    if out is None:
        alpha = 1.0 - level / 100.0
        if kind == "z":
            out = float(-special.ndtri(alpha / 2.0))
        elif kind == "t":
            out = float(special.stdtrit(df, 1.0 - alpha / 2.0))
        else:  # chi-square quantile of df at upper-tail probability `level`
            out = float(special.chdtri(df, level))
        if len(_CRIT) < 4096:
            _CRIT[key] = out
    return out


def fits_lean(yi, vi, method: str, mask=None) -> bool:
    """Whether :func:`fit_one` takes this problem (else use ``fit_batch``)."""
    return (
        mask is None
        and method in _FUSED
        and getattr(yi, "ndim", 0) == 1
        and 2 <= yi.shape[0] <= FAST_MAX_K
    )


def fit_one(yi, vi, *, method, test="z", level=95.0, tol=1e-12, maxiter=1000):
    """``fit_batch(yi, vi, method=..., ci_tau2=False, stats=False)`` for one 1-D problem.

    Returns a dict of Python floats (``weights``: an array), or None where the lean path
    declines (call ``fit_batch`` then). ``_scaled`` holds the normalized problem for
    :func:`deferred`.
    """
    if not fits_lean(yi, vi, method) or test not in _TESTS:
        return None  # an unknown test: fit_batch raises its error
    try:
        scaled = _moderate(yi, vi)
        if scaled is not None:  # nothing can overflow: no floating-point state to set
            return _fit_one(yi, vi, method, test, float(level), tol, maxiter, scaled)
        with np.errstate(all="ignore"):
            return _fit_one(yi, vi, method, test, float(level), tol, maxiter, None)
    except (_Fallback, ZeroDivisionError, OverflowError, ValueError):
        return None


def _moderate(yi, vi):
    """``(yi, vi, 0, 1, range)`` where every input is of moderate size (1e-40 < vi < 1e40,
    |yi| < 1e40), so that no weight power or moment can overflow or underflow and rescaling is
    not needed (the fused moments are taken about the common-effect mean, which does the
    centring); else None (the problem is normalized as the batched engine does)."""
    y_hi, y_lo = float(yi.max()), float(yi.min())
    v_hi, v_lo = float(vi.max()), float(vi.min())
    if 1e-40 < v_lo and v_hi < 1e40 and -1e40 < y_lo and y_hi < 1e40:
        return yi, vi, 0.0, 1.0, y_hi - y_lo
    return None


def _normalize(yi, vi):
    y_hi, y_lo, v_hi = float(yi.max()), float(yi.min()), float(vi.max())
    c = 0.5 * y_hi + 0.5 * y_lo
    half = 0.5 * y_hi - 0.5 * y_lo
    size = max(math.sqrt(v_hi), half)
    if not (math.isfinite(size) and size > 0):
        size = 1.0
    if not math.isfinite(c):
        raise _Fallback
    s = math.ldexp(1.0, math.frexp(size)[1])
    inv = 1.0 / s  # exact: s is a power of two
    y = (yi - c) * inv
    v = vi * (inv * inv)
    return y, v, c, s, (y_hi - y_lo) / s


def _fit_one(yi, vi, method, test, level, tol, maxiter, scaled):
    if scaled is None:
        y, v, c, s, rng = _normalize(yi, vi)
        if not (float(v.min()) > 0.0 and math.isfinite(rng)):
            raise _Fallback  # underflow or overflow: the batched engine reports it
    else:
        y, v, c, s, rng = scaled
    p = _Problem(y, v, rng)
    k = p.k
    m0, sw0, mu0 = p.moments(0.0)
    q0 = m0[0][2]
    iterations = 0
    converged = True
    if method in ("EE", "FE"):
        t = 0.0
    elif method == "DL":
        t = (q0 - (k - 1.0)) / (sw0 - m0[1][0] / sw0)
    elif method == "HE":
        t = _he(y, v, k)
    elif method in ("HS", "HSk"):
        q = k / (k - 1.0) * q0 if method == "HSk" else q0
        t = (q - k) / sw0
    elif method == "SJ":
        ybar = float(y.sum()) / k
        d = y - ybar
        t0 = float(d @ d) / k
        t = t0 * p.moments(t0)[0][0][2] / (k - 1.0)
    elif method in ("ML", "REML"):
        t, converged, iterations = _ml_reml(p, method == "REML", tol, maxiter)
    else:
        target = k - 1.0 if method in _ROOT else _crit("chi2", 0.5, k - 1.0)
        t, converged, iterations = _q_root(p, target, None, tol, maxiter)
    if method in ("DL", "HE", "HS", "HSk", "SJ"):
        t = max(t, 0.0) if t == t else 0.0
    tau2 = t * s * s
    if not math.isfinite(tau2):
        raise _Fallback
    out = _pool(p, m0, sw0, tau2, c, s, method, test, level)
    out.update(tau2=tau2, tau=math.sqrt(tau2), converged=converged, iterations=iterations)
    out["_scaled"] = (y, v, s, p)
    return out


def _he(y, v, k):
    ybar = float(y.sum()) / k
    d = y - ybar
    return (float(d @ d) - (k - 1.0) / k * float(v.sum())) / (k - 1.0)


def _score_steps(p, t, reml):
    """:func:`ketameta._core.iterative._score_steps` from the fused moments."""
    M, sw, _ = p.moments(t)
    sw2, sw3 = M[1][0], M[2][0]
    ypp, sw2e = M[1][2], M[1][1]
    yppp = M[2][2] - sw2e * sw2e / sw
    if reml:
        expected = sw2 - 2.0 * sw3 / sw + sw2 * sw2 / (sw * sw)
        twice = ypp - (sw - sw2 / sw)
    else:
        expected = sw2
        twice = ypp - sw
    observed = 2.0 * yppp - expected
    newton = twice / observed if observed != 0 else math.copysign(math.inf, twice)
    return twice / expected, newton, observed


def _ml_reml(p, reml, tol, maxiter):
    """:func:`ketameta._core.tau2._ml_reml` for one problem (the same steps and checks)."""
    y, v, k = p.y, p.v, p.k
    start = _he(y, v, k)
    start = max(start, 0.0) if math.isfinite(start) else 0.0
    r = p.range
    vmax = float(v.max())
    bound = max(2.0 * vmax, 4.0 * r * r) if reml else r * r
    upper = max(1.01 * bound, 1e-300)
    moved = start > 0 and _score_steps(p, 0.0, reml)[0] <= 0  # the batch's boundary start
    if moved:
        _check_other_maxima(p, 0.0, reml, upper)  # else fit_batch: metafor's start there
        start = 0.0
    t, ok, it = _fisher(p, start, reml, tol, maxiter, upper)
    if not ok:
        raise _Fallback  # the batched engine's bracketed search takes over
    if not moved:  # (else t = 0, just checked)
        _check_other_maxima(p, t, reml, upper)
    ll0 = _loglik(p, 0.0, reml)
    ll = _loglik(p, t, reml)
    if ll0 - ll > tol and t > tol:
        t = 0.0
    return t, True, it


def _fisher(p, t, reml, tol, maxiter, upper):
    """:func:`ketameta._core.reml.fisher_loop` on the fused moments."""
    return fisher_loop(lambda tau2: _score_steps(p, tau2, reml), t, tol, maxiter, upper)


def _check_other_maxima(p, t, reml, upper, per_decade=3, min_points=12, max_points=96):
    """The score scan of :func:`ketameta._core.iterative.scan_score` on this problem's grid;
    any local maximum other than the iteration's own sends the problem to the batched engine
    (which compares the likelihoods)."""
    v = p.v
    vmin = float(v.min())
    low = min(0.1 * vmin, 1e-3 * upper)
    decades = math.log10(upper / low) if low > 0 else math.inf
    widest = decades if math.isfinite(decades) else 1.0
    g = int(min(max(math.ceil(per_decade * widest) + 1, min_points), max_points))
    grid = np.empty(g + 1)
    grid[0] = 0.0
    grid[1:] = low * (upper / low) ** _fractions(g)
    w = np.add(v[None, :], grid[:, None])
    np.reciprocal(w, out=w)
    mom = p.X  # moments of x = y - shift: the score is shift invariant
    s1 = w @ mom[:, :2]
    np.multiply(w, w, out=w)
    s2 = w @ mom
    sw = s1[:, 0]
    mu = s1[:, 1] / sw
    sw2 = s2[:, 0]
    ypp = s2[:, 2] - mu * (2.0 * s2[:, 1] - mu * sw2)
    score = ypp - (sw - sw2 / sw) if reml else ypp - sw
    cand = (score[:-1] > 0) & (score[1:] <= 0)
    if not cand.any():
        return
    own = (grid[:-1] <= t) & (t <= grid[1:]) & (t > 0)
    if (cand & ~own).any():
        raise _Fallback


def _loglik(p, t, reml):
    M, sw, _ = p.moments(t)
    q = M[0][2]
    logdet = float(np.log(p.v + t).sum())
    k = p.k
    if reml:
        return -0.5 * (k - 1.0) * _LOG_2PI - 0.5 * logdet - 0.5 * math.log(sw) - 0.5 * q
    return -0.5 * k * _LOG_2PI - 0.5 * logdet - 0.5 * q


def _q_root(p, target, upper, tol, maxiter):
    """:func:`ketameta._core.qprofile.q_root_loop` on the fused moments: Q(tau²) = target."""

    def f_slope(t):
        M = p.moments(t)[0]
        return M[0][2] - target, M[1][2]

    return q_root_loop(f_slope, target, upper, tol, maxiter)


def _pool(p, m0, sw0, tau2, c, s, method, test, level):
    """:func:`ketameta._core.pooling._pool_prepared` for one problem (floats)."""
    s2 = s * s
    t = tau2 / s2
    k = p.k
    kh = test in ("knha", "adhoc")
    if kh:
        M, sw, est = p.moments(t)
    else:
        sw, est = p.mean(t)
    w = p.W[0]
    uncentred = c / s + est
    var = 1.0 / sw
    if test in ("t", "knha", "adhoc"):
        df = k - 1.0
        if kh:
            rss = M[0][2]
            s2w = 0.0 if rss <= _EPS else rss / df
            var = (max(s2w, 1.0) if test == "adhoc" else s2w) * var
        se = math.sqrt(var)
        crit = _crit("t", level, df)
        stat = uncentred / se
        pval = float(2.0 * special.stdtr(df, -abs(stat)))
    else:
        df = math.nan
        se = math.sqrt(var)
        crit = _crit("z", level)
        stat = uncentred / se
        pval = float(2.0 * special.ndtr(-abs(stat)))
    half = crit * se
    pi_half = crit * math.sqrt(var + t)
    q_df = k - 1.0
    q = max(m0[0][2], 0.0)
    q_p = float(special.chdtrc(q_df, q))
    vt = q_df / (sw0 - m0[1][0] / sw0)
    if method in ("EE", "FE"):
        i2 = max(0.0, 100.0 * (q - q_df) / q) if q > 0 else 0.0
        h2 = q / q_df
    else:
        i2 = 100.0 * t / (vt + t)
        h2 = t / vt + 1.0
    est_0 = c + s * est
    half, pi_half, se, vt = s * half, s * pi_half, s * se, s2 * vt
    return {
        "k": k,
        "estimate": est_0,
        "se": se,
        "statistic": stat,
        "pvalue": pval,
        "ci_low": est_0 - half,
        "ci_high": est_0 + half,
        "pi_low": est_0 - pi_half,
        "pi_high": est_0 + pi_half,
        "df": df,
        "weights": (100.0 / sw) * w,
        "q": q,
        "q_df": q_df,
        "q_pvalue": q_p,
        "i2": i2,
        "h2": h2,
        "vt": vt,
    }


def upper_bound_at_limit(yi, vi, *, level, tau2, scaled=None) -> bool:
    """Whether the upper Q-profile bound is metafor's search limit ``max(100, 10 tau²)``:
    Q(limit) >= the lower chi-square quantile (the test the search itself makes first)."""
    if scaled is None:
        y, v, _, s = normalize(np.asarray(yi, float), np.asarray(vi, float), None)
        p = None
    else:
        y, v, s, p = scaled
    k = float(y.shape[-1])
    if k < 2:
        return False
    limit = max(100.0, 10.0 * tau2) / (s * s)
    crit_l = _crit("chi2", 1.0 - (1.0 - level / 100.0) / 2.0, k - 1.0)
    r = float(y.max()) - float(y.min()) if p is None else p.range
    if k * r * r < crit_l * limit:  # Q(limit) <= k range² / limit: below the quantile
        return False
    with np.errstate(all="ignore"):
        if p is not None:
            return p.moments(limit)[0][0][2] - crit_l >= 0
        w = 1.0 / (v + limit)
        sw = float(w.sum())
        e = y - float(w @ y) / sw
        return bool(float((w * e) @ e) - crit_l >= 0)


def deferred(yi, vi, *, method, level, tau2, vt, tol=1e-12, maxiter=1000, scaled=None):
    """The parts of ``fit_batch`` a fit does not need at once, for one 1-D problem.

    Returns a dict: ``tau2_ci, tau_ci, i2_ci, h2_ci`` (float pairs, the Q-profile interval and
    its derived bounds, NaN pairs for EE/FE and k < 2), ``ci_converged`` and ``se_tau2, loglik,
    deviance, aic, bic, aicc``, computed by the batched engine's own functions from ``tau2``
    (the model's estimate) and ``vt``, so they equal ``fit_batch``'s.
    """
    from ketameta._core.batch import _scaled_statistics
    from ketameta._core.tau2 import COMMON_METHODS, _q_profile_prepared, heterogeneity_bounds

    if scaled is None:
        y, v, _, s = normalize(np.asarray(yi, float), np.asarray(vi, float), None)
    else:
        y, v, s = scaled[:3]
    k = np.asarray(float(y.shape[-1]))
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(tau2, dtype=np.float64)
    nan = (math.nan, math.nan)
    out = {}
    if method in COMMON_METHODS or k < 2:
        out.update(tau2_ci=nan, tau_ci=nan, i2_ci=nan, h2_ci=nan, ci_converged=True)
    else:
        ci = _q_profile_prepared(
            y, v, None, k, level=level, tau2=t, tol=tol, maxiter=maxiter, scaled=s
        )
        lo, hi = ci
        b = heterogeneity_bounds(lo, hi, vt)
        out.update(
            tau2_ci=(float(lo), float(hi)),
            tau_ci=(float(b.tau_low), float(b.tau_high)),
            i2_ci=(float(b.i2_low), float(b.i2_high)),
            h2_ci=(float(b.h2_low), float(b.h2_high)),
            ci_converged=not (math.isnan(float(lo)) or math.isnan(float(hi))),
        )
    stats = _scaled_statistics(y, v, None, k, t, method, s)
    out.update({key: float(val) for key, val in stats.items()})
    return out
