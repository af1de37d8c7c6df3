"""Tables: digits per kind of quantity; Markdown, HTML and LaTeX agree and escape text."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ketameta import leave_one_out, meta, subgroup
from ketameta.tables import (
    format_p,
    format_significant,
    format_summary,
    to_html,
    to_latex,
    to_markdown,
)


@pytest.fixture(scope="module")
def res():
    return meta([-0.5, -0.2, -0.4, 0.3], [0.04, 0.05, 0.03, 0.02])


def test_digits_by_kind_of_quantity(res):
    cells = format_summary(res).iloc[0]
    assert cells["estimate"] == f"{res.estimate:.2f}"
    assert cells["ci_low"] == f"{res.ci_low:.2f}"
    assert cells["i2"] == f"{res.i2:.1f}%"
    assert cells["k"] == "4" and cells["q_df"] == "3"
    assert cells["pvalue"] == f"{res.pvalue:.3f}"
    assert 0.1 <= res.tau2 < 1 and cells["tau2"] == f"{res.tau2:.3f}"  # 3 significant digits
    assert cells["method"] == "REML"
    assert format_summary(res, digits=3).iloc[0]["estimate"] == f"{res.estimate:.3f}"


def test_number_rules():
    assert format_p(0.0009999) == "<0.001" and format_p(0.001) == "0.001"
    assert format_p(float("nan")) == ""
    assert format_significant(0.000012345) == "0.0000123"
    assert format_significant(123456.0) == "123456"
    assert "e" not in format_significant(1e-9)


def test_ratio_results_are_back_transformed():
    frame = pd.DataFrame({"yi": np.log([0.5, 0.7, 0.4]), "vi": [0.04, 0.05, 0.03]})
    frame.attrs["measure"] = "RR"
    res = meta(data=frame)
    cells = format_summary(res).iloc[0]
    assert cells["RR"] == f"{math.exp(res.estimate):.2f}"
    assert cells["ci_high"] == f"{math.exp(res.ci_high):.2f}"
    assert cells["se (log scale)"] == f"{res.se:.2f}"
    assert format_summary(res, back_transform=False).iloc[0]["estimate"] == f"{res.estimate:.2f}"
    with pytest.raises(ValueError, match="back_transform"):
        format_summary(meta([-0.5, -0.2], [0.04, 0.05]), back_transform=True)


def test_index_is_kept_and_subgroup_tables_format(res):
    loo = leave_one_out(res)
    assert not isinstance(loo.index, pd.RangeIndex)
    table = format_summary(loo)
    assert table.columns[0] in ("", loo.index.name)
    assert table.iloc[:, 0].tolist() == [str(i) for i in loo.index]
    frame = pd.DataFrame(
        {"yi": [-0.5, -0.2, -0.4, -0.1], "vi": [0.04, 0.05, 0.03, 0.02], "g": ["a", "a", "b", "b"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = subgroup(frame, "g", method="DL")
    cells = format_summary(sub)
    assert cells["subgroup"].tolist() == ["a", "b", "Overall"]
    assert cells["k"].tolist() == ["2", "2", "4"]


def test_the_three_exports_show_the_same_cells(res):
    cells = format_summary(res).iloc[0].tolist()
    md, htm, tex = to_markdown(res), to_html(res), to_latex(res)
    for cell in cells:
        assert f"| {cell} " in md or f" {cell} |" in md
        assert f"<td>{cell}</td>" in htm
    assert tex.count("&") == 2 * (len(cells) - 1)  # header row and one data row
    assert r"72.1\%" in tex or r"\%" in tex


def test_exports_escape_text():
    df = pd.DataFrame({"study": ["<script>alert(1)</script> & 50%_x | y"], "pvalue": [0.0001]})
    assert "<script>" not in to_html(df) and "&lt;script&gt;" in to_html(df)
    tex = to_latex(df)
    assert r"50\%\_x" in tex and r"\&" in tex and r"\textless{}script\textgreater{}" in tex
    assert tex.startswith(r"\begin{tabular}{lr}")
    md = to_markdown(df)
    assert md.splitlines()[1] == "| --- | --- |" and "<0.001" in md and r"x \| y" in md


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="digits"):
        format_summary(pd.DataFrame({"a": [1.0]}), digits=-1)
    with pytest.raises(TypeError, match="table must be"):
        to_html([1, 2, 3])


def test_f_test_degrees_of_freedom_pair():
    frame = pd.DataFrame(
        {"yi": [-0.5, -0.2, -0.4, -0.1], "vi": [0.04, 0.05, 0.03, 0.02], "g": ["a", "a", "b", "b"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = subgroup(frame, "g", method="DL", test="knha")
    tests = sub.tests()
    cells = format_summary(tests)
    row = tests.index[tests["distribution"] == "F"][0]
    df1, df2 = tests.loc[row, "df"]
    assert cells.loc[row, "df"] == f"{df1:.0f}, {df2:.0f}"
    assert cells.loc[row, "pvalue"] == format_p(tests.loc[row, "pvalue"])
