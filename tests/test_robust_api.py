"""Public API of cluster-robust inference (``robust``, ``wald_test``) against metafor 3.8.1
``robust()`` and clubSandwich 0.5.8 ``vcovCR`` / ``coef_test`` / ``Wald_test``, for
``meta_mv`` (tests/reference/mv_*) and ``metareg`` (robust_uni_bcg) fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_multilevel_api import fit_case, load_case, rel

from ketameta.synthesis.pooling import meta
from ketameta.synthesis.regression import metareg
from ketameta.synthesis.robust import RobustResult, WaldTest, robust, wald_test

RTOL = 1e-6
CLUSTER = {
    "mv_konstantopoulos2011": "district",
    "mv_assink2016": "study",
    "mv_berkey1998": "trial",
    "mv_ishak2007": "study",
}
FITS = [
    ("mv_konstantopoulos2011", "REML"),
    ("mv_konstantopoulos2011", "REML_mod_year"),
    ("mv_assink2016", "REML"),
    ("mv_assink2016", "REML_mod_deltype"),
    ("mv_berkey1998", "REML"),
    ("mv_berkey1998", "ML"),
    ("mv_ishak2007", "REML_CS"),
    ("mv_ishak2007", "REML_HAR_V_phi097"),
    ("mv_ishak2007", "REML_AR_V_phi097"),
    ("mv_ishak2007", "REML_CS_V_phi097"),
]
BCG = ["cluster_trial", "cluster_alloc"]


def _bcg_fit():
    df, _ = load_case("robust_uni_bcg")
    return df, metareg(df, "~ ablat", method="REML")


def _source(case: str, key: str):
    """(fitted result, cluster argument, block with the robust references)."""
    if case == "robust_uni_bcg":
        df, fit = _bcg_fit()
        return fit, df[key.removeprefix("cluster_")].to_numpy(), load_case(case)[1][key]
    return fit_case(case, key), CLUSTER[case], load_case(case)[1][key]


ALL = [*FITS, *(("robust_uni_bcg", k) for k in BCG)]
IDS = [f"{c}-{k}" for c, k in ALL]
METAFOR = {
    "robust_CR0_adjust_FALSE": False,
    "robust_CR1p_adjust_TRUE": True,
    "robust_clubSandwich_CR2": "CR2",
}


def _amplify(stat) -> float:
    """A tiny p-value's relative error is about (test statistic) times that of the statistic."""
    return max(1.0, float(np.max(np.asarray(stat, dtype=float))))


@pytest.mark.parametrize(("case", "key"), ALL, ids=IDS)
def test_metafor_robust(case, key):
    fit, cluster, block = _source(case, key)
    for name, adjust in METAFOR.items():
        if name not in block:
            continue
        ref = block[name]
        res = robust(fit, cluster, adjust=adjust)
        assert isinstance(res, RobustResult)
        assert res.n_clusters == ref["n_clusters"]
        assert rel(res.coef["estimate"], ref["b"]) < RTOL, name
        assert rel(res.coef["se"], ref["se"]) < RTOL, name
        assert rel(res.vcov, ref["vcov"]) < RTOL, name
        assert rel(res.df, np.broadcast_to(ref["dfs"], res.df.shape)) < RTOL, name
        amp = _amplify(res.coef["statistic"] ** 2)
        assert rel(res.coef["pvalue"], ref["pval"]) < RTOL * amp, name
        assert rel(res.coef["ci_low"], ref["ci.lb"]) < RTOL, name
        assert rel(res.coef["ci_high"], ref["ci.ub"]) < RTOL, name
        assert rel(res.qm, ref["QM"]) < RTOL, name
        assert rel(res.qm_pvalue, ref["QMp"]) < RTOL * _amplify(res.qm * res.qm_df[0]), name
        assert rel(res.qm_df, ref["QMdf"]) < RTOL, name


COEF = [
    (c, k, t)
    for c, k in ALL
    for t in ("CR0", "CR1", "CR1p", "CR2")
    if t in _source(c, k)[2]["clubSandwich"]
]


@pytest.mark.parametrize(("case", "key", "adjust"), COEF, ids=[f"{c}-{k}-{t}" for c, k, t in COEF])
def test_clubsandwich_coef_test(case, key, adjust):
    fit, cluster, block = _source(case, key)
    ref = block["clubSandwich"][adjust]
    res = robust(fit, cluster, adjust=adjust, test="Satterthwaite")
    assert rel(res.vcov, ref["vcovCR"]) < RTOL
    assert rel(res.coef["se"], ref["SE"]) < RTOL
    assert rel(res.coef["statistic"], ref["tstat"]) < RTOL
    assert rel(res.df, ref["df_Satt"]) < RTOL
    assert rel(res.coef["pvalue"], ref["p_Satt"]) < RTOL * _amplify(res.coef["statistic"] ** 2)


def _wald_cases():
    out = []
    for case, key in ALL:
        block = _source(case, key)[2]
        out += [(case, key, n) for n in block if n.startswith("Wald_test")]
    return out


WALD = _wald_cases()


def _constraints(name: str, names: list[str]):
    p = len(names)
    if name == "Wald_test_deltype_equal_CR2":  # constrain_equal(2:3)
        return {"constraints": [[0.0, -1.0, 1.0]]}
    if name == "Wald_test_equal_CR2":  # constrain_equal(1:p)
        return {"constraints": np.column_stack([-np.ones(p - 1), np.eye(p - 1)])}
    if name == "Wald_test_zero_CR2":  # constrain_zero(1:p)
        return {"terms": names}
    return {"terms": names[1:]}  # constrain_zero(2:p)


