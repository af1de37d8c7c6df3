"""Record selection and multi-arm handling on synthetic records (ids are fake: test_*)."""

import numpy as np
import pandas as pd
import pytest

from ketameta._core.multiarm import combine_continuous_arms
from ketameta.review.records import resolve_shared_controls, select_records


def records(**columns):
    base = {
        "study_id": "test_a",
        "arm1_label": "ketamine",
        "arm2_label": "placebo",
        "primary": "false",
        "shared_control_group": "",
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_primary_rule_keeps_the_flagged_record_and_lists_the_rest():
    df = records(
        record_id=["r1", "r2", "r3"], timepoint_days=[1, 7, 28], primary=["false", "true", "false"]
    )
    kept, dropped = select_records(df, timepoint="primary")
    assert kept["record_id"].tolist() == ["r2"]
    assert sorted(r for r, _ in dropped) == ["r1", "r3"]
    assert all("not the primary record (r2)" in why for _, why in dropped)


def test_primary_rule_excludes_a_comparison_without_a_primary_record():
    df = records(record_id=["r1", "r2"], timepoint_days=[1, 7])
    kept, dropped = select_records(df, timepoint="primary")
    assert kept.empty
    assert dropped == [
        ("r1", "no record of this comparison is flagged primary"),
        ("r2", "no record of this comparison is flagged primary"),
    ]


def test_window_rule_takes_the_record_nearest_the_centre_per_comparison():
    df = pd.concat(
        [
            records(record_id=["a1", "a2", "a3"], timepoint_days=[0.17, 1.0, 28.0]),
            records(study_id="test_b", record_id=["b1", "b2"], timepoint_days=[2.0, 3.0]),
        ],
        ignore_index=True,
    )
    kept, dropped = select_records(df, timepoint=(0.5, 2.0))
    assert kept["record_id"].tolist() == ["a2", "b1"]
    reasons = dict(dropped)
    assert reasons["a1"] == "outside the timepoint window 0.5-2 days"
    assert reasons["b2"] == "outside the timepoint window 0.5-2 days"


def test_window_tie_goes_to_the_primary_record():
    df = records(record_id=["r1", "r2"], timepoint_days=[1.0, 2.0], primary=["false", "true"])
    kept, _ = select_records(df, timepoint=(0.0, 3.0))
    assert kept["record_id"].tolist() == ["r2"]


def two_doses(**extra):
    return records(
        record_id=["lo", "hi"],
        arm1_label=["28 mg", "56 mg"],
        shared_control_group="test_pbo",
        n1=[10.0, 20.0],
        mean1=[-10.0, -16.0],
        sd1=[6.0, 8.0],
        n2=[33.0, 33.0],
        mean2=[-5.0, -5.0],
        sd2=[7.0, 7.0],
        events1=np.nan,
        events2=np.nan,
        se1=np.nan,
        **extra,
    )


def test_combine_merges_the_arms_before_the_effect_size():
    out, dropped = resolve_shared_controls(two_doses(), strategy="combine")
    assert out["record_id"].tolist() == ["lo"]
    row = out.iloc[0]
    expected = combine_continuous_arms([10, 20], [-10.0, -16.0], [6.0, 8.0])
    assert (row["n1"], row["mean1"], row["sd1"]) == pytest.approx(expected)
    assert row["arm1_label"] == "28 mg + 56 mg"
    assert row["n2"] == 33
    assert dropped == [("hi", "arm combined into lo (shared control test_pbo)")]


def test_split_divides_the_shared_control_among_comparisons():
    out, dropped = resolve_shared_controls(two_doses(), strategy="split")
    assert dropped == []
    assert out["n2"].tolist() == [17.0, 16.0]
    assert out["n2"].sum() == 33
    assert out["multiarm"].str.contains("split 2 ways").all()


def test_contrast_only_records_keep_one_comparison_and_list_the_other():
    df = two_doses(primary=["false", "true"])
    df[["n1", "mean1", "sd1"]] = np.nan
    out, dropped = resolve_shared_controls(df, strategy="combine")
    assert out["record_id"].tolist() == ["hi"]
    assert dropped[0][0] == "lo"
    assert "cannot be combined" in dropped[0][1]


def test_unknown_strategy_is_an_error():
    with pytest.raises(ValueError, match="strategy"):
        resolve_shared_controls(two_doses(), strategy="average")
