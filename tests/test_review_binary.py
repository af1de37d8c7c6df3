"""Response/remission/relapse analyses: record selection, RR from counts, metafor anchor."""

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_ITERATIVE, load_case

from ketameta import analyses, escalc, meta
from ketameta.review.evidence_binary import record_binary_effects
from ketameta.review.questions import Settings
from ketameta.review.records import select_binary_records
from ketameta.review.secondary import binary_analyses

NUMERIC = ("year", "timepoint_days", "events1", "n1", "events2", "n2")


def _typed(rows):
    """As load_studies() returns them: numbers as numbers."""
    frame = pd.DataFrame(rows)
    for column in NUMERIC:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column].replace("", None))
    return frame


def _row(study, rid, **kw):
    base = dict(study_id=study, record_id=rid, first_author=study.title(), year="2020",
                arm1_label="K", arm2_label="P", outcome_construct="depression",
                outcome_type="response", direction="higher_is_better", contrast=
                "ketamine_vs_control", primary="false", timepoint_days="1", psychotherapy="none",
                route="iv", shared_control_group="", effect_type="")  # fmt: skip
    base.update(kw)
    return base


def test_the_binary_record_at_the_comparisons_primary_timepoint_is_taken():
    context = pd.DataFrame(
        [
            _row("a", "a_madrs_d7", outcome_type="change", timepoint_days="7", primary="true"),
            _row("b", "b_madrs_d1", outcome_type="change", primary="true", arm1_label="K2"),
        ]
    )
    binary = pd.DataFrame(
        [
            _row("a", "a_resp_d1"),
            _row("a", "a_resp_d7", timepoint_days="7"),
            _row("b", "b_resp_d3", timepoint_days="3"),  # other arm labels: study timepoint 1
            _row("c", "c_resp_d2", timepoint_days="2"),  # nothing primary in study c
            _row("d", "d_resp_d5", timepoint_days="5", primary="true"),
        ]
    )
    kept, dropped = select_binary_records(binary, pd.concat([context, binary]))
    assert kept["record_id"].tolist() == ["a_resp_d7", "d_resp_d5"]
    reasons = dict(dropped)
    assert reasons["a_resp_d1"] == "not at the primary timepoint (7 days; a_resp_d7 taken)"
    assert reasons["b_resp_d3"] == "no record of this outcome at the primary timepoint (1 days)"
    assert reasons["c_resp_d2"] == "no primary timepoint known for this comparison"
    window, _ = select_binary_records(binary, context, timepoint=(0.5, 2.5))
    assert set(window["record_id"]) == {"a_resp_d1", "c_resp_d2"}


def test_risk_ratios_come_from_the_counts_and_bad_records_are_listed():
    rows = pd.DataFrame(
        [
            _row("a", "a_r", events1="12", n1="20", events2="10", n2="20"),
            _row("b", "b_r", events1="0", n1="15", events2="3", n2="14"),  # zero cell
            _row("c", "c_r", events1="21", n1="20", events2="3", n2="20"),  # impossible
            _row("d", "d_r", effect_type="HR", events1="", n1="", events2="", n2=""),
        ]
    )
    effects, excluded = record_binary_effects(rows, measure="RR")
    ref = escalc("RR", events1=[12, 0], n1=[20, 15], events2=[10, 3], n2=[20, 14])
    np.testing.assert_allclose(effects["yi"], ref["yi"], rtol=1e-12)
    np.testing.assert_allclose(effects["vi"], ref["vi"], rtol=1e-12)
    assert effects.attrs["favours_group1"] == "positive"
    assert dict(excluded) == {
        "c_r": "impossible counts (21/20 vs 3/20)",
        "d_r": "reported HR without arm counts: not combined with RRs from counts",
    }
    relapse = rows.iloc[:1].assign(direction="lower_is_better", outcome_type="relapse")
    assert record_binary_effects(relapse)[0].attrs["favours_group1"] == "negative"
    with pytest.raises(ValueError, match="share a direction"):
        record_binary_effects(pd.concat([rows.iloc[:1], relapse]))


def test_settings_refuse_a_measure_that_does_not_fit_the_outcome():
    with pytest.raises(ValueError, match="measure 'SMD' does not fit Settings.outcome 'response'"):
        Settings(outcome="response")
    with pytest.raises(ValueError, match="measure 'RR' does not fit Settings.outcome 'continuous'"):
        Settings(measure="RR")
    with pytest.raises(ValueError, match="Settings.outcome must be"):
        Settings(outcome="dropout", measure="RR")


