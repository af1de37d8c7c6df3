"""The report writes only inside --out: no temporary file elsewhere, no link followed out of the
folder, stale tables removed, a file given as --out refused, two builds side by side."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ketameta.plots import save
from ketameta.review.report.build import build_report, guard_csv


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    return build_report(out=tmp_path_factory.mktemp("a") / "report")


def test_nothing_is_written_outside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".ketameta-figure.png").write_text("a user's file")
    out = tmp_path / "out"
    build_report(out=out)
    assert (tmp_path / ".ketameta-figure.png").read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ketameta-figure.png", "out"]


def test_links_inside_out_are_not_followed(first, tmp_path):
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    os.symlink(outside, out / "index.html")
    os.symlink(outside, out / "tables" / "overall_summary.csv")
    build_report(out=out)
    assert outside.read_text() == "keep me"
    assert not (out / "index.html").is_symlink()
    assert (out / "index.html").read_bytes() == first.read_bytes()


def test_stale_tables_are_removed_and_a_file_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "from_an_old_build.csv").write_text("x\n1\n")
    build_report(out=out)
    assert not (out / "tables" / "from_an_old_build.csv").exists()
    afile = tmp_path / "a-file"
    afile.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        build_report(out=afile)


def test_two_builds_in_one_directory_do_not_interfere(first, tmp_path):
    # two processes building side by side, from the same working directory
    import subprocess
    import sys

    outs = [tmp_path / "r1", tmp_path / "r2"]
    cmd = [sys.executable, "-m", "ketameta.cli", "report", "-q", "--out"]
    procs = [subprocess.Popen([*cmd, str(o)], cwd=tmp_path) for o in outs]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    for o in outs:
        assert (o / "index.html").read_bytes() == first.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1", "r2"]


def test_leading_space_formulas_are_guarded_too():
    import pandas as pd

    df = pd.DataFrame({"label": [" =HYPERLINK(1)", "\t+x", "ok"]})
    assert guard_csv(df)["label"].tolist() == ["' =HYPERLINK(1)", "'\t+x", "ok"]


@pytest.mark.parametrize("suffix", [".svg", ".pdf", ".png"])
def test_figures_save_byte_identical(tmp_path, suffix):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    a = save(fig, tmp_path / f"a{suffix}").read_bytes()
    b = save(fig, tmp_path / f"b{suffix}").read_bytes()
    assert a == b and isinstance(Path, type)
