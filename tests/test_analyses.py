"""The review's named analyses on synthetic records and on the shipped data."""

import warnings

import numpy as np
import pandas as pd
import pytest

from ketameta import analyses
from ketameta.exceptions import ExcludedStudyWarning
from ketameta.review.evidence import record_effects


def test_every_named_analysis_runs_on_the_shipped_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = analyses.run_all()
    assert list(results) == list(analyses.QUESTIONS)
    overall = results["overall"]
    kinds = set(overall.effects["contrast"])
    assert kinds <= {"ketamine_vs_control", "therapy_added_to_ketamine", "prepost"}
    # the controlled pool holds only ketamine-vs-control records
    assert overall.controlled.k == (overall.effects["contrast"] == "ketamine_vs_control").sum()
    assert results["route"].summary()["k"].sum() > 0


def test_unknown_analysis_is_an_error():
    with pytest.raises(ValueError, match="unknown analysis 'dose'"):
        analyses.run("dose")


def row(**values):
    base = dict(
        record_id="test_r",
        study_id="test_s",
        first_author="Test",
        year=2020,
        design="parallel_rct",
        comparator="saline_placebo",
        direction="lower_is_better",
        arm1_label="K",
        scale="MADRS",
    )
    base.update(values)
    return base


def test_paths_are_recorded_and_unusable_records_are_listed():
    records = pd.DataFrame(
        [
            row(record_id="arms", n1=20, mean1=-12.0, sd1=8.0, n2=20, mean2=-6.0, sd2=9.0),
            row(record_id="se_only", n1=20, mean1=-12.0, se1=2.0, n2=20, mean2=-6.0, se2=2.0),
            row(record_id="lsmd", n1=30, n2=30, effect_type="LSMD", effect=-4.0, effect_se=2.0),
            row(
                record_id="d",
                effect_type="SMD_d",
                effect=-0.5,
                effect_ci_low=-0.9,
                effect_ci_high=-0.1,
            ),
            row(record_id="nothing", n1=20, n2=20),
        ]
    )
    effects, excluded = record_effects(records)
    paths = dict(zip(effects["record_id"], effects["effect_path"], strict=True))
    assert paths == {
        "arms": "arms",
        "se_only": "arms_sd_from_se",
        "lsmd": "smd_from_contrast",
        "d": "reported_smd",
    }
    assert excluded == [
        ("nothing", "neither arm-level mean/SD/n nor a reported contrast with SE or CI")
    ]
    # an LS-mean difference standardised by the SD behind its SE equals the arm-level g
    sd = 2.0 / np.sqrt(1 / 30 + 1 / 30)
    g = effects.set_index("record_id").loc["lsmd", "yi"]
    from ketameta import escalc

    ref = escalc("SMD", m1=[-4.0], sd1=[sd], n1=[30], m2=[0.0], sd2=[sd], n2=[30])
    assert g == pytest.approx(float(ref["yi"].iloc[0]), rel=1e-12)


def test_higher_is_better_records_are_negated_so_negative_favours_ketamine():
    records = pd.DataFrame(
        [row(direction="higher_is_better", n1=20, mean1=12.0, sd1=8.0, n2=20, mean2=6.0, sd2=9.0)]
    )
    effects, _ = record_effects(records)
    assert effects["yi"].iloc[0] < 0 and bool(effects["sign_flipped"].iloc[0])


def test_single_arm_needs_a_reported_or_assumed_correlation():
    rec = pd.DataFrame(
        [
            row(
                design="single_arm",
                comparator="none",
                n1=15,
                baseline_mean1=30.0,
                baseline_sd1=6.0,
                mean1=18.0,
            )
        ]
    )
    effects, excluded = record_effects(rec)
    assert effects.empty and "pre-post correlation not reported" in excluded[0][1]
    effects, excluded = record_effects(rec, assumed_r=0.5)
    assert effects["effect_path"].iloc[0] == "prepost_assumed_r=0.5" and effects["yi"].iloc[0] < 0


def test_exclusions_are_warned_by_record():
    studies = pd.DataFrame(
        [
            {
                **row(
                    record_id="ok1",
                    study_id="a",
                    n1=20,
                    mean1=-12.0,
                    sd1=8.0,
                    n2=20,
                    mean2=-6.0,
                    sd2=9.0,
                ),
                "contrast": "ketamine_vs_control",
            },
            {
                **row(
                    record_id="ok2",
                    study_id="b",
                    n1=25,
                    mean1=-10.0,
                    sd1=8.0,
                    n2=24,
                    mean2=-7.0,
                    sd2=9.0,
                ),
                "contrast": "ketamine_vs_control",
            },
            {**row(record_id="bad", study_id="c", n1=20, n2=20), "contrast": "ketamine_vs_control"},
        ]
    ).assign(
        outcome_construct="depression",
        outcome_type="endpoint",
        primary=True,
        psychotherapy="none",
        route="iv",
        shared_control_group="",
        arm2_label="P",
    )
    with pytest.warns(ExcludedStudyWarning, match="record bad excluded"):
        result = analyses.run("overall", studies)
    assert result.controlled.k == 2
    assert ("bad", "neither arm-level mean/SD/n nor a reported contrast with SE or CI") in (
        result.excluded
    )
