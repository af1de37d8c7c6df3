"""The shipped data and its validator: every problem reported at once, with row and column."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from ketameta.cli import main
from ketameta.data import bundled_path, load_screening, load_studies, validate_studies
from ketameta.exceptions import DataValidationError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_data_validates_and_every_row_has_provenance():
    studies = load_studies()
    assert len(studies) > 0
    for column in ("source", "source_location", "source_quote"):
        assert studies[column].notna().all(), column
    assert studies["record_id"].is_unique


def test_bundled_copies_equal_the_repository_files():
    for name in ("studies.csv", "screening.csv"):
        repo = hashlib.sha256((ROOT / "data" / name).read_bytes()).hexdigest()
        assert hashlib.sha256(bundled_path(name).read_bytes()).hexdigest() == repo, name


def test_every_included_study_is_in_screening():
    included = set(load_screening().query("decision == 'included'")["study_id"])
    assert set(load_studies()["study_id"]) <= included
    assert set(load_screening()["decision"]) <= {"included", "excluded", "awaiting_numbers"}


def broken_copy() -> pd.DataFrame:
    df = pd.read_csv(bundled_path(), dtype=str, keep_default_na=False)
    df.loc[0, "route"] = "nasal"
    df.loc[1, "n1"] = "0"
    df.loc[2, "sd1"] = "-3"
    df.loc[3, "events1"], df.loc[3, "n1"] = "30", "20"
    df.loc[4, "source"] = ""
    df.loc[5, "mean1"] = "123.456"
    df.loc[5, "derived"] = ""
    df.loc[6, "record_id"] = df.loc[7, "record_id"]
    return df


def test_every_problem_is_reported_at_once_with_row_column_value():
    found: dict[tuple[int, str], list[str]] = {}
    for p in validate_studies(broken_copy()):
        found.setdefault((p.row, p.column), []).append(f"{p.value}: {p.message}")
    assert "nasal: not one of: iv, intranasal, oral, im, sc, sublingual" in found[(1, "route")]
    assert any("whole number >= 1" in m for m in found[(2, "n1")])
    assert "-3.0: must not be negative" in found[(3, "sd1")]
    assert any("exceeds n1" in m for m in found[(4, "events1")])
    assert ": required value is empty" in found[(5, "source")]
    assert any("does not appear in source_quote" in m for m in found[(6, "mean1")])
    assert any("duplicate record_id" in m for m in found[(8, "record_id")])


def test_a_derived_number_need_not_appear_in_the_quote():
    df = pd.read_csv(bundled_path(), dtype=str, keep_default_na=False)
    df.loc[0, "mean1"], df.loc[0, "derived"] = "123.456", "mean1 = 2 * 61.728"
    assert not [p for p in validate_studies(df) if p.column == "mean1" and p.row == 1]


def test_load_studies_raises_with_the_problem_list(tmp_path):
    path = tmp_path / "broken.csv"
    broken_copy().to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        load_studies(path)
    assert len(info.value.problems) >= 7
    assert "column 'route'" in str(info.value)


def test_cli_validate_data_exit_codes(tmp_path, capsys):
    assert main(["validate-data"]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    path = tmp_path / "broken.csv"
    broken_copy().to_csv(path, index=False)
    assert main(["validate-data", str(path)]) == 1
    out = capsys.readouterr().out
    assert "column 'route', value 'nasal'" in out and "duplicate record_id" in out
