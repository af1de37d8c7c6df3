"""GENQ / GENQM tau² estimators and user weights (``meta(..., weights=)``) against metafor.

References: tests/reference/genq_bcg and genq_normand1999 (scripts/13_genq.R). GENQ fits are
metafor 3.8.1 output; GENQM and the GENQ confidence intervals are R computations of metafor's
algorithm with Imhof's formula (CompQuadForm, which metafor needs for them, is unavailable):
see their README.txt.
"""

import math
import warnings

import numpy as np
import pytest
from _reference import ATOL_NEAR_ZERO, load_case
from scipy import special, stats

from ketameta._core.genq import genq_estimate, quadform_sf
from ketameta.exceptions import KetametaWarning
from ketameta.synthesis.pooling import meta

CASES = ("genq_bcg", "genq_normand1999")
WEIGHTS = ("inv_vi", "unit", "n")
RTOL = 1e-8


def close(ours, theirs, rtol=RTOL):
    assert ours == pytest.approx(theirs, rel=rtol, abs=ATOL_NEAR_ZERO)


def fit(case, wn, method, test="z"):
    data, expected = load_case(case)
    res = meta("yi", "vi", data=data, weights=f"w_{wn}", method=method, test=test)
    return res, expected


def check_model(res, e, ci=True):
    close(res.estimate, e["b"][0])
    close(res.se, e["se"][0])
    close(res.statistic, e["zval"][0])
    close(res.pvalue, e["pval"][0])
    close(res.ci_low, e["ci.lb"][0])
    close(res.ci_high, e["ci.ub"][0])
    close(res.pi_low, e["predict"]["pi.lb"][0])
    close(res.pi_high, e["predict"]["pi.ub"][0])
    close(res.tau2, e["tau2"])
    close(res.se_tau2, e["se.tau2"])
    close(res.i2, e["I2"])
    close(res.h2, e["H2"])
    close(res.q, e["QE"])
    close(res.q_pvalue, e["QEp"])
    close(res.vt, e["vt"])
    np.testing.assert_allclose(res.weights, e["weights_pct"], rtol=RTOL, atol=ATOL_NEAR_ZERO)
    if "fitstats" in e:
        ours = [res.loglik, res.deviance, res.aic, res.bic, res.aicc]
        np.testing.assert_allclose(ours, e["fitstats"]["values"], rtol=RTOL)


def check_ci(res, r):
    """``r``: the confint random block (rows tau^2, tau, I^2(%), H^2)."""
    for i, (lo, hi) in enumerate((res.tau2_ci, res.tau_ci, res.i2_ci, res.h2_ci)):
        close(lo, r["ci.lb"][i])
        close(hi, r["ci.ub"][i])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("wn", WEIGHTS)
