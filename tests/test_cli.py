"""The ``ketameta`` command line: options, help texts, output files and one-line errors."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
import pytest

import ketameta as km
from ketameta import cli
from ketameta.cli import main

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "data" / "studies.csv"

EFFECTS = pd.DataFrame(
    {
        "study": ["Berman 2000", "Zarate 2006", "Murrough 2013", "Fava 2020", "Su 2017"],
        "yi": [-1.10, -0.85, -0.52, -0.36, -0.61],
        "vi": [0.37, 0.11, 0.015, 0.018, 0.064],
        "route": ["iv", "iv", "iv", "intranasal", "intranasal"],
        "author": ["Berman", "Zarate", "Murrough", "Fava", "Su"],
    }
)


@pytest.fixture
def effects_csv(tmp_path):
    path = tmp_path / "effects.csv"
    EFFECTS.to_csv(path, index=False)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def api(**options):
    return km.meta(data=EFFECTS, labels="study", **options)


def assert_error(code, out, err, *fragments):
    assert code == 1
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ketameta: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# ------------------------------------------------------------------- version and help


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"ketameta {km.__version__}"


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["pool", "subgroup", "validate-data", "report"])
def test_every_option_has_a_help_line_with_its_default(command):
    sub = _subparsers(cli._parser())[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.dest} has no help"
        if action.option_strings or action.nargs == "?":
            assert "default" in action.help or action.required, (command, action.dest)


def test_every_subcommand_has_a_help_line():
    parser = cli._parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    assert set(helps) == {"pool", "subgroup", "validate-data", "report"}
    assert all(helps.values())


def test_pool_help_shows_defaults(capsys):
    code, out, _ = run(capsys, "pool", "--help")
    assert code == 0
    for text in (
        "(default: yi)", "(default: vi)", "(default: REML)", "(default: z)",
        "(default: 95)", "--labels", "--measure", "--out", "--plot", ".json",
    ):  # fmt: skip
        assert text in out, text


def test_subgroup_and_report_help_show_defaults(capsys):
    code, out, _ = run(capsys, "subgroup", "--help")
    assert code == 0 and "(default: separate)" in out and "--by" in out
    code, out, _ = run(capsys, "report", "--help")
    assert code == 0 and "(default: build/report)" in out and "--quiet" in out
    code, out, _ = run(capsys, "validate-data", "--help")
    assert code == 0 and "default: the bundled data/studies.csv" in out


def test_top_level_help_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("pool", "subgroup", "validate-data", "report", "--version"):
        assert name in out


def test_help_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys; from ketameta.cli import _parser; _parser().format_help(); "
        "print('ketameta.review.report.build' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False"


# ------------------------------------------------------------------- pool


def test_pool_prints_a_metafor_like_block(capsys, effects_csv):
    code, out, err = run(capsys, "pool", effects_csv)
    assert code == 0 and err == ""
    res = api()
    assert "Random-Effects Model (k = 5; tau^2 estimator: REML)" in out
    assert "Test for Heterogeneity:" in out
    assert f"Q(df = 4) = {res.q:.4f}" in out
    assert "estimate" in out and "zval" in out and "ci.lb" in out
    assert f"{res.estimate:.4f}" in out and f"{res.ci_low:.4f}" in out
    assert f"{res.tau2:.4f}" in out
    assert f"[{res.pi_low:.4f}, {res.pi_high:.4f}]" in out
    assert "study labels: column 'study'" in out


@pytest.mark.parametrize("method", ["DL", "PM", "EE"])
def test_pool_method(capsys, effects_csv, method):
    code, out, _ = run(capsys, "pool", effects_csv, "--method", method)
    assert code == 0
    assert f"{api(method=method).estimate:.4f}" in out
    if method == "EE":
        assert "Equal-Effects Model (k = 5)" in out and "tau^2 (" not in out
    else:
        assert f"tau^2 estimator: {method}" in out


def test_pool_test_knha(capsys, effects_csv):
    code, out, _ = run(capsys, "pool", effects_csv, "--test", "knha")
    res = api(test="knha")
    assert code == 0 and "tval" in out and "df" in out and "test: knha" in out
    assert f"{res.ci_low:.4f}" in out and f"{res.se:.4f}" in out


def test_pool_level(capsys, effects_csv):
    code, out, _ = run(capsys, "pool", effects_csv, "--level", "90")
    res = api(level=90)
    assert code == 0 and "90% CI" in out
    assert f"{res.ci_low:.4f}" in out and f"{res.ci_high:.4f}" in out


def test_pool_measure_ratio_is_back_transformed(capsys, effects_csv):
    code, out, _ = run(capsys, "pool", effects_csv, "--measure", "rr")
    res = api(measure="RR")
    assert code == 0 and "Model Results (RR;" in out
    assert f"RR {math.exp(res.estimate):.4f}" in out


def test_pool_labels_option(capsys, effects_csv, tmp_path):
    one = tmp_path / "one.csv"
    EFFECTS.iloc[:1].to_csv(one, index=False)
    code, out, err = run(capsys, "pool", one, "--labels", "author")
    assert code == 0 and "column 'author'" in out
    assert "ketameta: warning: Only one study ('Berman')" in err


@pytest.mark.parametrize("column", ["study", "label", "study_label"])
def test_pool_uses_a_study_name_column(capsys, tmp_path, column):
    path = tmp_path / "one.csv"
    EFFECTS.iloc[:1].rename(columns={"study": column}).to_csv(path, index=False)
    code, out, err = run(capsys, "pool", path)
    assert code == 0
    assert "Only one study ('Berman 2000')" in err and "('0')" not in err
    # warnings: once, one line, not Python's warning format
    warning_lines = [line for line in err.splitlines() if line]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("ketameta: warning: ")
    assert "SingleStudyWarning" not in err and "warnings.warn" not in err


def test_pool_without_a_name_column_numbers_the_studies(capsys, tmp_path):
    path = tmp_path / "e.csv"
    EFFECTS[["yi", "vi"]].iloc[:1].to_csv(path, index=False)
    code, _, err = run(capsys, "pool", path)
    assert code == 0 and "Only one study ('Study 1')" in err


def test_pool_yi_vi_options(capsys, tmp_path):
    path = tmp_path / "e.csv"
    EFFECTS.rename(columns={"yi": "g", "vi": "var"}).to_csv(path, index=False)
    code, out, _ = run(capsys, "pool", path, "--yi", "g", "--vi", "var")
    assert code == 0 and f"{api().estimate:.4f}" in out


# ------------------------------------------------------------------- --out and --plot


SUMMARY_NUMBERS = ("k", "estimate", "se", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high",
                   "tau2", "i2", "q")  # fmt: skip


def test_pool_out_csv(capsys, effects_csv, tmp_path):
    out = tmp_path / "r.csv"
    code, stdout, _ = run(capsys, "pool", effects_csv, "--method", "DL", "--out", out)
    assert code == 0 and f"written to {out}" in stdout
    back = pd.read_csv(out).iloc[0]
    res = api(method="DL")
    for name in SUMMARY_NUMBERS:
        assert back[name] == pytest.approx(getattr(res, name), rel=1e-12), name
    assert back["method"] == "DL" and back["level"] == 95


def test_pool_out_json(capsys, effects_csv, tmp_path):
    out = tmp_path / "r.json"
    code, _, _ = run(capsys, "pool", effects_csv, "--test", "knha", "--out", out)
    assert code == 0
    doc = json.loads(out.read_text())
    res = api(test="knha")
    for name in SUMMARY_NUMBERS:
        assert doc["model"][name] == pytest.approx(getattr(res, name), rel=1e-12), name
    assert [s["label"] for s in doc["studies"]] == list(EFFECTS["study"])
    weights = [s["weight"] for s in doc["studies"]]
    assert weights == pytest.approx(list(res.weights), rel=1e-12)


def test_pool_out_markdown(capsys, effects_csv, tmp_path):
    out = tmp_path / "r.md"
    code, _, _ = run(capsys, "pool", effects_csv, "--out", out)
    assert code == 0
    text = out.read_text()
    res = api()
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    row = [c.strip() for c in table[2].strip("|").split("|")]
    cells = dict(zip(header, row, strict=True))
    assert int(cells["k"]) == res.k
    for name in ("estimate", "ci_low", "ci_high", "se"):
        assert float(cells[name]) == pytest.approx(getattr(res, name), abs=5e-5), name
    assert "## Studies" in text and "Murrough 2013" in text


def test_pool_plot_writes_a_png(capsys, effects_csv, tmp_path):
    png = tmp_path / "forest.png"
    code, stdout, _ = run(capsys, "pool", effects_csv, "--plot", png)
    assert code == 0 and f"Forest plot written to {png}" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_subgroup_plot_writes_a_png(capsys, effects_csv, tmp_path):
    png = tmp_path / "sub.png"
    code, _, _ = run(capsys, "subgroup", effects_csv, "--by", "route", "--plot", png)
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("option", "name", "fragment"),
    [
        ("--out", "r.txt", "unknown format '.txt'"),
        ("--plot", "f.jpg", "unknown format '.jpg'"),
        ("--out", "missing/r.csv", "does not exist"),
    ],
)
def test_bad_output_files(capsys, effects_csv, tmp_path, option, name, fragment):
    code, out, err = run(capsys, "pool", effects_csv, option, tmp_path / name)
    assert_error(code, out, err, fragment)


# ------------------------------------------------------------------- subgroup


def test_subgroup_text_and_options(capsys, effects_csv):
    code, out, _ = run(capsys, "subgroup", effects_csv, "--by", "route", "--method", "DL")
    assert code == 0
    res = km.subgroup(EFFECTS, "route", method="DL", labels="study")
    assert "Subgroup analysis by 'route'" in out and "separate tau2" in out
    assert f"{res.results['iv'].estimate:.4f}" in out
    assert f"{res.test_separate.statistic:.4f}" in out
    code, out, _ = run(
        capsys, "subgroup", effects_csv, "--by", "route", "--test", "knha", "--level", "90",
        "--tau2", "common", "--measure", "SMD",
    )  # fmt: skip
    res = km.subgroup(EFFECTS, "route", test="knha", level=90, tau2="common", labels="study")
    assert code == 0 and "F(df1 = 1, df2 = 3)" in out and "90% CI" in out and "SMD" in out
    assert f"{res.results['intranasal'].ci_low:.4f}" in out


def test_subgroup_missing_moderator_is_one_warning_naming_the_study(capsys, tmp_path):
    path = tmp_path / "e.csv"
    EFFECTS.assign(route=["iv", "iv", None, "intranasal", "intranasal"]).to_csv(path, index=False)
    code, _, err = run(capsys, "subgroup", path, "--by", "route")
    assert code == 0
    assert "ketameta: warning: " in err and "'Murrough 2013' (row 3)" in err
    assert "Traceback" not in err and "ExcludedStudyWarning" not in err


@pytest.mark.parametrize("suffix", [".csv", ".json", ".md"])
def test_subgroup_out(capsys, effects_csv, tmp_path, suffix):
    out = tmp_path / f"s{suffix}"
    code, _, _ = run(capsys, "subgroup", effects_csv, "--by", "route", "--out", out)
    assert code == 0
    res = km.subgroup(EFFECTS, "route", labels="study")
    iv = res.results["iv"]
    if suffix == ".csv":
        table = pd.read_csv(out).set_index("subgroup")
        assert table.loc["iv", "estimate"] == pytest.approx(iv.estimate, rel=1e-12)
        assert table.loc["Overall", "k"] == 5
        sep = table.loc["test: separate tau2 (Wald test on subgroup estimates)", "statistic"]
        assert sep == pytest.approx(res.test_separate.statistic, rel=1e-12)
    elif suffix == ".json":
        doc = json.loads(out.read_text())
        rows = {r["subgroup"]: r for r in doc["subgroups"]}
        assert rows["iv"]["ci_high"] == pytest.approx(iv.ci_high, rel=1e-12)
        assert doc["tests"][0]["pvalue"] == pytest.approx(res.test_common.pvalue, rel=1e-12)
        assert len(doc["studies"]) == 5
    else:
        text = out.read_text()
        assert f"{iv.estimate:.4f}" in text and "Tests for subgroup differences" in text


# ------------------------------------------------------------------- errors


def test_studies_table_says_what_to_do(capsys):
    code, out, err = run(capsys, "pool", STUDIES)
    assert_error(code, out, err, "studies table", "column 'yi' not found", "prepare_effects",
                 "ketameta pool effects.csv")  # fmt: skip


def test_the_hint_works(tmp_path):
    # the function the hint names does produce a file that pool accepts
    effects, _ = km.analyses.prepare_effects(km.load_studies(STUDIES), km.analyses.Settings())
    path = tmp_path / "effects.csv"
    effects[["label", "yi", "vi"]].to_csv(path, index=False)
    assert main(["pool", str(path)]) == 0


def test_non_numeric_yi_cell(capsys, tmp_path):
    path = tmp_path / "file.csv"
    path.write_text("study,yi,vi\nA,-0.5,0.04\nB,-0.2,0.05\nC,abc,0.03\n")
    code, out, err = run(capsys, "pool", path)
    assert_error(code, out, err, f"{path}, row 3, column 'yi': 'abc' is not a number")


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ("A,-0.5,0.04\nB,-0.2,-0.05\n", "row 2, column 'vi': '-0.05' must be > 0"),
        ("A,-0.5,0.04\nB,,0.05\n", "row 2, column 'yi': the cell is empty"),
        ("A,-0.5,0.04\nB,\"-0,2\",0.05\n", "'-0,2' is not a number (use a point"),
        ("A,-0.5,0.04\nB,inf,0.05\n", "row 2, column 'yi': 'inf' is not a finite number"),
    ],
)
def test_bad_cells(capsys, tmp_path, rows, fragment):
    path = tmp_path / "e.csv"
    path.write_text("study,yi,vi\n" + rows)
    assert_error(*run(capsys, "pool", path), fragment)


def test_first_bad_row_is_named_and_the_rest_counted(capsys, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("study,yi,vi\nA,x,0.04\nB,y,-1\n")
    assert_error(*run(capsys, "pool", path), "row 1, column 'yi'", "(and 2 more such cell(s))")


@pytest.mark.parametrize("command", ["pool", "subgroup", "validate-data"])
def test_missing_file(capsys, tmp_path, command):
    path = tmp_path / "absent.csv"
    extra = ["--by", "route"] if command == "subgroup" else []
    assert_error(*run(capsys, command, path, *extra), f"{path}: no such file")


@pytest.mark.parametrize("command", ["pool", "validate-data"])
def test_directory(capsys, tmp_path, command):
    assert_error(*run(capsys, command, tmp_path), f"{tmp_path}: is a directory")


def test_unreadable_file(capsys, tmp_path, monkeypatch):
    path = tmp_path / "locked.csv"
    path.write_text("yi,vi\n1,1\n")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert_error(*run(capsys, "pool", path), f"{path}: cannot be read (permission denied)")


@pytest.mark.parametrize("command", ["pool", "validate-data"])
def test_non_utf8_file(capsys, tmp_path, command):
    path = tmp_path / "latin1.csv"
    path.write_bytes("study,yi,vi\nMüller 2019,-0.5,0.04\n".encode("latin-1"))
    assert_error(*run(capsys, command, path), f"{path}: not a UTF-8 text file", "0xfc")


def test_binary_file(capsys, tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert_error(*run(capsys, "pool", path), str(path))


def test_semicolon_file(capsys, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("study;yi;vi\nA;-0,5;0,04\nB;-0,2;0,05\n")
    assert_error(*run(capsys, "pool", path), f"{path}: semicolon-delimited", "commas")


def test_empty_file(capsys, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert_error(*run(capsys, "pool", path), f"{path}: the file is empty")
    path.write_text("\n  \n")
    assert_error(*run(capsys, "pool", path), f"{path}: the file is empty")


def test_header_only_file(capsys, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("study,yi,vi\n")
    assert_error(*run(capsys, "pool", path), f"{path}: has a header line but no rows")


def test_ragged_row(capsys, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("study,yi,vi\nA,-0.5,0.04\nSmith, J,-0.2,0.05\n")
    assert_error(*run(capsys, "pool", path), f"{path}, line 3: 4 fields where the header has 3")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--yi", "nope"], "column 'nope' not found"),
        (["--labels", "nope"], "column 'nope' not found (option --labels"),
    ],
)
def test_unknown_columns(capsys, effects_csv, args, fragment):
    assert_error(*run(capsys, "pool", effects_csv, *args), fragment)


def test_unknown_moderator(capsys, effects_csv):
    assert_error(*run(capsys, "subgroup", effects_csv, "--by", "nope"), "option --by")


def test_library_errors_are_one_line(capsys, tmp_path):
    path = tmp_path / "one_level.csv"
    EFFECTS.assign(route="iv").to_csv(path, index=False)
    assert_error(*run(capsys, "subgroup", path, "--by", "route"), "only one level")


def test_usage_errors_exit_2_without_traceback(capsys, effects_csv):
    for argv in (["pool", effects_csv, "--level", "120"], ["pool", effects_csv, "--method", "X"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and "Traceback" not in err and "error:" in err


# ------------------------------------------------------------------- validate-data, report


def test_validate_data_bundled(capsys):
    code, out, _ = run(capsys, "validate-data")
    assert code == 0 and out.startswith("OK: ")


def test_report_quiet(capsys, tmp_path, monkeypatch):
    import ketameta.review.report.build as build

    calls = {}

    def fake_build(*, data, config, out, progress):
        calls.update(data=data, out=out, progress=progress)
        if progress:
            progress("[1/2] loading")
        return Path(out) / "index.html"

    monkeypatch.setattr(build, "build_report", fake_build)
    code, out, err = run(capsys, "report", "--out", tmp_path / "r", "--quiet")
    assert code == 0 and calls["progress"] is None and err == ""
    assert f"report written to {tmp_path / 'r' / 'index.html'}" in out
    code, out, err = run(capsys, "report", "--out", tmp_path / "r")
    assert code == 0 and "[1/2] loading" in err


def test_report_bad_data_file(capsys, tmp_path):
    assert_error(*run(capsys, "report", "--data", tmp_path / "no.csv"), "no such file")
    out = tmp_path / "file"
    out.write_text("x")
    assert_error(*run(capsys, "report", "--out", out), "is not a folder")
