"""The reference grid must stay complete: no case can quietly disappear from tests/reference."""

from _reference import REFERENCE_DIR, case_names

EXPECTED_CASES = {
    "binary_mh_peto_bcg",
    "binary_mh_peto_nielweise2007_zerocells",
    "diagnostics_bcg_logrr",
    "diagnostics_hackshaw1998_logor",
    "escalc_md_normand1999",
    "escalc_or_bcg",
    "escalc_rd_bcg",
    "escalc_rom_curtis1998",
    "escalc_rr_bcg",
    "escalc_smcc_morris2008",
    "escalc_smcr_morris2008",
    "escalc_smd_normand1999",
    "escalc_smdh_normand1999",
    "escalc_zcor_molloy2014",
    "escalc_zerocell_nielweise2007",
    "metareg_bcg_ablat",
    "metareg_methods_bcg",
    "multilevel_konstantopoulos2011",
    "mv_assink2016",
    "mv_berkey1998",
    "mv_ishak2007",
    "mv_konstantopoulos2011",
    "permutest_exact_bcg",
    "permutest_exact_hine1989",
    "rma_methods_bcg_logrr",
    "rma_methods_hackshaw1998_logor",
    "rma_methods_normand1999_smd",
    "robust_uni_bcg",
    "subgroup_bangertdrowns2004_grade",
    "subgroup_bcg_alloc",
    "vcalc_rho",
    "vcalc_shared_control",
    "vcalc_timepoints",
    "dlit_bcg",
    "hc_bcg",
    "mh_zero_events",
    "regtest_binary",
    "rma_test_t_adhoc",
    "selmodel_baskerville2012",
    "selmodel_bcg",
    "selmodel_bcg_less",
    "selmodel_hackshaw1998",
    "smdh_versions",
    "tes_bcg",
    "che_review",
    "genq_bcg",
    "genq_normand1999",
}


def test_every_reference_case_is_present():
    assert set(case_names()) == EXPECTED_CASES


def test_every_case_has_its_provenance():
    for name in EXPECTED_CASES:
        folder = REFERENCE_DIR / name
        assert (folder / "README.txt").read_text().strip(), name
        assert (folder / "input.csv").stat().st_size > 0, name
