"""The batched REML engine against an independent slow reference, problem by problem.

Nothing is precomputed: every expected value comes from a per-row computation with plain numpy
and ``scipy.optimize.brentq`` (the global maximum of the restricted likelihood over all roots
of its score on a dense grid, and the Q-profile bounds as roots of Q(tau²) - chi² quantile).
The batch mixes padded (NaN) rows, rows with tau² = 0, k = 2 rows and likelihoods with two
local maxima, so that every shortcut of the engine (the partial score scan, the shared
Q-profile evaluations, the frozen Fisher-scoring rows) is checked where it could go wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special
from test_numerics_hard import BIMODAL_ML  # Fisher scoring from max(0, HE) stops at 0

from ketameta._core.arrays import normalize, prepare
from ketameta._core.batch import fit_batch
from ketameta._core.iterative import fisher_scoring, scan_score, score_root_upper
from ketameta._core.tau2 import _he, _scan_needed

K = 12  # padded width of the test batch
_RTOL = 4.0 * np.finfo(np.float64).eps  # brentq's smallest relative tolerance


def _batch(seed=20261202):
    """~400 problems of width K: NaN padding, tau² = 0, k = 2, vi over three decades."""
    rng = np.random.default_rng(seed)
    rows_y, rows_v = [], []

    def add(y, v):
        y, v = np.asarray(y, float), np.asarray(v, float)
        pad = np.full(K - y.size, np.nan)
        rows_y.append(np.concatenate([y, pad]))
        rows_v.append(np.concatenate([v, pad]))

    for _ in range(120):  # the benchmark's kind of problem, ragged
        k = int(rng.integers(3, K + 1))
        v = rng.uniform(0.01, 0.2, k)
        add(rng.normal(0.3, np.sqrt(0.1 + v)), v)
    for _ in range(40):  # homogeneous: mostly tau² = 0
        k = int(rng.integers(3, K + 1))
        v = rng.uniform(0.01, 0.2, k)
        add(0.3 + 0.2 * rng.normal(0.0, np.sqrt(v)), v)
    for _ in range(40):  # k = 2
        v = rng.uniform(0.01, 0.5, 2)
        add(rng.normal(0.0, np.sqrt(v + rng.choice([0.0, 0.3]))), v)
    for _ in range(200):  # vi over three decades: some likelihoods are bimodal
        k = int(rng.integers(3, 7))
        v = 10 ** rng.uniform(-3, 0, k)
        add(rng.normal(0.0, np.sqrt(v + rng.choice([0.0, 0.01, 0.1]))), v)
    for y, v in BIMODAL_ML:
        add(y, v)
    return np.array(rows_y), np.array(rows_v)


def _score(t, y, v, reml):
    w = 1.0 / (v + t)
    mu = np.sum(w * y) / np.sum(w)
    s = np.sum(w * w * (y - mu) ** 2) - np.sum(w)
    return s + np.sum(w * w) / np.sum(w) if reml else s


def _loglik(t, y, v, reml):
    w = 1.0 / (v + t)
    mu = np.sum(w * y) / np.sum(w)
    ll = -0.5 * np.sum(np.log(v + t)) - 0.5 * np.sum(w * (y - mu) ** 2)
    return ll - 0.5 * np.log(np.sum(w)) if reml else ll


def _reference_tau2(y, v, reml):
    """Global maximiser on [0, inf): 0 and every + to - root of the score on a dense grid.

    Returns ``(tau2, number of local maxima)``.
    """
    if y.size < 2:
        return 0.0, 1
    r = y.max() - y.min()
    hi = 1.01 * max(2.0 * v.max(), 4.0 * r * r) if reml else 1.01 * r * r
    if hi <= 0:
        return 0.0, 1
    grid = np.concatenate([[0.0], np.geomspace(min(1e-9, 1e-6 * hi), hi, 3000)])
    w = 1.0 / (v[None, :] + grid[:, None])  # the score on the grid, vectorised
    sw = w.sum(axis=1)
    e = y[None, :] - ((w * y).sum(axis=1) / sw)[:, None]
    score = (w * w * e * e).sum(axis=1) - sw + ((w * w).sum(axis=1) / sw if reml else 0.0)
    best, best_ll = 0.0, _loglik(0.0, y, v, reml)
    maxima = int(score[0] <= 0)
    for a, b, sa, sb in zip(grid[:-1], grid[1:], score[:-1], score[1:], strict=True):
        if sa > 0 >= sb:
            root = optimize.brentq(_score, a, b, args=(y, v, reml), xtol=1e-300, rtol=_RTOL)
            maxima += 1
            ll = _loglik(root, y, v, reml)
            if ll > best_ll + 1e-12 * abs(best_ll):
                best, best_ll = root, ll
    return best, maxima


def _q(t, y, v):
    w = 1.0 / (v + t)
    mu = np.sum(w * y) / np.sum(w)
    return np.sum(w * (y - mu) ** 2)


def _reference_q_root(y, v, crit, limit):
    """Root of Q(tau²) = crit on [0, limit] (0 without a positive root, the limit beyond)."""
    if _q(0.0, y, v) <= crit:
        return 0.0
    if _q(limit, y, v) >= crit:
        return limit
    return optimize.brentq(lambda t: _q(t, y, v) - crit, 0.0, limit, xtol=1e-300, rtol=_RTOL)


def _close(a, b, rtol=1e-10, atol=1e-14):
    return abs(a - b) <= rtol * abs(b) + atol


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_batched_fit_equals_the_slow_reference(method):
    yi, vi = _batch()
    mask = ~np.isnan(yi)
    out = fit_batch(yi, vi, mask=mask, method=method)
    assert out["converged"].all()
    reml = method == "REML"
    kinds = {"zero": 0, "k2": 0, "interior": 0, "bimodal": 0}
    for i in range(yi.shape[0]):
        y, v = yi[i, mask[i]], vi[i, mask[i]]
        ref, maxima = _reference_tau2(y, v, reml)
        got = float(out["tau2"][i])
        assert _close(got, ref), (i, got, ref)
        kinds["zero"] += ref == 0.0
        kinds["k2"] += y.size == 2
        kinds["interior"] += ref > 0.0
        kinds["bimodal"] += maxima > 1
        # the pooled estimate at that tau²
        w = 1.0 / (v + got)
        assert _close(float(out["estimate"][i]), float(np.sum(w * y) / np.sum(w)), atol=1e-12)
        # Q-profile bounds: roots of Q = chi² quantiles below metafor's limit
        limit = max(100.0, 10.0 * got)
        lo = _reference_q_root(y, v, special.chdtri(y.size - 1.0, 0.025), limit)
        hi = _reference_q_root(y, v, special.chdtri(y.size - 1.0, 0.975), limit)
        got_lo, got_hi = float(out["tau2_ci_low"][i]), float(out["tau2_ci_high"][i])
        assert _close(got_lo, lo, atol=1e-15), (i, got_lo, lo)
        assert _close(got_hi, hi, atol=1e-15), (i, got_hi, hi)
    assert min(kinds.values()) >= 2, kinds
    if not reml:  # the three two-maxima problems: the interior maximum, not Fisher's 0
        for j in range(len(BIMODAL_ML)):
            assert out["tau2"][yi.shape[0] - len(BIMODAL_ML) + j] > 0


@pytest.mark.parametrize("reml", [True, False])
def test_partial_scan_finds_the_candidates_of_the_full_scan(reml, seed=3):
    """The scan stopped past max vi - 2 min vi sees every other local maximum the full
    grid shows (rows where one lies past that point are scanned on the whole grid)."""
    rng = np.random.default_rng(seed)
    n, k = 3000, 6
    vi = 10 ** rng.uniform(-3, 0, (n, k))
    yi = rng.normal(0, np.sqrt(vi + rng.choice([0.0, 0.01, 0.1], (n, 1))))
    yi, vi, m, kk = prepare(yi, vi)
    y, v, _, _ = normalize(yi, vi, m)
    start = np.maximum(_he(y, v, m, kk), 0.0)
    up = score_root_upper(y, v, m, reml)
    t1, ok, it = fisher_scoring(y, v, m, start, reml=reml, upper=up)
    failed = ~ok & (it < 1000)
    grid, part = _scan_needed(y, v, m, up, t1, ok, failed, reml)
    grid_full, full = scan_score(y, v, m, reml, up)
    np.testing.assert_array_equal(grid, grid_full)

    def others(score):
        with np.errstate(invalid="ignore"):
            cand = (score[:, :-1] > 0) & (score[:, 1:] <= 0)
        own = (grid[:, :-1] <= t1[:, None]) & (t1[:, None] <= grid[:, 1:])
        return cand & ~(own & (ok & (t1 > 0))[:, None])

    np.testing.assert_array_equal(others(part), others(full))
    assert others(full).any()  # the data do have likelihoods with another local maximum
    assert (~np.isfinite(part)).any()  # while most rows were scanned only in part


def _boundary_batch(seed=0):
    """1,000 problems of k = 20 (the benchmark's) and 600 with vi over four decades."""
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, (1000, 20))
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    v2 = 10.0 ** rng.uniform(-2, 2, (600, 20))
    y2 = rng.normal(0.0, np.sqrt(v2 + rng.choice([0.0, 0.01, 0.1, 1.0], (600, 1))))
    return np.concatenate([yi, y2]), np.concatenate([vi, v2])


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_rows_with_no_positive_score_at_zero_start_at_zero(method):
    """Where the score at tau² = 0 is <= 0, Fisher scoring starts at 0 instead of max(0, HE)
    (its first step stays there): a unique maximum at 0 is exactly 0 after one iteration (not
    the dozens of halved steps from HE); where the likelihood also has an interior maximum
    (score(0) <= 0 does not make 0 the maximum) the score scan sees it, the row keeps
    metafor's start and the higher maximum wins. Checked against the slow reference; the
    single-problem paths (the scalar loop of ``estimate_tau2``, the fused fast path) give the
    same numbers, and so does the batch fitted in chunks (bit for bit)."""
    from ketameta._core.fastpath import fit_one
    from ketameta._core.tau2 import estimate_tau2

    reml = method == "REML"
    yi, vi = _boundary_batch()
    out = fit_batch(yi, vi, method=method)
    assert out["converged"].all()
    y, v, m, k = prepare(yi, vi)
    y, v, _, _ = normalize(y, v, m)
    he = _he(y, v, m, k)
    rows = [i for i in range(yi.shape[0]) if _score(0.0, yi[i], vi[i], reml) <= 0]
    kinds = {"zero from a positive HE": 0, "interior": 0, "two maxima": 0}
    for i in rows:
        ref, maxima = _reference_tau2(yi[i], vi[i], reml)
        got = float(out["tau2"][i])
        assert _close(got, ref), (i, got, ref)
        if ref == 0.0:
            assert got == 0.0, i
            if maxima == 1:
                assert out["iterations"][i] == 1, i
                kinds["zero from a positive HE"] += he[i] > 0
        else:
            kinds["interior"] += 1  # a positive maximum although score(0) <= 0
            kinds["two maxima"] += maxima >= 2  # 0 is then a local maximum too
        one = estimate_tau2(yi[i], vi[i], method)
        assert _close(float(one.tau2), got, rtol=1e-12, atol=0.0), i
        lean = fit_one(yi[i], vi[i], method=method)
        if lean is not None:  # None: a second maximum sends the fast path to fit_batch
            assert _close(lean["tau2"], got, rtol=1e-12, atol=0.0), i
            assert lean["iterations"] == one.iterations, i  # the same grid: this row's own
    assert kinds["zero from a positive HE"] >= 5 and kinds["interior"] >= 1, kinds
    assert kinds["two maxima"] == kinds["interior"], kinds
    for key in ("tau2", "estimate", "tau2_ci_low", "tau2_ci_high", "loglik"):
        chunks = [fit_batch(yi[a : a + 400], vi[a : a + 400], method=method) for a in (0, 400)]
        chunks.append(fit_batch(yi[800:], vi[800:], method=method))
        np.testing.assert_array_equal(np.concatenate([c[key] for c in chunks]), out[key])
