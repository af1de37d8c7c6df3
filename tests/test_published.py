"""Published meta-analytic results: validated like studies.csv, shipped with the package."""

import html
import math
from pathlib import Path

import pandas as pd
import pytest

from ketameta.exceptions import DataValidationError
from ketameta.review.published import COLUMNS, load_published, validate_published
from ketameta.review.studies import bundled_path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "published_meta_analyses.csv"
needs_shipped = pytest.mark.skipif(not SHIPPED.exists(), reason="needs a source checkout")


@needs_shipped
def test_shipped_table_validates_and_is_bundled_byte_identical():
    raw = pd.read_csv(SHIPPED, dtype=str, keep_default_na=False)
    assert validate_published(raw) == []
    assert bundled_path("published_meta_analyses.csv").read_bytes() == SHIPPED.read_bytes()
    table = load_published()
    assert table["record_id"].is_unique and len(table) == len(raw)
    assert (table["ci_low"] <= table["estimate"]).all()
    assert (table["estimate"] <= table["ci_high"]).all()


def _broken(tmp_path, changes):
    raw = pd.read_csv(bundled_path("published_meta_analyses.csv"), dtype=str,
                      keep_default_na=False)  # fmt: skip
    for (row, column), value in changes.items():
        raw.loc[row, column] = value
    path = tmp_path / "broken.csv"
    raw.to_csv(path, index=False)
    return path


def test_every_problem_is_listed_with_row_and_column(tmp_path):
    path = _broken(
        tmp_path,
        {
            (0, "estimate"): "2.15",  # not in the quote
            (1, "measure"): "HR",  # not a known measure
            (2, "source_quote"): "",  # required
            (3, "record_id"): "an2021_madrs_d28",  # duplicate of row 5
        },
    )
    with pytest.raises(DataValidationError) as err:
        load_published(path)
    where = {(p["row"], p["column"]) for p in err.value.problems}
    assert {(1, "estimate"), (2, "measure"), (3, "source_quote"), (5, "record_id")} <= where
    assert "number not printed in source_quote" in str(err.value)


def test_estimate_outside_its_interval_is_refused():
    row = {c: "" for c in COLUMNS}
    row.update(ma_id="m", record_id="m_1", first_author="A", year="2020", title="T",
               comparison="c", outcome="o", measure="SMD_g", estimate="0.9", ci_low="0.1",
               ci_high="0.5", favours_ketamine="positive", source="s", source_location="l",
               source_quote="g = 0.9 (0.1, 0.5)")  # fmt: skip
    problems = validate_published(pd.DataFrame([row]))
    assert [(p.column, p.message) for p in problems] == [
        ("estimate", "not inside [ci_low, ci_high]")
    ]


def test_missing_and_unknown_columns_are_named():
    problems = validate_published(pd.DataFrame({"ma_id": ["x"], "surprise": [1]}))
    messages = {(p.column, p.message) for p in problems}
    assert ("surprise", "unknown column") in messages and ("estimate", "column missing") in messages


def test_report_section_shows_every_published_result_as_printed():
    from types import SimpleNamespace

    from ketameta import escalc, meta
    from ketameta.review.report.published_section import published_section

    tables = {}
    overall = SimpleNamespace(controlled=meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    html_text = html.unescape(
        published_section(overall, tables, lambda rows, columns: str(rows))
    )
    table = tables["published_meta_analyses"]
    assert len(table) == len(load_published())
    assert "-0.63 [-0.80, -0.45]" in table["estimate [95% CI]"].tolist()  # as printed
    assert "This review" in html_text and "k = 3" in html_text and "Hedges' g" in html_text
    assert "SMD (Cohen's d)" in html_text  # measures in words
    ratio = meta(data=escalc("RR", events1=[4, 6], n1=[20, 20], events2=[2, 3], n2=[20, 20]))
    line = published_section(SimpleNamespace(controlled=ratio), {}, lambda rows, columns: "")
    low = f"{math.exp(ratio.ci_low):.2f}".replace("-", "−")
    assert f"{math.exp(ratio.estimate):.2f} [{low}," in line
    assert "RR, above 1 favours ketamine" in line
    none = published_section(SimpleNamespace(controlled=None), {}, lambda rows, columns: "")
    assert "no controlled comparison" in none
