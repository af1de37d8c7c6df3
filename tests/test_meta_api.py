"""meta(): input handling, errors, warnings and the MetaResult record.

Numbers are checked against metafor in test_pooling_reference.py; this file checks the API.
"""

from __future__ import annotations

import dataclasses
import doctest
import math
import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import RTOL_CLOSED_FORM, load_case

import ketameta._core.batch
import ketameta._core.pooling
import ketameta._core.tau2
import ketameta.synthesis.pooling
import ketameta.synthesis.results
from ketameta.exceptions import (
    ConvergenceWarning,
    DataValidationError,
    KetametaWarning,
    SingleStudyWarning,
)
from ketameta.synthesis.pooling import meta
from ketameta.synthesis.results import MetaResult

BCG, BCG_REF = load_case("rma_methods_bcg_logrr")
Z975 = 1.959963984540054  # qnorm(0.975)


def _frame(**extra_attrs) -> pd.DataFrame:
    df = BCG[["author", "year", "yi", "vi"]].copy()
    df["label"] = df["author"] + " " + df["year"].astype(str)
    df.attrs.update(extra_attrs)
    return df


# ----------------------------------------------------------------------------------- input


def test_arrays_and_dataframe_give_the_same_fit():
    a = meta(BCG["yi"].to_numpy(), BCG["vi"].to_numpy())
    b = meta(data=_frame())
    assert a.estimate == b.estimate and a.tau2 == b.tau2 and a.tau2_ci == b.tau2_ci
    assert a.labels[:2] == ("Study 1", "Study 2")
    assert b.labels[0] == "Aronson 1948"


def test_lists_are_accepted():
    res = meta([0.1, 0.3, 0.5], [0.01, 0.02, 0.03], method="DL")
    assert res.k == 3 and isinstance(res.estimate, float)


def test_custom_column_names_and_label_column():
    df = BCG.rename(columns={"yi": "logrr", "vi": "var"})
    res = meta("logrr", "var", data=df, labels="author")
    assert res.k == 13 and res.labels[1] == "Ferguson & Simes"
    assert res.estimate == pytest.approx(BCG_REF["fits"]["REML_z"]["b"][0], rel=1e-6)


def test_labels_fall_back_to_study_label_then_index():
    df = BCG[["yi", "vi"]].copy()
    df["study_label"] = [f"S{i}" for i in range(13)]
    assert meta(data=df).labels[0] == "S0"
    df2 = BCG[["yi", "vi"]].set_axis([f"row{i}" for i in range(13)])
    assert meta(data=df2).labels[-1] == "row12"


def test_attrs_from_escalc_are_carried_through():
    df = _frame(measure="RR", favours_group1="negative", excluded=[("Smith 2001", "zero cells")])
    res = meta(data=df)
    assert res.measure == "RR"
    assert res.favours_group1 == "negative"
    assert res.excluded == (("Smith 2001", "zero cells"),)
    assert res.data is df
    assert meta(data=df, measure="OR").measure == "OR"  # explicit argument wins


