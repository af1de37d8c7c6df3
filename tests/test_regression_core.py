"""The vectorised meta-regression core: batches equal single fits, permutations as metafor."""

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import RTOL_CLOSED_FORM, RTOL_ITERATIVE, load_case

from ketameta._core.regression import (
    distinct_permutation_count,
    distinct_permutations,
    fit_mods,
    permutation_statistics,
    tau2_mods,
    tau2_mods_batch,
    wald_batch,
)
from ketameta._core.tau2 import estimate_tau2
from ketameta.exceptions import ExcludedStudyWarning
from ketameta.synthesis.regression import metareg, permutest

# batch and single fits run the same iterates; einsum vs matmul round-off only
RTOL_SAME_ITERATES = 1e-10


def _bcg():
    data, _ = load_case("metareg_bcg_ablat")
    # year centred: raw years (~1950) make X'WX ill-conditioned, and round-off alone then
    # separates the einsum and matmul paths by ~2e-10; the model is the same
    X = np.column_stack([np.ones(len(data)), data["ablat"], data["year"] - 1960]).astype(float)
    return data["yi"].to_numpy(float), data["vi"].to_numpy(float), X


@pytest.mark.parametrize("method", ["DL", "HE", "ML", "REML", "PM"])
def test_intercept_only_equals_the_pooling_estimators(method):
    y, v, _ = _bcg()
    ours, ok = tau2_mods(y, v, np.ones((len(y), 1)), method)
    theirs = float(estimate_tau2(y, v, method).tau2)
    rtol = RTOL_CLOSED_FORM if method in ("DL", "HE") else RTOL_ITERATIVE
    assert ok and ours == pytest.approx(theirs, rel=rtol)


