"""Public API of multilevel/multivariate meta-analysis (``meta_mv``, ``vcalc``) against metafor
3.8.1 ``rma.mv`` / ``vcalc`` (tests/reference/mv_*, vcalc_*): estimates and SEs 1e-6 relative,
variance components 1e-5, p-values 1e-6 (scaled by z² where tiny p-values amplify errors)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _reference import load_case as _load_case

from ketameta.exceptions import ExcludedStudyWarning
from ketameta.synthesis.multilevel import CorrMatrix, MetaMVResult, meta_mv, vcalc

load_case = functools.lru_cache(maxsize=None)(_load_case)  # read-only use below
RTOL, RTOL_VC = 1e-6, 1e-5


def rel(got, want, atol: float = 0.0) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    err = np.maximum(np.abs(got - want) - atol, 0.0)
    return float(np.max(err / np.maximum(np.abs(want), 1e-300)))


def _data(case: str) -> pd.DataFrame:
    df = load_case(case)[0].copy()
    if case == "mv_assink2016":  # relevel(factor(deltype), ref="general")
        df["deltype"] = pd.Categorical(df["deltype"], ["general", "covert", "overt"])
    return df


def fit_spec(case: str, key: str) -> dict:
    """meta_mv() arguments reproducing one reference fit."""
    df, ex = load_case(case)
    method = ex[key]["method"]
    if case == "mv_konstantopoulos2011":
        mods = "~ I(year - np.mean(year))" if "mod_year" in key else None
        return dict(yi="yi", V="vi", random="~ 1 | district/school", mods=mods, method=method)
    if case == "mv_assink2016":
        mods = "~ deltype" if "deltype" in key else None
        return dict(yi="yi", V="vi", random="~ 1 | study/esid", mods=mods, method=method)
    if case == "mv_berkey1998":
        V = vcalc(1.0, "author", rvars=["v1i", "v2i"], data=df)
        return dict(
            yi="yi",
            V=V,
            random="~ outcome | trial",
            struct="UN",
            mods="~ outcome - 1",
            method=method,
        )
    if case == "mv_ishak2007":
        struct = key.split("_")[1]
        V = vcalc("vi", "study", time1="time", phi=0.97, data=df) if "phi" in key else "vi"
        return dict(
            yi="yi",
            V=V,
            random="~ time | study",
            struct=struct,
            mods="~ C(time) - 1",
            method=method,
        )
    raise KeyError(case)


@functools.cache
def fit_case(case: str, key: str) -> MetaMVResult:
    return meta_mv(data=_data(case), **fit_spec(case, key))


FITS = [
    ("mv_konstantopoulos2011", "REML"),
    ("mv_konstantopoulos2011", "ML"),
    ("mv_konstantopoulos2011", "REML_mod_year"),
    ("mv_konstantopoulos2011", "ML_mod_year"),
    ("mv_assink2016", "REML"),
    ("mv_assink2016", "REML_mod_deltype"),
    ("mv_berkey1998", "REML"),
    ("mv_berkey1998", "ML"),
    ("mv_ishak2007", "REML_CS"),
    ("mv_ishak2007", "REML_HAR_V_phi097"),
    ("mv_ishak2007", "REML_AR_V_phi097"),
    ("mv_ishak2007", "REML_CS_V_phi097"),
]
BOUNDARY = [("mv_ishak2007", "REML_HAR"), ("mv_ishak2007", "REML_AR")]  # rho -> 1


def _check(
    res: MetaMVResult, e: dict, rtol: float = RTOL, rtol_vc: float = RTOL_VC, atol_vc: float = 0.0
) -> None:
    assert res.converged
    assert res.k == e["k"] and res.p == e["p"]
    for col, key in [
        ("estimate", "b"),
        ("se", "se"),
        ("statistic", "zval"),
        ("ci_low", "ci.lb"),
        ("ci_high", "ci.ub"),
    ]:
        assert rel(res.coef[col], e[key]) < rtol, col
    z2 = max(1.0, float(np.max(res.coef["statistic"] ** 2)))
    assert rel(res.coef["pvalue"], e["pval"]) < rtol * z2
    assert rel(res.vcov, e["vcov"]) < rtol
    if "sigma2" in e:
        assert rel(res.sigma2, e["sigma2"], atol_vc) < rtol_vc
    else:
        assert rel(res.tau2, e["tau2"], atol_vc) < rtol_vc
        assert rel(res.rho, e["rho"], atol_vc) < rtol_vc
    assert rel([res.qe, res.qm], [e["QE"], e["QM"]]) < rtol
    assert res.qe_df == e["QEdf"] and res.qm_df == e["QMdf"][0]
    assert rel(res.qm_pvalue, e["QMp"]) < rtol * max(1.0, res.qm)
    stats = [res.loglik, res.deviance, res.aic, res.bic, res.aicc]
    np.testing.assert_allclose(stats, e["fitstats"]["values"], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(("case", "key"), FITS, ids=[f"{c}-{k}" for c, k in FITS])
def test_fit_matches_metafor(case, key):
    e = load_case(case)[1][key]
    res = fit_case(case, key)
    _check(res, e)
    if "coef_names" in e and case != "mv_ishak2007":
        assert len(res.coef.index) == len(e["coef_names"])


@pytest.mark.parametrize(("case", "key"), BOUNDARY, ids=[f"{c}-{k}" for c, k in BOUNDARY])
def test_fit_with_rho_at_its_bound(case, key):
    # metafor stops at rho = 1 - 7e-10 / 4e-9: rho compared absolutely
    res = fit_case(case, key)
    _check(res, load_case(case)[1][key], atol_vc=1e-6)
    assert res.rho[0] > 1 - 1e-8


def test_berkey_v_from_columns_equals_vcalc():
    df, ex = load_case("mv_berkey1998")
    np.testing.assert_array_equal(vcalc(1.0, "author", rvars=["v1i", "v2i"], data=df), ex["V"])
    res = meta_mv(
        "yi",
        np.asarray(ex["V"]),
        data=df,
        random="~ outcome | trial",
        struct="UN",
        mods="~ outcome - 1",
    )
    np.testing.assert_allclose(
        res.coef["estimate"], fit_case("mv_berkey1998", "REML").coef["estimate"], rtol=1e-10
    )
    sparse = vcalc(1.0, "author", rvars=["v1i", "v2i"], data=df, sparse=True)
    assert sp.issparse(sparse)
    res_sp = meta_mv(
        "yi",
        sparse,
        data=df,
        random="~ outcome | trial",
        struct="UN",
        mods="~ outcome - 1",
        sparse=True,
    )
    np.testing.assert_allclose(res_sp.coef["se"], res.coef["se"], rtol=1e-10)


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("mv_konstantopoulos2011", "REML"),
        ("mv_konstantopoulos2011", "ML"),
        ("mv_konstantopoulos2011", "REML_mod_year"),
        ("mv_assink2016", "REML"),
        ("mv_berkey1998", "REML"),
        ("mv_berkey1998", "ML"),
    ],
)
def test_profile_confint(case, key):
    ci = fit_case(case, key).confint()
    for comp in load_case(case)[1][key]["confint_profile"]["components"]:
        for j, name in enumerate(comp["rows"]):
            row = ci.loc[name]
            assert rel(row["estimate"], comp["estimate"][j]) < RTOL_VC, name
            assert rel(row["ci_low"], comp["ci.lb"][j]) < RTOL_VC, name
            assert rel(row["ci_high"], comp["ci.ub"][j]) < RTOL_VC, name


@pytest.mark.parametrize("key", ["REML", "ML", "REML_mod_year"])
def test_blup_matches_ranef(key):
    b = fit_case("mv_konstantopoulos2011", key).blup()
    ranef = load_case("mv_konstantopoulos2011")[1][key]["ranef"]
    for factor, ref in ranef.items():
        part = b[b["factor"] == factor]
        assert list(part["level"]) == ref["rows"]
        for col, rkey in [
            ("pred", "intrcpt"),
            ("se", "se"),
            ("pi_low", "pi.lb"),
            ("pi_high", "pi.ub"),
        ]:
            np.testing.assert_allclose(part[col], ref[rkey], rtol=RTOL_VC, atol=1e-9)


def test_konstantopoulos_print_and_repr():
    res = fit_case("mv_konstantopoulos2011", "REML")
    text = str(res)
    assert text.splitlines()[0] == "Multivariate Meta-Analysis Model (k = 56; method: REML)"
    assert "sigma^2.1  0.0651  0.2551     11     no         district" in text
    assert "sigma^2.2  0.0327  0.1809     56     no  district/school" in text
    assert "Q(df = 55) = 578.8640, p-val < .0001" in text
    assert "  0.1847  0.0846  2.1845  0.0289  0.0190  0.3504  *" in text
    assert repr(res) == "<MetaMVResult REML k=56 estimate=0.1847 [0.0190, 0.3504]>"
    assert "<table" in res._repr_html_()
    assert res.estimate == pytest.approx(0.18471316367288151, rel=1e-8)
    assert res.se == pytest.approx(0.08455591874205966, rel=1e-6)
    assert res.summary().attrs["sigma^2.1"] == pytest.approx(res.sigma2[0])
    mod = str(fit_case("mv_konstantopoulos2011", "REML_mod_year"))
    assert "Test of Moderators (coefficient 2):" in mod and "QE(df = 54)" in mod
    with pytest.raises(AttributeError, match="coef"):
        _ = fit_case("mv_konstantopoulos2011", "REML_mod_year").estimate


def test_print_inner_outer_structures():
    un = str(fit_case("mv_berkey1998", "REML"))
    assert "outer factor: trial   (nlvls = 5)" in un and "inner factor: outcome (nlvls = 2)" in un
    assert "tau^2.1  0.0327  0.1807      5     no     AL" in un
    assert "PD  0.6088       1  no   -" in un
    cs = str(fit_case("mv_ishak2007", "REML_CS"))
    assert "tau^2  26.7075  5.1679     no" in cs and "rho     0.9969             no" in cs
    har = str(fit_case("mv_ishak2007", "REML_HAR_V_phi097"))
    assert "tau^2.4" in har and "rho" in har


def test_t_test_as_metafor():
    # metafor test="t": t(k - p) tests and intervals, QM as F(m, k - p)
    z = fit_case("mv_konstantopoulos2011", "REML_mod_year")
    t = meta_mv(
        "yi",
        "vi",
        data=_data("mv_konstantopoulos2011"),
        random="~ 1 | district/school",
        mods="~ I(year - np.mean(year))",
        test="t",
    )
    from scipy import stats

    np.testing.assert_allclose(t.coef["statistic"], z.coef["statistic"])
    np.testing.assert_allclose(t.coef["pvalue"], 2 * stats.t.sf(np.abs(z.coef["statistic"]), 54))
    assert t.qm == pytest.approx(z.qm) and t.df == 54
    assert t.qm_pvalue == pytest.approx(stats.f.sf(z.qm, 1, 54))
    half = stats.t.ppf(0.975, 54) * z.coef["se"]
    np.testing.assert_allclose(t.coef["ci_high"], z.coef["estimate"] + half)
    assert "F(df1 = 1, df2 = 54)" in str(t)


def test_i2_cheung():
    res = fit_case("mv_konstantopoulos2011", "REML")
    vi = _data("mv_konstantopoulos2011")["vi"].to_numpy()
    w = 1 / vi
    vt = (w.size - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    want = 100 * res.sigma2 / (res.sigma2.sum() + vt)
    i2 = res.i2()
    np.testing.assert_allclose(i2["i2"].iloc[:2], want, rtol=1e-12)
    assert i2.loc["total", "i2"] == pytest.approx(want.sum())
    assert list(i2.index) == ["district", "district/school", "total"]


def test_list_of_formulas_equals_nested():
    df = _data("mv_konstantopoulos2011").assign(ds=lambda d: d.district * 1000 + d.school)
    a = fit_case("mv_konstantopoulos2011", "REML")
    b = meta_mv("yi", "vi", data=df, random=["~ 1 | district", "~ 1 | ds"])
    np.testing.assert_allclose(b.sigma2, a.sigma2, rtol=1e-7)
    np.testing.assert_allclose(b.coef["estimate"], a.coef["estimate"], rtol=1e-8)


def test_arrays_and_missing_rows():
    df = _data("mv_konstantopoulos2011")
    res = meta_mv(df["yi"].to_numpy(), df["vi"].to_numpy(), data=df, random="~ 1 | district/school")
    assert res.coef["estimate"].iloc[0] == pytest.approx(0.18471316367288151, rel=1e-8)
    gap = df.copy()
    gap.loc[3, "yi"] = np.nan
    with pytest.warns(ExcludedStudyWarning, match="1 row"):
        res = meta_mv("yi", "vi", data=gap, random="~ 1 | district/school")
    assert res.k == 55 and res.excluded == (("3", "missing value"),)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "DL"}, "method"),
        ({"test": "knha"}, "test"),
        ({"level": 120}, "level"),
        ({"random": "1 | district"}, "random"),
        ({"random": "~ 1 | nowhere"}, "nowhere"),
        ({"random": "~ school | district", "struct": "XYZ"}, "struct"),
        ({"V": "nope"}, "V"),
        ({"V": np.ones(3)}, "V must be"),
        ({"mods": "~ nothing_here"}, "mods"),
    ],
)
def test_errors_name_the_argument(kwargs, match):
    df = _data("mv_konstantopoulos2011")
    args = {"yi": "yi", "V": "vi", "random": "~ 1 | district/school", **kwargs}
    with pytest.raises(ValueError, match=match):
        meta_mv(data=df, **args)


# ---- vcalc ---------------------------------------------------------------------------------


def test_vcalc_rho_columns():
    df, ex = load_case("vcalc_rho")
    np.testing.assert_allclose(
        vcalc("vi", "study", obs="esid", rho=0.6, data=df),
        ex["V_obs_rho06"],
        rtol=1e-12,
        atol=1e-15,
    )
    V = vcalc("vi", "study", type="deltype", obs="esid", rho=(0.7, 0.5), data=df)
    np.testing.assert_allclose(V, ex["V_type_obs_rho07_05"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("V_time1_phi09", {"time1": "time", "phi": 0.9}),
        ("V_time1_phi097", {"time1": "time", "phi": 0.97}),
        ("V_time1_months_phi09", {"time1": "months", "phi": 0.9}),
        ("V_obs_rho06", {"obs": "time", "rho": 0.6}),
    ],
)
def test_vcalc_timepoints(name, kw):
    df, ex = load_case("vcalc_timepoints")
    V = vcalc("vi", "study", data=df, **kw)
    np.testing.assert_allclose(V, ex[name], rtol=1e-12, atol=1e-15)


def test_vcalc_shared_control_and_sparse():
    df, ex = load_case("vcalc_shared_control")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows sharing both groups correlate 1, as metafor
        V = vcalc("vi", "study", grp1="group1", grp2="group2", w1="n_sz", w2="n_hc", data=df)
    np.testing.assert_allclose(V, ex["V_grp_w"], rtol=1e-12, atol=1e-15)
    R = CorrMatrix(ex["R_obs"], ex["R_obs_names"])
    kw = dict(grp1="group1", grp2="group2", w1="n_sz", w2="n_hc", rho=R, data=df)
    obs = df["task.diff"].astype(str)
    V = vcalc("vi", "study", obs=obs, **kw)
    np.testing.assert_allclose(V, ex["V_grp_w_obs_rhoR"], rtol=1e-12, atol=1e-15)
    S = vcalc("vi", "study", obs=obs, sparse=True, **kw)
    assert sp.issparse(S)
    np.testing.assert_allclose(S.toarray(), V, rtol=0, atol=0)
    blocks = vcalc("vi", "study", obs=obs, sparse="blocks", **kw)
    assert sum(idx.size for idx, _ in blocks) == len(df)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs": "missing_col", "rho": 0.5}, "obs: column 'missing_col'"),
        ({"obs": [1, 2], "rho": 0.5}, "obs must have length"),
        ({"time1": "time"}, "phi"),
        ({"obs": "esid"}, "rho"),
        ({"cluster": "nope"}, "cluster"),
    ],
)
def test_vcalc_errors_name_the_argument(kwargs, match):
    df, _ = load_case("vcalc_rho")
    df = df.assign(time=1)
    args = {"vi": "vi", "cluster": "study", **kwargs}
    with pytest.raises(ValueError, match=match):
        vcalc(data=df, **args)