def test_without_attrs_nothing_is_invented():
    res = meta(data=_frame())
    assert res.measure is None and res.favours_group1 is None and res.excluded == ()


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([0.1, 0.2], [0.1]), {}, r"Length of 'yi' \(2\) and 'vi' \(1\)"),
        (([], []), {}, "No studies"),
        (([0.1, 0.2], [0.1, 0.0]), {}, r"'vi'\[1\] \(study 'Study 2'\): vi is 0.0 \(must be > 0\)"),
        (([0.1, 0.2], [0.1, -1.0]), {}, r"'vi'\[1\].*must be > 0"),
        (([0.1, np.nan], [0.1, 0.2]), {}, r"'yi'\[1\].*yi is nan"),
        (([0.1, 0.2], [np.inf, 0.2]), {}, r"'vi'\[0\].*vi is inf"),
        (([0.1, 0.2], [0.1, 0.2]), {"method": "DSL"}, "Unknown 'method' 'DSL'"),
        (([0.1, 0.2], [0.1, 0.2]), {"test": "hk"}, "Unknown 'test' 'hk'"),
        (([0.1, 0.2], [0.1, 0.2]), {"level": 0}, "'level' must be a percentage"),
        (([0.1, 0.2], [0.1, 0.2]), {"level": 100}, "'level' must be a percentage"),
        (([0.1, 0.2], [0.1, 0.2]), {"level": 0.95 * 200}, "'level' must be a percentage"),
        (([0.1, 0.2], [0.1, 0.2]), {"level": True}, "'level' must be a number"),
        (([0.1, 0.2], [0.1, 0.2]), {"labels": ["a"]}, "'labels' has 1 entries"),
        (([[0.1, 0.2]], [[0.1, 0.2]]), {}, "one-dimensional"),
        ((["a", "b"], [0.1, 0.2]), {}, "'yi' must be numeric"),
        ((None, [0.1, 0.2]), {}, "Give 'yi' and 'vi'"),
    ],
)
def test_bad_array_input_is_rejected(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        meta(*args, **kwargs)


def test_dataframe_problems_list_every_row_and_column():
    df = _frame()
    df.loc[2, "vi"] = -0.1
    df.loc[5, "yi"] = np.nan
    df.loc[7, "vi"] = np.inf
    with pytest.raises(DataValidationError) as info:
        meta(data=df)
    text = str(info.value)
    assert "row 'Rosenthal et al 1960' (position 2), column 'vi'" in text
    assert "row 'Stein & Aronson 1953' (position 5), column 'yi'" in text
    assert "position 7), column 'vi'" in text
    assert [p["position"] for p in info.value.problems] == [2, 5, 7]
    assert {p["column"] for p in info.value.problems} == {"yi", "vi"}


def test_dataframe_text_in_numeric_columns_is_reported_by_row():
    df = _frame()
    df["yi"] = df["yi"].astype(object)
    df.loc[3, "yi"] = "n/a"
    df.loc[4, "vi"] = np.nan
    with pytest.raises(DataValidationError) as info:
        meta(data=df)
    text = str(info.value)
    assert (
        "row 'Hart & Sutherland 1977' (position 3), column 'yi': yi is 'n/a' (not a number)" in text
    )
    assert "(position 4), column 'vi': vi is nan (must be finite)" in text
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"yi": "effect"}, "'yi' column 'effect' is not in 'data'"),
        ({"vi": "variance"}, "'vi' column 'variance' is not in 'data'"),
        ({"yi": [1.0, 2.0]}, "With 'data', 'yi' must be a column name"),
        ({"labels": "nope"}, "'labels' column 'nope'"),
    ],
)
def test_bad_dataframe_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        meta(data=_frame(), **kwargs)


def test_data_must_be_a_dataframe():
    with pytest.raises(ValueError, match="'data' must be a pandas DataFrame"):
        meta(data={"yi": [1.0], "vi": [1.0]})


# ----------------------------------------------------------------------------------- warnings


@pytest.mark.parametrize("test", ["z", "knha"])
def test_single_study_is_returned_with_a_warning(test):
    with pytest.warns(SingleStudyWarning, match="'Only trial'"):
        res = meta([0.4], [0.09], labels=["Only trial"], test=test)
    assert res.k == 1 and res.estimate == 0.4 and res.tau2 == 0.0
    assert res.se == pytest.approx(0.3, rel=1e-15)
    assert res.ci_low == pytest.approx(0.4 - Z975 * 0.3, rel=RTOL_CLOSED_FORM)
    assert res.test == "z" and res.df is None
    assert res.q == 0.0 and res.q_pvalue == 1.0 and res.i2 == 0.0 and res.h2 == 1.0
    assert all(math.isnan(x) for x in res.tau2_ci)


def test_non_convergence_warns_and_is_flagged():
    with pytest.warns(ConvergenceWarning) as record:
        res = meta(data=_frame(), method="REML", maxiter=1)
    messages = [str(w.message) for w in record]
    assert any("REML estimator of tau2 did not converge in 1 iterations" in m for m in messages)
    assert any("Q-profile search" in m for m in messages)  # maxiter=1 stops that search too
    assert res.converged is False


