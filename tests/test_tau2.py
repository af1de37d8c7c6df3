"""Unit tests of the tau² estimators and the Q-profile interval (ketameta._core.tau2).

The metafor reference values are checked in test_pooling_reference.py; here every estimator is
re-derived independently with dense matrices, as written in metafor's rma.uni() source
(P = W - W X (X'WX)^-1 X'W with X a column of ones), on simulated data sets, and every
iterative root is found again with scipy's brentq.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from ketameta._core.tau2 import (
    METHODS,
    estimate_tau2,
    heterogeneity_bounds,
    q_profile_ci,
)

RTOL_DENSE = 1e-10  # closed forms vs dense-matrix algebra: round-off only
RTOL_ROOT = 1e-8  # our roots (tol 1e-12) vs brentq(xtol=1e-14, rtol=4*eps): both exact roots
ATOL = 1e-12  # absolute floor for estimates that are 0


def _sim(seed: int, k: int, tau2: float = 0.1):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.3, size=k)
    yi = rng.normal(0.2, np.sqrt(vi + tau2))
    return yi, vi


DATA = [_sim(s, k, t) for s, k, t in [(1, 5, 0.1), (2, 12, 0.3), (3, 30, 0.02), (4, 8, 0.0)]]
DATA += [_sim(5, 3, 0.0), _sim(6, 20, 1.0)]


def _p(w):
    x = np.ones((w.size, 1))
    big_w = np.diag(w)
    return big_w - big_w @ x @ np.linalg.inv(x.T @ big_w @ x) @ x.T @ big_w


def _dense_q(yi, vi, tau2):
    return float(yi @ _p(1.0 / (vi + tau2)) @ yi)


def _dense(yi, vi, method):
    k = yi.size
    if method == "DL":
        p = _p(1.0 / vi)
        return (yi @ p @ yi - (k - 1)) / np.trace(p)
    if method == "HE":
        p = np.eye(k) - np.ones((k, k)) / k
        return (yi @ p @ yi - np.trace(p @ np.diag(vi))) / (k - 1)
    if method in ("HS", "HSk"):
        rss = yi @ _p(1.0 / vi) @ yi
        if method == "HSk":
            rss = k / (k - 1) * rss
        return (rss - k) / np.sum(1.0 / vi)
    if method == "SJ":
        t0 = np.var(yi, ddof=1) * (k - 1) / k
        return t0 * _dense_q(yi, vi, t0) / (k - 1)
    raise AssertionError(method)


def _root(f, hi=1e4):
    if f(0.0) <= 0:
        return 0.0
    return optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps)


def _score(t, yi, vi, reml):
    w = 1.0 / (vi + t)
    p = _p(w)
    if reml:
        return yi @ p @ p @ yi - np.trace(p)
    return yi @ p @ p @ yi - np.sum(w)


@pytest.mark.parametrize("method", ["DL", "HE", "HS", "HSk", "SJ"])
@pytest.mark.parametrize("idx", range(len(DATA)))
def test_closed_form_matches_dense_metafor_formula(method, idx):
    yi, vi = DATA[idx]
    expected = max(0.0, _dense(yi, vi, method))  # metafor truncates every estimate at 0
    fit = estimate_tau2(yi, vi, method)
    assert fit.tau2 == pytest.approx(expected, rel=RTOL_DENSE, abs=ATOL)
    assert fit.converged and fit.iterations == 0


@pytest.mark.parametrize("method", ["PM", "MP", "EB", "SJIT", "PMM"])
@pytest.mark.parametrize("idx", range(len(DATA)))
def test_q_equation_estimators_are_its_root(method, idx):
    yi, vi = DATA[idx]
    k = yi.size
    target = stats.chi2.median(k - 1) if method == "PMM" else k - 1.0
    expected = _root(lambda t: _dense_q(yi, vi, t) - target)
    fit = estimate_tau2(yi, vi, method)
    assert bool(fit.converged)
    assert fit.tau2 == pytest.approx(expected, rel=RTOL_ROOT, abs=ATOL)


@pytest.mark.parametrize("idx", range(len(DATA)))
def test_dlit_is_a_fixed_point_of_metafors_update(idx):
    yi, vi = DATA[idx]
    k = yi.size
    fit = estimate_tau2(yi, vi, "DLIT")
    t = float(fit.tau2)
    p = _p(1.0 / (vi + t))
    update = max(0.0, (yi @ p @ yi - (k - 1)) / np.trace(p))
    assert bool(fit.converged)
    assert update == pytest.approx(t, rel=RTOL_ROOT, abs=ATOL)


@pytest.mark.parametrize("method", ["ML", "REML"])
@pytest.mark.parametrize("idx", range(len(DATA)))
def test_ml_reml_solve_the_score_equation(method, idx):
    yi, vi = DATA[idx]
    reml = method == "REML"
    expected = _root(lambda t: _score(t, yi, vi, reml))
    fit = estimate_tau2(yi, vi, method)
    assert bool(fit.converged)
    assert fit.tau2 == pytest.approx(expected, rel=RTOL_ROOT, abs=ATOL)


def test_reml_at_the_boundary_is_exactly_zero():
    yi = np.array([0.10, 0.12, 0.09, 0.11, 0.10])  # far less spread than the vi allow
    vi = np.array([0.05, 0.04, 0.06, 0.05, 0.03])
    for method in ("ML", "REML", "DL", "PM", "HE", "SJIT", "DLIT"):
        fit = estimate_tau2(yi, vi, method)
        assert fit.tau2 == 0.0, method
        assert bool(fit.converged), method


def test_common_effect_methods_give_zero():
    yi, vi = DATA[1]
    for method in ("EE", "FE"):
        assert estimate_tau2(yi, vi, method).tau2 == 0.0


def test_single_study_gives_zero_for_every_method():
    for method in METHODS:
        fit = estimate_tau2(np.array([0.5]), np.array([0.1]), method)
        assert fit.tau2 == 0.0 and bool(fit.converged), method


def test_all_yi_equal_gives_zero():
    yi = np.full(6, 0.3)
    vi = np.linspace(0.01, 0.2, 6)
    for method in METHODS:
        assert estimate_tau2(yi, vi, method).tau2 == 0.0, method


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="Unknown 'method' 'XX'"):
        estimate_tau2(np.ones(3), np.ones(3), "XX")


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        estimate_tau2(np.ones(3), np.ones(4), "DL")
    with pytest.raises(ValueError, match="'mask'"):
        estimate_tau2(np.ones(3), np.ones(3), "DL", mask=np.ones(4, bool))


def test_iteration_limit_reports_non_convergence():
    yi, vi = DATA[1]
    for method in ("REML", "ML", "PM", "DLIT"):
        fit = estimate_tau2(yi, vi, method, maxiter=1)
        assert not bool(fit.converged), method
        assert int(fit.iterations) == 1, method


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "SJ", "DLIT"])
def test_masked_entries_never_matter(method):
    yi, vi = DATA[2]
    mask = np.ones(yi.size, bool)
    mask[[0, 5, 9]] = False
    junk_y = np.where(mask, yi, np.nan)
    junk_v = np.where(mask, vi, -7.0)
    fit = estimate_tau2(junk_y, junk_v, method, mask=mask)
    sub = estimate_tau2(yi[mask], vi[mask], method)
    assert fit.tau2 == pytest.approx(float(sub.tau2), rel=1e-12, abs=ATOL)


@pytest.mark.parametrize("idx", range(len(DATA)))
def test_q_profile_bounds_solve_the_chi_square_equations(idx):
    yi, vi = DATA[idx]
    k = yi.size
    lo, hi = q_profile_ci(yi, vi, level=95.0)
    crit_u = stats.chi2.ppf(0.975, k - 1)
    crit_l = stats.chi2.ppf(0.025, k - 1)
    assert lo == pytest.approx(
        _root(lambda t: _dense_q(yi, vi, t) - crit_u), rel=RTOL_ROOT, abs=ATOL
    )
    assert hi == pytest.approx(
        _root(lambda t: _dense_q(yi, vi, t) - crit_l), rel=RTOL_ROOT, abs=ATOL
    )


def test_q_profile_level_changes_width():
    yi, vi = DATA[1]
    lo95, hi95 = q_profile_ci(yi, vi, level=95)
    lo80, hi80 = q_profile_ci(yi, vi, level=80)
    assert lo95 < lo80 < hi80 < hi95


def test_q_profile_empty_interval_when_q_is_small():
    """Q(0) below the lower chi-square quantile: both bounds 0 (metafor's null-set case)."""
    yi = np.array([0.10, 0.1001, 0.0999, 0.10, 0.1002, 0.0998])
    vi = np.full(6, 0.05)
    lo, hi = q_profile_ci(yi, vi)
    assert lo == 0.0 and hi == 0.0


def test_q_profile_upper_bound_stops_at_metafors_search_limit():
    """metafor searches up to tau2.max = max(100, 10 * tau2); beyond it reports the limit."""
    yi = np.array([-10.0, 0.0, 10.0])
    vi = np.full(3, 0.01)
    lo, hi = q_profile_ci(yi, vi, tau2=2.0)
    assert hi == 100.0
    assert 0 < lo < 100.0
    _, hi2 = q_profile_ci(yi, vi, tau2=50.0)
    assert hi2 == 500.0


def test_q_profile_needs_two_studies():
    lo, hi = q_profile_ci(np.array([0.1]), np.array([0.2]))
    assert np.isnan(lo) and np.isnan(hi)


def test_heterogeneity_bounds_formulas():
    b = heterogeneity_bounds(np.array([0.0, 0.1]), np.array([0.5, 1.0]), 0.05)
    np.testing.assert_allclose(b.tau_low, [0.0, np.sqrt(0.1)])
    np.testing.assert_allclose(b.i2_low, [0.0, 100 * 0.1 / 0.15])
    np.testing.assert_allclose(b.i2_high, [100 * 0.5 / 0.55, 100 * 1.0 / 1.05])
    np.testing.assert_allclose(b.h2_low, [1.0, 0.1 / 0.05 + 1])
    np.testing.assert_allclose(b.h2_high, [0.5 / 0.05 + 1, 1.0 / 0.05 + 1])


@pytest.mark.parametrize("method", ["DL", "REML", "ML", "PM", "PMM", "HE", "DLIT", "EB"])
def test_vectorised_over_leading_axes(method):
    stack_y = np.stack([d[0][:3] for d in DATA]).reshape(2, 3, 3)
    stack_v = np.stack([d[1][:3] for d in DATA]).reshape(2, 3, 3)
    fit = estimate_tau2(stack_y, stack_v, method)
    assert fit.tau2.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = estimate_tau2(stack_y[i, j], stack_v[i, j], method)
            assert fit.tau2[i, j] == pytest.approx(float(one.tau2), rel=1e-12, abs=ATOL)


def _many(n=60, k=8, seed=11):
    """Simulated problems spanning tau² = 0 (boundary) to large heterogeneity."""
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.02, 0.4, size=(n, k))
    true = rng.choice([0.0, 0.0, 0.01, 0.1, 1.0], size=(n, 1))
    return rng.normal(0.0, np.sqrt(vi + true)), vi


