"""metafor 3.8.1's small-k test options: ``test="t"`` and ``test="adhoc"`` (with "z", "knha").

* ``"t"``: the unadjusted standard error with t(k - p) quantiles (test, CI, prediction
  interval); QM as F(m, k - p) with moderators.
* ``"adhoc"``: Knapp-Hartung with the scale factor truncated below at 1, max(1, s²), t(k - p).

Reference: ``tests/reference/rma_test_t_adhoc`` (BCG, REML/DL/PM x z/t/knha/adhoc, with
``predict()``). On BCG the Knapp-Hartung factor is >= 1 (knha = adhoc), so a synthetic case of
tight, homogeneous studies (factor < 1) checks that adhoc keeps the unadjusted SE there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, RTOL_ITERATIVE, load_case

from ketameta._core import influence as core_influence
from ketameta._core.batch import fit_batch
from ketameta._core.fastpath import fit_one
from ketameta._core.pooling import critical_values, pool
from ketameta._core.regression import fit_mods, wald_batch
from ketameta._core.tau2 import METHODS
from ketameta.synthesis import printing
from ketameta.synthesis.pooling import meta, meta_batch
from ketameta.synthesis.regression import metareg, permutest
from ketameta.synthesis.sensitivity import cumulative, influence, leave_one_out

CASE = "rma_test_t_adhoc"
DATA, EXPECTED = load_case(CASE)
YI = DATA["yi"].to_numpy(dtype=float)
VI = DATA["vi"].to_numpy(dtype=float)
TESTS = ("z", "t", "knha", "adhoc")
RTOL = {"DL": RTOL_CLOSED_FORM, "REML": RTOL_ITERATIVE, "PM": RTOL_ITERATIVE}

# tight, homogeneous studies: sum w e² / (k - 1) is far below 1
TIGHT_YI = np.array([0.30, 0.31, 0.29, 0.305, 0.295, 0.30])
TIGHT_VI = np.array([0.04, 0.05, 0.03, 0.06, 0.04, 0.05])


def _close(got, want, rtol, name):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=ATOL_NEAR_ZERO, err_msg=name)


def _expected(method, test):
    e = EXPECTED[f"{method}_{test}"]
    assert e["method"] == method and e["test"] == test
    return e


def _check_against(res, e, rtol, df):
    """A fit (MetaResult, BatchResult row, metareg coef row) against metafor's record."""
    _close(res["estimate"], e["b"][0], rtol, "estimate")
    _close(res["se"], e["se"][0], rtol, "se")
    _close(res["statistic"], e["zval"][0], rtol, "statistic")
    _close(res["pvalue"], e["pval"][0], rtol, "pvalue")
    _close(res["ci_low"], e["ci.lb"][0], rtol, "ci_low")
    _close(res["ci_high"], e["ci.ub"][0], rtol, "ci_high")
    if "pi_low" in res:
        _close(res["pi_low"], e["predict"]["pi.lb"][0], rtol, "pi_low")
        _close(res["pi_high"], e["predict"]["pi.ub"][0], rtol, "pi_high")
        _close(res["se"], e["predict"]["se"][0], rtol, "predict se")
    if np.isnan(e["ddf"][0]):
        assert df is None or np.isnan(df)
    else:
        assert df == e["ddf"][0]


