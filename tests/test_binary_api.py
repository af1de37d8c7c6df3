"""meta_mh()/meta_peto(): input checks, zero cells, options, the result, the vectorised core."""

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import RTOL_CLOSED_FORM, load_case

from ketameta import escalc
from ketameta._core import binary as core
from ketameta.exceptions import ExcludedStudyWarning, ZeroCellWarning
from ketameta.synthesis.binary import BinaryResult, meta_mh, meta_peto

GOOD = dict(events1=[4, 6, 3], n1=[123, 306, 231], events2=[11, 29, 11], n2=[139, 303, 220])


def nielweise():
    return load_case("binary_mh_peto_nielweise2007_zerocells")[0]


def frame(**columns):
    return pd.DataFrame(columns, index=["Ames", "Bell", "Cole"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [meta_mh, meta_peto])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(n1=[123, 306]), r"length of 'n1' \(2\) differs"),
        (dict(events1=[4, 307, 3]), r"'events1' exceeds 'n1' in rows Study 2"),
        (dict(events2=[11, -1, 11]), r"'events2' is negative in rows Study 2"),
        (dict(n2=[139, np.nan, 220]), r"'n2' is missing or infinite in rows Study 2"),
        (dict(n1=[0, 306, 231], events1=[0, 6, 3]), r"'n1' is 0 in rows Study 1"),
        (dict(events1=["a", 6, 3]), r"'events1' must be numeric"),
        (dict(events1=None), r"'events1' is required"),
    ],
)
def test_bad_arrays_name_the_argument_and_row(fn, change, message):
    with pytest.raises(ValueError, match=message):
        fn(**{**GOOD, **change})


@pytest.mark.parametrize("fn", [meta_mh, meta_peto])
def test_no_studies(fn):
    with pytest.raises(ValueError, match=r"'events1' is empty: no studies \(k = 0\)"):
        fn([], [], [], [])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (dict(measure="HR"), "'measure' must be one of OR, RR, RD, got 'HR'"),
        (dict(measure="PETO"), "'measure' must be one of OR, RR, RD"),
        (dict(level=0), r"'level' must lie in \(0, 100\)"),
        (dict(level="95"), "'level' must be a finite number"),
        (dict(add=-0.5), r"'add' must lie in \[0, inf\]"),
        (dict(to="some"), "'to' must be one of only0, all, if0all, none"),
    ],
)
def test_bad_options(option, message):
    with pytest.raises(ValueError, match=message):
        meta_mh(**GOOD, **option)


def test_dataframe_errors_name_column_and_row_label():
    data = frame(a=[4, 6, 3], n1=[123, 5, 231], c=[11, 29, 11], n2=[139, 303, np.nan])
    with pytest.raises(
        ValueError, match=r"'n2' \(column 'n2'\) is missing or infinite in rows Cole"
    ):
        meta_mh("a", "n1", "c", "n2", data=data)
    data["n2"] = [139, 303, 220]
    with pytest.raises(
        ValueError, match=r"'events1' \(column 'a'\) exceeds 'n1' \(column 'n1'\) in rows Bell"
    ):
        meta_peto("a", "n1", "c", "n2", data=data)
    with pytest.raises(ValueError, match=r"'events2': column 'cc' is not in 'data'"):
        meta_mh("a", "n1", "cc", "n2", data=data)
    data["c"] = ["11", "29", "x"]
    with pytest.raises(ValueError, match=r"'events2' \(column 'c'\) must be numeric"):
        meta_mh("a", "n1", "c", "n2", data=data)


def test_peto_without_any_non_event_or_event_is_refused():
    with pytest.raises(ValueError, match="never occurs in any table"):
        meta_peto([0, 0], [10, 12], [0, 0], [11, 9])


def test_undefined_mh_ratio_is_nan_with_a_warning():
    with pytest.warns(ZeroCellWarning, match="MH OR is 0 or undefined"):
        res = meta_mh([0, 0], [10, 12], [3, 2], [11, 9])
    assert np.isnan(res.estimate) and np.isnan(res.se) and np.isnan(res.ci_low)
    assert np.isfinite(res.cmh)  # the CMH test needs no ratio: events and non-events exist
    assert res.k_pos == 0 and res.tarone is not None and np.isnan(res.tarone)