@pytest.mark.parametrize(("case", "key", "name"), WALD, ids=[f"{c}-{k}-{n}" for c, k, n in WALD])
def test_clubsandwich_wald_test(case, key, name):
    fit, cluster, block = _source(case, key)
    ref = block[name]
    rob = robust(fit, cluster)
    spec = _constraints(name, list(rob.coef.index))
    for i, test in enumerate(ref["test"]):
        wt = wald_test(rob, test=test, **spec)
        assert isinstance(wt, WaldTest)
        assert rel(wt.statistic, ref["Fstat"][i]) < RTOL, test
        assert rel(wt.delta, ref["delta"][i]) < RTOL, test
        assert wt.df_num == ref["df_num"][i]
        if np.isinf(ref["df_denom"][i]):
            assert np.isinf(wt.df_denom)
        else:
            assert rel(wt.df_denom, ref["df_denom"][i]) < RTOL, test
        assert rel(wt.pvalue, ref["p_val"][i]) < RTOL * _amplify(wt.Q), test
    # the method and the function agree
    same = rob.wald_test(spec.get("constraints"), terms=spec.get("terms"))
    assert same.pvalue == wald_test(rob, **spec).pvalue


def test_cluster_as_column_and_array():
    fit = fit_case("mv_konstantopoulos2011", "REML")
    a = robust(fit, "district")
    b = robust(fit, fit.data["district"].to_numpy())
    np.testing.assert_allclose(a.vcov, b.vcov, rtol=0, atol=0)
    # metareg keeps no data: a column name needs data=
    df, reg = _bcg_fit()
    with pytest.raises(ValueError, match="data="):
        robust(reg, "alloc")
    c = robust(reg, "alloc", data=df)
    np.testing.assert_allclose(c.vcov, robust(reg, df["alloc"]).vcov, rtol=0, atol=0)


def test_meta_result_equals_intercept_only_metareg():
    df, _ = _bcg_fit()
    uni = meta("yi", "vi", data=df, method="REML")
    a = robust(uni, "alloc", adjust="CR2")
    # an intercept-only model by meta_mv-free construction: the same working model
    from ketameta._core.sandwich import coef_test, prepare_robust

    mod = prepare_robust(np.ones((len(df), 1)), df["yi"], np.diag(df["vi"] + uni.tau2), df["alloc"])
    ref = coef_test(mod, type="CR2")
    np.testing.assert_allclose(a.coef["se"], ref.se, rtol=1e-12)
    np.testing.assert_allclose(a.df, ref.df, rtol=1e-12)
    assert list(a.coef.index) == ["intrcpt"]


def test_print_repr_summary():
    res = robust(fit_case("mv_konstantopoulos2011", "REML"), "district")
    text = str(res)
    assert "var-cov estimator: CR2" in text and "Number of clusters:    11" in text
    assert "F(df1 = 1, df2 = 9.86) = 4.7832, p-val = 0.0540" in text
    assert "intrcpt    0.1847  0.0845  2.1870  9.86  0.0540  -0.0038  0.3733  ." in text
    assert repr(res) == "<RobustResult CR2 (Satterthwaite) k=56 clusters=11 p=1>"
    assert "<table" in res._repr_html_()
    s = res.summary()
    assert list(s.columns) == ["estimate", "se", "statistic", "df", "pvalue", "ci_low", "ci_high"]
    assert s.attrs["n_clusters"] == 11
    rob = robust(fit_case("mv_berkey1998", "REML"), "trial")
    wt = rob.wald_test(["outcome[AL]", "outcome[PD]"])
    assert str(wt).startswith("Cluster-robust Wald test (HTZ")
    assert isinstance(wt.summary(), pd.DataFrame)


def test_singular_adjustment_cluster_is_handled():
    # bcg with cluster=trial and a moderator: one-study clusters give singular CR2 blocks
    # (handled by the Moore-Penrose inverse square root, as clubSandwich) and match it
    df, reg = _bcg_fit()
    res = robust(reg, df["trial"])
    ref = load_case("robust_uni_bcg")[1]["cluster_trial"]["clubSandwich"]["CR2"]
    assert rel(res.coef["se"], ref["SE"]) < RTOL


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"adjust": "HC3"}, "adjust"), ({"test": "exact"}, "test")],
)
def test_robust_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        robust(fit_case("mv_konstantopoulos2011", "REML"), "district", **kwargs)


def test_robust_rejects_bad_cluster_and_inputs():
    fit = fit_case("mv_konstantopoulos2011", "REML")
    with pytest.raises(ValueError, match="cluster"):
        robust(fit, [1, 2, 3])
    with pytest.raises(ValueError, match="not in data"):
        robust(fit, "nowhere")
    with pytest.raises(ValueError, match="more than one cluster|nest|spans"):
        robust(fit, fit.data["school"].to_numpy())  # schools do not nest districts
    with pytest.raises(TypeError):
        robust(object(), [1])
    rob = robust(fit, "district")
    with pytest.raises(ValueError, match="terms"):
        wald_test(rob, ["nope"])
    with pytest.raises(ValueError, match="either"):
        wald_test(rob)
