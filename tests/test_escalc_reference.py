"""escalc() against metafor 3.8.1's escalc() on every escalc_* reference case.

Every per-study array of every ``escalc_*/expected.json`` (each yi, each vi, each vtype,
continuity-correction and drop00 variant, and the helper arrays) is listed once in ``CHECKS``;
``test_every_reference_array_is_checked`` fails if a case or an array is added without a check,
so the comparison cannot quietly shrink. Pooled results on the effects (``rma_*``, ``predict``)
are iterative and are checked separately at RTOL_ITERATIVE.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, RTOL_ITERATIVE, case_names, load_case

from ketameta import escalc, meta
from ketameta._core.effects import hedges_correction
from ketameta.exceptions import ExcludedStudyWarning, ZeroCellWarning

CONT = dict(m1="m1i", sd1="sd1i", n1="n1i", m2="m2i", sd2="sd2i", n2="n2i")
PREPOST = dict(m_pre="m_pre", m_post="m_post", sd_pre="sd_pre", n="ni", r="ri")
COUNTS = dict(events1="ai", n1="n1i", events2="ci", n2="n2i")
ZERO_VARIANTS = {
    "default_only0": {},
    "to_all": {"to": "all"},
    "to_none": {"to": "none"},
    "drop00_TRUE": {"drop00": True},
}


def bcg(measure: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def run(data):
        return escalc(
            measure,
            data=data,
            events1=data["tpos"],
            n1=data["tpos"] + data["tneg"],
            events2=data["cpos"],
            n2=data["cpos"] + data["cneg"],
        )

    return run


def prepost(measure: str, group: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    inputs = {**PREPOST, **({"sd_post": "sd_post"} if measure == "SMCC" else {})}

    def run(data):
        return escalc(measure, data=data[data["group"] == group].reset_index(drop=True), **inputs)

    return run


def prepost_difference(measure: str, column: str):
    def run(data):
        t, c = prepost(measure, "T")(data), prepost(measure, "C")(data)
        return t[column] - c[column] if column == "yi" else t[column] + c[column]

    return run


def zero_cells(measure: str, variant: str):
    """Rows removed by ketameta (listed in attrs) come back as NaN, metafor's NA."""

    def run(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZeroCellWarning)
            warnings.simplefilter("ignore", ExcludedStudyWarning)
            out = escalc(measure, data=data, **COUNTS, **ZERO_VARIANTS[variant])
        removed = {label for label, _ in out.attrs["excluded"]}
        assert removed == {str(i) for i in data.index.difference(out.index)}
        return out.reindex(data.index)

    return run


def column(run, name):
    return lambda data: run(data)[name]


SMD_NORMAND = {"": "LS", "_vtype_UB": "UB", "_vtype_LS2": "LS2", "_vtype_AV": "AV"}
CHECKS: dict[tuple[str, str], Callable[[pd.DataFrame], object]] = {
    ("escalc_smd_normand1999", "yi"): column(lambda d: escalc("SMD", data=d, **CONT), "yi"),
    **{
        ("escalc_smd_normand1999", f"vi{suffix}"): column(
            lambda d, v=vtype: escalc("SMD", data=d, vtype=v, **CONT), "vi"
        )
        for suffix, vtype in SMD_NORMAND.items()
    },
    # yi = cmi * d with metafor's exact .cmicalc(n1 + n2 - 2)
    ("escalc_smd_normand1999", "correction_factor_cmi"): lambda d: hedges_correction(
        d["n1i"] + d["n2i"] - 2.0
    ),
    ("escalc_smd_normand1999", "cohens_d_uncorrected"): lambda d: (
        escalc("SMD", data=d, **CONT)["yi"] / hedges_correction(d["n1i"] + d["n2i"] - 2.0)
    ),
    ("escalc_smdh_normand1999", "yi"): column(lambda d: escalc("SMDH", data=d, **CONT), "yi"),
    ("escalc_smdh_normand1999", "vi"): column(lambda d: escalc("SMDH", data=d, **CONT), "vi"),
    **{
        (f"escalc_{m.lower()}_{ds}", key): column(
            lambda d, m=m, v=vtype: escalc(m, data=d, vtype=v, **CONT), key[:2]
        )
        for m, ds in (("MD", "normand1999"), ("ROM", "curtis1998"))
        for key, vtype in (("yi", "LS"), ("vi", "LS"), ("vi_vtype_HO", "HO"))
    },
    **{
        (f"escalc_{m.lower()}_bcg", key): column(bcg(m), key)
        for m in ("RR", "OR", "RD")
        for key in ("yi", "vi")
    },
    **{
        (f"escalc_{m.lower()}_morris2008", f"{part}/{key}"): column(prepost(m, group), key)
        for m in ("SMCR", "SMCC")
        for part, group in (("treatment", "T"), ("control", "C"))
        for key in ("yi", "vi")
    },
    **{
        (f"escalc_{m.lower()}_morris2008", f"difference/{key}"): prepost_difference(m, key)
        for m in ("SMCR", "SMCC")
        for key in ("yi", "vi")
    },
    ("escalc_zcor_molloy2014", "yi"): column(
        lambda d: escalc("ZCOR", data=d, r="ri", n="ni"), "yi"
    ),
    ("escalc_zcor_molloy2014", "vi"): column(
        lambda d: escalc("ZCOR", data=d, r="ri", n="ni"), "vi"
    ),
    ("escalc_zcor_molloy2014", "COR/yi"): column(
        lambda d: escalc("COR", data=d, r="ri", n="ni"), "yi"
    ),
    ("escalc_zcor_molloy2014", "COR/vi"): column(
        lambda d: escalc("COR", data=d, r="ri", n="ni"), "vi"
    ),
    **{
        ("escalc_zerocell_nielweise2007", f"{m}/{variant}/{key}"): column(
            zero_cells(m, variant), key
        )
        for m in ("OR", "RR", "RD")
        for variant in ZERO_VARIANTS
        for key in ("yi", "vi")
    },
}