# ---------------------------------------------------------------- DataFrame input and labels


def test_dataframe_input_equals_array_input_and_takes_labels():
    data = frame(a=GOOD["events1"], n1=GOOD["n1"], c=GOOD["events2"], n2=GOOD["n2"])
    by_name = meta_mh("a", "n1", "c", "n2", data=data, measure="RR")
    by_array = meta_mh(**GOOD, measure="RR")
    assert by_name.labels == ("Ames", "Bell", "Cole")
    assert by_array.labels == ("Study 1", "Study 2", "Study 3")
    assert by_name.estimate == by_array.estimate and by_name.q == by_array.q
    data["who"] = ["x", "y", "z"]
    assert meta_peto("a", "n1", "c", "n2", data=data, labels="who").labels == ("x", "y", "z")


# ---------------------------------------------------------------- zero cells, add/to/drop00


def test_double_zero_study_is_excluded_listed_and_warned_by_name():
    data = nielweise()
    with pytest.warns(ZeroCellWarning, match="study 'Study 15': no events") as record:
        res = meta_peto(data["ai"], data["n1i"], data["ci"], data["n2i"])
    assert len(record) == 1
    assert res.excluded == (
        ("Study 15", "no events (or only events) in both arms (drop00=True): left out of Q"),
    )
    assert np.isnan(res.yi[14]) and np.isnan(res.vi[14]) and np.isfinite(res.yi).sum() == 17