def test_genq_matches_metafor(case, wn):
    res, expected = fit(case, wn, "GENQ")
    e = expected[f"GENQ_{wn}"]
    assert e["method"] == "GENQ"
    check_model(res, e)
    check_ci(res, e["confint_imhof"]["random"])
    assert "CompQuadForm" in e["confint_metafor"]["error"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("wn", WEIGHTS)
def test_genqm_matches_metafor_algorithm(case, wn):
    res, expected = fit(case, wn, "GENQM")
    e = expected[f"GENQM_{wn}"]
    close(res.tau2, e["tau2_imhof"])
    check_model(res, e)
    check_ci(res, e["confint_imhof"]["random"])
    assert "CompQuadForm" in expected[f"GENQM_{wn}_metafor"]["error"]
    assert res.method == "GENQM"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("wn", WEIGHTS)
@pytest.mark.parametrize("test", ["knha", "adhoc"])
def test_knha_with_weights(case, wn, test):
    res, expected = fit(case, wn, "GENQ", test=test)
    e = expected[f"GENQ_{test}_{wn}"]
    assert e["test"] == test
    check_model(res, e)
    assert res.df == e["k"] - 1


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("wn", WEIGHTS)
def test_reml_with_weights(case, wn):
    res, expected = fit(case, wn, "REML")
    e = expected[f"REML_{wn}"]
    check_model(res, e)
    check_ci(res, e["confint"]["random"])


@pytest.mark.parametrize("case", CASES)
def test_genq_identities(case):
    """Weights 1/vi give DL's tau² and SE, weights 1 give HE's (metafor agrees: expected.json)."""
    data, expected = load_case(case)
    inv = meta("yi", "vi", data=data, weights=1.0 / data["vi"], method="GENQ")
    unit = meta("yi", "vi", data=data, weights=np.ones(len(data)), method="GENQ")
    for ours, name in ((inv, "DL"), (unit, "HE")):
        plain = meta("yi", "vi", data=data, method=name)
        close(ours.tau2, plain.tau2, 1e-12)
        close(ours.se_tau2, plain.se_tau2, 1e-12)
        close(ours.tau2, expected[name]["tau2"])
        close(ours.se_tau2, expected[name]["se.tau2"])
    # with weights 1 the estimate is the plain mean, with 1/vi the common-effect estimate
    close(unit.estimate, float(data["yi"].mean()), 1e-12)
    close(inv.estimate, meta("yi", "vi", data=data, method="EE").estimate, 1e-12)


def test_quadform_sf_closed_forms():
    # equal weights: lambda chi2_m
    for m, lam, q in ((2, 1.5, 3.0), (1, 0.7, 0.2), (1, 2.0, 9.0), (5, 0.3, 1.1), (12, 1.0, 30.0)):
        assert quadform_sf(q, [lam] * m) == pytest.approx(stats.chi2.sf(q / lam, m), abs=1e-13)
    assert quadform_sf(0.0, [1.0, 2.0]) == 1.0


def ruben_cdf(q, lam, terms=4000):
    """Ruben's (1962) series P(Q <= q) = sum_r c_r P(chi2_{m + 2r} <= q / beta), beta = min
    lambda: a second, independent method (positive terms, geometric convergence)."""
    lam = np.asarray(lam, dtype=float)
    beta = lam.min()
    gamma = 1.0 - beta / lam
    g = [0.0] + [0.5 * float((gamma**r).sum()) for r in range(1, terms)]
    c = [float(np.prod(np.sqrt(beta / lam)))]
    for r in range(1, terms):
        c.append(sum(g[r - j] * c[j] for j in range(r)) / r)
    dofs = lam.size + 2 * np.arange(terms)
    return float(np.dot(c, special.chdtr(dofs, q / beta)))


@pytest.mark.parametrize(
    "lam, q",
    [([1.0, 0.6, 0.35, 0.2], 2.5), ([2.0, 1.0, 0.5], 0.4), ([1.0, 0.8, 0.7, 0.5, 0.45, 0.3], 9.0),
     ([0.9, 0.3], 6.0), ([1.0, 0.5, 0.25, 0.125, 0.1, 0.09, 0.08, 0.07], 1.7)],
)  # fmt: skip
def test_quadform_sf_against_ruben_series(lam, q):
    assert quadform_sf(q, lam) == pytest.approx(1.0 - ruben_cdf(q, lam), abs=1e-12)


def test_genqm_root_solves_median_equation():
    data, _ = load_case("genq_bcg")
    y, v, w = data["yi"].to_numpy(), data["vi"].to_numpy(), data["w_n"].to_numpy()
    fit_m = genq_estimate(y, v, w, median=True)
    from ketameta._core.genq import genq_matrix, genq_sf

    assert genq_sf(fit_m.tau2, genq_matrix(w), v, fit_m.q) == pytest.approx(0.5, abs=1e-12)


def test_genqm_zero_when_q_small():
    y, v = np.array([0.1, 0.11, 0.09, 0.1]), np.array([0.05, 0.04, 0.06, 0.05])
    res = meta(y, v, weights=[1, 2, 3, 4], method="GENQM")
    assert res.tau2 == 0.0
    assert res.tau2_ci[0] == 0.0 and res.tau2_ci[1] == 0.0


@pytest.mark.parametrize("case", CASES)
def test_zero_weight_is_allowed(case):
    data, expected = load_case(case)
    w = data["w_n"].to_numpy().copy()
    w[0] = 0.0
    res = meta("yi", "vi", data=data, weights=w, method="GENQ")
    e = expected["GENQ_n_first0"]
    assert res.k == e["k"] == len(data) and res.weights[0] == 0.0
    check_model(res, e)


def test_genqm_root_beyond_metafor_tau2_max():
    """Normand (1999) mean differences: the GENQM root is above metafor's tau2.max = 100 (there
    metafor stops with "Value of 'tau2.max' too low"); the search range is doubled instead."""
    from ketameta._core.genq import genq_matrix, genq_sf

    data, _ = load_case("genq_normand1999")
    n1, n2 = data["n1i"].to_numpy(), data["n2i"].to_numpy()
    y = data["m1i"].to_numpy() - data["m2i"].to_numpy()
    v = data["sd1i"].to_numpy() ** 2 / n1 + data["sd2i"].to_numpy() ** 2 / n2
    fit_m = genq_estimate(y, v, n1 + n2, median=True)
    assert fit_m.converged and fit_m.tau2 > 100.0
    assert genq_sf(fit_m.tau2, genq_matrix(n1 + n2), v, fit_m.q) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    "weights, message",
    [([1.0] * 12, "12 values but there are 13"), ([math.nan] + [1.0] * 12, "NaN for 'Study 1'"),
     ([1.0] * 12 + [-2.0], "negative for 'Study 13'"), ([0.0] * 13, "all 0"),
     ([1.0, math.inf] + [1.0] * 11, "infinite for 'Study 2'")],
)  # fmt: skip
def test_bad_weights(weights, message):
    data, _ = load_case("genq_bcg")
    y, v = data["yi"].to_numpy(), data["vi"].to_numpy()
    with pytest.raises(ValueError, match=message):
        meta(y, v, weights=weights, method="GENQ")


@pytest.mark.parametrize("method", ["GENQ", "GENQM"])
def test_genq_needs_weights(method):
    with pytest.raises(ValueError, match=f"method='{method}' needs weights="):
        meta([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], method=method)


def test_print_names_the_estimator():
    data, _ = load_case("genq_bcg")
    text = str(meta("yi", "vi", data=data, weights="w_n", method="GENQ"))
    assert "tau^2 estimator: GENQ)" in text
    text = str(meta("yi", "vi", data=data, weights="w_n", method="GENQM"))
    assert "tau^2 estimator: GENQM)" in text


def test_a_genq_bound_at_the_search_limit_is_said():
    # three very different studies: the upper GENQ bound of tau2 lies beyond tau2.max = 100
    with pytest.warns(KetametaWarning, match=r"upper GENQ bound of tau2 lies beyond .* = 100"):
        res = meta([-3, 3, 0.5], [0.01, 0.01, 0.02], weights=[1, 1, 1], method="GENQ")
    assert res.tau2_ci[1] == 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an interior bound raises no warning
        meta([-0.3, 0.1, 0.5], [0.04, 0.05, 0.03], weights=[1, 1, 1], method="GENQ")
