"""Bad input to metareg() and subgroup(): clear errors and named warnings."""

import numpy as np
import pandas as pd
import pytest

from ketameta.exceptions import ExcludedStudyWarning, KetametaWarning
from ketameta.synthesis.regression import metareg
from ketameta.synthesis.subgroup import subgroup

DF = pd.DataFrame(
    {
        "yi": [-0.5, -0.7, -0.2, -0.1, -0.3, -0.6],
        "vi": [0.04, 0.05, 0.03, 0.06, 0.05, 0.04],
        "route": ["iv", "iv", "intranasal", "intranasal", "intranasal", "iv"],
        "dose": [0.5, 0.5, 56.0, 84.0, 56.0, 1.0],
    },
    index=[f"test_{c}" for c in "abcdef"],
)


def test_missing_moderator_rows_are_listed_not_dropped_silently():
    df = DF.copy()
    df.loc["test_b", "dose"] = np.nan
    with pytest.warns(ExcludedStudyWarning, match="test_b"):
        res = metareg(df, "~ dose", method="DL")
    assert res.k == 5 and res.excluded == (("test_b", "missing moderator value (dose)"),)
    df.loc["test_c", "route"] = None
    with pytest.warns(ExcludedStudyWarning, match="test_c"):
        sub = subgroup(df, "route", method="DL")
    assert sub.excluded == (("test_c", "missing value of route"),)


def test_collinear_and_constant_moderators():
    df = DF.assign(dose2=DF["dose"] * 2)
    with pytest.raises(ValueError, match="collinear"):
        metareg(df, "~ dose + dose2")
    with pytest.raises(ValueError, match="constant"):
        metareg(DF.assign(c=1.0), "~ c")


def test_more_parameters_than_studies():
    with pytest.raises(
        ValueError,
        match=r"3 parameters \(Intercept, C\(route\)\[T.iv\], dose\) and needs more than 3",
    ):
        metareg(DF.iloc[:3], "~ dose + C(route)")


def test_one_level_and_unknown_column():
    with pytest.raises(ValueError, match="only one level"):
        subgroup(DF[DF["route"] == "iv"], "route")
    with pytest.raises(ValueError, match="'drug' is not in data"):
        subgroup(DF, "drug")


def test_single_study_level_is_flagged_and_left_out_of_the_separate_test():
    df = pd.concat([DF, DF.iloc[[0]].assign(route="oral")])
    df.index = [f"r{i}" for i in range(len(df))]
    res = subgroup(df, "route", method="DL")
    assert res.flagged == ("oral",)
    assert res.test_separate.df == 1  # two pooled levels
    assert res.summary().set_index("subgroup").loc["oral", "flag"].startswith("k = 1")


def test_subgroup_level_without_studies_is_named_and_listed():
    df = DF.assign(route=pd.Categorical(DF["route"], categories=["iv", "oral", "intranasal"]))
    with pytest.warns(KetametaWarning, match=r"moderator 'route' has level\(s\) oral with no"):
        res = subgroup(df, "route", method="DL")
    assert res.empty_levels == ("oral",) and res.levels == ("intranasal", "iv")
    with pytest.raises(ValueError, match=r"moderator 'route': level\(s\) oral have no studies"):
        metareg(df, "~ C(route)")


def test_subgroup_with_as_many_levels_as_studies():
    two = DF.iloc[[0, 2]]
    with pytest.warns(KetametaWarning, match="needs more studies than levels"):
        res = subgroup(two, "route", method="DL")
    assert res.test_common is None and res.test_separate is None
    assert res.flagged == ("intranasal", "iv")
    with pytest.raises(ValueError, match="tau2='common' needs more studies than levels of 'route'"):
        subgroup(two, "route", method="DL", tau2="common")


def test_subgroup_summary_and_common_tau2_share_one_tau2():
    res = subgroup(DF, "route", method="REML", tau2="common")
    table = res.summary()
    assert table["subgroup"].tolist() == ["intranasal", "iv", "Overall"]
    assert table.loc[0, "tau2"] == table.loc[1, "tau2"]
    assert set(table.attrs) == {"test_common", "test_separate"}
    assert res.tests()["statistic"].tolist() == [
        res.test_common.statistic,
        res.test_separate.statistic,
    ]


def test_options_are_checked_by_name():
    with pytest.raises(ValueError, match="method must be one of"):
        metareg(DF, "~ dose", method="GENQ")
    with pytest.raises(ValueError, match="level must be a percentage"):
        metareg(DF, "~ dose", level=0.95 * 200)
    with pytest.raises(ValueError, match="test must be 'z' or 'knha'"):
        metareg(DF, "~ dose", test="hk")
