"""Public API of the publication-bias methods on a MetaResult: ``selection_model`` (metafor's
``selmodel()``), ``henmi_copas`` (``hc()``) and ``excess_significance`` (``tes()``).

Reference cases: tests/reference/selmodel_bcg, selmodel_hackshaw1998, selmodel_baskerville2012,
hc_bcg, tes_bcg (metafor 3.8.1). Tolerances as tests/test_selection_core.py, which documents
where metafor's optimiser, integrate() or uniroot() stopped early.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _reference import load_case

from ketameta.exceptions import KetametaWarning
from ketameta.synthesis.pooling import meta
from ketameta.synthesis.selection import SelectionResult, selection_model
from ketameta.synthesis.smallstudy import (
    ExcessSignificanceResult,
    HenmiCopasResult,
    excess_significance,
    henmi_copas,
)

SPECS = {
    "stepfun_3psm": ("stepfun", (0.025,)),
    "stepfun_4psm": ("stepfun", (0.025, 0.5)),
    "beta": ("beta", None),
    "halfnorm": ("halfnorm", None),
    "negexp": ("negexp", None),
    "logistic": ("logistic", None),
    "power": ("power", None),
}


def _rel(got, want):
    got, want = np.atleast_1d(np.asarray(got, float)), np.atleast_1d(np.asarray(want, float))
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    m = ~np.isnan(want)
    return float(np.max(np.abs(got[m] - want[m]) / np.maximum(np.abs(want[m]), 1e-300), initial=0))


def _fit(case: str, key: str, measure=None, alternative: str = "greater"):
    data, exp = load_case(case)
    method, spec = key.split("_", 1)
    res = meta(data["yi"], data["vi"], method=method, measure=measure)
    type_, steps = SPECS[spec]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        return selection_model(res, type_, steps=steps, alternative=alternative), exp[key]


INTERIOR = [
    ("selmodel_baskerville2012", "ML_stepfun_3psm"),
    ("selmodel_baskerville2012", "REML_stepfun_3psm"),
    ("selmodel_hackshaw1998", "ML_stepfun_3psm"),
    ("selmodel_hackshaw1998", "REML_stepfun_4psm"),
    ("selmodel_hackshaw1998", "ML_halfnorm"),
    ("selmodel_hackshaw1998", "ML_negexp"),
    ("selmodel_hackshaw1998", "ML_logistic"),
    ("selmodel_hackshaw1998", "REML_power"),
]


# alternative="less": one-sided p-values for effects below 0 (the review's side of benefit)
LESS = ["ML_stepfun_3psm", "REML_stepfun_3psm", "ML_stepfun_4psm", "ML_beta", "ML_halfnorm",
        "ML_negexp"]  # fmt: skip


@pytest.mark.parametrize("case,key", INTERIOR, ids=[f"{c[9:]}-{k}" for c, k in INTERIOR])
def test_selection_model_matches_metafor(case, key):
    _check_interior(*_fit(case, key))


# metafor's refits of these stopped on the "gain < 1e-10 after 2 refits" rule while still moving
# (README.txt: last_refit_change 3e-8 halfnorm, 3e-7 negexp): our maxima (the full model and the
# tau2 = 0 model inside LRT.tau2) are higher than metafor's, by at most 1e-8 in log-likelihood.
UNSETTLED = {"ML_halfnorm", "ML_negexp"}


@pytest.mark.parametrize("key", LESS)
def test_selection_model_on_the_lower_side_matches_metafor(key):
    sel, ref = _fit("selmodel_bcg_less", key, alternative="less")
    assert sel.alternative == "less"
    if key not in UNSETTLED:
        _check_interior(sel, ref)
        return
    assert ref["last_refit_change"] > 1e-8  # metafor had not settled: this branch is needed
    assert 0 <= sel.loglik - ref["logLik"] < 1e-8
    assert abs(sel.lrt - ref["LRT"]) < 2e-8
    assert 0 <= ref["LRT.tau2"] - sel.lrt_tau2 < 2e-5  # our tau2 = 0 fit is the higher one
    assert abs(sel.estimate - ref["beta"][0]) < 2e-4 * sel.se
    assert abs(sel.tau2 - ref["tau2"]) < 2e-3 * sel.se_tau2
    assert np.all(np.abs(sel.delta - np.asarray(ref["delta"])) < 2e-3 * sel.delta_se)
    assert _rel(sel.se, ref["se"]) < 1e-4


def _check_interior(sel, ref):
    assert isinstance(sel, SelectionResult) and sel.converged
    assert not sel.delta_at_bound.any() and not sel.tau2_at_bound
    assert sel.lrt_df == ref["LRTdf"] and sel.method == "ML"
    if sel.type == "stepfun":
        assert sel.ptable.tolist() == ref["ptable_k"]
    # likelihoods and tests: the same maximum (metafor's is lower by < 1e-10)
    for k_ref, attr in [("logLik", "loglik"), ("LRT", "lrt"), ("LRTp", "lrt_pvalue"),
                        ("logLik_null", "loglik0"), ("LRT.tau2", "lrt_tau2"),
                        ("LRTp.tau2", "lrt_tau2_pvalue")]:  # fmt: skip
        assert _rel(getattr(sel, attr), ref[k_ref]) < 3e-9, k_ref
    # estimates within 2e-4 SE of metafor's early-stopped optimum; SEs to 2e-5
    se_d = np.where(np.isnan(sel.delta_se), 1.0, sel.delta_se)
    assert abs(sel.estimate - ref["beta"][0]) < 2e-4 * sel.se
    assert abs(sel.tau2 - ref["tau2"]) < 2e-4 * sel.se_tau2
    assert np.all(np.abs(sel.delta - np.asarray(ref["delta"])) < 2e-4 * se_d)
    for k_ref, attr in [("se", "se"), ("se.tau2", "se_tau2"), ("se.delta", "delta_se"),
                        ("ci.ub.delta", "delta_ci_high")]:  # fmt: skip
        assert _rel(getattr(sel, attr), ref[k_ref]) < 2e-5, k_ref
    assert abs(sel.ci_low - ref["ci.lb"][0]) < 1e-3 * sel.se


def test_selection_model_reml_input_equals_ml_input():
    a, _ = _fit("selmodel_hackshaw1998", "ML_stepfun_3psm")
    b, _ = _fit("selmodel_hackshaw1998", "REML_stepfun_3psm")
    np.testing.assert_allclose([a.estimate, a.tau2, a.loglik, a.lrt],
                               [b.estimate, b.tau2, b.loglik, b.lrt], rtol=1e-10)  # fmt: skip


@pytest.fixture(scope="module")
def bcg_3psm():
    data, exp = load_case("selmodel_bcg")
    res = meta(data["yi"], data["vi"], method="ML", measure="RR")
    with pytest.warns(KetametaWarning) as record:
        sel = selection_model(res)  # defaults: stepfun, steps=(0.025,): the 3PSM
    return sel, exp["ML_stepfun_3psm"], [str(w.message) for w in record]


def test_bcg_3psm_delta_at_upper_limit_is_flagged(bcg_3psm):
    sel, ref, messages = bcg_3psm
    assert sel.steps == (0.025, 1.0) and sel.ptable.tolist() == ref["ptable_k"] == [0, 13]
    assert sel.delta_at_bound.tolist() == [False, True] and sel.delta[1] == 100.0
    assert math.isnan(sel.delta_se[1]) and sel.delta_fixed.tolist() == [True, False]
    assert any("limit" in m for m in messages) and any("no observed" in m for m in messages)
    # metafor's optimiser creeps to 99.95 (no warning); the same optimum otherwise
    assert -1e-12 <= sel.loglik - ref["logLik"] < 1e-5
    np.testing.assert_allclose([sel.estimate, sel.tau2, sel.lrt, sel.lrt_tau2],
                               [ref["beta"][0], ref["tau2"], ref["LRT"], ref["LRT.tau2"]],
                               rtol=1e-5)  # fmt: skip
    assert sel.lrt_pvalue == pytest.approx(ref["LRTp"], rel=1e-5)


def test_bcg_3psm_printout(bcg_3psm):
    sel, _, _ = bcg_3psm
    text = str(sel)
    lines = text.splitlines()
    assert lines[0] == "Random-Effects Model (k = 13; tau^2 estimator: ML)"
    assert "LRT(df = 1) = 115.9130, p-val < .0001" in lines
    assert "Test for Selection Model Parameters:" in lines
    assert "LRT(df = 1) = 0.8302, p-val = 0.3622" in lines
    assert any(line.startswith("0     < p <= 0.025   0    1.0000  ---") for line in lines)
    assert any(line.startswith("0.025 < p <= 1      13  100.0000") for line in lines)
    assert ("Note: delta[2] is at its upper limit (100): not an interior optimum (no SE, test or "
            "CI).") in lines  # fmt: skip
    assert "Note: no observed p-values in 0 < p <= 0.025." in lines
    assert "Model Results (RR scale):" in lines
    assert repr(sel).startswith("<SelectionResult stepfun(0.025) k=13 estimate=-0.6518")
    assert "upper limit" in sel._repr_html_()


def test_bcg_3psm_summary(bcg_3psm):
    sel, _, _ = bcg_3psm
    table = sel.summary()
    assert table.index.tolist() == ["mu", "tau2", "0     < p <= 0.025", "0.025 < p <= 1"]
    assert table.loc["mu", "estimate"] == sel.estimate
    assert table["at_bound"].tolist() == [False, False, False, True]
    assert table["k"].iloc[2:].tolist() == [0, 13]
    assert table.attrs["lrt_df"] == 1 and table.attrs["lrt"] == sel.lrt
    with pytest.raises(AttributeError):
        sel.estimate = 0.0  # frozen
    with pytest.raises(ValueError):
        sel.delta[0] = 2.0  # read-only


def test_negexp_delta_at_zero_printout():
    data, _ = load_case("selmodel_bcg")
    with pytest.warns(KetametaWarning, match="limit"):
        sel = selection_model(meta(data["yi"], data["vi"], method="REML"), "negexp")
    assert sel.steps == () and sel.delta_labels() == ["delta.1"] and sel.delta[0] == 0.0
    assert "Note: delta[1] is at its lower limit (0): not an interior optimum" in str(sel)
    assert sel.lrt == pytest.approx(0.0, abs=1e-9)


def test_equal_effects_input_keeps_tau2_zero():
    data, _ = load_case("selmodel_hackshaw1998")
    sel = selection_model(meta(data["yi"], data["vi"], method="EE"), steps=(0.025, 0.5))
    assert sel.method == "EE" and sel.tau2 == 0.0 and math.isnan(sel.lrt_tau2)
    text = str(sel)
    assert text.startswith("Equal-Effects Model (k = 37)") and "tau^2" not in text
    assert "0.5   < p <= 1" in text


def test_other_types_ignore_the_default_step_and_accept_a_threshold():
    data, _ = load_case("selmodel_hackshaw1998")
    res = meta(data["yi"], data["vi"], method="ML")
    sel = selection_model(res, "halfnorm", steps=(0.05,))
    assert sel.steps == (0.05,) and sel.ptable.sum() == res.k
    assert selection_model(res, "halfnorm").steps == ()


def test_bad_input():
    with pytest.raises(TypeError, match="MetaResult"):
        selection_model([0.1, 0.2])
    res = meta([0.1, 0.3, 0.2], [0.01, 0.02, 0.03])
    with pytest.raises(ValueError, match="Unknown type"):
        selection_model(res, "cauchy")


# ---------------------------------------------------------------------------------------------
# Henmi-Copas and excess significance


@pytest.mark.parametrize("key,rtol_ci", [("hc_tol_1e-12", 1e-7), ("hc_default", 2e-4)])
def test_henmi_copas_matches_metafor(key, rtol_ci):
    data, exp = load_case("hc_bcg")
    ref = exp[key]
    res = meta(data["yi"], data["vi"], method="DL", measure="RR")
    hc = henmi_copas(res)
    assert isinstance(hc, HenmiCopasResult)
    for k_ref, attr in [("beta", "estimate"), ("se", "se"), ("tau2", "tau2"),
                        ("beta.rma", "rma_estimate"), ("se.rma", "rma_se"),
                        ("ci.lb.rma", "rma_ci_low"), ("ci.ub.rma", "rma_ci_high")]:  # fmt: skip
        assert _rel(getattr(hc, attr), ref[k_ref]) < 1e-9, k_ref
    assert _rel([hc.ci_low, hc.ci_high], [ref["ci.lb"], ref["ci.ub"]]) < rtol_ci


def test_henmi_copas_printout():
    data, _ = load_case("hc_bcg")
    hc = henmi_copas(meta(data["yi"], data["vi"], method="DL"))
    assert str(hc).splitlines() == [
        "    method   tau2 estimate     se   ci.lb   ci.ub",
        "rma     DL 0.3088  -0.7141 0.1787 -1.0644 -0.3638",
        "hc      DL 0.3088  -0.4303 0.2835 -1.1555  0.2950",
    ]
    assert hc.summary().index.tolist() == ["rma", "hc"]
    assert repr(hc) == "<HenmiCopasResult k=13 estimate=-0.4303 [-1.1555, 0.2950]>"
    assert "Henmi-Copas" in hc._repr_html_()


@pytest.mark.parametrize(
    "key",
    [
        "REML_default",
        "DL_binom",
        "FE_chi2",
        "REML_chi2_correct_TRUE",
        "REML_tes.alternative_two.sided",
        "REML_tes.alternative_less",
    ],
)
def test_excess_significance_matches_metafor(key):
    data, exp = load_case("tes_bcg")
    ref = exp[key]
    res = meta(data["yi"], data["vi"], method=key.split("_")[0])
    kw: dict = {}
    for t in ("binom", "chi2"):
        if f"_{t}" in key:
            kw["test"] = t
    if "correct_TRUE" in key:
        kw["correct"] = True
    if "tes.alternative" in key:
        kw["tes_alternative"] = key.rsplit("_", 1)[1]
    tes = excess_significance(res, **kw)
    assert isinstance(tes, ExcessSignificanceResult)
    assert (tes.k, tes.observed, tes.test) == (ref["k"], ref["O"], ref["test"])
    assert tes.significant.tolist() == ref["sig"]
    for k_ref, attr in [("E", "expected"), ("OEratio", "oe_ratio"), ("pval", "pvalue"),
                        ("theta", "theta"), ("power", "power"), ("X2", "statistic")]:  # fmt: skip
        assert _rel(getattr(tes, attr), ref[k_ref]) < 1e-8, k_ref
    # metafor's uniroot() stops at 1.2e-4 (absolute); ours is the exact root
    np.testing.assert_allclose(tes.theta_lim, np.atleast_1d(ref["theta.lim"]), atol=1.3e-4)


def test_excess_significance_printout():
    data, _ = load_case("tes_bcg")
    tes = excess_significance(meta(data["yi"], data["vi"], method="REML"))
    assert str(tes).splitlines() == [
        "Test of Excess Significance",
        "",
        "Observed Number of Significant Findings: 8 (out of 13)",
        "Expected Number of Significant Findings: 7.8088",
        "Observed Number / Expected Number:       1.0245",
        "",
        "Estimated Power of Tests (based on theta = -0.7145)",
        "",
        "   min      q1  median      q3     max",
        "0.2281  0.3991  0.6438  0.8185  0.9215",
        "",
        "Test of Excess Significance: p = 0.5841 (exact test)",
        "Limit Estimate (theta_lim):  -0.0706 (where p = 0.1)",
    ]
    assert tes.summary()["observed"].tolist() == [8]
    assert tes.studies().shape == (13, 3)
    assert repr(tes) == "<ExcessSignificanceResult k=13 O=8 E=7.8088 p=0.5841 (exact)>"
