"""Leave-one-out, influence and cumulative fits on the batched core (pure numpy).

Every refit runs as one vectorised batch: the k leave-one-out problems are the rows of a
(k, k) mask, the k cumulative problems the rows of a lower-triangular mask, so nothing loops
over single fits in Python. Influence measures follow Viechtbauer & Cheung (2010), as metafor's
``influence.rma.uni()`` computes them for models without moderators.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ketameta._core.batch import fit_batch

#: Memory budget (bytes) of one chunk of refits: the k refits of leave-one-out, influence and
#: cumulative run in chunks of rows sized so that a chunk's working arrays stay near it, so
#: peak memory grows linearly in k (not as k²) and k = 100,000 runs in a few hundred MB.
MEMORY_BUDGET = 256 * 2**20
#: Bytes per element of an ``(n, k)`` batch that ``fit_batch`` holds at its peak (measured
#: with tracemalloc: ~26 float64 arrays of the batch's shape for REML, fewer for DL).
_BYTES_PER_CELL = 8 * 32


#: Cells of an ``(rows, k)`` chunk aimed at when the budget allows more: each working array
#: (~0.5 MB) then stays in the CPU cache, ~2.5x faster than chunks at the budget (k = 3,000).
_CACHE_CELLS = 65_536


def chunk_rows(k: int, budget: int | None = None) -> int:
    """Rows of an ``(rows, k)`` refit batch: cache-sized, within the memory budget, >= 1."""
    budget = MEMORY_BUDGET if budget is None else budget
    k = max(k, 1)
    return max(1, min(int(budget // (_BYTES_PER_CELL * k)), _CACHE_CELLS // k))


def _chunked(yi, vi, k, make_mask, *, method, test, level, budget=None) -> dict:
    """``fit_batch`` of the k refits, chunk by chunk within the memory budget:
    ``make_mask(a, b)`` gives ``(yi, vi, mask)`` of refits a..b-1; the per-row outputs (all
    but the per-study weights) are concatenated."""
    step = chunk_rows(k, budget)
    parts = []
    for a in range(0, k, step):
        b = min(k, a + step)
        y, v, m = make_mask(a, b)
        fit = fit_batch(
            y, v, mask=m, method=method, test=test, level=level, ci_tau2=False, stats=False
        )
        del fit["weights"]  # (rows, k): the refits' weights are not returned (k² memory)
        parts.append(fit)
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def leave_one_out(
    yi, vi, *, method: str, test: str = "z", level: float = 95.0, budget: int | None = None
) -> dict:
    """Fits with each study left out in turn (row i = without study i), in memory-bounded
    chunks of rows (``budget`` bytes, default :data:`MEMORY_BUDGET`)."""
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.size
    if method == "DL" and k >= 3:
        out = _leave_one_out_dl(yi, vi, test=test, level=level, budget=budget)
        if out is not None:
            return out

    def rows(a, b):  # the studies of refits a..b-1 (study i dropped from row i), no mask
        cols = np.arange(k - 1)[None, :]
        take = cols + (cols >= np.arange(a, b)[:, None])
        return yi[take], vi[take], None

    return _chunked(yi, vi, k, rows, method=method, test=test, level=level, budget=budget)


def _leave_one_out_dl(yi, vi, *, test, level, budget=None):
    """DerSimonian-Laird leave-one-out by matrix products: the same numbers as ``fit_batch``
    with the k leave-one-out masks (to round-off), with ~4 passes over each ``(rows, k)`` chunk
    instead of ~60, so k = 100,000 (10^10 cells) runs in about a minute.

    Every sum over the studies of a refit is a row of ``W @ [1, x, x²]`` with W the chunk's
    weights (0 for the left-out study) and x the yi of the full problem, centred and scaled
    once (:func:`ketameta._core.arrays.normalize`; every refit is a subset) and shifted by the
    common-effect mean so that the central moments below do not cancel. None where the
    numbers are not all finite (the batched engine then reports them).
    """
    from scipy import special

    from ketameta._core.arrays import normalize
    from ketameta._core.pooling import KH_TESTS, T_TESTS, critical_values, kh_factor

    k = yi.size
    y, v, c, s = normalize(yi[None, :], vi[None, :], None)
    y, v, c, s = y[0], v[0], float(c[0]), float(s[0])
    if not (np.isfinite(y).all() and (v > 0).all() and np.isfinite(v).all()):
        return None
    w0 = 1.0 / v
    shift = float(w0 @ y) / float(w0.sum())
    x = y - shift
    X = np.stack([np.ones(k), x, x * x], axis=1)  # (k, 3)
    moments0 = np.stack([w0, w0 * x, w0 * x * x, w0 * w0], axis=1)  # (k, 4)
    kk = float(k - 1)  # studies in each refit
    out = {key: np.empty(k) for key in ("estimate", "se", "tau2", "q", "vt", "rss")}
    step = max(1, chunk_rows(k, budget) * 8)  # ~4 live (rows, k) arrays, not ~32
    for a in range(0, k, step):
        b = min(k, a + step)
        r = np.arange(b - a)
        keep = np.ones((b - a, k))
        keep[r, a + r] = 0.0
        s0, s1, s2, t0 = (keep @ moments0).T  # sums at w = 1/v without study i
        q = s2 - s1 * s1 / s0
        tr_p = s0 - t0 / s0
        tau2 = np.maximum((q - (kk - 1.0)) / tr_p, 0.0)
        tau2 = np.where(np.isnan(tau2), 0.0, tau2)
        w = np.add(v[None, :], tau2[:, None])
        np.reciprocal(w, out=w)
        w[r, a + r] = 0.0
        sw, swx, swx2 = (w @ X).T
        d = swx / sw
        out["estimate"][a:b] = shift + d
        out["se"][a:b] = 1.0 / sw
        out["tau2"][a:b] = tau2
        out["q"][a:b] = np.maximum(q, 0.0)
        out["vt"][a:b] = (kk - 1.0) / tr_p
        out["rss"][a:b] = swx2 - d * swx
    tau2, var, q, vt = out["tau2"], out["se"], out["q"], out["vt"]
    est = out["estimate"]
    df_t = kk - 1.0
    t_test = test in T_TESTS
    if test in KH_TESTS:
        var = kh_factor(out["rss"], df_t, test) * var
    if t_test:
        crit = critical_values(level, df_t)
        df = np.full(k, df_t)
    else:
        crit = critical_values(level)
        df = np.full(k, np.nan)
    se = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stat = (c / s + est) / se
        if t_test:
            pval = 2.0 * special.stdtr(df_t, -np.abs(stat))
        else:
            pval = 2.0 * special.ndtr(-np.abs(stat))
        half = crit * se
        pi_half = crit * np.sqrt(var + tau2)
        i2 = 100.0 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1.0
    est0 = c + s * est
    s2 = s * s
    result = {
        "k": np.full(k, kk),
        "estimate": est0,
        "se": s * se,
        "statistic": stat,
        "pvalue": pval,
        "ci_low": est0 - s * half,
        "ci_high": est0 + s * half,
        "pi_low": est0 - s * pi_half,
        "pi_high": est0 + s * pi_half,
        "df": df,
        "q": q,
        "q_df": np.full(k, kk - 1.0),
        "q_pvalue": special.chdtrc(kk - 1.0, q),
        "i2": i2,
        "h2": h2,
        "vt": s2 * vt,
        "tau2": s2 * tau2,
        "tau": s * np.sqrt(tau2),
        "converged": np.ones(k, dtype=bool),
        "iterations": np.zeros(k, dtype=np.int64),
    }
    if not all(np.isfinite(result[key]).all() for key in ("estimate", "se", "tau2", "q")):
        return None
    return result


def cumulative(
    yi, vi, order, *, method: str, test: str = "z", level: float = 95.0,
    budget: int | None = None,
) -> dict:  # fmt: skip
    """Fits of the first 1, 2, ..., k studies in ``order`` (row j = the first j + 1), in
    memory-bounded chunks of rows."""
    y = np.asarray(yi, dtype=float)[order]
    v = np.asarray(vi, dtype=float)[order]
    k = y.size

    def rows(a, b):  # the first j + 1 studies of row j (b columns are enough)
        m = np.arange(b)[None, :] <= np.arange(a, b)[:, None]
        return np.broadcast_to(y[:b], m.shape), np.broadcast_to(v[:b], m.shape), m

    return _chunked(y, v, k, rows, method=method, test=test, level=level, budget=budget)


def influence_measures(
    yi, vi, *, estimate: float, se: float, tau2: float, method: str, test: str = "z"
) -> dict:
    """Externally studentized residuals, DFFITS, Cook's distance, covariance ratio, leave-one-out
    tau² and QE, hat values, weights (percent), DFBETAS and metafor's influential flag."""
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.size
    p = 1
    loo = leave_one_out(yi, vi, method=method, test=test)
    b_del, se_del, tau2_del = loo["estimate"], loo["se"], loo["tau2"]
    w = 1.0 / (vi + tau2)
    hat = w / w.sum()
    rstudent = (yi - b_del) / np.sqrt(vi + tau2_del + se_del**2)
    dffits = (estimate - b_del) / np.sqrt(hat * (tau2_del + vi))
    cooks_d = (estimate - b_del) ** 2 / se**2
    cov_ratio = se_del**2 / se**2
    _ = p  # one coefficient (no moderators)
    # DFBETAS scale by the variance of the estimate with every study weighted at tau2_del
    vb_del_all = np.empty(k)
    step = chunk_rows(k)
    for a in range(0, k, step):  # the same sums, in memory-bounded chunks of rows
        b = min(k, a + step)
        vb_del_all[a:b] = 1.0 / np.sum(1.0 / (vi[None, :] + tau2_del[a:b, None]), axis=1)
    dfbetas = (estimate - b_del) / np.sqrt(vb_del_all)
    influential = (
        (np.abs(dffits) > 3.0 * np.sqrt(p / (k - p)))
        | (stats.chi2.cdf(cooks_d, df=p) > 0.5)
        | (hat > 3.0 * p / k)
        | (np.abs(dfbetas) > 1.0)
    )
    return {
        "rstudent": rstudent,
        "dffits": dffits,
        "cooks_d": cooks_d,
        "cov_ratio": cov_ratio,
        "tau2_del": tau2_del,
        "qe_del": loo["q"],
        "hat": hat,
        "weight": 100.0 * hat,
        "dfbetas": dfbetas,
        "influential": influential,
    }