def _fields(r):
    keys = ("estimate", "se", "statistic", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high")
    return {key: getattr(r, key) for key in keys}


# --- metafor's numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["REML", "DL", "PM"])
@pytest.mark.parametrize("test", TESTS)
def test_meta_matches_metafor(method, test):
    e = _expected(method, test)
    res = meta(YI, VI, method=method, test=test)
    assert res.test == test
    _check_against(_fields(res), e, RTOL[method], res.df)
    _close(res.tau2, e["tau2"], RTOL[method], "tau2")


@pytest.mark.parametrize("method", ["REML", "DL", "PM"])
@pytest.mark.parametrize("test", TESTS)
def test_meta_batch_and_pool_match_metafor(method, test):
    e = _expected(method, test)
    batch = meta_batch(np.vstack([YI, YI]), np.vstack([VI, VI]), method=method, test=test)
    for i in range(2):
        row = {key: getattr(batch, key)[i] for key in _fields(batch)}
        _check_against(row, e, RTOL[method], batch.df[i])
    out = pool(YI, VI, e["tau2"], test=test)  # metafor's tau², closed form from there
    row = {key: float(out[key]) for key in _fields(batch)}
    _check_against(row, e, RTOL_CLOSED_FORM, float(out["df"]))


@pytest.mark.parametrize("method", ["REML", "DL", "PM"])
@pytest.mark.parametrize("test", TESTS)
def test_intercept_only_metareg_matches_metafor(method, test):
    e = _expected(method, test)
    res = metareg(DATA, "~ 1", method=method, test=test)
    coef = res.coef.iloc[0].to_dict()
    _check_against(coef, e, RTOL[method], res._fit["df"])
    _close(res.qm, e["QM"], RTOL[method], "QM")
    _close(res.qm_pvalue, e["QMp"], RTOL[method], "QMp")


def test_knha_and_adhoc_coincide_on_bcg():
    for method in ("REML", "DL", "PM"):
        assert _expected(method, "knha")["s2w"] >= 1.0
        a, b = meta(YI, VI, method=method, test="knha"), meta(YI, VI, method=method, test="adhoc")
        assert a.se == pytest.approx(b.se, rel=1e-14)
        z, t = meta(YI, VI, method=method, test="z"), meta(YI, VI, method=method, test="t")
        assert z.se == pytest.approx(t.se, rel=1e-14)  # t keeps the unadjusted SE
        assert t.ci_high - t.ci_low > z.ci_high - z.ci_low


# --- the truncation at work: a Knapp-Hartung factor below 1 -----------------------------------


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "EE"])
def test_adhoc_keeps_the_unadjusted_se_when_the_factor_is_below_one(method):
    k = TIGHT_YI.size
    z = meta(TIGHT_YI, TIGHT_VI, method=method, test="z")
    t = meta(TIGHT_YI, TIGHT_VI, method=method, test="t")
    kh = meta(TIGHT_YI, TIGHT_VI, method=method, test="knha")
    ah = meta(TIGHT_YI, TIGHT_VI, method=method, test="adhoc")
    w = 1.0 / (TIGHT_VI + z.tau2)
    s2w = float(w @ (TIGHT_YI - z.estimate) ** 2) / (k - 1)
    assert s2w < 0.05  # the factor is far below 1
    crit = float(critical_values(95.0, k - 1))
    # adhoc = t: the unadjusted SE with t(k - 1) quantiles
    for r in (t, ah):
        assert r.se == pytest.approx(z.se, rel=1e-13)
        assert r.df == k - 1
        assert r.ci_high - r.estimate == pytest.approx(crit * z.se, rel=1e-13)
        assert r.pi_high - r.estimate == pytest.approx(crit * np.sqrt(z.se**2 + z.tau2), rel=1e-13)
        assert r.statistic == pytest.approx(z.statistic, rel=1e-13)
    assert ah.pvalue == pytest.approx(t.pvalue, rel=1e-12) and ah.pvalue > z.pvalue
    # knha shrinks it by sqrt(s2w)
    assert kh.se == pytest.approx(np.sqrt(s2w) * z.se, rel=1e-12)
    assert kh.se < 0.25 * ah.se
    # the same in the batched engine and the lean path
    for test, ref in (("adhoc", ah), ("knha", kh), ("t", t)):
        out = fit_batch(TIGHT_YI, TIGHT_VI, method=method, test=test)
        assert float(out["se"]) == pytest.approx(ref.se, rel=1e-12)
        lean = fit_one(TIGHT_YI, TIGHT_VI, method=method, test=test)
        assert lean is not None and lean["se"] == pytest.approx(ref.se, rel=1e-12)


