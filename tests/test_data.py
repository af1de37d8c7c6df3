"""The studies validator and loader, on synthetic tables (clearly fake ids ``test_*``), the CLI,
and the shipped data (checked only once ``data/studies.csv`` exists)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ketameta.cli import main
from ketameta.exceptions import DataValidationError
from ketameta.review.studies import (
    SCHEMA,
    bundled_path,
    derived_columns,
    load_screening,
    load_studies,
    quote_numbers,
    validate_studies,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "studies.csv"
needs_shipped = pytest.mark.skipif(
    not SHIPPED.exists(), reason="data/studies.csv not written yet by the data curators"
)

COMMON = dict(
    first_author="Test",
    year="2020",
    design="parallel_rct",
    source_type="primary",
    blinding="double_blind",
    condition="trd",
    drug="racemic_ketamine",
    route="iv",
    psychotherapy="none",
    psychotherapy_both_arms="na",
    comparator="saline_placebo",
    contrast="ketamine_vs_control",
    outcome_construct="depression",
    scale="MADRS",
    direction="lower_is_better",
    outcome_type="endpoint",
    timepoint_label="day 1",
    primary="true",
    source="doi:10.0000/fake",
    source_location="Table 2",
    risk_of_bias="low",
)
ROWS = [
    dict(  # two arms, means and SDs; the SDs of arm 2 are derived
        study_id="test_a",
        record_id="test_a_madrs",
        n1="30",
        mean1="-12.0",
        sd1="7.5",
        n2="1204",
        mean2="-5",
        sd2="6.93",
        se2="0.2",
        source_quote="ketamine (n = 30) −12 (SD 7.50); placebo (n = 1,204) −5.0 (SE .2)",
        derived="sd2 = se2 * sqrt(n2)",
    ),
    dict(  # events and a reported ratio with a range-hyphen interval
        study_id="test_b",
        record_id="test_b_response",
        outcome_type="response",
        n1="20",
        events1="9",
        n2="21",
        events2="4",
        effect_type="RR",
        effect="2.36",
        effect_ci_low="0.86",
        effect_ci_high="6.5",
        ci_level="95",
        source_quote="9/20 vs 4/21 responded (RR 2.36, 95% CI 0.86-6.50)",
    ),
    dict(  # single arm, pre-post
        study_id="test_c",
        record_id="test_c_prepost",
        design="single_arm",
        comparator="none",
        contrast="prepost",
        n1="12",
        mean1="14.2",
        sd1="6.1",
        baseline_mean1="31.5",
        baseline_sd1="5.4",
        source_quote="MADRS fell from 31.5 ± 5.4 to 14.2 ± 6.1 (n=12)",
    ),
]


def fake_studies() -> pd.DataFrame:
    rows = [{column: "" for column in SCHEMA} | COMMON | row for row in ROWS]
    return pd.DataFrame(rows, columns=list(SCHEMA))


def write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def found(df: pd.DataFrame) -> set[tuple[int, str, str]]:
    return {(p.row, p.column, p.value) for p in validate_studies(df)}


def test_a_valid_table_has_no_problems_and_loads_typed(tmp_path):
    assert validate_studies(fake_studies()) == []
    studies = load_studies(write(fake_studies(), tmp_path / "studies.csv"))
    assert studies["n1"].tolist() == [30, 20, 12]
    assert studies["primary"].tolist() == [True, True, True]
    assert pd.isna(studies.loc[2, "n2"])  # empty = not reported
    assert studies["effect"].iloc[1] == pytest.approx(2.36)


def test_every_problem_is_reported_at_once_with_row_column_value():
    df = fake_studies()
    df.loc[0, "route"] = "nasal"
    df.loc[0, "sd1"] = "-7.5"  # also not in the quote with that sign
    df.loc[1, "n1"] = "0"
    df.loc[1, "events2"] = "25"  # > n2 = 21, and not in the quote
    df.loc[2, "source"] = ""
    df.loc[2, "mean1"] = "14.3"  # not in the quote, not derived
    df.loc[2, "record_id"] = "test_a_madrs"
    assert found(df) == {
        (1, "route", "nasal"),
        (1, "sd1", "-7.5"),  # must be >= 0
        (2, "n1", "0"),
        (2, "events1", "9"),  # now exceeds n1
        (2, "events2", "25"),
        (3, "source", ""),
        (3, "mean1", "14.3"),
        (3, "record_id", "test_a_madrs"),
    }
    messages = {(p.row, p.column): [] for p in validate_studies(df)}
    for p in validate_studies(df):
        messages[(p.row, p.column)].append(p.message)
    assert messages[(1, "route")] == ["not one of: iv, intranasal, oral, im, sc, sublingual"]
    assert sorted(messages[(1, "sd1")])[0] == "must be >= 0"
    assert any("not found in source_quote" in m for m in messages[(1, "sd1")])
    assert messages[(2, "n1")][0] == "must be >= 1"
    assert messages[(2, "events2")][0] == "exceeds n2 (21)"
    assert messages[(3, "source")] == ["required value is empty"]
    assert messages[(3, "record_id")] == ["duplicate record_id (first in row 1)"]
    assert [p.record_id for p in validate_studies(df) if p.row == 2][0] == "test_b_response"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("n1", "2.5", "must be a whole number"),
        ("n1", "ten", "not a number"),
        ("prepost_r", "1.2", "must be <= 1"),
        ("primary", "yes", "must be true or false"),
        ("contrast", "ketamine_vs_placebo", "not one of"),
        ("year", "", "required value is empty"),
        ("effect_se", "-0.1", "must be >= 0"),
    ],
)
def test_column_rules(column, value, message):
    df = fake_studies()
    df.loc[1, column] = value
    problems = [p for p in validate_studies(df) if (p.row, p.column) == (2, column)]
    assert problems and problems[0].message.startswith(message) and problems[0].value == value


def test_events_below_zero_and_ci_order():
    df = fake_studies()
    df.loc[1, "events1"] = "-1"
    df.loc[1, "effect_ci_low"], df.loc[1, "effect_ci_high"] = "6.5", "0.86"
    problems = {(p.column, p.message) for p in validate_studies(df)}
    assert ("events1", "must be >= 0") in problems
    assert ("effect_ci_low", "above effect_ci_high") in problems


def test_single_arm_record_has_no_arm_two_numbers():
    df = fake_studies()
    df.loc[2, "n2"], df.loc[2, "source_quote"] = "12", df.loc[2, "source_quote"] + "; 12"
    assert found(df) == {(3, "n2", "12")}


def test_missing_and_unknown_columns():
    df = fake_studies().drop(columns=["source_quote"]).assign(extra="x")
    problems = {(p.row, p.column, p.message) for p in validate_studies(df)}
    assert (0, "source_quote", "required column is missing") in problems
    assert (0, "extra", "unknown column (not in data/README.md)") in problems


def test_quote_numbers_are_compared_with_normalised_text():
    # "−12" (U+2212) = -12.0, "7.50" = 7.5, "1,204" = 1204, ".2" = 0.2, "-5.0" = -5
    assert validate_studies(fake_studies()) == []
    assert {-12.0, 7.5, 1204.0, 0.2, -5.0} <= quote_numbers(ROWS[0]["source_quote"])
    # a range hyphen is not a minus sign; a minus sign after "(" or "[" is
    assert {0.86, 6.5} <= quote_numbers("95% CI 0.86-6.50")
    assert -6.5 not in quote_numbers("95% CI 0.86-6.50")
    assert {-0.55, 1.82} <= quote_numbers("d = 0.65 [–0.55 to 1.82]")
    df = fake_studies()
    df.loc[0, "mean1"] = "12.0"  # the quote prints −12: a dropped sign is caught
    assert found(df) == {(1, "mean1", "12.0")}


def test_only_the_columns_derived_assigns_are_exempt():
    assert derived_columns("sd1 = se1 * sqrt(n1); events2 = round(0.1 * 21)") == {"sd1", "events2"}
    df = fake_studies()
    df.loc[0, "sd1"], df.loc[0, "se1"] = "8.1", "1.48"
    df.loc[0, "derived"] = "sd1 = se1 * sqrt(n1); sd2 = se2 * sqrt(n2)"
    assert found(df) == {(1, "se1", "1.48")}  # se1 appears in the formula but is not derived


def test_load_studies_raises_with_every_problem(tmp_path):
    df = fake_studies()
    df.loc[0, "route"], df.loc[1, "n1"] = "nasal", "0"
    with pytest.raises(DataValidationError) as info:
        load_studies(write(df, tmp_path / "broken.csv"))
    rows = {(p["row"], p["column"], p["value"]) for p in info.value.problems}
    assert rows == {(1, "route", "nasal"), (2, "n1", "0"), (2, "events1", "9")}
    assert "row 1 (test_a_madrs), column 'route', value 'nasal'" in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_studies(tmp_path / "absent.csv")


def test_cli_validate_data_exit_codes(tmp_path, capsys):
    good = write(fake_studies(), tmp_path / "good.csv")
    assert main(["validate-data", str(good)]) == 0
    assert capsys.readouterr().out.startswith("OK: 3 records from 3 studies")
    df = fake_studies()
    df.loc[0, "route"], df.loc[2, "sd1"] = "nasal", "-6.1"
    assert main(["validate-data", str(write(df, tmp_path / "bad.csv"))]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    assert "row 1 (test_a_madrs), column 'route', value 'nasal': not one of" in out
    assert "row 3 (test_c_prepost), column 'sd1', value '-6.1': must be >= 0" in out
    assert main(["validate-data", str(tmp_path / "absent.csv")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert main(["validate-data", str(tmp_path / "empty.csv")]) == 1


def test_bundled_file_lives_inside_the_package():
    # importlib.resources finds it in a source checkout and in an installed wheel alike;
    # pyproject.toml ships "review/_data/*.csv" as package data
    import ketameta

    package = Path(ketameta.__file__).parent
    assert bundled_path() == package / "review" / "_data" / "studies.csv"
    assert "review/_data/*.csv" in (ROOT / "pyproject.toml").read_text()


@needs_shipped
def test_package_data_are_links_to_the_files_in_data():
    # one copy: the package's entries point at data/, so editing data/studies.csv changes the
    # report, and the copies cannot diverge
    for name in ("studies.csv", "screening.csv", "published_meta_analyses.csv"):
        entry = bundled_path(name)
        assert entry.is_symlink(), f"{entry} must be a link to data/{name}"
        assert entry.resolve() == (ROOT / "data" / name).resolve()


@needs_shipped
def test_shipped_data_validates():
    problems = validate_studies(pd.read_csv(SHIPPED, dtype=str, keep_default_na=False))
    assert not problems, "\n".join(str(p) for p in problems)
    studies = load_studies()
    assert len(studies) > 0 and studies["record_id"].is_unique
    assert main(["validate-data", str(SHIPPED)]) == 0


@needs_shipped
def test_every_included_study_is_in_screening():
    screening = load_screening()
    assert set(screening["decision"]) <= {"included", "excluded", "awaiting_numbers"}
    assert set(load_studies()["study_id"]) <= set(
        screening.loc[screening["decision"] == "included", "study_id"]
    )


def test_crossover_and_overlap_fields_are_checked():
    df = fake_studies()
    df.loc[0, "design"] = "crossover_rct"  # must say which crossover data it holds
    df.loc[1, "crossover_data"] = "paired"  # only for crossover trials
    df.loc[2, "duplicate_of"] = "nosuchstudy"
    df.loc[2, "source_type"] = "review"
    assert found(df) == {
        (1, "crossover_data", ""),
        (2, "crossover_data", "paired"),
        (3, "duplicate_of", "nosuchstudy"),
        (3, "source_type", "review"),
    }
    df.loc[0, "crossover_data"] = "first_period"
    df.loc[1, "crossover_data"] = ""
    df.loc[2, ["duplicate_of", "source_type"]] = [df.loc[0, "study_id"], "secondary"]
    assert found(df) == set()