def _loglik(yi, vi, t, reml):
    w = 1.0 / (vi + t)
    p = _p(w)
    ll = -0.5 * np.sum(np.log(vi + t)) - 0.5 * yi @ p @ yi
    return ll - 0.5 * np.log(np.sum(w)) if reml else ll


def _argmax_likelihood(yi, vi, reml, lo=1e-6, hi=50.0, num=400):
    """Global maximiser over [0, hi]: every sign change of the score on a log grid from lo to
    hi, refined by brentq, plus the boundary 0; the largest (restricted) likelihood wins."""
    grid = np.concatenate([[0.0], np.geomspace(lo, hi, num)])
    score = np.array([_score(t, yi, vi, reml) for t in grid])
    candidates = [0.0]
    for a, b, sa, sb in zip(grid[:-1], grid[1:], score[:-1], score[1:], strict=True):
        if sa > 0 >= sb:  # a maximum of the likelihood
            root = optimize.brentq(_score, a, b, args=(yi, vi, reml), xtol=1e-15 * hi)
            candidates.append(root)
    return max(candidates, key=lambda t: _loglik(yi, vi, t, reml))


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_batched_ml_reml_find_the_likelihood_maximum_including_boundary_cases(method):
    yi, vi = _many()
    fit = estimate_tau2(yi, vi, method)
    assert fit.converged.all()
    reml = method == "REML"
    expected = [_argmax_likelihood(yi[i], vi[i], reml) for i in range(len(yi))]
    np.testing.assert_allclose(fit.tau2, expected, rtol=RTOL_ROOT, atol=ATOL)
    assert (fit.tau2 == 0).sum() >= 5  # the boundary really was exercised


