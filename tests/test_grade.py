"""GRADE rules: every domain is rated on both sides of its threshold from synthetic results."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketameta import escalc, meta
from ketameta.exceptions import SingleStudyWarning
from ketameta.synthesis import grade as grade_module
from ketameta.synthesis.bias import egger_test
from ketameta.synthesis.grade import (
    DOMAINS,
    GradeAssessment,
    grade,
    plain_language,
)

LABELS = [f"S{i}" for i in range(1, 11)]


def weighted(percents, yi=-0.5):
    """Common-effect fit whose study weights are exactly ``percents`` (vi = 1/percent)."""
    percents = np.asarray(percents, dtype=float)
    k = len(percents)
    res = meta([yi] * k, 1.0 / percents, method="EE", labels=LABELS[:k])
    assert np.allclose(res.weights, 100 * percents / percents.sum())
    return res


def heterogeneous(i2, centre, v=0.04):
    """DL fit of 4 equally precise studies with I² = ``i2`` (fraction) around ``centre``."""
    d = np.array([-1.5, -0.5, 0.5, 1.5])
    c = math.sqrt(3 / (1 - i2) * v / (d**2).sum())
    res = meta(centre + c * d, [v] * 4, method="DL", labels=LABELS[:4])
    assert res.i2 == pytest.approx(100 * i2)
    return res


def precise(est, se, k=4, **kw):
    """Common-effect fit with estimate ``est`` and standard error ``se`` (I² = 0)."""
    res = meta([est] * k, [k * se**2] * k, method="EE", labels=LABELS[:k], **kw)
    assert res.se == pytest.approx(se)
    return res


def single(yi, vi):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingleStudyWarning)
        return meta([yi], [vi], labels=["Only"])


def rating(g, domain):
    return g.domain(domain).downgrade


# ---------------------------------------------------------------- risk of bias


@pytest.mark.parametrize(
    ("percents", "rob", "expected"),
    [
        ([26, 24, 25, 25], ["high", "low", "low", "low"], 1),  # high 26% > 25%
        ([24, 26, 25, 25], ["high", "low", "low", "low"], 0),  # high 24%
        ([10, 41, 25, 24], ["high", "some_concerns", "low", "low"], 1),  # high + some 51%
        ([10, 39, 25, 26], ["high", "some_concerns", "low", "low"], 0),  # high + some 49%
        ([51, 19, 15, 15], ["high", "low", "low", "low"], 2),  # high 51% > 50%
        ([49, 21, 15, 15], ["high", "low", "low", "low"], 1),  # high 49%: one level only
        ([30, 30, 30, 10], ["some_concerns"] * 3 + ["low"], 1),  # some concerns alone 90%
        ([20, 20, 30, 30], ["some concerns", "Unclear", "low", "low"], 0),  # synonyms, 40%
    ],
)
def test_risk_of_bias_thresholds(percents, rob, expected):
    g = grade(weighted(percents), risk_of_bias=rob, information=1000)
    assert rating(g, "risk_of_bias") == expected


def test_risk_of_bias_mapping_and_data_column():
    res = weighted([30, 70])
    by_label = grade(res, risk_of_bias={"S1": "high", "S2": "low", "other": "high"})
    assert rating(by_label, "risk_of_bias") == 1
    assert "30% of the weight" in by_label.domain("risk_of_bias").reason
    df = pd.DataFrame({"yi": [-0.5, -0.5], "vi": [1 / 30, 1 / 70],
                       "risk_of_bias": ["low", "high"]})
    from_column = grade(meta(data=df, method="EE"))
    assert rating(from_column, "risk_of_bias") == 2  # 70% at high risk


def test_risk_of_bias_absent_or_invalid():
    res = weighted([50, 50])
    none = grade(res).domain("risk_of_bias")
    assert (none.downgrade, none.assessed) == (0, False)
    with pytest.raises(ValueError, match="no entry"):
        grade(res, risk_of_bias={"S1": "low"})
    with pytest.raises(ValueError, match="low/some_concerns/high"):
        grade(res, risk_of_bias=["low", "dreadful"])
    with pytest.raises(ValueError, match="3 entries for 2 studies"):
        grade(res, risk_of_bias=["low", "low", "low"])


# ---------------------------------------------------------------- inconsistency


@pytest.mark.parametrize(
    ("i2", "centre", "expected"),
    [
        (0.49, 0.05, 0),  # PI crosses the null, I² below 50%
        (0.51, 0.05, 1),  # I² 51%, PI crosses, both sides, below 75%
        (0.51, 1.00, 0),  # I² 51% but the PI excludes the null
        (0.74, 0.05, 1),  # both sides but I² below 75%
        (0.76, 0.05, 2),  # I² 76%, PI crosses, estimates on both sides
        (0.80, 0.60, 1),  # I² 80%, PI crosses, all estimates on one side
    ],
)
def test_inconsistency_thresholds(i2, centre, expected):
    res = heterogeneous(i2, centre)
    if centre == 0.60:
        assert res.pi_low < 0 < res.pi_high and np.all(res.yi > 0)
    if centre == 1.00:
        assert res.pi_low > 0
    assert rating(grade(res), "inconsistency") == expected


def test_single_study_inconsistency_not_assessable():
    g = grade(single(-0.8, 0.01), information=1000)
    dom = g.domain("inconsistency")
    assert (dom.downgrade, dom.assessed) == (0, False)
    assert any("single study: inconsistency cannot be assessed" in f for f in g.footnotes())


# ---------------------------------------------------------------- imprecision


@pytest.mark.parametrize(
    ("est", "info", "expected"),
    [
        (-0.5, 400, 0),  # CI excludes the null, OIS met (400 is not below 400)
        (-0.5, 399, 1),  # OIS not met alone
        (-0.1, 400, 1),  # CI includes the null alone
        (-0.1, 399, 2),  # CI includes the null and OIS not met
    ],
)
def test_imprecision_null_and_ois(est, info, expected):
    res = precise(est, 0.1)
    assert (res.ci_low <= 0 <= res.ci_high) == (est == -0.1)
    assert rating(grade(res, information=info), "imprecision") == expected


def test_imprecision_reads_sample_size_from_data_and_custom_ois():
    df = pd.DataFrame({"yi": [-0.5] * 2, "vi": [0.02] * 2, "n1": [100, 100], "n2": [100, 99]})
    res = meta(data=df, method="EE")
    assert rating(grade(res), "imprecision") == 1  # 399 participants
    df.loc[1, "n2"] = 100
    assert rating(grade(meta(data=df, method="EE")), "imprecision") == 0
    assert rating(grade(meta(data=df, method="EE"), ois=401), "imprecision") == 1
    unknown = grade(precise(-0.5, 0.1)).domain("imprecision")
    assert unknown.downgrade == 0 and "OIS not checked" in unknown.reason


@pytest.mark.parametrize(
    ("est", "expected"),
    [
        (-0.60, 0),  # CI (-0.80, -0.40) entirely beyond -MID (-0.3)
        (-0.40, 1),  # CI (-0.60, -0.20) includes -MID on the side of the estimate
        (-0.15, 1),  # CI (-0.35, 0.05) includes the null and -MID only
        (-0.05, 1),  # CI (-0.25, 0.15) includes the null, no MID: one level
    ],
)
def test_imprecision_mid_one_side(est, expected):
    res = precise(est, 0.2 / 1.959964)
    assert rating(grade(res, mid=0.3, information=1000), "imprecision") == expected


def test_imprecision_mid_both_sides_and_trivial_range():
    wide = precise(0.0, 0.2)  # CI (-0.39, 0.39) includes -0.3 and +0.3
    assert rating(grade(wide, mid=0.3, information=1000), "imprecision") == 2
    assert rating(grade(wide, mid=0.5, information=1000), "imprecision") == 1
    trivial = precise(-0.1, 0.02)  # CI (-0.14, -0.06): precisely trivial
    assert rating(grade(trivial, mid=0.3, information=1000), "imprecision") == 0
    with pytest.raises(ValueError, match="non-zero"):
        grade(trivial, mid=0)


def test_imprecision_single_study():
    wide = single(-0.2, 0.04)  # CI includes the null
    assert rating(grade(wide, information=1000), "imprecision") == 2
    tight = single(-0.5, 0.01)
    assert rating(grade(tight, information=1000), "imprecision") == 0
    assert grade(tight, information=1000).domain("imprecision").reason.startswith("single study")


def risk_ratio(events1, events2, n=500, k=4):
    d = escalc("RR", events1=[events1] * k, n1=[n] * k, events2=[events2] * k, n2=[n] * k)
    return meta(data=d, method="EE")


def test_ratio_measures_on_the_log_scale():
    helps = risk_ratio(60, 40)  # RR 1.5, CI excludes 1 (log 0)
    assert helps.measure == "RR" and helps.ci_low > 0
    assert rating(grade(helps, outcome="binary"), "imprecision") == 0  # 400 events >= 300
    assert rating(grade(helps, outcome="binary", ois=401), "imprecision") == 1
    null = risk_ratio(42, 40)  # RR 1.05: CI includes 1
    assert null.ci_low < 0 < null.ci_high
    assert rating(grade(null, outcome="binary"), "imprecision") == 1
    # MID as a ratio: 1.25 (log 0.223) lies inside the CI of RR 1.5 only if the CI reaches it
    assert math.exp(helps.ci_low) < 1.25 < math.exp(helps.estimate)
    assert rating(grade(helps, outcome="binary", mid=1.25), "imprecision") == 1
    assert rating(grade(helps, outcome="binary", mid=0.8), "imprecision") == 1  # symmetric
    assert rating(grade(helps, outcome="binary", mid=1.1), "imprecision") == 0
    with pytest.raises(ValueError, match="ratio"):
        grade(helps, mid=1.0)


def test_binary_events_below_default_ois():
    few = risk_ratio(60, 30, k=2)  # 180 events < 300, CI excludes the null
    assert few.ci_low > 0
    assert rating(grade(few, outcome="binary"), "imprecision") == 1
    assert rating(grade(few), "imprecision") == 0  # continuous: 2000 participants


# ---------------------------------------------------------------- indirectness


def test_indirectness_by_weight():
    res = weighted([51, 49])
    g = grade(res, indirect=["post hoc subgroup", ""])
    assert rating(g, "indirectness") == 1
    assert "post hoc subgroup (S1)" in g.domain("indirectness").reason
    assert any("post hoc subgroup" in f for f in g.footnotes())
    assert rating(grade(res, indirect=[None, "other population"]), "indirectness") == 0
    assert rating(grade(res, indirect={"S1": "secondary source"}), "indirectness") == 1
    assert rating(grade(res, indirect={"S2": "secondary source"}), "indirectness") == 0
    assert rating(grade(res), "indirectness") == 0


# ---------------------------------------------------------------- publication bias


def test_publication_bias_needs_ten_studies():
    nine = weighted([10] * 9)
    dom = grade(nine, small_study_p=0.001).domain("publication_bias")
    assert (dom.downgrade, dom.assessed) == (0, False)
    assert "not assessed (fewer than 10 studies)" in dom.reason
    ten = weighted([10] * 10)
    assert rating(grade(ten, small_study_p=0.09), "publication_bias") == 1
    assert rating(grade(ten, small_study_p=0.10), "publication_bias") == 0


def test_publication_bias_computes_egger_when_not_given():
    se = np.linspace(0.05, 0.5, 10)
    asym = meta(-0.1 - 2.0 * se, se**2, method="DL")  # effects grow with the standard error
    assert egger_test(asym).pvalue < 0.10
    dom = grade(asym).domain("publication_bias")
    assert dom.downgrade == 1 and "Egger" in dom.reason
    rng = np.random.default_rng(1)
    sym = meta(-0.3 + rng.permutation([-1, 1] * 5) * 0.01, se**2, method="DL")
    assert egger_test(sym).pvalue >= 0.10
    assert rating(grade(sym), "publication_bias") == 0


# ---------------------------------------------------------------- certainty, overrides


def test_certainty_levels_and_floor():
    res = weighted([26, 24, 25, 25])
    ok = dict(information=1000)
    assert grade(res, **ok).certainty == "high"
    assert grade(res, risk_of_bias=["high", "low", "low", "low"], **ok).certainty == "moderate"
    assert grade(res, risk_of_bias=["high"] * 4, **ok).certainty == "low"
    assert grade(res, risk_of_bias=["high"] * 4, start="low", **ok).certainty == "very low"
    assert grade(res, start="low", **ok).certainty == "low"
    every = {d: (2, "judged very serious") for d in DOMAINS}
    floored = grade(res, overrides=every, **ok)
    assert floored.total_downgrade == 10 and floored.certainty == "very low"
    with pytest.raises(ValueError, match="start"):
        grade(res, start="excellent")


def test_override_keeps_rule_override_and_reason():
    res = precise(-0.1, 0.1)  # CI includes the null: the rule gives one level
    g = grade(res, information=1000,
              overrides={"imprecision": (0, "the CI excludes any important effect")})
    dom = g.domain("imprecision")
    assert (dom.rule_downgrade, dom.downgrade, dom.overridden) == (1, 0, True)
    assert dom.override_reason == "the CI excludes any important effect"
    assert g.certainty == "high"
    note = next(f for f in g.footnotes() if f.startswith("Imprecision"))
    assert "rule gave one level" in note and "overridden to no" in note
    assert "the CI excludes any important effect" in note and "includes no effect" in note
    row = g.summary().loc["imprecision"]
    assert row["rule_downgrade"] == 1 and row["downgrade"] == 0 and bool(row["overridden"])


def test_override_validation():
    res = weighted([50, 50])
    with pytest.raises(ValueError, match="unknown override"):
        grade(res, overrides={"imprecise": (1, "x")})
    with pytest.raises(ValueError, match="0, 1 or 2"):
        grade(res, overrides={"imprecision": (3, "x")})
    with pytest.raises(ValueError, match="0, 1 or 2"):
        grade(res, overrides={"imprecision": (True, "x")})
    with pytest.raises(ValueError, match="needs a reason"):
        grade(res, overrides={"imprecision": (1, "  ")})


def test_footnotes_one_per_downgrade_and_displays():
    res = weighted([26, 24, 25, 25])
    clean = grade(res, information=1000, risk_of_bias=["low"] * 4)
    assert clean.footnotes() == ["Publication bias: not assessed (fewer than 10 studies)."]
    g = grade(res, risk_of_bias=["high", "low", "low", "low"], information=300)
    notes = g.footnotes()
    assert len(notes) == 3  # risk of bias, imprecision (OIS), publication bias not assessed
    assert notes[0].startswith("Risk of bias: downgraded one level: 26% of the weight")
    assert isinstance(g, GradeAssessment) and g.certainty == "low"
    table = g.summary()
    assert list(table.index) == list(DOMAINS) and table.attrs["certainty"] == "low"
    text = str(g)
    assert text.splitlines()[0].startswith("GRADE certainty: low") and len(text.splitlines()) == 6
    assert "<table" in g._repr_html_() and "GRADE certainty: low" in g._repr_html_()
    with pytest.raises(AttributeError):
        g.certainty = "high"


# ---------------------------------------------------------------- plain language


@pytest.mark.parametrize(
    ("level", "start"),
    [
        ("high", "Ketamine reduces depression scores"),
        ("moderate", "Ketamine probably reduces depression scores"),
        ("low", "Ketamine may reduce depression scores"),
        ("very low", "We are very uncertain whether ketamine reduces depression scores"),
    ],
)
def test_plain_language_verbs(level, start):
    res = precise(-0.5, 0.1)
    sentence = plain_language(res, level, outcome_name="depression scores")
    assert sentence == f"{start} compared with control ({level}-certainty evidence)."


def test_plain_language_sizes_direction_and_null():
    res = precise(-0.5, 0.1)
    say = lambda r, **kw: plain_language(r, "moderate", outcome_name="scores", **kw)  # noqa: E731
    assert " reduces scores slightly " in say(res, mid=0.6)
    assert " reduces scores compared" in say(res, mid=0.4)
    assert " reduces scores substantially " in say(res, mid=0.25)
    assert "increases" in say(precise(0.5, 0.1))
    null = precise(-0.1, 0.1)
    assert say(null) == ("Ketamine probably makes little or no difference to scores compared "
                         "with control (moderate-certainty evidence).")
    assert "may make little or no difference" in plain_language(null, "low", outcome_name="x")
    assert plain_language(null, "very low", outcome_name="x").startswith("We are very uncertain")
    g = grade(res, information=100)
    assert "(moderate-certainty evidence)" in plain_language(res, g, outcome_name="x")
    rr = risk_ratio(60, 40)
    assert plain_language(rr, "low", outcome_name="response", mid=2.0).startswith(
        "Ketamine may increase response slightly compared")  # log 1.5 < log 2
    assert " increase response compared" in plain_language(rr, "low", outcome_name="response",
                                                          mid=1.25)
    with pytest.raises(ValueError, match="certainty"):
        plain_language(res, "certain", outcome_name="x")


def test_module_does_not_import_the_review():
    tree = ast.parse(Path(grade_module.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(name.startswith("ketameta.review") for name in names)
    assert "ketameta.synthesis.bias" in names  # the walk sees the lazy import
