"""meta_mh() and meta_peto() against metafor 3.8.1's rma.mh() and rma.peto()."""

import warnings

import numpy as np
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, load_case

from ketameta.binary import meta_mh, meta_peto

CASES = ["binary_mh_peto_bcg", "binary_mh_peto_nielweise2007_zerocells"]


def counts(data):
    if "tpos" in data.columns:
        return dict(
            events1=data["tpos"],
            n1=data["tpos"] + data["tneg"],
            events2=data["cpos"],
            n2=data["cpos"] + data["cneg"],
        )
    return dict(events1=data["ai"], n1=data["n1i"], events2=data["ci"], n2=data["n2i"])


def close(actual, expected):
    np.testing.assert_allclose(
        np.asarray(actual, float),
        np.asarray(expected, float),
        rtol=RTOL_CLOSED_FORM,
        atol=ATOL_NEAR_ZERO,
        equal_nan=True,
    )


def check(res, ref):
    close(
        [res.estimate, res.se, res.statistic, res.pvalue, res.ci_low, res.ci_high],
        [ref["b"], ref["se"], ref["zval"], ref["pval"], ref["ci.lb"], ref["ci.ub"]],
    )
    close([res.q, res.q_pvalue, res.i2, res.h2], [ref["QE"], ref["QEp"], ref["I2"], ref["H2"]])
    used = np.isfinite(res.yi)  # metafor's per-study arrays omit the double-zero tables
    close(res.yi[used], ref["yi"])
    close(res.vi[used], ref["vi"])
    assert res.q_df == ref["k.yi"] - 1 and res.k == ref["k.all"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", ["MH_OR", "MH_RR", "MH_RD", "MH_OR_correct_FALSE"])
def test_mantel_haenszel(case, key):
    data, expected = load_case(case)
    measure = key.split("_")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = meta_mh(**counts(data), measure=measure, correct="FALSE" not in key)
    check(res, expected[key])
    if measure == "OR":
        close([res.cmh, res.cmh_pvalue], [expected[key]["MH"], expected[key]["MHp"]])


@pytest.mark.parametrize("case", CASES)
def test_peto(case):
    data, expected = load_case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = meta_peto(**counts(data))
    check(res, expected["PETO"])


def test_double_zero_table_is_listed_and_warned():
    data, _ = load_case("binary_mh_peto_nielweise2007_zerocells")
    with pytest.warns(Warning, match="row 15"):
        res = meta_mh(**counts(data))
    assert [r for r, _ in res.excluded] == ["15"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (dict(events1=[1, 2], n1=[10], events2=[1, 2], n2=[10, 10]), "length of 'n1'"),
        (dict(events1=[11], n1=[10], events2=[1], n2=[10]), "'events1' exceeds its n"),
        (dict(events1=[-1], n1=[10], events2=[1], n2=[10]), "must not be negative"),
        (dict(events1=[np.nan], n1=[10], events2=[1], n2=[10]), "missing or infinite"),
        (dict(events1=[], n1=[], events2=[], n2=[]), "k = 0"),
    ],
)
def test_bad_input(inputs, message):
    with pytest.raises(ValueError, match=message):
        meta_mh(**inputs)
    with pytest.raises(ValueError, match="measure must be"):
        meta_mh([1], [10], [2], [10], measure="HR")
