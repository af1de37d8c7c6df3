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


def test_one_problem_solvers_follow_the_vectorised_iterates():
    # single unmasked problems take scalar loops (_fisher_one, _q_root_one); a (1, k) stack
    # takes the vectorised solvers: same tau2, bounds, convergence flag and iteration count.
    # The numpy solvers: the compiled kernels sum in another order (tests/test_jit.py)
    from ketameta._core import jit
    from ketameta._core.tau2 import estimate_tau2

    with jit.enabled(False):
        _follow_the_vectorised_iterates(estimate_tau2)


def _follow_the_vectorised_iterates(estimate_tau2):
    rng = np.random.default_rng(6)
    n_zero = 0
    for _ in range(150):
        k = int(rng.integers(2, 30))
        vi = 10.0 ** rng.uniform(-3, 1, k)  # vi spanning orders of magnitude
        yi = rng.normal(0.0, np.sqrt(vi + rng.choice([0.0, 0.05, 1.0])))
        for method in ("ML", "REML"):
            one = estimate_tau2(yi, vi, method)
            stacked = estimate_tau2(yi[None], vi[None], method)
            np.testing.assert_allclose(one.tau2, stacked.tau2[0], rtol=1e-14, atol=0)
            assert one.iterations == stacked.iterations[0]
            assert bool(one.converged) == bool(stacked.converged[0])
            n_zero += float(one.tau2) == 0.0
        lo, hi = q_profile_ci(yi, vi)
        lo2, hi2 = q_profile_ci(yi[None], vi[None])
        np.testing.assert_allclose([lo, hi], [lo2[0], hi2[0]], rtol=1e-14, atol=0)
    assert n_zero > 10  # the boundary (tau2 = 0) path was exercised
