"""Hard numerical cases of the tau² core: bimodal likelihoods, variances ~1e8 apart, extreme
scales, and the Q-profile search without metafor's limit.

The references are metafor (fitted with ``control=list(tol=1e-12, threshold=1e-12)``) where
given, otherwise a dense grid search of the (restricted) log-likelihood refined by brentq.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from ketameta._core.batch import fit_batch
from ketameta._core.tau2 import METHODS, estimate_tau2, q_profile_ci

RANDOM_METHODS = [m for m in METHODS if m not in ("EE", "FE")]

# metafor: rma(yi, vi, method="REML", control=list(tol=1e-12, threshold=1e-12))
BOUNDARY_Y = np.array([0.019239605682497163, 0.33278513762823181, 0.029603912475259508,
                       0.36786334880331828, 0.9951378785716728])  # fmt: skip
BOUNDARY_V = np.array([0.12121212121212122, 0.010498687664041995, 0.039215686274509803,
                       0.014492753623188406, 0.085106382978723402])  # fmt: skip
WIDE_Y = np.array([0.02, 0.11, -0.15])
WIDE_V = np.array([0.005, 0.74, 3e-11])  # variances ~1e8 apart

# bimodal ML likelihoods where Fisher scoring from max(0, HE) stops at tau² = 0 although an
# interior maximum is higher (found by a random search against a dense grid)
BIMODAL_ML = [
    ([0.2581612257268847, 0.10416572036611661, 0.8107739572623605, -0.0656476445000706],
     [0.01930717410441314, 0.18884973661618804, 0.43195703751831105, 0.0020274948781254646]),
    ([-0.3425982255180895, 0.4212816674801531, 0.03421056585467103],
     [0.02013226642597652, 0.5779403336583097, 0.0015909861351405463]),
    ([0.4968498368556525, 0.23350551327579258, -0.01792353902826685, 0.9589737543633234],
     [0.7287815113777062, 0.054048085834533584, 0.005046024466618297, 0.14653300169828112]),
]  # fmt: skip


def _loglik(y, v, t, reml):
    w = 1.0 / (v + t)
    mu = np.sum(w * y) / np.sum(w)
    ll = -0.5 * np.sum(np.log(v + t)) - 0.5 * np.sum(w * (y - mu) ** 2)
    return ll - 0.5 * np.log(np.sum(w)) if reml else ll


def _score(t, y, v, reml):
    w = 1.0 / (v + t)
    mu = np.sum(w * y) / np.sum(w)
    s = np.sum(w * w * (y - mu) ** 2) - np.sum(w)
    return s + np.sum(w * w) / np.sum(w) if reml else s


def _global_max(y, v, reml, lo=1e-14, hi=10.0, num=4000):
    """Global maximiser on [0, hi]: every + to - sign change of the score on a dense log grid,
    refined by brentq, and the boundary 0; the largest (restricted) likelihood wins."""
    grid = np.concatenate([[0.0], np.geomspace(lo, hi, num)])
    score = np.array([_score(t, y, v, reml) for t in grid])
    candidates = [0.0]
    for a, b, sa, sb in zip(grid[:-1], grid[1:], score[:-1], score[1:], strict=True):
        if sa > 0 >= sb:
            candidates.append(optimize.brentq(_score, a, b, args=(y, v, reml), xtol=1e-16))
    return max(candidates, key=lambda t: _loglik(y, v, t, reml))


def test_reml_interior_maximum_beats_the_boundary_as_metafor():
    fit = estimate_tau2(BOUNDARY_Y, BOUNDARY_V, "REML")
    assert bool(fit.converged)
    assert float(fit.tau2) == pytest.approx(0.02568201085, rel=1e-9)
    out = fit_batch(BOUNDARY_Y, BOUNDARY_V, method="REML")
    assert float(out["estimate"]) == pytest.approx(0.33332827444, rel=1e-10)
    # the same answer in a batch, beside other problems
    stack = fit_batch(np.stack([BOUNDARY_Y, BOUNDARY_Y + 1]), np.stack([BOUNDARY_V] * 2))
    assert stack["tau2"][0] == pytest.approx(0.02568201085, rel=1e-9)
    assert stack["tau2"][1] == pytest.approx(0.02568201085, rel=1e-9)


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_boundary_case_is_the_dense_grid_maximum(method):
    reml = method == "REML"
    best = _global_max(BOUNDARY_Y, BOUNDARY_V, reml)
    fit = estimate_tau2(BOUNDARY_Y, BOUNDARY_V, method)
    assert float(fit.tau2) == pytest.approx(best, rel=1e-8, abs=1e-12)


def test_variances_1e8_apart_give_a_finite_reml_root():
    for method in ("REML", "ML", "DL", "PM"):
        out = fit_batch(WIDE_Y, WIDE_V, method=method)
        assert np.isfinite(out["tau2"]) and out["tau2"] >= 0, method
        assert np.isfinite(out["estimate"]), method
        assert bool(out["converged"]), method
    for method in ("REML", "ML"):
        reml = method == "REML"
        fit = estimate_tau2(WIDE_Y, WIDE_V, method)
        best = _global_max(WIDE_Y, WIDE_V, reml, lo=1e-16, hi=1.0)
        assert float(fit.tau2) == pytest.approx(best, rel=1e-8, abs=1e-13), method
        if fit.tau2 > 0:
            assert _score(float(fit.tau2), WIDE_Y, WIDE_V, reml) == pytest.approx(0.0, abs=1e-6)
    # and the same in a masked batch
    y = np.array([[*WIDE_Y, 9.0], [*BOUNDARY_Y[:3], 0.0]])
    v = np.array([[*WIDE_V, -1.0], [*BOUNDARY_V[:3], 1.0]])
    mask = np.array([[True, True, True, False], [True, True, True, False]])
    fit = estimate_tau2(y, v, "REML", mask=mask)
    assert fit.converged.all() and np.isfinite(fit.tau2).all()
    assert fit.tau2[0] == pytest.approx(float(estimate_tau2(WIDE_Y, WIDE_V, "REML").tau2))


@pytest.mark.parametrize("idx", range(len(BIMODAL_ML)))
def test_bimodal_ml_likelihood_gives_the_global_maximum(idx):
    y, v = (np.array(a) for a in BIMODAL_ML[idx])
    best = _global_max(y, v, reml=False)
    assert best > 0  # the interior maximum wins over the local maximum at 0
    fit = estimate_tau2(y, v, "ML")
    assert bool(fit.converged)
    assert float(fit.tau2) == pytest.approx(best, rel=1e-8)
    stacked = estimate_tau2(np.stack([y, y]), np.stack([v, v]), "ML")
    np.testing.assert_allclose(stacked.tau2, [best, best], rtol=1e-8)


def _bimodal_batch(n=300, seed=3):
    rng = np.random.default_rng(seed)
    k = 6
    v = 10 ** rng.uniform(-3, 0, (n, k))
    y = rng.normal(0, np.sqrt(v + rng.choice([0.0, 0.01, 0.1], (n, 1))))
    return y, v


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_batched_fits_reach_the_dense_grid_maximum(method):
    """A random batch with vi over three decades (about 1 in 20 likelihoods is bimodal)."""
    y, v = _bimodal_batch()
    reml = method == "REML"
    fit = estimate_tau2(y, v, method)
    assert fit.converged.all()
    worse = 0
    for i in range(0, len(y), 3):
        best = _global_max(y[i], v[i], reml, lo=1e-8, hi=20.0, num=600)
        gap = _loglik(y[i], v[i], best, reml) - _loglik(y[i], v[i], fit.tau2[i], reml)
        worse += gap > 1e-10
    assert worse == 0


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_scale_equivariance_and_location_invariance(method):
    rng = np.random.default_rng(20)
    n, k = 40, 7
    v = 10 ** rng.uniform(-2, 0, (n, k))
    y = rng.normal(0.4, np.sqrt(v + rng.choice([0.0, 0.05, 0.5], (n, 1))))
    base = estimate_tau2(y, v, method)
    assert base.converged.all() and np.isfinite(base.tau2).all() and (base.tau2 >= 0).all()
    for c in (1e-150, 3.7e-9, 0.3, 11.0, 2.9e6, 1e150):
        fit = estimate_tau2(c * y, c * c * v, method)
        assert fit.converged.all(), c
        np.testing.assert_allclose(fit.tau2 / (c * c), base.tau2, rtol=1e-9, atol=1e-14)
    for a in (-1e3, -2.5, 0.7, 40.0):
        fit = estimate_tau2(y + a, v, method)
        np.testing.assert_allclose(fit.tau2, base.tau2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["DL", "REML", "ML", "PM", "DLIT", "SJ"])
def test_batch_equals_single_fits_and_is_finite(method):
    rng = np.random.default_rng(21)
    n, k = 25, 9
    v = 10 ** rng.uniform(-4, 1, (n, k))
    y = rng.normal(0, np.sqrt(v + rng.choice([0.0, 0.1, 1.0], (n, 1))))
    mask = rng.random((n, k)) < 0.8
    mask[:, :2] = True
    out = fit_batch(y, v, mask=mask, method=method)
    assert out["converged"].all()
    assert np.isfinite(out["tau2"]).all() and (out["tau2"] >= 0).all()
    for i in range(n):
        one = fit_batch(y[i][mask[i]], v[i][mask[i]], method=method)
        for key in ("tau2", "estimate", "se", "q", "i2", "tau2_ci_low", "tau2_ci_high"):
            np.testing.assert_allclose(out[key][i], one[key], rtol=1e-9, atol=1e-13)


def test_extreme_scales_give_finite_heterogeneity():
    rng = np.random.default_rng(22)
    v = rng.uniform(0.01, 0.2, 8)
    y = rng.normal(0.2, np.sqrt(v + 0.1))
    base = fit_batch(y, v, method="REML")
    for c in (1e-150, 1e150):
        out = fit_batch(c * y, c * c * v, method="REML")
        assert bool(out["converged"])
        for key in ("q", "i2", "h2", "tau2_ci_low", "tau2_ci_high", "se_tau2", "loglik"):
            assert np.isfinite(out[key]), (c, key)
        for key in ("q", "i2", "h2", "q_pvalue", "statistic", "pvalue"):
            assert out[key] == pytest.approx(float(base[key]), rel=1e-9), (c, key)
        assert out["tau2"] / c**2 == pytest.approx(float(base["tau2"]), rel=1e-9)
        assert out["estimate"] / c == pytest.approx(float(base["estimate"]), rel=1e-9)
        assert out["tau2_ci_high"] / c**2 == pytest.approx(float(base["tau2_ci_high"]), rel=1e-9)


@pytest.mark.parametrize("method", RANDOM_METHODS)
def test_unrepresentable_results_are_flagged_never_silent_nan(method):
    """yi ~ 1e300 with vi ~ 1e-300: tau² (~1e600) is not a float: NaN with converged False,
    or a finite value with converged True; never NaN with converged True."""
    y = np.array([1e300, -8e299, 3e299, 1.2e300, -1e299])
    v = np.array([1e-300, 3e-300, 2e-300, 5e-301, 1e-300])
    for yy, vv in ((y, v), (y * 1e-150, v * 1e225 * 1e224), (y, v * 1e150)):
        fit = estimate_tau2(yy, vv, method)
        ok = bool(fit.converged)
        assert (ok and np.isfinite(fit.tau2)) or (not ok and np.isnan(fit.tau2)), (yy, vv)
        out = fit_batch(yy, vv, method=method)
        assert bool(out["converged"]) == ok
        if ok:
            assert np.isfinite(out["i2"])


def test_reml_non_convergence_is_reported_per_row():
    y, v = _bimodal_batch(n=20, seed=4)
    out = fit_batch(y, v, method="REML", maxiter=2)
    assert (~out["converged"]).any()
    rows = np.flatnonzero(~out["converged"])
    assert (out["iterations"][rows] == 2).all()


def test_q_profile_grows_the_bracket_without_metafors_limit():
    y = np.array([-10.0, 0.0, 10.0])
    v = np.full(3, 0.01)
    capped = q_profile_ci(y, v, tau2=2.0)
    assert capped.tau2_high == 100.0
    assert bool(capped.high_at_limit) and not bool(capped.high_found)
    assert bool(capped.low_found) and not bool(capped.low_at_limit)
    free = q_profile_ci(y, v, tau2=2.0, max_tau2=None)
    lo, hi = free  # still unpacks as a pair
    assert bool(free.low_found) and bool(free.high_found) and not bool(free.high_at_limit)
    assert hi > 100.0 and lo == capped.tau2_low
    crit_l = stats.chi2.ppf(0.025, 2)
    w = 1.0 / (v + hi)
    mu = np.sum(w * y) / np.sum(w)
    assert np.sum(w * (y - mu) ** 2) == pytest.approx(crit_l, rel=1e-10)
    # a user limit; and the batched search agrees
    assert q_profile_ci(y, v, max_tau2=1e4).tau2_high == pytest.approx(hi)
    assert bool(q_profile_ci(y, v, max_tau2=1e3).high_at_limit)
    batch = q_profile_ci(np.stack([y, y / 100]), np.stack([v, v / 1e4]), max_tau2=None)
    np.testing.assert_allclose(batch.tau2_high, [hi, hi / 1e4], rtol=1e-10)
    assert batch.high_found.all()
    out = fit_batch(y, v, method="DL", max_tau2=None)
    assert out["tau2_ci_high"] == pytest.approx(hi) and bool(out["ci_high_found"])
    out = fit_batch(y, v, method="DL")
    assert bool(out["ci_high_at_limit"]) and not bool(out["ci_high_found"])


def test_q_profile_without_limit_is_scale_equivariant():
    rng = np.random.default_rng(23)
    v = rng.uniform(0.01, 0.2, (10, 6))
    y = rng.normal(0, np.sqrt(v + 0.3))
    lo, hi = q_profile_ci(y, v, max_tau2=None)
    for c in (1e-100, 1e-3, 1e4, 1e100):
        lo_c, hi_c = q_profile_ci(c * y, c * c * v, max_tau2=None)
        np.testing.assert_allclose(lo_c / c**2, lo, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(hi_c / c**2, hi, rtol=1e-9)
