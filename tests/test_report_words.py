"""What a reader sees: verdicts in words, no machine output in the rendered report."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest

from ketameta import meta, subgroup
from ketameta.review.findings import participants
from ketameta.review.report.build import build_report
from ketameta.review.report.words import interval, num, ratio_interval, word
from ketameta.review.verdicts import same_split, subgroup_verdict


def effects(levels, studies=None):
    n = len(levels)
    return pd.DataFrame(
        {
            "yi": [-0.5, -0.3, -0.4, -0.1, -0.6, -0.2][:n],
            "vi": [0.04, 0.05, 0.03, 0.02, 0.05, 0.04][:n],
            "route": levels,
            "study_id": studies or [f"s{i}" for i in range(n)],
            "label": [f"Author {2000 + i}" for i in range(n)],
        }
    )


def test_a_level_with_one_study_cannot_be_answered():
    v = subgroup_verdict(
        subgroup(effects(["iv", "in", "in"]), "route"), by="route", by_words="route"
    )
    assert not v.answerable
    assert v.text == "Cannot be answered with the current evidence: iv has 1 study (Author 2000)."


def test_studies_not_comparisons_count():
    # two comparisons of one study in a level are still one study
    df = effects(["iv", "iv", "in", "in"], studies=["a", "a", "b", "c"])
    v = subgroup_verdict(subgroup(df, "route"), by="route", by_words="route")
    assert not v.answerable and "iv has 1 study" in v.text


def test_two_studies_per_level_gives_an_answer_with_its_caution():
    v = subgroup_verdict(
        subgroup(effects(["iv", "iv", "in", "in"]), "route"),
        by="route",
        by_words="route",
        level_words={"iv": "intravenous"},
    )
    assert v.answerable
    assert v.text.startswith("Answerable, with caution:")
    assert "compares different trials, not randomised groups" in v.text


def test_one_level_only_and_no_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = meta(data=effects(["iv", "iv"]))
    v = subgroup_verdict(single, by="route", by_words="route", level_words={"iv": "intravenous"})
    assert not v.answerable and "all 2 studies are intravenous" in v.text
    assert subgroup_verdict(None, by="route", by_words="route").text.startswith(
        "Cannot be answered"
    )


def test_same_split_detects_identical_partitions_only():
    a = pd.DataFrame({"record_id": ["r1", "r2", "r3"], "route": ["iv", "in", "in"]})
    b = pd.DataFrame({"record_id": ["r1", "r2", "r3"], "drug": ["rac", "esk", "esk"]})
    c = pd.DataFrame({"record_id": ["r1", "r2", "r3"], "drug": ["rac", "esk", "rac"]})
    assert same_split(a, "route", b, "drug")
    assert not same_split(a, "route", c, "drug")


def test_numbers_in_words():
    assert num(-0.0004) == "0.00" and num(-0.5) == "−0.50"
    assert interval(0.0, 100.0, upper_limit=100.0) == "[0.00, > 100]"
    assert ratio_interval(-7.0, 7.0) == "[< 0.001, > 1000]"
    assert word("placebo_spray_plus_oral_ad") == "placebo spray + oral antidepressant"
    assert word(float("nan")) == "" and word(None) == ""


def test_crossover_participants_are_counted_once():
    data = pd.DataFrame(
        {"n1": [18, 20, None], "n2": [18, 19, None], "crossover_data": ["paired", "", ""]}
    )
    assert participants(data) == (18 + 39, 1)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    index = build_report(out=tmp_path_factory.mktemp("words"))
    html = index.read_text(encoding="utf-8")
    # what a reader sees: the text outside tags and scripts (figures are images)
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:image/png;base64,[^"]+"', "", html))
    return text, html


def test_no_snake_case_enum_python_literal_or_negative_zero_in_the_report(page):
    page, _ = page
    for token in ("True", "False", "None", "nan", "NaN"):
        assert not re.search(rf"(?<![\w-]){token}(?![\w-])", page), token
    assert "-0.00" not in page and "−0.00" not in page
    enums = (
        "placebo_spray_plus_oral_ad", "saline_placebo", "racemic_ketamine", "some_concerns",
        "ketamine_vs_control", "therapy_added_to_ketamine", "parallel_rct", "crossover_rct",
        "awaiting_numbers", "bipolar_depression", "ci_low", "pi_high", "i2_ci",
    )  # fmt: skip
    for enum in enums:
        assert enum not in page, enum


def test_the_report_states_verdicts_and_limits_in_words(page):
    page, html = page
    assert "Verdict." in page and "Cannot be answered with the current evidence" in page
    assert "Stated once." in page  # drug = route in these data
    assert "Limitations" in page and "awaiting numbers" in page
    assert 'alt="PRISMA 2020 flow diagram"' in html


@pytest.mark.parametrize(
    "note,expected,absent",
    [
        (
            "controlled: meta(): the upper Q-profile bound of tau2 lies beyond metafor's search "
            "limit tau2.max = 100 and is reported as that limit (metafor prints '>').",
            "Controlled comparisons: the upper confidence limit of the between-study variance "
            "(tau²) lies beyond 100",
            "Q-profile",
        ),
        (
            "direct: Only one study ('Wilkinson 2021'): it is returned as the pooled estimate "
            "with tau2 = 0 and its z interval (knha needs k >= 2).",
            "Direct comparison: only one study (Wilkinson 2021): its own result",
            "knha",
        ),
        (
            "controlled: subgroup(): 2 studies in 2 levels of 'route': the mixed-effects model "
            "needs more studies than levels, so there is no common-tau² test",
            "with 2 studies in 2 groups of route, the groups cannot be compared by a test",
            "mixed-effects",
        ),
        (
            "controlled: something new happened",
            "Controlled comparisons: something new",
            "controlled:",
        ),
    ],
)
def test_library_notes_reach_the_page_in_plain_words(note, expected, absent):
    from ketameta.review.report.words import plain_note

    text = plain_note(note)
    assert expected in text
    assert absent not in text


def test_the_report_prints_no_library_function_names_in_its_notes(page):
    notes = re.findall(r"<p class='note'>([^<]*)", page[1])
    assert notes
    for note in notes:
        assert not re.search(r"\b(meta|subgroup|metareg)\(\)", note), note
        assert "knha" not in note and "Q-profile" not in note, note
