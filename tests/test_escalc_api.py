"""escalc(): input handling, sign convention, generic inverse variance, bad input."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketameta import escalc
from ketameta.exceptions import ExcludedStudyWarning, ZeroCellWarning

ARMS = dict(
    m1=[-14.0, -12.0], sd1=[9.0, 8.0], n1=[30, 25], m2=[-8.0, -9.0], sd2=[10.0, 9.5], n2=[31, 24]
)


def test_arrays_and_columns_give_the_same_numbers():
    df = pd.DataFrame(ARMS, index=["study_a", "study_b"]).assign(note=["x", "y"])
    from_arrays = escalc("SMD", **ARMS)
    from_columns = escalc("SMD", data=df, **{k: k for k in ARMS})
    np.testing.assert_array_equal(from_arrays["yi"].to_numpy(), from_columns["yi"].to_numpy())
    assert from_columns["note"].tolist() == ["x", "y"]  # other columns pass through
    assert from_columns.attrs["measure"] == "SMD"
    np.testing.assert_allclose(from_columns["sei"] ** 2, from_columns["vi"])


def test_sign_convention_flips_only_when_asked():
    plain = escalc("MD", direction="higher_is_better", **ARMS)
    assert plain.attrs["favours_group1"] == "positive" and not plain.attrs["sign_flipped"]
    aligned = escalc("MD", direction="higher_is_better", favours_group1="negative", **ARMS)
    assert aligned.attrs["sign_flipped"] and aligned.attrs["favours_group1"] == "negative"
    np.testing.assert_array_equal(aligned["yi"].to_numpy(), -plain["yi"].to_numpy())
    lower = escalc("MD", direction="lower_is_better", **ARMS)
    assert lower.attrs["favours_group1"] == "negative"
    np.testing.assert_allclose(lower["yi"], [-6.0, -3.0])


def test_generic_from_se_and_from_ci():
    by_se = escalc("GEN", estimate=[-4.1], se=[1.2])
    assert by_se["vi"].iloc[0] == pytest.approx(1.44)
    z = stats.norm.ppf(0.975)
    by_ci = escalc("GEN", estimate=[-4.1], ci_low=[-6.5], ci_high=[-1.7])
    assert by_ci["sei"].iloc[0] == pytest.approx(4.8 / (2 * z), rel=1e-12)
    ratio = escalc("GEN", estimate=[2.0], ci_low=[1.0], ci_high=[4.0], ratio=True)
    assert ratio["yi"].iloc[0] == pytest.approx(np.log(2.0))
    assert ratio["sei"].iloc[0] == pytest.approx(np.log(4.0) / (2 * z))


def test_double_zero_kept_with_warning_or_dropped_and_listed():
    counts = dict(events1=[0, 2, 0], n1=[10, 12, 9], events2=[0, 5, 3], n2=[11, 12, 9])
    with pytest.warns(ZeroCellWarning, match="row 0") as record:
        kept = escalc("OR", **counts)
    assert len(record) == 1  # only the double-zero table is warned about
    assert np.isfinite(kept["yi"]).all() and len(kept) == 3
    # 1/2 added to each cell: log((0.5 * 11.5) / (10.5 * 0.5))
    assert kept["yi"].iloc[0] == pytest.approx(np.log(11.5 / 10.5), rel=1e-12)
    with pytest.warns(ExcludedStudyWarning, match="row 0 excluded"):
        dropped = escalc("OR", drop00=True, **counts)
    assert dropped.index.tolist() == [1, 2]
    assert dropped.attrs["excluded"] == [
        ("0", "no events (or only events) in both arms (drop00=True)")
    ]
    np.testing.assert_array_equal(dropped["yi"], kept["yi"].iloc[1:])


def test_no_correction_removes_and_lists_the_uncomputable_tables():
    counts = dict(events1=[0, 2], n1=[10, 12], events2=[4, 5], n2=[11, 12])
    with pytest.warns(ExcludedStudyWarning, match="row 0 excluded: zero cell"):
        out = escalc("OR", to="none", **counts)
    assert out.index.tolist() == [1]
    assert out.attrs["excluded"][0][0] == "0"
    rd = escalc("RD", to="none", **counts)  # RD is computable without correction
    assert rd["yi"].iloc[0] == pytest.approx(0 - 4 / 11)
    assert escalc("OR", add=0.25, **counts)["yi"].iloc[0] == pytest.approx(
        np.log(0.25 * 7.25 / (10.25 * 4.25))
    )


def test_correlations():
    out = escalc("COR", r=[0.3, -0.5], n=[50, 20])
    np.testing.assert_allclose(out["yi"], [0.3, -0.5])
    np.testing.assert_allclose(out["vi"], [(1 - 0.09) ** 2 / 49, (1 - 0.25) ** 2 / 19])
    z = escalc("ZCOR", r=[0.3], n=[50])
    assert z["yi"].iloc[0] == pytest.approx(np.arctanh(0.3)) and z["vi"].iloc[0] == 1 / 47


def test_generic_with_columns_passes_data_through():
    df = pd.DataFrame(
        {"hr": [0.5, 2.0], "lo": [0.25, 1.0], "hi": [1.0, 4.0], "id": ["test_a", "test_b"]}
    )
    out = escalc("GEN", data=df, estimate="hr", ci_low="lo", ci_high="hi", ratio=True, level=90)
    np.testing.assert_allclose(out["yi"], np.log([0.5, 2.0]))
    np.testing.assert_allclose(out["sei"], np.log(4.0) / (2 * stats.norm.ppf(0.95)))
    assert out["id"].tolist() == ["test_a", "test_b"] and out.attrs["measure"] == "GEN"


def test_prepost_sign_and_flip():
    # follow-up minus baseline: a fall on a lower-is-better scale is negative and favours
    inputs = dict(m_pre=[30.0], m_post=[20.0], sd_pre=[6.0], n=[20], r=[0.5])
    out = escalc("SMCR", direction="lower_is_better", **inputs)
    assert out["yi"].iloc[0] < 0 and out.attrs["favours_group1"] == "negative"
    flipped = escalc("SMCR", direction="lower_is_better", favours_group1="positive", **inputs)
    assert flipped["yi"].iloc[0] == -out["yi"].iloc[0] and flipped.attrs["sign_flipped"]
    # without direction nothing is negated, the requested sign is only recorded
    plain = escalc("SMCR", favours_group1="positive", **inputs)
    assert plain["yi"].iloc[0] == out["yi"].iloc[0] and not plain.attrs["sign_flipped"]


@pytest.mark.parametrize(
    ("measure", "inputs", "message"),
    [
        ("SMD", {**ARMS, "n1": [30]}, "length of 'n1'"),
        ("SMD", {**ARMS, "sd1": [-1.0, 8.0]}, "'sd1' must not be negative"),
        ("SMD", {**ARMS, "sd2": [0.0, 8.0]}, "'sd2' is zero in rows 0"),
        ("SMD", {**ARMS, "n2": [1, 24]}, "'n2' must be at least 2"),
        ("SMD", {**ARMS, "m1": [np.nan, 1.0]}, "'m1' has missing or infinite values in rows 0"),
        ("RR", dict(events1=[12], n1=[10], events2=[1], n2=[10]), "'events1' exceeds its n"),
        ("RR", dict(events1=[-1], n1=[10], events2=[1], n2=[10]), "'events1' must not be neg"),
        ("SMCR", dict(m_pre=[30.0], m_post=[20.0], sd_pre=[6.0], n=[20]), "missing: r"),
        ("SMCR", dict(m_pre=[30.0], m_post=[20.0], sd_pre=[6.0], n=[20], r=[1.5]), "'r' must lie"),
        ("XYZ", {}, "unknown measure 'XYZ'"),
        ("GEN", dict(estimate=[1.0]), "missing: ci_low, ci_high"),
        ("GEN", dict(estimate=[1.0], ci_low=[2.0], ci_high=[3.0]), "outside its interval"),
        ("GEN", dict(estimate=[1.0], se=[0.5], ratio=True), "ratio=True needs"),
        ("SMD", {**ARMS, "vtype": "HO"}, "vtype 'HO' is not available for 'SMD'"),
        ("SMD", {**ARMS, "favours_group1": "down"}, "'favours_group1' must be"),
        ("SMD", {**ARMS, "direction": "up"}, "'direction' must be"),
        ("SMD", {**ARMS, "sd": [1.0, 2.0]}, "unexpected inputs for measure 'SMD': sd"),
        ("ROM", {**ARMS}, "'m1' must be positive for a ratio of means"),
        ("MD", {**ARMS, "n1": [1, 25]}, "'n1' must be at least 2"),
        ("SMCR", dict(m_pre=[30.0], m_post=[20.0], sd_pre=[6.0], n=[20], r=[np.nan]), "'r' has"),
        ("ZCOR", dict(r=[0.2], n=[3]), "'n' must exceed 3"),
        ("OR", dict(events1=[1], n1=[0], events2=[1], n2=[10]), "'n1' must be at least 1"),
        ("GEN", dict(estimate=[1.0], se=[0.0]), "'se' must be positive"),
    ],
)
def test_bad_input_names_the_argument_and_row(measure, inputs, message):
    with pytest.raises(ValueError, match=message):
        escalc(measure, **inputs)


def test_dataframe_rows_are_named_in_errors():
    df = pd.DataFrame(ARMS, index=["daly", "fava"])
    df.loc["fava", "sd1"] = -2.0
    with pytest.raises(
        ValueError, match=r"'sd1' \(column 'sd1'\) must not be negative \(rows fava\)"
    ):
        escalc("SMD", data=df, **{k: k for k in ARMS})
    df.loc["fava", "sd1"] = 0.0
    with pytest.raises(ValueError, match="is zero in rows fava"):
        escalc("SMD", data=df, **{k: k for k in ARMS})
    with pytest.raises(ValueError, match="column 'nope'"):
        escalc("SMD", data=df, **{**{k: k for k in ARMS}, "m1": "nope"})