def test_upper_q_profile_bound_at_the_search_limit_warns():
    # DL tau2 = 9.99 < 10, so metafor's limit is max(100, 10 * tau2) = 100
    with pytest.warns(KetametaWarning, match=r"search limit tau2.max = 100 "):
        res = meta([-3.16, 0.0, 3.16], [0.01, 0.01, 0.01], method="DL")
    assert res.tau2 < 10.0 and res.tau2_ci[1] == 100.0
    assert 0 < res.tau2_ci[0] < res.tau2


def test_no_warning_for_an_ordinary_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = meta(data=_frame(), method="PM", test="knha")
    assert res.converged is True and res.df == 12


# ----------------------------------------------------------------------------------- result


def test_result_is_a_frozen_dataclass_with_the_contract_fields():
    res = meta(data=_frame())
    assert isinstance(res, MetaResult)
    names = {f.name for f in dataclasses.fields(res)}
    contract = """k estimate se statistic pvalue ci_low ci_high pi_low pi_high tau2 tau2_ci tau
        tau_ci i2 i2_ci h2 h2_ci q q_df q_pvalue weights method test level df yi vi labels
        measure favours_group1 excluded data converged vt""".split()
    assert set(contract) <= names
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimate = 0.0
    with pytest.raises(ValueError, match="read-only"):
        res.weights[0] = 1.0


def test_caller_arrays_are_neither_frozen_nor_shared():
    yi = BCG["yi"].to_numpy().copy()
    vi = BCG["vi"].to_numpy().copy()
    res = meta(yi, vi)
    yi[0] = 99.0  # still writable, and the result keeps its own copy
    assert res.yi[0] == BCG["yi"].iloc[0]


def test_summary_is_one_row():
    res = meta(data=_frame(measure="RR"))
    table = res.summary()
    assert table.shape[0] == 1 and table.index[0] == "RR"
    row = table.iloc[0]
    assert row["estimate"] == res.estimate and row["tau2_ci_high"] == res.tau2_ci[1]
    assert row["i2"] == pytest.approx(BCG_REF["fits"]["REML_z"]["I2"], rel=1e-8)
    assert row["method"] == "REML" and row["k"] == 13


def test_studies_table_has_normal_intervals_and_weights():
    res = meta(data=_frame(), test="knha", level=90)
    table = res.studies()
    assert list(table.columns) == ["label", "yi", "vi", "ci_low", "ci_high", "weight"]
    z90 = 1.6448536269514722  # qnorm(0.95)
    half = z90 * np.sqrt(BCG["vi"].to_numpy())
    np.testing.assert_allclose(table["ci_low"], BCG["yi"] - half, rtol=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(table["weight"], BCG_REF["fits"]["REML_knha"]["weights_pct"],
                               rtol=1e-6)  # fmt: skip
    assert table["weight"].sum() == pytest.approx(100.0)


def test_html_and_text_display():
    res = meta(data=_frame())
    html = res._repr_html_()
    assert "Meta-analysis" in html and "<table" in html and "tau2" in html
    assert "estimate" in str(res)


def test_plot_forest_delegates_to_the_plots_module(monkeypatch):
    calls = []
    fake = types.ModuleType("ketameta.plots.forest")
    fake.forest = lambda result, **kw: calls.append((result, kw)) or "figure"
    monkeypatch.setitem(sys.modules, "ketameta.plots.forest", fake)
    res = meta(data=_frame())
    assert res.plot_forest(sort="weight") == "figure"
    assert calls == [(res, {"sort": "weight"})]


def test_level_changes_every_interval():
    a = meta(data=_frame(), level=95)
    b = meta(data=_frame(), level=80)
    assert b.ci_low > a.ci_low and b.pi_low > a.pi_low and b.tau2_ci[0] > a.tau2_ci[0]
    assert b.estimate == a.estimate


@pytest.mark.parametrize(
    "module",
    [
        ketameta.synthesis.pooling,
        ketameta.synthesis.results,
        ketameta._core.tau2,
        ketameta._core.pooling,
        ketameta._core.batch,
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