def test_adhoc_with_moderators_when_the_factor_is_below_one():
    data = pd.DataFrame({"yi": TIGHT_YI, "vi": TIGHT_VI, "x": np.arange(6.0)})
    fits = {test: metareg(data, "~ x", method="DL", test=test) for test in TESTS}
    se = {test: fits[test].coef["se"].to_numpy() for test in TESTS}
    np.testing.assert_allclose(se["adhoc"], se["z"], rtol=1e-13)
    np.testing.assert_allclose(se["t"], se["z"], rtol=1e-13)
    assert (se["knha"] < 0.5 * se["z"]).all()
    k, p = 6, 2
    crit = float(critical_values(95.0, k - p))
    for test in ("t", "adhoc"):
        c = fits[test].coef
        np.testing.assert_allclose(c["ci_high"] - c["estimate"], crit * se["z"], rtol=1e-12)
        assert fits[test]._fit["df"] == k - p
        # QM as F(1, k - p): the squared t statistic of the slope, the same p-value
        assert fits[test].qm == pytest.approx(c.loc["x", "statistic"] ** 2, rel=1e-12)
        assert fits[test].qm_pvalue == pytest.approx(c.loc["x", "pvalue"], rel=1e-10)
    assert fits["z"].qm == pytest.approx(fits["t"].qm, rel=1e-12)
    assert fits["t"].qm_pvalue > fits["z"].qm_pvalue  # F(1, 4) against chi-square(1)


@pytest.mark.parametrize("test", TESTS)
def test_wald_batch_equals_fit_mods(test):
    X = np.column_stack([np.ones(13), DATA["ablat"].to_numpy(float)])
    tau2 = 0.0763
    fit = fit_mods(YI, VI, X, tau2, test=test)
    stat, qm = wald_batch(YI, VI, X[None], np.array([tau2]), test=test)
    np.testing.assert_allclose(stat[0], fit["statistic"], rtol=1e-12)
    assert qm[0] == pytest.approx(fit["qm"], rel=1e-12)
    Xt = np.column_stack([np.ones(6), np.arange(6.0)])
    fit = fit_mods(TIGHT_YI, TIGHT_VI, Xt, 0.0, test=test)
    stat, qm = wald_batch(TIGHT_YI, TIGHT_VI, Xt[None], np.array([0.0]), test=test)
    np.testing.assert_allclose(stat[0], fit["statistic"], rtol=1e-12)
    assert qm[0] == pytest.approx(fit["qm"], rel=1e-12)


@pytest.mark.parametrize("test", ["t", "adhoc"])
def test_permutest_runs_with_the_new_tests(test):
    data = DATA.copy()
    res = metareg(data, "~ ablat", method="DL", test=test)
    perm = permutest(res, 50, seed=3)
    assert perm.n_permutations == 50 and 0 < perm.pvalue["ablat"] <= 1
    res0 = metareg(data, "~ 1", method="DL", test=test)
    assert 0 < permutest(res0, 50, seed=3).pvalue["intrcpt"] <= 1


# --- the lean path and the batched refits -----------------------------------------------------


def _problems():
    rng = np.random.default_rng(23)
    out = [(YI, VI), (TIGHT_YI, TIGHT_VI)]
    for _ in range(12):
        k = int(rng.integers(2, 30))
        vi = rng.uniform(0.01, 0.2, k) * 10 ** rng.uniform(-2, 2)
        yi = rng.normal(0.3, np.sqrt(rng.uniform(0, 0.3) + vi))
        out.append((yi, vi))
    return out


PROBLEMS = _problems()
KEYS = ("estimate", "se", "statistic", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high", "df")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["t", "adhoc"])
def test_lean_path_equals_fit_batch(method, test):
    lean = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for yi, vi in PROBLEMS:
            scale = float(np.max(np.abs(yi)) + np.sqrt(np.max(vi)))
            ref = fit_batch(yi, vi, method=method, test=test, ci_tau2=False, stats=False)
            got = fit_one(yi, vi, method=method, test=test)
            res = meta(yi, vi, method=method, test=test)
            for key in KEYS:
                want = float(ref[key])
                value = getattr(res, key)
                _eq(np.nan if value is None else value, want, key, scale)
                if got is not None:
                    _eq(got[key], want, key, scale)
            lean += got is not None
    if method != "DLIT":  # DLIT has no lean version
        assert lean >= len(PROBLEMS) - 2


def _eq(got, want, key, scale):
    if np.isnan(want):
        assert np.isnan(got), key
        return
    atol = 1e-12 * scale if key not in ("se", "pvalue", "df") else 0.0
    rtol = 1e-10 if key == "pvalue" else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol + 1e-300, err_msg=key)