@pytest.mark.parametrize("method", ["PM", "PMM"])
def test_batched_q_roots_match_dense_roots(method):
    yi, vi = _many(seed=12)
    k = yi.shape[1]
    target = stats.chi2.median(k - 1) if method == "PMM" else k - 1.0
    fit = estimate_tau2(yi, vi, method)
    expected = [_root(lambda t, i=i: _dense_q(yi[i], vi[i], t) - target) for i in range(len(yi))]
    np.testing.assert_allclose(fit.tau2, expected, rtol=RTOL_ROOT, atol=ATOL)


def _wide_vi_problems(seed: int, trial: int):
    """Simulated batches whose vi span six orders of magnitude (replays a fuzzing run); on
    some rows plain Fisher scoring oscillates between two points for hundreds of steps."""
    rng = np.random.default_rng(seed)
    for _ in range(trial + 1):
        n, k = 200, int(rng.integers(2, 60))
        scale = 10 ** rng.uniform(-4, 4)
        vi = scale * 10 ** rng.uniform(-3, 3, size=(n, k))
        tau2 = scale * rng.choice([0, 0.01, 1, 100], size=(n, 1))
        yi = rng.normal(scale**0.5 * rng.normal(), np.sqrt(vi + tau2))
        mask = rng.random((n, k)) < 0.8
        mask[:, :2] = True
    return yi, vi, mask, scale


@pytest.mark.parametrize(
    ("seed", "trial", "method"), [(5, 0, "ML"), (7, 22, "REML"), (7, 26, "REML")]
)
def test_ml_reml_converge_when_vi_span_many_orders_of_magnitude(seed, trial, method):
    yi, vi, mask, scale = _wide_vi_problems(seed, trial)
    fit = estimate_tau2(yi, vi, method, mask=mask, maxiter=100)  # metafor's default limit
    assert fit.converged.all()
    reml = method == "REML"
    for row in np.argsort(fit.iterations)[-3:]:  # the hardest rows
        y, v = yi[row][mask[row]], vi[row][mask[row]]
        best = _argmax_likelihood(y, v, reml, lo=1e-7 * scale, hi=1e4 * scale, num=300)
        assert fit.tau2[row] == pytest.approx(best, rel=RTOL_ROOT, abs=ATOL * scale)
