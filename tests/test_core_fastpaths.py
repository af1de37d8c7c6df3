"""The benchmark-driven shortcuts in the core give the same numbers as the full path."""

import numpy as np
from scipy import special

from ketameta._core.batch import fit_batch
from ketameta._core.tau2 import _chi2_isf, q_profile_ci

STATS_KEYS = {"se_tau2", "loglik", "deviance", "aic", "bic", "aicc"}


def _batch(n, k, seed):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, (n, k))
    return rng.normal(0.3, np.sqrt(0.1 + vi)), vi


def test_stats_false_leaves_out_only_the_fit_statistics():
    yi, vi = _batch(300, 9, seed=1)
    mask = np.random.default_rng(2).random(yi.shape) < 0.8
    for method in ("DL", "REML", "PM"):
        full = fit_batch(yi, vi, mask=mask, method=method)
        lean = fit_batch(yi, vi, mask=mask, method=method, stats=False)
        assert set(full) - set(lean) == STATS_KEYS
        for key, value in lean.items():
            np.testing.assert_array_equal(value, full[key], err_msg=f"{method} {key}")


def test_chi2_quantiles_of_a_large_batch_equal_elementwise_chdtri():
    df = np.random.default_rng(3).integers(1, 40, 5000).astype(float)
    df[::97] = np.nan  # k < 2 in q_profile_ci
    for p in (0.025, 0.5, 0.975):
        np.testing.assert_array_equal(_chi2_isf(df, p), special.chdtri(df, p))


def test_q_profile_bounds_of_a_ragged_batch_equal_one_problem_at_a_time():
    yi, vi = _batch(120, 12, seed=4)
    mask = np.random.default_rng(5).random(yi.shape) < 0.7
    mask[:5] = False
    mask[:5, 0] = True  # k = 1: NaN bounds
    lo, hi = q_profile_ci(yi, vi, mask=mask)
    for i in (0, 7, 50, 119):
        one_lo, one_hi = q_profile_ci(yi[i][mask[i]], vi[i][mask[i]])
        np.testing.assert_allclose([lo[i], hi[i]], [one_lo, one_hi], rtol=1e-12, equal_nan=True)