def _array_paths(expected: dict, prefix: str = "") -> list[str]:
    """Paths of the per-study arrays (lists longer than 1) outside the pooled-model entries."""
    paths = []
    for key, value in expected.items():
        if key.startswith(("rma_", "predict_", "calls")):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            paths += _array_paths(value, path + "/")
        elif isinstance(value, list) and len(value) > 1:
            paths.append(path)
    return paths


def _lookup(expected: dict, path: str):
    for part in path.split("/"):
        expected = expected[part]
    return expected


def test_every_reference_array_is_checked():
    cases = [name for name in case_names() if name.startswith("escalc_")]
    assert len(cases) == 11
    wanted = {(c, p) for c in cases for p in _array_paths(load_case(c)[1])}
    # the boolean zero-cell indicators are checked in test_zero_cell_indicators
    wanted -= {("escalc_zerocell_nielweise2007", k) for k in ("has_zero_cell", "double_zero")}
    assert wanted == set(CHECKS)


@pytest.mark.parametrize(("case", "path"), sorted(CHECKS))
def test_matches_metafor(case, path):
    data, expected = load_case(case)
    actual = np.asarray(CHECKS[(case, path)](data), dtype=float)
    np.testing.assert_allclose(
        actual,
        np.asarray(_lookup(expected, path), dtype=float),
        rtol=RTOL_CLOSED_FORM,
        atol=ATOL_NEAR_ZERO,  # only for entries that are exactly zero (none are NaN-vs-number)
        equal_nan=True,
    )


def test_zero_cell_indicators():
    data, expected = load_case("escalc_zerocell_nielweise2007")
    # a double-zero table is named in a ZeroCellWarning, and only those
    with pytest.warns(ZeroCellWarning) as record:
        escalc("OR", data=data, **COUNTS)
    named = {str(w.message).split(":")[0] for w in record if w.category is ZeroCellWarning}
    assert named == {f"row {i}" for i in np.flatnonzero(expected["double_zero"])}
    # the 1/2 is added exactly to the tables with a zero cell: RD moves only there
    with pytest.warns(ZeroCellWarning):
        only0 = escalc("RD", data=data, **COUNTS, to="only0")
    with pytest.warns(ZeroCellWarning):
        none = escalc("RD", data=data, **COUNTS, to="none")
    np.testing.assert_array_equal(only0["yi"] != none["yi"], expected["has_zero_cell"])


def test_pooled_effects_match_metafor():
    """REML on escalc's output: iterative, so RTOL_ITERATIVE (metafor ran at tol 1e-12)."""
    for case, run, key in (
        ("escalc_rom_curtis1998", lambda d: escalc("ROM", data=d, **CONT), "rma_REML"),
        ("escalc_zcor_molloy2014", lambda d: escalc("ZCOR", data=d, r="ri", n="ni"), "rma_REML"),
    ):
        data, expected = load_case(case)
        fit = meta(data=run(data), method="REML")
        ref = expected[key]
        np.testing.assert_allclose(fit.estimate, ref["b"][0], rtol=RTOL_ITERATIVE)
        np.testing.assert_allclose(fit.se, ref["se"][0], rtol=RTOL_ITERATIVE)
        np.testing.assert_allclose(fit.tau2, ref["tau2"], rtol=RTOL_ITERATIVE)
        np.testing.assert_allclose(fit.q, ref["QE"], rtol=RTOL_CLOSED_FORM)
    # predict(..., transf=transf.ztor): back-transform the pooled z to r with tanh
    pred = expected["predict_back_transformed_to_r"]
    for ours, theirs in (
        (fit.estimate, "pred"),
        (fit.ci_low, "ci.lb"),
        (fit.ci_high, "ci.ub"),
        (fit.pi_low, "pi.lb"),
        (fit.pi_high, "pi.ub"),
    ):
        np.testing.assert_allclose(np.tanh(ours), pred[theirs][0], rtol=RTOL_ITERATIVE)


def test_smcr_difference_pools_as_metafor():
    data, expected = load_case("escalc_smcr_morris2008")
    yi = prepost_difference("SMCR", "yi")(data)
    vi = prepost_difference("SMCR", "vi")(data)
    fit = meta(np.asarray(yi), np.asarray(vi), method="REML")
    ref = expected["rma_REML_on_difference"]
    np.testing.assert_allclose(fit.estimate, ref["b"][0], rtol=RTOL_ITERATIVE)
    np.testing.assert_allclose(fit.se, ref["se"][0], rtol=RTOL_ITERATIVE)
    np.testing.assert_allclose(fit.q, ref["QE"], rtol=RTOL_CLOSED_FORM)
    # metafor stops at tau2 ~ 2e-14; the exact root is 0 (Q < k - 1)
    assert fit.tau2 == pytest.approx(ref["tau2"], abs=1e-10)