def _bcg_as_studies():
    data, expected = load_case("rma_methods_bcg_logrr")
    rows = [
        _row(f"t{t}", f"t{t}_tb", first_author=a, year=str(y), outcome_type="relapse",
             direction="lower_is_better", primary="true", events1=str(tp), n1=str(tp + tn),
             events2=str(cp), n2=str(cp + cn))  # fmt: skip
        for t, a, y, tp, tn, cp, cn in data[
            ["trial", "author", "year", "tpos", "tneg", "cpos", "cneg"]
        ].itertuples(index=False)
    ]
    return _typed(rows), expected["fits"]


def test_the_whole_binary_pipeline_reproduces_metafor_on_bcg():
    studies, fits = _bcg_as_studies()
    settings = Settings(outcome="relapse", measure="RR", method="REML", test="z")
    result = analyses.run("overall", studies, settings)
    ref = fits["REML_z"]
    res = result.controlled
    assert res.k == ref["k"] == 13 and result.excluded == ()
    for ours, theirs in ((res.estimate, ref["b"][0]), (res.se, ref["se"][0]),
                         (res.ci_low, ref["ci.lb"][0]), (res.tau2, ref["tau2"])):  # fmt: skip
        assert ours == pytest.approx(theirs, rel=RTOL_ITERATIVE, abs=ATOL_NEAR_ZERO)
    assert res.measure == "RR" and res.favours_group1 == "negative"


def test_shared_control_arms_are_combined_by_adding_counts():
    rows = _typed(
        [
            _row("a", "a_lo", arm1_label="K low", events1="4", n1="11", events2="1", n2="33",
                 shared_control_group="a_pbo", timepoint_days="8"),  # fmt: skip
            _row("a", "a_hi", arm1_label="K high", events1="5", n1="12", events2="1", n2="33",
                 shared_control_group="a_pbo", timepoint_days="8"),  # fmt: skip
            _row("a", "a_madrs", outcome_type="change", primary="true", timepoint_days="8",
                 arm1_label="K low"),  # fmt: skip
            _row("a", "a_madrs2", outcome_type="change", primary="true", timepoint_days="8",
                 arm1_label="K high"),  # fmt: skip
            _row("b", "b_r", events1="12", n1="20", events2="10", n2="20", primary="true"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyses.run("overall", rows, Settings(outcome="response", measure="RR"))
        direct = meta(data=escalc("RR", events1=[9, 12], n1=[23, 20], events2=[1, 10], n2=[33, 20]),
                      method="REML", test="knha")  # fmt: skip
    combined = result.effects.set_index("study_id").loc["a"]
    assert (combined["events1"], combined["n1"]) == (9.0, 23.0)
    assert result.controlled.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert ("a_hi", "arm combined into a_lo (shared control a_pbo)") in result.excluded


def test_binary_analyses_name_each_outcome_and_question():
    studies, _ = _bcg_as_studies()
    results = binary_analyses(studies, Settings(), ("overall",), ("relapse",))
    assert [r.name for r in results] == ["relapse_overall"]
    assert results[0].settings["measure"] == "RR" and results[0].controlled.k == 13


def test_madrs_mean_difference_uses_contrast_only_trials_the_smd_analysis_cannot():
    from ketameta.review.secondary import madrs_md
    from ketameta.review.studies import load_studies

    studies = load_studies()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = madrs_md(studies, Settings())
        smd = analyses.run("overall", studies, Settings())
    md_paths = dict(zip(md.effects["record_id"], md.effects["effect_path"], strict=True))
    contrast_only = [rid for rid, path in md_paths.items() if path == "reported_md"]
    assert contrast_only  # trials with an LS-mean difference and SE but no arm sizes
    smd_reasons = dict(smd.excluded)
    smd_paths = dict(zip(smd.effects["record_id"], smd.effects["effect_path"], strict=True))
    sizes = studies.set_index("record_id")[["n1", "n2"]]
    without_sizes = [rid for rid in contrast_only if sizes.loc[rid].isna().any()]
    assert without_sizes  # e.g. KARMA-Dep 2: an adjusted difference with CI, no arm sizes
    for rid in contrast_only:
        if rid in without_sizes:
            assert "arm sizes n1/n2 missing" in smd_reasons[rid]
        else:  # with both arm sizes the SMD analysis standardises the same contrast
            assert smd_paths[rid] == "smd_from_contrast"
    assert md.name == "overall_MADRS_mean_difference" and md.controlled.measure == "MD"
