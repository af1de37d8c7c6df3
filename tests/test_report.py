"""The report: builds from the shipped data, deterministic, escaped, CSV-guarded."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ketameta.cli import main
from ketameta.review.config import load_config
from ketameta.review.report.build import build_report, guard_csv
from ketameta.review.studies import bundled_path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(out=out)


def test_report_has_every_section_and_is_self_contained(built):
    text = built.read_text(encoding="utf-8")
    for heading in (
        "Summary of findings",
        "Key findings",
        "Methods",
        "Results",
        "Study flow",
        "Included studies",
        "Risk of bias",
        "Ketamine vs control (all controlled comparisons)",
        "Ketamine vs control, in MADRS points",
        "Intravenous vs intranasal",
        "Ketamine alone vs ketamine with psychotherapy",
        "Racemic ketamine vs esketamine",
        "By control condition",
        "By population",
        "Response and remission",
        "Response: ketamine vs control",
        "Remission: intravenous vs intranasal",
        "Sensitivity analyses",
        "Published meta-analyses, for comparison",
        "Limitations",
        "Appendix",
        "Warnings raised while building",
    ):
        assert f">{heading}<" in text, heading
    # the summary of findings comes first, then the key findings
    assert text.index(">Summary of findings<") < text.index(">Key findings<") < text.index(
        ">Methods<"
    )
    tables = built.parent / "tables"
    for name in ("overall_MADRS_mean_difference_summary", "response_overall_summary",
                 "remission_route_excluded", "published_meta_analyses"):  # fmt: skip
        assert (tables / f"{name}.csv").exists(), name
    assert "data:image/png;base64," in text
    assert "http://" not in text and "https://" not in text.split("<body>")[0]
    assert (built.parent / "tables" / "included_studies.csv").exists()


def test_second_build_is_byte_identical(built, tmp_path):
    again = build_report(out=tmp_path)
    assert again.read_bytes() == built.read_bytes()
    for csv in (built.parent / "tables").iterdir():
        assert (tmp_path / "tables" / csv.name).read_bytes() == csv.read_bytes()


def test_text_from_the_data_is_escaped(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    studies = pd.read_csv(bundled_path(), dtype=str, keep_default_na=False)
    studies.loc[studies["study_id"] == studies["study_id"].iloc[0], "risk_of_bias_reason"] = (
        "<script>alert('x')</script>"
    )
    studies.to_csv(data_dir / "studies.csv", index=False)
    shutil.copy(bundled_path("screening.csv"), data_dir / "screening.csv")
    html = build_report(data=data_dir / "studies.csv", out=tmp_path / "out").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_csv_guard_protects_text_but_not_numbers():
    df = pd.DataFrame({"label": ["=HYPERLINK(1)", "+x", "ok"], "value": [-1.5, 2.0, 3.0]})
    guarded = guard_csv(df)
    assert guarded["label"].tolist() == ["'=HYPERLINK(1)", "'+x", "ok"]
    assert guarded["value"].tolist() == [-1.5, 2.0, 3.0]


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[analysis]\nmethod = "DL"\ntimepoint = [0.5, 2]\n')
    cfg = load_config(path)
    assert cfg.analysis.method == "DL" and cfg.analysis.timepoint == (0.5, 2.0)
    path.write_text('[analysis]\nmethd = "DL"\n')
    with pytest.raises(ValueError, match="unknown \\[analysis\\] keys \\['methd'\\]"):
        load_config(path)


def test_repository_config_file_is_valid():
    load_config(Path(__file__).resolve().parents[1] / "ketameta.toml")


def test_cli_report_pool_subgroup(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r")]) == 0
    effects = pd.DataFrame(
        {
            "yi": [-0.5, -0.2, -0.4, -0.1],
            "vi": [0.04, 0.05, 0.03, 0.02],
            "route": ["iv", "iv", "intranasal", "intranasal"],
        }
    )
    csv = tmp_path / "e.csv"
    effects.to_csv(csv, index=False)
    assert main(["pool", str(csv), "--method", "DL"]) == 0
    assert "estimate" in capsys.readouterr().out
    assert main(["subgroup", str(csv), "--by", "route", "--method", "DL"]) == 0
    assert "separate tau2" in capsys.readouterr().out
    assert main(["pool", str(csv), "--yi", "nope"]) == 1
    assert "column 'nope' not found" in capsys.readouterr().err
