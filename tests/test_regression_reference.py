"""metareg(), permutest() and subgroup() against metafor 3.8.1 reference cases."""

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, RTOL_ITERATIVE, load_case

from ketameta.synthesis.regression import metareg
from ketameta.synthesis.subgroup import subgroup

CLOSED_FORM = {"DL", "FE"}


def rtol(method):
    return RTOL_CLOSED_FORM if method in CLOSED_FORM else RTOL_ITERATIVE


def close(actual, expected, method):
    np.testing.assert_allclose(
        np.asarray(actual, float),
        np.asarray(expected, float),
        rtol=rtol(method),
        atol=ATOL_NEAR_ZERO,
    )


def check_model(res, ref, method):
    close(res.coef["estimate"], ref["b"], method)
    close(res.coef["se"], ref["se"], method)
    close(res.coef["statistic"], ref["zval"], method)
    close(res.coef["pvalue"], ref["pval"], method)
    close(res.coef["ci_low"], ref["ci.lb"], method)
    close(res.coef["ci_high"], ref["ci.ub"], method)
    close(
        [res.tau2, res.qm, res.qm_pvalue, res.qe, res.qe_pvalue, res.i2, res.h2],
        [ref["tau2"], ref["QM"], ref["QMp"], ref["QE"], ref["QEp"], ref["I2"], ref["H2"]],
        method,
    )
    # metafor 3.8.1 reports an R2 for FE models too (the relative reduction of H2 = QE/df)
    if "R2" in ref and ref["R2"] == ref["R2"]:
        close(res.r2, ref["R2"], method)


@pytest.mark.parametrize("key", ["REML_z", "ML_z", "DL_z", "PM_z", "FE_z", "REML_knha"])
def test_metareg_bcg_ablat(key):
    data, expected = load_case("metareg_bcg_ablat")
    method, test = key.split("_")
    res = metareg(data, "~ ablat", method=method, test=test)
    check_model(res, expected[key], method)
    if test == "knha":
        assert res.qm_df == 1


def test_metareg_two_moderators_and_predictions():
    data, expected = load_case("metareg_bcg_ablat")
    check_model(metareg(data, "~ ablat + year"), expected["REML_z_ablat_year"], "REML")
    ref = expected["REML_z"]["predict_at_ablat"]
    pred = metareg(data, "~ ablat").predict(pd.DataFrame({"ablat": ref["ablat"]}))
    for ours, theirs in (
        ("pred", "pred"),
        ("se", "se"),
        ("ci_low", "ci.lb"),
        ("ci_high", "ci.ub"),
        ("pi_low", "pi.lb"),
        ("pi_high", "pi.ub"),
    ):
        close(pred[ours], ref[theirs], "REML")
    check = expected["pseudo_R2_check"]
    close(metareg(data, "~ ablat").r2, check["R2_metafor"], "REML")


@pytest.mark.parametrize(
    ("case", "key", "formula", "method", "test", "subset"),
    [
        ("permutest_exact_bcg", "bcg_intercept_only_REML", "~ 1", "REML", "z", None),
        ("permutest_exact_bcg", "bcg_intercept_only_REML_knha", "~ 1", "REML", "knha", None),
        ("permutest_exact_bcg", "bcg_random_alloc_ablat_REML", "~ ablat", "REML", "z", "random"),
        ("permutest_exact_bcg", "bcg_random_alloc_ablat_DL", "~ ablat", "DL", "z", "random"),
        ("permutest_exact_hine1989", "REML", "~ 1", "REML", "z", None),
        ("permutest_exact_hine1989", "DL", "~ 1", "DL", "z", None),
    ],
)
def test_exact_permutation_pvalues(case, key, formula, method, test, subset):
    data, expected = load_case(case)
    if subset:
        data = data[data["alloc"] == subset]
    res = metareg(data, formula, method=method, test=test)
    perm = res.permutest(exact=True)
    ref = expected[key]["permutest"]
    assert perm.n_permutations == ref["n_permutations"]
    # exact permutation p-values are ratios of counts: they must agree exactly
    assert perm.pvalue.tolist() == pytest.approx(ref["pval"], rel=1e-12)
    assert perm.qm_pvalue == pytest.approx(ref["QMp"], rel=1e-12)


