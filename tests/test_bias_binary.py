"""Small-study tests for binary outcomes and the regtest() predictors, and Mantel-Haenszel
pooling with no events (or only events) in every table.

References: tests/reference/regtest_binary (metafor 3.8.1 ``regtest()`` for every model and
predictor on BCG log OR and log RR; plain R ``lm()`` fits of Peters' and Harbord's published
formulas) and tests/reference/mh_zero_events (``rma.mh()``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _reference import RTOL_CLOSED_FORM, load_case

from ketameta.exceptions import ZeroCellWarning
from ketameta.synthesis.bias import PREDICTORS, egger_test
from ketameta.synthesis.bias_binary import harbord_test, macaskill_test, peters_test
from ketameta.synthesis.binary import meta_mh
from ketameta.synthesis.effects import escalc
from ketameta.synthesis.pooling import meta

DATA, EXP = load_case("regtest_binary")
DATA["n1"], DATA["n2"] = DATA.tpos + DATA.tneg, DATA.cpos + DATA.cneg
COUNTS = {"events1": "tpos", "n1": "n1", "events2": "cpos", "n2": "n2"}


def _effects(measure):
    es = escalc(measure, data=DATA, **COUNTS)
    np.testing.assert_allclose(es["yi"], EXP[f"{measure}_yi"], rtol=RTOL_CLOSED_FORM)
    return es


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


CASES = [(m, f, mdl, p) for m in ("OR", "RR") for f in ("FE", "REML") for mdl in ("lm", "rma")
         for p in PREDICTORS]  # fmt: skip


@pytest.mark.parametrize("measure,method,model,predictor", CASES,
                         ids=["_".join(c) for c in CASES])  # fmt: skip
def test_regtest_predictors_match_metafor(measure, method, model, predictor):
    ref = EXP[f"{measure}_{method}_{model}_{predictor}"]
    res = meta(data=_effects(measure), method=method)
    t = egger_test(res, model=model, predictor=predictor)
    assert t.predictor == predictor
    np.testing.assert_allclose([t.statistic, t.pvalue], [ref["zval"], ref["pval"]], rtol=1e-8)
    np.testing.assert_allclose(t.coef, ref["fit_coef"], rtol=1e-8)
    np.testing.assert_allclose(t.coef_se, ref["fit_se"], rtol=1e-8)
    assert t.df == (None if _missing(ref["dfs"]) else ref["dfs"])
    if _missing(ref["est"]):  # ni, sqrtni: no limit estimate
        assert t.estimate is None and t.ci_low is None
    else:
        np.testing.assert_allclose([t.estimate, t.ci_low, t.ci_high],
                                   [ref["est"], ref["ci.lb"], ref["ci.ub"]], rtol=1e-8)  # fmt: skip
    if model == "rma" and not _missing(ref["fit_tau2"]):
        assert t.tau2 == pytest.approx(ref["fit_tau2"], rel=1e-6, abs=1e-10)


def test_sei_predictor_is_the_default_egger_test():
    res = meta(data=_effects("OR"), method="REML")
    assert egger_test(res).statistic == egger_test(res, predictor="sei").statistic


def test_sample_sizes_given_or_missing():
    res = meta(data=_effects("OR"), method="FE")
    ni = (DATA.n1 + DATA.n2).to_numpy()
    a = egger_test(res, model="lm", predictor="ninv", ni=ni)
    assert a.statistic == pytest.approx(EXP["OR_FE_lm_ninv"]["zval"], rel=1e-10)
    plain = meta([0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.03, 0.04])
    with pytest.raises(ValueError, match="sample sizes"):
        egger_test(plain, predictor="ni")
    with pytest.raises(ValueError, match="predictor"):
        egger_test(plain, predictor="n")


def test_peters_matches_lm_of_the_published_formula():
    ref = EXP["peters2006_manual"]
    t = peters_test(meta(data=_effects("OR"), method="REML"), **COUNTS)
    assert t.test == "Peters" and t.df == ref["df"] == 11
    np.testing.assert_allclose([t.statistic, t.pvalue], [ref["slope_t"][0], ref["slope_p"][0]],
                               rtol=1e-10)  # fmt: skip
    np.testing.assert_allclose(t.coef, ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(t.coef_se, ref["se"], rtol=1e-10)
    assert t.estimate == pytest.approx(ref["coef"][0], rel=1e-10)  # the intercept


def test_peters_differs_from_metafors_ninv_version():
    res = meta(data=_effects("OR"), method="FE")
    ours = peters_test(res, **COUNTS).statistic
    metafor = egger_test(res, model="lm", predictor="ninv").statistic
    assert metafor == pytest.approx(EXP["OR_FE_lm_ninv"]["zval"], rel=1e-10)
    assert abs(ours - metafor) > 0.1  # Peters' weights are not 1/vi


def test_harbord_matches_lm_of_the_published_formula():
    ref = EXP["harbord2006_manual"]
    t = harbord_test(meta(data=_effects("OR"), method="FE"), **COUNTS)
    assert t.test == "Harbord" and t.df == ref["df"]
    np.testing.assert_allclose([t.statistic, t.pvalue], [ref["test_t"], ref["test_p"]],
                               rtol=1e-10)  # fmt: skip
    np.testing.assert_allclose(t.coef, ref["coef"], rtol=1e-10)
    np.testing.assert_allclose(t.coef_se, ref["se"], rtol=1e-10)
    assert t.estimate == pytest.approx(ref["coef"][1], rel=1e-10)  # slope: adjusted log OR
    # only the counts enter: the same on a log RR fit
    rr = harbord_test(meta(data=_effects("RR"), method="FE"), **COUNTS)
    assert rr.statistic == pytest.approx(t.statistic, rel=1e-12)


def test_macaskill_is_lm_on_total_sample_size():
    res = meta(data=_effects("OR"), method="FE")
    ref = EXP["OR_FE_lm_ni"]  # metafor regtest(model="lm", predictor="ni"): weights 1/vi
    t = macaskill_test(res)
    assert t.df == 11 and t.estimate is None
    np.testing.assert_allclose([t.statistic, t.pvalue], [ref["zval"], ref["pval"]], rtol=1e-10)
    np.testing.assert_allclose(t.coef, ref["fit_coef"], rtol=1e-10)
    # "pooled" weights 1/(1/(a+c) + 1/(b+d)): by hand with numpy's least squares
    pooled = macaskill_test(res, weights="pooled", **COUNTS)
    a, c = DATA.tpos.to_numpy(float), DATA.cpos.to_numpy(float)
    b, d = DATA.tneg.to_numpy(float), DATA.cneg.to_numpy(float)
    w = 1 / (1 / (a + c) + 1 / (b + d))
    X = np.column_stack([np.ones(13), a + b + c + d])
    sw = np.sqrt(w)
    coef, rss, *_ = np.linalg.lstsq(X * sw[:, None], res.yi * sw, rcond=None)
    cov = rss[0] / 11 * np.linalg.inv((X * w[:, None]).T @ X)
    assert pooled.statistic == pytest.approx(coef[1] / math.sqrt(cov[1, 1]), rel=1e-9)


def test_binary_tests_need_counts_and_log_odds_ratios():
    plain = meta([0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.03, 0.04], measure="OR")
    with pytest.raises(ValueError, match="events1"):
        peters_test(plain)
    with pytest.raises(ValueError, match="log odds ratios"):
        peters_test(meta(data=_effects("RR"), method="FE"), **COUNTS)


# ---------------------------------------------------------------------------------------------
# Mantel-Haenszel with no events (or only events) in every table

ZERO, ZREF = load_case("mh_zero_events")
FIELDS = [("b", "estimate"), ("se", "se"), ("zval", "statistic"), ("pval", "pvalue"),
          ("ci.lb", "ci_low"), ("ci.ub", "ci_high"), ("QE", "q"), ("QEp", "q_pvalue"),
          ("I2", "i2"), ("H2", "h2")]  # fmt: skip
ZCASES = [(t, m, d) for t in ("none", "all") for m in ("RD", "RR", "OR") for d in (True, False)]


@pytest.mark.parametrize("table,measure,drop00", ZCASES)
def test_mh_without_informative_tables_matches_metafor(table, measure, drop00):
    key = f"{'no' if table == 'none' else 'all'}_events_{measure}" + ("" if drop00 else
                                                                     "_drop00_FALSE")  # fmt: skip
    ref = ZREF[key]
    rows = ZERO[ZERO["table"] == table]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = meta_mh(rows.ai.to_numpy(), rows.n1i.to_numpy(), rows.ci.to_numpy(),
                      rows.n2i.to_numpy(), measure=measure, drop00=drop00)  # fmt: skip
    kinds = {type(w.message) for w in caught}
    assert kinds == {ZeroCellWarning}, kinds  # named warnings only, no RuntimeWarning
    for k_ref, attr in FIELDS:
        want = ref[k_ref]
        got = getattr(res, attr)
        if _missing(want):
            assert math.isnan(got), (k_ref, got)
        else:
            assert got == pytest.approx(want, rel=1e-8, abs=1e-12), k_ref
    if ref["se"] == 0:
        assert any("standard error 0" in str(w.message) for w in caught)
        assert "NA" in str(res)  # the printout shows the missing test


@pytest.mark.filterwarnings("ignore:study")
def test_mh_rd_no_events_does_not_divide_by_zero():
    with pytest.warns(ZeroCellWarning, match="standard error 0"):
        res = meta_mh([0, 0], [10, 20], [0, 0], [10, 20], measure="RD")
    assert (res.estimate, res.se, res.ci_low, res.ci_high) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(res.statistic) and math.isnan(res.pvalue)
