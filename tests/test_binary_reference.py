"""meta_mh() and meta_peto() against metafor 3.8.1's rma.mh() and rma.peto().

Every number the reference cases export is compared (a completeness test makes sure nothing
is skipped silently). Tolerance: RTOL_CLOSED_FORM (1e-8 relative) with no absolute floor:
every quantity here is closed form, and the smallest p-values (~1e-31) are matched relatively
too (observed worst relative error ~3e-12), so an absolute floor would only hide differences.
"""

import warnings

import numpy as np
import pytest
from _reference import RTOL_CLOSED_FORM, load_case

from ketameta.synthesis.binary import meta_mh, meta_peto

CASES = ["binary_mh_peto_bcg", "binary_mh_peto_nielweise2007_zerocells"]
KEYS = ["MH_OR", "MH_OR_correct_FALSE", "MH_RR", "MH_RD", "PETO"]

# metafor's name -> BinaryResult attribute
SCALARS = {
    "b": "estimate",
    "se": "se",
    "zval": "statistic",
    "pval": "pvalue",
    "ci.lb": "ci_low",
    "ci.ub": "ci_high",
    "QE": "q",
    "QEp": "q_pvalue",
    "I2": "i2",
    "H2": "h2",
    "MH": "cmh",
    "MHp": "cmh_pvalue",
    "TA": "tarone",
    "TAp": "tarone_pvalue",
    "BD": "breslow_day",
    "BDp": "breslow_day_pvalue",
    "exp_b": "exp_estimate",
    "exp_ci.lb": "exp_ci_low",
    "exp_ci.ub": "exp_ci_high",
}
COUNTS = {"k.all": "k", "k.pos": "k_pos"}
# exported but deliberately not compared, with the reason
NOT_COMPARED = {
    "case",
    "dataset",
    "metafor_version",
    "metadat_version",
    "R_version",
    "calls",  # provenance
    "measure",
    "method",  # checked as strings below
    "tau2",  # always 0 for these common-effect models (BinaryResult.tau2 is the constant 0)
    "CO",
    "COp",  # undocumented slot (Cochran's statistic with n, not n - 1): optional, not built
    "fitstats",  # log-likelihoods of rma.mh/rma.peto: not part of BinaryResult
    "k",  # = k.all here (no subset); k.all is compared
}


def counts(data):
    if "tpos" in data.columns:
        return dict(
            events1=data["tpos"],
            n1=data["tpos"] + data["tneg"],
            events2=data["cpos"],
            n2=data["cpos"] + data["cneg"],
        )
    return dict(events1=data["ai"], n1=data["n1i"], events2=data["ci"], n2=data["n2i"])


def fit(case, key):
    data, expected = load_case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if key == "PETO":
            res = meta_peto(**counts(data))
        else:
            res = meta_mh(**counts(data), measure=key.split("_")[1], correct="FALSE" not in key)
    return res, expected[key]


def close(actual, expected, what):
    np.testing.assert_allclose(
        np.asarray(actual, float),
        np.asarray(expected, float),
        rtol=RTOL_CLOSED_FORM,
        atol=0,
        equal_nan=True,
        err_msg=what,
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", KEYS)
def test_every_exported_quantity(case, key):
    res, ref = fit(case, key)
    compared = 0
    for name, attr in SCALARS.items():
        if name not in ref:
            continue
        value = getattr(res, attr)
        if np.isnan(ref[name]):  # metafor's NA: the quantity does not exist for this measure
            assert value is None, f"{name}: expected None, got {value}"
        else:
            close(value, ref[name], name)
        compared += 1
    for name, attr in COUNTS.items():
        value = getattr(res, attr)
        assert (value is None and np.isnan(ref[name])) or value == ref[name], name
    assert res.q_df == ref["k.yi"] - 1
    used = np.isfinite(res.yi)
    assert used.sum() == ref["k.yi"] == len(ref["yi"])
    close(res.yi[used], ref["yi"], "yi")
    close(res.vi[used], ref["vi"], "vi")
    assert (res.measure, ref["method"]) == (ref["measure"], "FE")
    assert res.method == ("PETO" if key == "PETO" else "MH")
    assert compared >= 10
    # weights() in percent, for every table (the double-zero one included: 0 for OR/RR/Peto)
    close(res.weights, ref["weights_pct"], "weights_pct")
    close(res.studies()["weight"], ref["weights_pct"], "studies() weight")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", KEYS)
def test_reference_grid_is_complete(case, key):
    """Every exported key is either compared above or listed with a reason for not comparing."""
    _, ref = fit(case, key)
    handled = set(SCALARS) | set(COUNTS) | {"k.yi", "yi", "vi", "weights_pct"} | NOT_COMPARED
    assert set(ref) - handled == set()


def test_grid_covers_both_cases_and_all_fits():
    for case in CASES:
        assert set(KEYS) <= set(load_case(case)[1])


def test_zero_cell_case_drops_the_double_zero_study_from_q_only():
    data, expected = load_case("binary_mh_peto_nielweise2007_zerocells")
    with pytest.warns(Warning) as record:
        res = meta_mh(**counts(data), labels=[str(s) for s in data["study"]])
    assert [label for label, _ in res.excluded] == ["15"]
    assert "drop00" in res.excluded[0][1]
    assert any("'15'" in str(w.message) for w in record)
    assert res.k == expected["MH_OR"]["k.all"] == 18 and res.q_df == 16
    # the MH estimate itself is the raw-count ratio sum(a d / n) / sum(b c / n)
    a, n1 = data["ai"].to_numpy(float), data["n1i"].to_numpy(float)
    c, n2 = data["ci"].to_numpy(float), data["n2i"].to_numpy(float)
    n = n1 + n2
    raw = np.log(np.sum(a * (n2 - c) / n) / np.sum((n1 - a) * c / n))
    close(res.estimate, raw, "raw-count MH OR")