def test_unknown_test_is_refused_everywhere():
    for call in (
        lambda: meta(YI, VI, test="hk"),
        lambda: meta_batch(YI[None], VI[None], test="T"),
        lambda: fit_batch(YI, VI, test="hksj"),
        lambda: pool(YI, VI, 0.1, test="Z"),
        lambda: metareg(DATA, "~ ablat", test="tdist"),
    ):
        with pytest.raises(ValueError, match="test"):
            call()
    assert fit_one(YI, VI, method="DL", test="hk") is None


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
@pytest.mark.parametrize("test", ["t", "adhoc"])
@pytest.mark.parametrize("which", [0, 1, 5])
def test_refits_equal_fit_batch_and_meta(method, test, which):
    yi, vi = PROBLEMS[which]
    k = yi.size
    scale = float(np.max(np.abs(yi)) + np.sqrt(np.max(vi)))
    loo = core_influence.leave_one_out(yi, vi, method=method, test=test, budget=8 * 32 * k * 2)
    ref = fit_batch(
        np.broadcast_to(yi, (k, k)), np.broadcast_to(vi, (k, k)), mask=~np.eye(k, dtype=bool),
        method=method, test=test, ci_tau2=False,
    )  # fmt: skip
    for key in (*KEYS, "tau2", "q"):
        for i in range(k):
            _eq(loo[key][i], ref[key][i], key, scale)
    keep = np.arange(k) != 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = meta(yi[keep], vi[keep], method=method, test=test)
    for key in KEYS:
        _eq(loo[key][2], float(np.nan if getattr(one, key) is None else getattr(one, key)),
            key, scale)  # fmt: skip
    order = np.argsort(yi)
    cum = core_influence.cumulative(yi, vi, order, method=method, test=test)
    ref = fit_batch(
        np.broadcast_to(yi[order], (k, k)), np.broadcast_to(vi[order], (k, k)),
        mask=np.tril(np.ones((k, k), dtype=bool)), method=method, test=test, ci_tau2=False,
    )  # fmt: skip
    for key in KEYS:
        for i in range(k):
            _eq(cum[key][i], ref[key][i], key, scale)


@pytest.mark.parametrize("test", TESTS)
def test_sensitivity_functions_pass_the_test_on(test):
    res = meta(YI, VI, method="DL", test=test)
    loo = leave_one_out(res)
    one = meta(YI[1:], VI[1:], method="DL", test=test)
    assert loo["se"].iloc[0] == pytest.approx(one.se, rel=1e-12)
    assert loo["ci_low"].iloc[0] == pytest.approx(one.ci_low, rel=1e-12)
    assert loo["pvalue"].iloc[0] == pytest.approx(one.pvalue, rel=1e-10)
    cum = cumulative(res)
    assert cum["se"].iloc[-1] == pytest.approx(res.se, rel=1e-12)
    assert cum["ci_high"].iloc[-1] == pytest.approx(res.ci_high, rel=1e-12)
    infl = influence(res)
    assert np.isfinite(infl["rstudent"]).all()


# --- printouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("test", TESTS)
def test_printouts_show_tval_and_df_for_t_tests(test):
    text = printing.format_meta(meta(YI, VI, test=test))
    header = next(line for line in text.splitlines() if line.lstrip().startswith("estimate"))
    if test == "z":
        assert "zval" in header and " df " not in f"{header} "
    else:
        assert header.split()[:4] == ["estimate", "se", "tval", "df"]
        row = text.splitlines()[text.splitlines().index(header) + 1]
        assert row.split()[3] == "12"
    reg = printing.format_metareg(metareg(DATA, "~ ablat", test=test))
    if test == "z":
        assert "QM(df = 1)" in reg
    else:
        assert "F(df1 = 1, df2 = 11)" in reg and "tval" in reg
    html = meta(YI, VI, test=test)._repr_html_()
    assert ("t value" in html) == (test != "z")


def test_single_study_keeps_its_z_interval():
    from ketameta.exceptions import SingleStudyWarning

    for test in ("t", "adhoc"):
        with pytest.warns(SingleStudyWarning, match=f"{test} needs k >= 2"):
            res = meta(YI[:1], VI[:1], test=test)
        assert res.test == "z" and res.df is None
        batch = meta_batch(np.array([[YI[0], np.nan]]), np.array([[VI[0], np.nan]]), test=test)
        assert np.isnan(batch.df[0]) and batch.se[0] == pytest.approx(np.sqrt(VI[0]))