@pytest.mark.parametrize("method", ["DL", "ML", "REML", "PM", "FE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_batch_equals_one_at_a_time(method, test):
    y, v, X = _bcg()
    rng = np.random.default_rng(7)
    orders = np.vstack([np.arange(len(y))] + [rng.permutation(len(y)) for _ in range(25)])
    tau2, ok = tau2_mods_batch(y, v, X[orders], method)
    z, qm = wald_batch(y, v, X[orders], tau2, test=test)
    assert ok.all()
    for i, order in enumerate(orders):
        t_one, _ = tau2_mods(y, v, X[order], method)
        fit = fit_mods(y, v, X[order], t_one, test=test)
        assert tau2[i] == pytest.approx(t_one, rel=RTOL_SAME_ITERATES, abs=1e-14)
        np.testing.assert_allclose(z[i], fit["statistic"], rtol=RTOL_SAME_ITERATES)
        assert qm[i] == pytest.approx(fit["qm"], rel=RTOL_SAME_ITERATES)


def test_oscillating_fisher_scoring_reaches_the_reml_maximum():
    # a permuted design on which plain Fisher scoring jumps between two points for ever
    rng = np.random.default_rng(0)
    k = 20
    y, v = rng.normal(0.3, 0.3, k), rng.uniform(0.01, 0.1, k)
    x, g = rng.normal(size=k), rng.choice(list("abc"), k)
    X = np.column_stack([np.ones(k), g == "b", g == "c", x]).astype(float)
    rng2 = np.random.default_rng(1)
    order = rng2.permuted(np.tile(np.arange(k), (1000, 1)), axis=1)[338]
    Xp = X[order]
    tau2, ok = tau2_mods(y, v, Xp, "REML")

    def restricted_nll(t):
        w = 1.0 / (v + t)
        xtwx = Xp.T @ (w[:, None] * Xp)
        e = y - Xp @ np.linalg.solve(xtwx, Xp.T @ (w * y))
        return np.sum(np.log(v + t)) + np.linalg.slogdet(xtwx)[1] + np.sum(w * e * e)

    grid = np.linspace(0.0, 0.1, 20001)
    best = grid[np.argmin([restricted_nll(t) for t in grid])]
    assert ok and 0 < tau2 and abs(tau2 - best) <= grid[1]
    assert restricted_nll(tau2) <= min(restricted_nll(tau2 - 1e-6), restricted_nll(tau2 + 1e-6))


def test_distinct_permutations_with_tied_rows():
    X = np.column_stack([np.ones(6), [1.0, 2.0, 2.0, 3.0, 3.0, 3.0]])
    orders = distinct_permutations(X)
    assert distinct_permutation_count(X) == math.factorial(6) // (2 * 6) == len(orders)
    designs = {tuple(X[o, 1]) for o in orders}
    assert len(designs) == len(orders)  # each distinct design once
    assert tuple(X[orders[0], 1]) == tuple(X[:, 1])  # observed design first
    every = {tuple(X[list(o), 1]) for o in itertools.permutations(range(6))}
    assert designs == every


def test_exact_pvalues_with_ties_equal_the_full_enumeration():
    data = pd.DataFrame(
        {
            "yi": [0.12, 0.41, 0.25, 0.6, 0.33, 0.52, 0.05],
            "vi": [0.02, 0.03, 0.025, 0.04, 0.02, 0.03, 0.05],
            "dose": [0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 0.5],
        }
    )
    res = metareg(data, "~ dose", method="DL")
    perm = res.permutest(n_perm=1000, exact="auto")
    assert perm.exact and perm.n_permutations == 5040 // (6 * 6)
    every = np.array(list(itertools.permutations(range(7))))  # all 7! orders, duplicates too
    zs, _, _ = permutation_statistics(res.yi, res.vi, res.X, every, "DL")
    full = (np.abs(zs) >= np.abs(res.coef["statistic"].to_numpy()) - 1.5e-8).mean(axis=0)
    np.testing.assert_allclose(perm.pvalue.to_numpy(), full, rtol=1e-12)


def test_permutest_function_is_the_method():
    data, _ = load_case("metareg_bcg_ablat")
    res = metareg(data, "~ ablat", method="REML")
    a, b = permutest(res, 300, seed=3), res.permutest(300, seed=3)
    assert a.pvalue.tolist() == b.pvalue.tolist() and a.qm_pvalue == b.qm_pvalue
    assert permutest(res, 300, seed=4).pvalue.tolist() != a.pvalue.tolist()


def test_permutest_arguments_are_checked():
    data, _ = load_case("metareg_bcg_ablat")
    res = metareg(data, "~ ablat", method="DL")
    with pytest.raises(ValueError, match="n_perm"):
        res.permutest(n_perm=1)
    with pytest.raises(ValueError, match="exact"):
        res.permutest(exact="yes")
    with pytest.raises(ValueError, match="exact=True needs"):
        res.permutest(exact=True)  # 13! orders


def test_bad_moderators_are_named():
    data, _ = load_case("metareg_bcg_ablat")
    with pytest.raises(ValueError, match=r"collinear: design columns ablat, ablat2 "):
        metareg(data.assign(ablat2=data["ablat"] * 2, z=np.arange(13.0)), "~ z + ablat + ablat2")
    cat = data.assign(
        alloc=pd.Categorical(data["alloc"], categories=["random", "x", "alternate", "systematic"])
    )
    with pytest.raises(ValueError, match=r"moderator 'alloc': level\(s\) x have no studies"):
        metareg(cat, "~ C(alloc)")
    holes = data.copy()
    holes.loc[[2, 5], "ablat"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = metareg(holes, "~ ablat + year")
    (w,) = [c for c in caught if issubclass(c.category, ExcludedStudyWarning)]
    assert "2: missing moderator value (ablat)" in str(w.message) and res.k == 11
    assert res.excluded == (
        ("2", "missing moderator value (ablat)"),
        ("5", "missing moderator value (ablat)"),
    )
    bad = data.copy()
    bad.loc[4, "vi"] = -1.0
    with pytest.raises(ValueError, match="rows 4 are not"):
        metareg(bad, "~ ablat")
