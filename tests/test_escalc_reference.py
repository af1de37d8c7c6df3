"""escalc() against metafor 3.8.1's escalc() on every escalc_* reference case."""

import numpy as np
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, load_case

from ketameta import escalc

CONT = dict(m1="m1i", sd1="sd1i", n1="n1i", m2="m2i", sd2="sd2i", n2="n2i")


def close(actual, expected):
    np.testing.assert_allclose(
        np.asarray(actual, float),
        np.asarray(expected, float),
        rtol=RTOL_CLOSED_FORM,
        atol=ATOL_NEAR_ZERO,
        equal_nan=True,
    )


@pytest.mark.parametrize(
    ("case", "measure", "variants"),
    [
        (
            "escalc_smd_normand1999",
            "SMD",
            {"UB": "vi_vtype_UB", "LS2": "vi_vtype_LS2", "AV": "vi_vtype_AV"},
        ),
        ("escalc_md_normand1999", "MD", {"HO": "vi_vtype_HO"}),
        ("escalc_smdh_normand1999", "SMDH", {}),
        ("escalc_rom_curtis1998", "ROM", {"HO": "vi_vtype_HO"}),
    ],
)
def test_two_group_continuous(case, measure, variants):
    data, expected = load_case(case)
    out = escalc(measure, data=data, **CONT)
    close(out["yi"], expected["yi"])
    close(out["vi"], expected["vi"])
    for vtype, key in variants.items():
        close(escalc(measure, data=data, vtype=vtype, **CONT)["vi"], expected[key])


def test_smd_parts():
    data, expected = load_case("escalc_smd_normand1999")
    out = escalc("SMD", data=data, **CONT)
    close(
        out["yi"] / np.asarray(expected["correction_factor_cmi"]), expected["cohens_d_uncorrected"]
    )


@pytest.mark.parametrize("measure", ["SMCR", "SMCC"])
def test_standardized_mean_change(measure):
    data, expected = load_case(f"escalc_{measure.lower()}_morris2008")
    parts = {}
    for group, key in (("T", "treatment"), ("C", "control")):
        rows = data[data["group"] == group].reset_index(drop=True)
        inputs = dict(m_pre="m_pre", m_post="m_post", sd_pre="sd_pre", n="ni", r="ri")
        if measure == "SMCC":
            inputs["sd_post"] = "sd_post"
        out = escalc(measure, data=rows, **inputs)
        close(out["yi"], expected[key]["yi"])
        close(out["vi"], expected[key]["vi"])
        parts[key] = out
    if "difference" in expected:
        close(parts["treatment"]["yi"] - parts["control"]["yi"], expected["difference"]["yi"])


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
def test_bcg_two_by_two(measure):
    data, expected = load_case(f"escalc_{measure.lower()}_bcg")
    out = escalc(
        measure,
        data=data,
        events1=data["tpos"],
        n1=data["tpos"] + data["tneg"],
        events2=data["cpos"],
        n2=data["cpos"] + data["cneg"],
    )
    close(out["yi"], expected["yi"])
    close(out["vi"], expected["vi"])


@pytest.mark.parametrize("measure", ["RR", "OR", "RD"])
@pytest.mark.parametrize("variant", ["default_only0", "to_all", "to_none", "drop00_TRUE"])
def test_zero_cells(measure, variant):
    data, expected = load_case("escalc_zerocell_nielweise2007")
    options = {
        "default_only0": {},
        "to_all": {"to": "all"},
        "to_none": {"to": "none"},
        "drop00_TRUE": {"drop00": True},
    }[variant]
    with pytest.warns(Warning):
        out = escalc(measure, data=data, events1="ai", n1="n1i", events2="ci", n2="n2i", **options)
    close(out["yi"], expected[measure][variant]["yi"])
    close(out["vi"], expected[measure][variant]["vi"])


def test_zcor():
    data, expected = load_case("escalc_zcor_molloy2014")
    out = escalc("ZCOR", data=data, r="ri", n="ni")
    close(out["yi"], expected["yi"])
    close(out["vi"], expected["vi"])


def test_rom_and_zcor_pool_as_metafor():
    from ketameta import meta

    for case, inputs, measure in (
        ("escalc_rom_curtis1998", CONT, "ROM"),
        ("escalc_zcor_molloy2014", dict(r="ri", n="ni"), "ZCOR"),
    ):
        data, expected = load_case(case)
        fit = meta(data=escalc(measure, data=data, **inputs), method="REML")
        ref = expected["rma_REML"]
        np.testing.assert_allclose(fit.estimate, ref["b"][0], rtol=1e-6)  # iterative REML
        np.testing.assert_allclose(fit.tau2, ref["tau2"], rtol=1e-6)