def test_random_permutations_are_seeded():
    data, _ = load_case("metareg_bcg_ablat")
    res = metareg(data, "~ ablat", method="DL")
    a, b = res.permutest(n_perm=200, seed=1), res.permutest(n_perm=200, seed=1)
    assert a.qm_pvalue == b.qm_pvalue and not a.exact and a.n_permutations == 200
    # as metafor: the first of the n_perm patterns is the observed data, so p >= 1/n_perm
    assert min(a.pvalue.min(), a.qm_pvalue) >= 1 / 200


@pytest.mark.parametrize("case", ["subgroup_bcg_alloc", "subgroup_bangertdrowns2004_grade"])
@pytest.mark.parametrize("key", ["modreg_REML_z", "modreg_DL_z", "modreg_FE_z", "modreg_REML_knha"])
def test_subgroup_common_tau2_test(case, key):
    data, expected = load_case(case)
    by = expected["group_variable"] if case.endswith("grade") else "alloc"
    data = data.assign(**{by: data[by].astype(str)})
    method, test = key.split("_")[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(data, by, method=method, test=test)
    ref = expected[key]
    close([res.test_common.statistic, res.test_common.pvalue], [ref["QM"], ref["QMp"]], method)


@pytest.mark.parametrize("case", ["subgroup_bcg_alloc", "subgroup_bangertdrowns2004_grade"])
@pytest.mark.parametrize("method", ["REML", "DL", "FE"])
def test_subgroup_separate_fits_and_between_test(case, method):
    data, expected = load_case(case)
    by = expected["group_variable"] if case.endswith("grade") else "alloc"
    data = data.assign(**{by: data[by].astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(data, by, method=method)
    ref = expected[f"separate_{method}"]
    for level, fit in ref["per_group"].items():
        ours = res.results[level]
        close(
            [ours.estimate, ours.se, ours.ci_low, ours.ci_high, ours.tau2, ours.q],
            [fit["b"][0], fit["se"][0], fit["ci.lb"][0], fit["ci.ub"][0], fit["tau2"], fit["QE"]],
            method,
        )
        if "pi.lb" in fit.get("predict", {}):
            close(
                [ours.pi_low, ours.pi_high],
                [fit["predict"]["pi.lb"][0], fit["predict"]["pi.ub"][0]],
                method,
            )
    between = ref["test_between_FE_on_estimates"]
    close(
        [res.test_separate.statistic, res.test_separate.pvalue],
        [between["Q_between"], between["p"]],
        method,
    )
    assert res.test_separate.df == between["df"]


def test_subgroup_common_tau2_cell_means():
    data, expected = load_case("subgroup_bcg_alloc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(data, "alloc", tau2="common")
    ref = expected["cellmeans_REML_z"]
    close([res.results[lv].estimate for lv in res.levels], ref["b"], "REML")
    close([res.results[lv].se for lv in res.levels], ref["se"], "REML")


@pytest.mark.parametrize("case", ["subgroup_bcg_alloc", "subgroup_bangertdrowns2004_grade"])
@pytest.mark.parametrize(
    "key", ["modreg_REML_z", "modreg_DL_z", "modreg_FE_z", "modreg_REML_knha", "cellmeans_REML_z"]
)
def test_subgroup_models_in_full(case, key):
    """Every coefficient and heterogeneity quantity of the factor models, and the test df."""
    data, expected = load_case(case)
    by = expected["group_variable"]
    ref = expected[key]
    formula = f"~ 0 + C({by})" if key.startswith("cellmeans") else f"~ C({by})"
    res = metareg(data, formula, method=ref["method"], test=ref["test"])
    close(res.coef["estimate"], ref["b"], ref["method"])
    close(res.coef["se"], ref["se"], ref["method"])
    close(res.coef["statistic"], ref["zval"], ref["method"])
    close(res.coef["ci_low"], ref["ci.lb"], ref["method"])
    close(res.coef["ci_high"], ref["ci.ub"], ref["method"])
    close(
        [res.tau2, res.qe, res.qe_pvalue, res.qm, res.qm_pvalue, res.i2, res.h2],
        [ref["tau2"], ref["QE"], ref["QEp"], ref["QM"], ref["QMp"], ref["I2"], ref["H2"]],
        ref["method"],
    )
    if "R2" in ref:  # the factor models have an intercept (cell-means models have no R2)
        close(res.r2, ref["R2"], ref["method"])
    qm_df = np.atleast_1d(ref["QMdf"]).tolist()
    assert res.qm_df == qm_df[0] and (ref["test"] != "knha" or res.k - res.p == qm_df[1])
    if not key.startswith("cellmeans"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = subgroup(data, by, method=ref["method"], test=ref["test"])
        df = sub.test_common.df
        assert (list(df) if ref["test"] == "knha" else [df]) == [d for d in qm_df if d == d]
    if key.startswith("cellmeans"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = subgroup(data, by, tau2="common")
        ours = [sub.results[lv] for lv in sub.levels]
        close([r.estimate for r in ours], ref["b"], "REML")
        close([r.ci_low for r in ours], ref["ci.lb"], "REML")
        close([r.ci_high for r in ours], ref["ci.ub"], "REML")
        close([r.tau2 for r in ours], [ref["tau2"]] * len(ours), "REML")


@pytest.mark.parametrize("case", ["subgroup_bcg_alloc", "subgroup_bangertdrowns2004_grade"])
@pytest.mark.parametrize("method", ["REML", "DL", "FE"])
def test_between_test_equals_fe_model_with_level_factor(case, method):
    data, expected = load_case(case)
    by = expected["group_variable"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(data, by, method=method)
    ref = expected[f"separate_{method}"]["test_between_FE_mods_on_estimates"]
    close([res.test_separate.statistic, res.test_separate.pvalue], [ref["QM"], ref["QMp"]], method)


# every tau² estimator with two moderators, z and knha (metareg_methods_bcg: metafor run to
# exact roots with control threshold/tol 1e-12)
MOD_METHODS = ["EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM"]
CLOSED_FORM_MODS = {"EE", "FE", "DL", "HE", "HS", "HSk", "SJ"}


@pytest.mark.parametrize("test", ["z", "knha"])
@pytest.mark.parametrize("method", [*MOD_METHODS, "SJIT"])
def test_metareg_every_estimator(method, test):
    data, expected = load_case("metareg_methods_bcg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # knha with EE/FE warns, as metafor
        res = metareg(data, "~ ablat + year", method=method, test=test)
    # closed forms to 1e-8; iterative ones (exact roots on both sides) to 1e-6
    check_model(res, expected[f"{method}_{test}"], "DL" if method in CLOSED_FORM_MODS else method)


def _weighted_rss(data, tau2):
    """y'P(tau²)y of the ~ ablat + year model (the PM / DLIT fixed-point equation)."""
    y, w = data["yi"].to_numpy(), 1.0 / (data["vi"].to_numpy() + tau2)
    X = np.column_stack([np.ones(len(data)), data["ablat"], data["year"]])
    b = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
    return float(np.sum(w * (y - X @ b) ** 2))


def test_metareg_dlit_is_metafors_fixed_point_and_equals_meta_without_moderators():
    from ketameta import meta

    data, expected = load_case("metareg_methods_bcg")
    res = metareg(data, "~ ablat + year", method="DLIT")
    # metafor's update tau2 <- (y'Py - (k - p)) / tr P converges to 0.0727982800 at tight
    # control; its fixed point is not the PM root
    close(res.tau2, expected["DLIT_z"]["tau2"], "PM")
    assert abs(res.tau2 - expected["PM_z"]["tau2"]) > 0.05
    rss = _weighted_rss(data, res.tau2)
    w = 1.0 / (data["vi"].to_numpy() + res.tau2)
    X = np.column_stack([np.ones(len(data)), data["ablat"], data["year"]])
    H = X @ np.linalg.solve(X.T @ (w[:, None] * X), X.T * w)
    tr_p = float(np.sum(w) - np.trace(np.diag(w) @ H))
    assert res.tau2 == pytest.approx((rss - (res.k - 3)) / tr_p, rel=1e-9)
    # with no moderators the same estimator as meta(method="DLIT")
    plain = meta(data["yi"], data["vi"], method="DLIT")
    assert metareg(data, "~ 1", method="DLIT").tau2 == pytest.approx(plain.tau2, rel=1e-9)