def test_drop00_false_keeps_the_double_zero_study_in_q_as_escalc_computes_it():
    data = nielweise()
    args = (data["ai"], data["n1i"], data["ci"], data["n2i"])
    with pytest.warns(ZeroCellWarning, match="kept in Q"):
        kept = meta_mh(*args, drop00=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dropped = meta_mh(*args)
        eff = escalc("OR", events1=data["ai"], n1=data["n1i"], events2=data["ci"], n2=data["n2i"])
    assert kept.excluded == () and kept.q_df == 17
    np.testing.assert_allclose(kept.yi, eff["yi"], rtol=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(kept.vi, eff["vi"], rtol=RTOL_CLOSED_FORM)
    # the MH estimate does not depend on drop00/add/to (raw counts); Q does
    assert kept.estimate == dropped.estimate and kept.se == dropped.se
    assert kept.q != dropped.q


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_add_and_to_change_only_the_per_study_effects(measure):
    data = nielweise()
    args = (data["ai"], data["n1i"], data["ci"], data["n2i"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = meta_mh(*args, measure=measure)
        other = meta_mh(*args, measure=measure, add=1.0, to="all")
        eff = escalc(
            measure,
            events1=data["ai"],
            n1=data["n1i"],
            events2=data["ci"],
            n2=data["n2i"],
            add=1.0,
            to="all",
            drop00=True,
        )
    assert other.estimate == base.estimate and other.se == base.se
    np.testing.assert_allclose(other.yi[np.isfinite(other.yi)], eff["yi"], rtol=RTOL_CLOSED_FORM)
    expected_q = np.sum((eff["yi"] - base.estimate) ** 2 / eff["vi"])
    np.testing.assert_allclose(other.q, expected_q, rtol=RTOL_CLOSED_FORM)


def test_to_none_excludes_single_zero_tables_with_their_reason():
    with pytest.warns(ExcludedStudyWarning, match="study 'Study 1': zero cell"):
        res = meta_mh([0, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220], to="none")
    assert [label for label, _ in res.excluded] == ["Study 1"]
    assert "to='none'" in res.excluded[0][1] and res.q_df == 1


def test_if0all_ignores_the_zeros_of_a_dropped_double_zero_table():
    # only the double-zero table has zeros: after drop00 nothing else is corrected (metafor)
    ev1, n1, ev2, n2 = [0, 6, 3], [50, 306, 231], [0, 29, 11], [40, 303, 220]
    with pytest.warns(ZeroCellWarning):
        res = meta_mh(ev1, n1, ev2, n2, to="if0all")
    raw = np.log(6 * 274 / (300 * 29)), np.log(3 * 209 / (228 * 11))
    np.testing.assert_allclose(res.yi[1:], raw, rtol=RTOL_CLOSED_FORM)


def test_k_one_yi_gives_metafors_q_conventions():
    with pytest.warns(ZeroCellWarning):
        res = meta_mh([0, 6], [50, 306], [0, 29], [40, 303])
    assert (res.q, res.q_df, res.q_pvalue, res.i2, res.h2) == (0.0, 0, 1.0, 0.0, 1.0)


# ---------------------------------------------------------------- result object


def test_result_is_frozen_with_read_only_arrays_and_a_summary():
    res = meta_mh(**GOOD)
    assert isinstance(res, BinaryResult)
    with pytest.raises(AttributeError):
        res.estimate = 0.0
    with pytest.raises(ValueError):
        res.yi[0] = 1.0
    table = res.summary()
    assert table.shape[0] == 1 and table.loc["estimate", "scale"] == "log"
    assert table.loc["estimate", "exp_estimate"] == pytest.approx(np.exp(res.estimate))
    assert {"cmh", "tarone", "q", "i2", "h2"} <= set(table.columns)
    assert "Mantel-Haenszel" in res._repr_html_() and "exp_estimate" in res._repr_html_()
    assert "Mantel-Haenszel common-effect model (OR, k = 3)" in str(res)


def test_risk_difference_has_no_back_transform_and_no_or_tests():
    res = meta_mh(**GOOD, measure="RD")
    assert res.exp_estimate is None and res.cmh is None and res.tarone is None
    assert "exp_estimate" not in res.summary().columns
    assert res.summary().loc["estimate", "scale"] == "identity"


def test_level_sets_the_interval_width():
    wide, narrow = meta_peto(**GOOD, level=99), meta_peto(**GOOD, level=90)
    np.testing.assert_allclose(
        (wide.ci_high - wide.estimate) / (narrow.ci_high - narrow.estimate),
        2.5758293035489004 / 1.6448536269514722,
        rtol=1e-12,
    )


def test_cmh_continuity_correction_shrinks_the_statistic():
    on, off = meta_mh(**GOOD), meta_mh(**GOOD, correct=False)
    assert on.estimate == off.estimate and on.cmh < off.cmh and on.correct and not off.correct


# ---------------------------------------------------------------- vectorised core


def test_core_vectorises_over_leading_axes_and_masks_padding():
    rng = np.random.default_rng(7)
    n1 = rng.integers(20, 200, size=(4, 6)).astype(float)
    n2 = rng.integers(20, 200, size=(4, 6)).astype(float)
    a = np.floor(n1 * rng.uniform(0.05, 0.5, size=n1.shape))
    c = np.floor(n2 * rng.uniform(0.05, 0.5, size=n2.shape))
    b, d = n1 - a, n2 - c
    mask = np.ones(a.shape, dtype=bool)
    mask[1, 4:] = False  # problem 1 has 4 tables
    a_pad = np.where(mask, a, 7.0)  # placeholders must not matter
    for measure in ("OR", "RR", "RD"):
        stacked = core.mantel_haenszel(a_pad, b, c, d, measure, mask=mask)
        for i in range(4):
            m = mask[i]
            one = core.mantel_haenszel(a[i, m], b[i, m], c[i, m], d[i, m], measure)
            np.testing.assert_allclose(stacked.estimate[i], one.estimate, rtol=1e-13)
            np.testing.assert_allclose(stacked.se[i], one.se, rtol=1e-13)
    cmh = core.cmh_test(a_pad, b, c, d, mask=mask)
    est = core.mantel_haenszel(a, b, c, d, "OR", mask=mask).estimate
    _, ta = core.tarone_test(a_pad, b, c, d, np.exp(est), mask=mask)
    pet, q, _ = core.peto(a_pad, b, c, d, mask=mask)
    for i in range(4):
        m = mask[i]
        cells = a[i, m], b[i, m], c[i, m], d[i, m]
        np.testing.assert_allclose(cmh.statistic[i], core.cmh_test(*cells).statistic, rtol=1e-13)
        one_ta = core.tarone_test(*cells, np.exp(est[i]))[1]
        np.testing.assert_allclose(ta.statistic[i], one_ta.statistic, rtol=1e-12)
        assert ta.df[i] == m.sum() - 1
        one_peto, one_q, _ = core.peto(*cells)
        np.testing.assert_allclose(pet.estimate[i], one_peto.estimate, rtol=1e-13)
        np.testing.assert_allclose(q[i], one_q, rtol=1e-12)
