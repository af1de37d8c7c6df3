"""Crossover, t-statistic, overlap and head-to-head records: the paths and the exclusions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ketameta import analyses
from ketameta.review.evidence import record_effects
from ketameta.review.questions import Settings, prepare_effects
from ketameta.review.studies import load_studies


def hedges_j(df: float) -> float:
    return math.exp(math.lgamma(df / 2) - 0.5 * math.log(df / 2) - math.lgamma((df - 1) / 2))


def record(**values) -> pd.DataFrame:
    base = dict(
        study_id="s",
        record_id="s_r",
        first_author="A",
        year=2020,
        design="parallel_rct",
        crossover_data="",
        arm1_label="K",
        arm2_label="P",
        comparator="saline_placebo",
        contrast="ketamine_vs_control",
        direction="lower_is_better",
        outcome_type="change",
        scale="MADRS",
        psychotherapy="none",
        effect_type="",
        primary=True,
    )
    return pd.DataFrame([base | values])


def test_both_periods_crossover_is_paired_with_the_assumed_correlation():
    row = record(
        design="crossover_rct",
        crossover_data="both_periods",
        n1=10,
        mean1=-12.0,
        sd1=8.0,
        n2=10,
        mean2=-4.0,
        sd2=6.0,
    )
    md, _ = record_effects(row, measure="MD", crossover_r=0.5)
    # var(MD) = (sd1^2 + sd2^2 - 2 r sd1 sd2) / n, n counted once
    assert md["yi"].iloc[0] == pytest.approx(-8.0)
    assert md["vi"].iloc[0] == pytest.approx((64 + 36 - 2 * 0.5 * 48) / 10)
    smd, _ = record_effects(row, measure="SMD", crossover_r=0.0)
    d = -8.0 / math.sqrt(50.0)
    g = d * hedges_j(9)
    assert smd["yi"].iloc[0] == pytest.approx(g)
    assert smd["vi"].iloc[0] == pytest.approx(2 / 10 + g**2 / 20)
    assert smd["effect_path"].iloc[0] == "crossover_both_periods_r=0"
    assert smd["score_type"].iloc[0] == "change"
    # a higher correlation credits the pairing: smaller variance
    tighter, _ = record_effects(row, measure="SMD", crossover_r=0.6)
    assert tighter["vi"].iloc[0] < smd["vi"].iloc[0]


def test_paired_crossover_mean_difference_is_md_only():
    row = record(
        design="crossover_rct",
        crossover_data="paired",
        outcome_type="effect_estimate",
        n1=18,
        n2=18,
        effect_type="MD",
        effect=-7.6,
        effect_ci_low=-11.3,
        effect_ci_high=-3.9,
    )
    md, _ = record_effects(row, measure="MD")
    se = (-3.9 + 11.3) / (2 * 1.959963984540054)
    assert md["vi"].iloc[0] == pytest.approx(se**2)
    assert md["effect_path"].iloc[0] == "crossover_paired"
    smd, excluded = record_effects(row, measure="SMD")
    assert smd.empty and "cannot be standardised" in excluded[0][1]


def test_paired_crossover_d_enters_as_reported_not_as_two_parallel_arms():
    row = record(
        design="crossover_rct",
        crossover_data="paired",
        outcome_type="effect_estimate",
        n1=18,
        n2=18,
        effect_type="SMD_d",
        effect=-0.52,
        effect_ci_low=-0.76,
        effect_ci_high=-0.28,
    )
    smd, _ = record_effects(row, measure="SMD")
    assert smd["yi"].iloc[0] == -0.52
    assert smd["vi"].iloc[0] == pytest.approx((0.48 / (2 * 1.959963984540054)) ** 2)
    assert smd["score_type"].iloc[0] == "contrast"


def test_t_statistic_is_standardised_with_both_arm_sizes():
    row = record(outcome_type="effect_estimate", n1=53, n2=51, t_stat=-3.62)
    smd, _ = record_effects(row, measure="SMD")
    d = -3.62 * math.sqrt(1 / 53 + 1 / 51)
    g = d * hedges_j(53 + 51 - 2)
    assert smd["yi"].iloc[0] == pytest.approx(g, rel=1e-6)
    assert smd["vi"].iloc[0] == pytest.approx(1 / 53 + 1 / 51 + g**2 / (2 * 104), rel=1e-6)
    none, excluded = record_effects(record(outcome_type="effect_estimate", n1=53, t_stat=-3.6))
    assert none.empty and "arm sizes" in excluded[0][1]


def test_endpoint_records_are_marked():
    row = record(outcome_type="endpoint", n1=20, mean1=25.1, sd1=9.0, n2=19, mean2=29.9, sd2=8.0)
    assert record_effects(row)[0]["score_type"].iloc[0] == "endpoint"


def test_overlapping_head_to_head_and_active_comparator_records_are_left_out_with_reasons():
    base = dict(
        n1=20, mean1=-10.0, sd1=8.0, n2=20, mean2=-5.0, sd2=8.0, outcome_construct="depression"
    )
    table = pd.concat(
        [
            record(study_id="a", record_id="a_1", **base),
            record(study_id="b", record_id="b_1", duplicate_of="a", **base),
            record(study_id="c", record_id="c_1", contrast="head_to_head", **base),
            record(study_id="d", record_id="d_1", comparator="other_active", **base),
        ],
        ignore_index=True,
    )
    effects, excluded = prepare_effects(table, Settings())
    assert effects["record_id"].tolist() == ["a_1"]
    reasons = dict(excluded)
    assert "same participants as a" in reasons["b_1"]
    assert "head-to-head" in reasons["c_1"]
    assert "active antidepressant comparator" in reasons["d_1"]


def test_shipped_data_count_no_participants_twice():
    studies = load_studies()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyses.run("overall", studies, Settings())
    used = set(result.effects["study_id"])
    # a study reported again elsewhere never enters beside the report that counts it
    for _, row in studies[studies["duplicate_of"].notna()].iterrows():
        assert not ({row["study_id"], row["duplicate_of"]} <= used), row["record_id"]
    crossover = result.effects[result.effects["design"] == "crossover_rct"]
    assert set(crossover["effect_path"]) <= {
        "arms",
        "arms_sd_from_se",
        "crossover_paired",
        "crossover_both_periods_r=0",
    }
    assert np.isfinite(result.controlled.estimate)
