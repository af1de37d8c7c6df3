"""Bad input is refused clearly (issue 16): every case gives a named ketameta error (or warning)
that says what is wrong and where (argument, row, column), never a raw numpy/pandas traceback.

Sections: input types and shapes (``meta``, ``meta_bayes``, ``escalc``), scalar bounds, subgroup
levels, the studies file (one parser for ``validate-data`` and ``load_studies``), the
``ketameta.toml`` settings.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from test_data import fake_studies, write

import ketameta as km
from ketameta.cli import main
from ketameta.exceptions import DataValidationError, KetametaError
from ketameta.review.config import load_config
from ketameta.review.studies import load_studies, read_studies_file, validate_studies
from ketameta.synthesis import _inputs
from ketameta.synthesis.effects import escalc

YI, VI = [-0.5, -0.2, -0.3], [0.04, 0.05, 0.03]


def refused(match: str, error: type[Exception] = DataValidationError):
    """The error is named (a KetametaError) and its message matches."""
    assert issubclass(error, KetametaError)
    return pytest.raises(error, match=match)


# ---------------------------------------------------------------------------- types and shapes


@pytest.mark.parametrize("fit", [km.meta, km.meta_bayes], ids=["meta", "meta_bayes"])
@pytest.mark.parametrize(
    ("yi", "vi", "match"),
    [
        ([True, False, True], VI, r"'yi' must be numeric: 'yi'\[0\] is a boolean"),
        ([-0.5, True, -0.3], VI, r"'yi'\[1\] is a boolean"),
        (YI, np.array([1, 0, 1], dtype=bool), r"'vi' must be numeric: it holds booleans"),
        (
            np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]"),
            VI,
            r"'yi' must be numeric: it holds dates/times",
        ),
        ([dt.date(2020, 1, 1), -0.2, -0.3], VI, r"'yi'\[0\] is a date/time"),
        (["-0.5", "-0.2", "-0.3"], VI, r"'yi'\[0\] is text \('-0.5'\)"),
        (np.array(["a", "b", "c"]), VI, r"'yi' must be numeric: it holds text"),
        ([object(), -0.2, -0.3], VI, r"'yi'\[0\] is a object object"),
        ([[-0.5, -0.2], [-0.3]], VI, r"'yi' is ragged"),
        (-0.5, 0.04, r"'yi' must be one-dimensional.*wrap it in a list"),
        ("yi", "vi", r"'yi' is the column name 'yi' but no 'data' was given"),
    ],
)
def test_array_types_are_refused_by_argument(fit, yi, vi, match):
    with refused(match):
        fit(yi, vi)


def test_series_are_paired_by_index_not_position():
    yi = pd.Series(YI, index=["a", "b", "c"])
    shuffled = pd.Series([VI[2], VI[0], VI[1]], index=["c", "a", "b"])
    res = km.meta(yi, shuffled, method="DL")
    ref = km.meta(YI, VI, method="DL")
    assert res.vi.tolist() == VI and res.estimate == pytest.approx(ref.estimate)
    other = pd.Series(VI, index=["a", "b", "d"])
    with refused(r"'vi' is a pandas Series whose index does not match.*only in 'vi': d"):
        km.meta(yi, other)
    with refused(r"index does not match"):
        km.meta_bayes(yi, other)


def test_dataframe_columns_of_the_wrong_type_are_named():
    df = pd.DataFrame({"yi": YI, "vi": [True, False, True]})
    with refused(r"'vi' \(column 'vi'\) holds booleans"):
        km.meta(data=df)
    df = pd.DataFrame({"yi": pd.to_datetime(["2020-01-01"] * 3), "vi": VI})
    with refused(r"'yi' \(column 'yi'\) holds dates/times"):
        km.meta(data=df)
    df = pd.DataFrame({"yi": [-0.5, True, "x"], "vi": VI}, index=["A", "B", "C"])
    with refused(r"row 'B' \(position 1\), column 'yi': yi is a boolean") as info:
        km.meta(data=df)
    assert [p["row"] for p in info.value.problems] == ["B", "C"]


def test_duplicate_columns_are_named():
    df = pd.DataFrame([[-0.5, 0.04, 0.1], [-0.2, 0.05, 0.2]], columns=["yi", "vi", "vi"])
    with refused(r"duplicate column\(s\) 'vi'"):
        km.meta(data=df)
    arms = pd.DataFrame([[1.0, 2.0, 30]], columns=["m", "m", "n"])
    with refused(r"escalc\(\): 'data' has duplicate column\(s\) 'm'"):
        escalc("MD", data=arms, m1="m", sd1=[1.0], n1="n", m2=[0.0], sd2=[1.0], n2=[30])


ARMS = dict(m1=[-14.0, -10.0], sd1=[9.0, 8.0], m2=[-8.0, -7.0], sd2=[10.0, 9.0])


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (
            dict(n1=[30.5, 20], n2=[30, 20]),
            r"'n1' must be whole numbers \(counts\).*rows 0 \(30.5\)",
        ),
        (dict(n1=[True, 20], n2=[30, 20]), r"'n1' must be numeric: 'n1'\[0\] is a boolean"),
        (dict(n1=["30", "20"], n2=[30, 20]), r"'n1' must be numeric"),
    ],
)
def test_escalc_arm_inputs(inputs, match):
    with refused(match):
        escalc("SMD", **ARMS, **inputs)


def test_escalc_counts_must_be_whole_numbers():
    with refused(r"'events1' must be whole numbers.*rows 0 \(2.5\)"):
        escalc("RR", events1=[2.5, 3], n1=[20, 30], events2=[1, 1], n2=[10, 10])
    df = pd.DataFrame({"a": [2, 3], "n": [20.0, 30.2]}, index=["Smith", "Jones"])
    with refused(r"'n1' \(column 'n'\) must be whole numbers.*rows Jones \(30.2\)"):
        escalc("OR", data=df, events1="a", n1="n", events2=[1, 1], n2=[10, 10])


@pytest.mark.parametrize("measure", ["ZCOR", "COR"])
@pytest.mark.parametrize("r", [1.0, -1.0])
def test_correlation_of_one_is_refused_not_infinite(measure, r):
    with refused(rf"'r' is -1 or 1 in rows 1: {measure} needs \|r\| < 1") as info:
        escalc(measure, r=[0.3, r], n=[20, 30])
    assert info.value.problems[0]["row"] == "1"


def test_smcc_with_a_zero_change_sd_is_refused():
    with refused(r"SD of the change.*zero in rows 0"):
        escalc("SMCC", m_pre=[30.0], m_post=[20.0], sd_pre=[5.0], sd_post=[5.0], n=[20], r=[1.0])


def test_escalc_series_are_paired_by_index():
    df = pd.DataFrame({"m1": [-14.0, -10.0]}, index=["a", "b"])
    m2 = pd.Series([-7.0, -8.0], index=["b", "a"])
    out = escalc(
        "MD", data=df, m1="m1", sd1=[9.0, 8.0], n1=[30, 20], m2=m2, sd2=[10.0, 9.0], n2=[30, 20]
    )
    assert out["yi"].tolist() == [-6.0, -3.0]
    with refused(r"'m2' is a pandas Series whose index does not match that of 'data'"):
        escalc(
            "MD",
            data=df,
            m1="m1",
            sd1=[9.0, 8.0],
            n1=[30, 20],
            m2=pd.Series([-7.0, -8.0], index=["a", "z"]),
            sd2=[10.0, 9.0],
            n2=[30, 20],
        )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(add="x"), r"'add' must be a finite number"),
        (dict(add=-0.5), r"'add' must lie in \[0, inf\]"),
        (dict(drop00="no"), r"'drop00' must be True or False"),
        (dict(to="some"), r"'to' must be one of"),
    ],
)
def test_escalc_options(options, match):
    with refused(match):
        escalc("RR", events1=[2, 3], n1=[20, 30], events2=[1, 0], n2=[10, 10], **options)


# ---------------------------------------------------------------------------- scalar bounds


def test_bounds_helpers():
    assert _inputs.check_integer(np.int64(500), "n_perm", minimum=2) == 500
    assert _inputs.check_integer(np.uint8(7), "chunk", minimum=1) == 7
    assert _inputs.check_integer(1e6, "max_subsets", minimum=1) == 1_000_000
    assert _inputs.check_integer(None, "max_subsets", minimum=1, allow_none=True) is None
    assert _inputs.check_alpha(np.float32(0.05)) == pytest.approx(0.05)
    assert _inputs.check_level(np.int64(90)) == 90.0
    with refused(r"'n_perm' must be a whole number, got True"):
        _inputs.check_integer(True, "n_perm", minimum=2)
    with refused(r"'n_perm' must be >= 2, got 1"):
        _inputs.check_integer(1, "n_perm", minimum=2)
    with refused(r"'chunk' must be a whole number, got 2.5"):
        _inputs.check_integer(2.5, "chunk", minimum=1)
    with refused(r"'max_subsets' must be >= 1, got 0"):
        _inputs.check_integer(0, "max_subsets", minimum=1, allow_none=True)
    with refused(r"'alpha' must lie in \(0, 1\), got 1.5"):
        _inputs.check_alpha(1.5)
    with refused(r"'level' must be a finite number, got True"):
        _inputs.check_level(True)
    with refused(r"'level' must lie in \(0, 100\), got -5"):
        _inputs.check_level(-5)
    with refused(r"gosh\(\): 'chunk' must be a whole number"):
        _inputs.check_integer("8", "chunk", minimum=1, caller="gosh()")


def test_level_is_checked_everywhere():
    with refused(r"'level' must be a number \(percent\), got True"):
        km.meta(YI, VI, level=True)
    with refused(r"'level' must be a percentage"):
        km.meta(YI, VI, level=0)
    with refused(r"escalc\(\): 'level' must be a finite number, got True"):
        escalc("GEN", estimate=[1.0], ci_low=[0.5], ci_high=[1.5], level=True)
    out = escalc("GEN", estimate=[1.0], ci_low=[0.5], ci_high=[1.5], level=np.int64(90))
    assert out["vi"].iloc[0] > 0


# ---------------------------------------------------------------------------- subgroup levels


def test_subgroup_levels_missing_and_empty_are_listed_by_position():
    col = pd.Series(["iv", None, "  ", "oral ", np.nan, "iv", ""], index=[0, 0, 1, 1, 2, 2, 3])
    labels = ["A", "B", "C", "D", "E", "F", "G"]
    lv = _inputs.subgroup_levels(col, "route", labels)
    assert lv.keep.tolist() == [True, False, False, True, False, True, False]
    assert lv.groups == ("iv", "oral", "iv") and lv.levels == ("iv", "oral")
    assert lv.excluded == (
        ("B", "missing value of route"),
        ("C", "empty value of route"),
        ("E", "missing value of route"),
        ("G", "empty value of route"),
    )


@pytest.mark.parametrize(
    "values",
    [[1, "1", 2], ["iv", 2.0, "oral"], [True, "yes", "no"]],
    ids=["int-text", "text-float", "bool-text"],
)
def test_subgroup_levels_of_mixed_types_are_refused(values):
    with refused(r"moderator 'route' mixes value types"):
        _inputs.subgroup_levels(pd.Series(values), "route")


# ---------------------------------------------------------------------------- the studies file


def test_whitespace_is_stripped_and_loads_as_validated(tmp_path):
    df = fake_studies()
    df.loc[0, "primary"] = "TRUE "
    df.loc[1, "route"] = " iv "
    df.loc[2, "n1"] = " 12 "
    path = write(df, tmp_path / "spaces.csv")
    assert validate_studies(read_studies_file(path)) == []
    studies = load_studies(path)
    assert studies["primary"].tolist() == [True, True, True]
    assert studies["route"].tolist() == ["iv", "iv", "iv"]
    assert studies["n1"].tolist() == [30, 20, 12]
    assert main(["validate-data", str(path)]) == 0


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("2_0", "no '_' digit separators"),
        ("\uff13\uff10", "ASCII digits"),
        ("30,5", "decimal mark"),
        ("nan", "not a number"),
        ("inf", "not a number"),
    ],
)
def test_odd_numbers_are_refused_by_validation_not_crashing_the_loader(tmp_path, capsys, cell, why):
    df = fake_studies()
    df.loc[0, "n1"] = cell
    path = write(df, tmp_path / "odd.csv")
    problems = validate_studies(read_studies_file(path))
    assert [(p.row, p.column, p.value) for p in problems if p.column == "n1"] == [(1, "n1", cell)]
    assert why in next(p.message for p in problems if p.column == "n1")
    with refused(r"row 1 \(test_a_madrs\), column 'n1'"):
        load_studies(path)
    assert main(["validate-data", str(path)]) == 1
    assert "column 'n1'" in capsys.readouterr().out


def one_line_error(capsys, argv, *fragments):
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ketameta: error: "), captured.err
    assert "Traceback" not in captured.out + captured.err
    for fragment in fragments:
        assert fragment in lines[0]


def csv_text(df: pd.DataFrame) -> str:
    return df.to_csv(index=False)


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (
            lambda p: p.write_text(csv_text(fake_studies()).replace(",", ";")),
            ["semicolon-delimited"],
        ),
        (
            lambda p: p.write_bytes(
                csv_text(fake_studies()).encode().replace(b"Test", b"M\xfcller")
            ),
            ["not a UTF-8 text file", "byte 0xfc at position", "line 2"],
        ),
        (lambda p: p.write_bytes(csv_text(fake_studies()).encode("utf-16")), ["UTF-16"]),
        (lambda p: p.write_text(""), ["the file is empty"]),
        (lambda p: p.write_text(" \n\n"), ["the file is empty"]),
        (lambda p: p.write_text(csv_text(fake_studies().iloc[:0])), ["header line but no rows"]),
        (
            lambda p: p.write_text(csv_text(fake_studies()) + "a,b\n"),
            ["line 5: 2 fields where the header has"],
        ),
        (
            lambda p: p.write_text(csv_text(fake_studies()).replace("source_quote", "notes", 1)),
            ["duplicate column(s) 'notes'"],
        ),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), []),
    ],
    ids=[
        "semicolon",
        "latin-1",
        "utf-16",
        "empty",
        "blank",
        "header-only",
        "ragged",
        "dup-column",
        "binary",
    ],
)
def test_unreadable_studies_files_are_one_line_errors(tmp_path, capsys, make, fragments):
    path = tmp_path / "studies.csv"
    make(path)
    with pytest.raises(KetametaError):
        read_studies_file(path)
    with pytest.raises(KetametaError):
        load_studies(path)
    one_line_error(capsys, ["validate-data", str(path)], str(path), *fragments)


def test_bom_is_accepted_and_directory_refused(tmp_path, capsys):
    path = tmp_path / "bom.csv"
    path.write_bytes(csv_text(fake_studies()).encode("utf-8-sig"))
    assert list(read_studies_file(path).columns)[0] == "study_id"
    assert len(load_studies(path)) == 3
    with refused("is a directory"):
        load_studies(tmp_path)
    one_line_error(capsys, ["validate-data", str(tmp_path)], "is a directory")


def test_empty_table_is_an_error_unless_allowed(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(csv_text(fake_studies().iloc[:0]))
    with refused("header line but no rows"):
        load_studies(path)
    assert load_studies(path, allow_empty=True).empty
    assert [p.message for p in validate_studies(fake_studies().iloc[:0])] == [
        "the table has no records"
    ]


# ---------------------------------------------------------------------------- ketameta.toml


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[report]\ncsv_guard = 'no'", r"\[report\] csv_guard = 'no'.*true or false"),
        (
            "[analysis]\nallow_sd_from_contrast = 'no'",
            r"allow_sd_from_contrast = 'no'.*true or false",
        ),
        ("[analysis]\nassumed_r = 2", r"assumed_r = 2 .*between -1 and 1"),
        ("[analysis]\ncrossover_r = 1.5", r"crossover_r = 1.5 .*between -1 and 1"),
        ("[analysis]\ntimepoint = [7, 1]", r"timepoint = \[7, 1\].*reversed: write \[1, 7\]"),
        ("[analysis]\ntimepoint = [-1, 2]", r"timepoint = \[-1, 2\].*0 <= low < high"),
        ("[analysis]\ntimepoint = 'primry'", r"timepoint = 'primry'.*did you mean 'primary'"),
        (
            "[analysis]\noutcome_construct = 'depresion'",
            r"outcome_construct.*'ptsd'.*did you mean 'depression'",
        ),
        ("[analysis]\nlevel = true", r"level = True .*\(0, 100\)"),
        ("[analysis]\nmethod = 'reml'", r"method = 'reml'.*did you mean 'REML'"),
        ("[analysis]\nmultiarm = 'merge'", r"multiarm = 'merge'.*'combine', 'split'"),
        ("[report]\ntitle = 123", r"\[report\] title = 123 .*non-empty text"),
        ("[report]\ntitle = '  '", r"title = '  '"),
        ("analysis = 3", r"'analysis' must be a \[analysis\] table"),
        ("[analysis]\nmeasure = 'RR'", r"does not fit Settings.outcome"),
        ("[analysis\n", r"not a valid TOML file"),
        ("[analysis]\ntypo = 1", r"unknown \[analysis\] keys \['typo'\]"),
    ],
)
def test_config_keys_are_checked_by_name(tmp_path, toml, match):
    path = tmp_path / "ketameta.toml"
    path.write_text(toml)
    with refused(match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_good_config_still_loads(tmp_path):
    path = tmp_path / "ketameta.toml"
    path.write_text(
        "[analysis]\ntimepoint = [0.5, 2]\nassumed_r = 0.5\nlevel = 90\n"
        "[report]\ntitle = ' Mine '\ncsv_guard = false\n"
    )
    cfg = load_config(path)
    assert cfg.analysis.timepoint == (0.5, 2.0) and cfg.analysis.assumed_r == 0.5
    assert cfg.title == "Mine" and cfg.csv_guard is False


def test_subgroup_reads_levels_by_position():
    import warnings

    import ketameta as km
    from ketameta.exceptions import DataValidationError, ExcludedStudyWarning

    df = pd.DataFrame(
        {
            "yi": [-0.5, -0.2, -0.4, -0.1, -0.3, -0.6],
            "vi": [0.04, 0.05, 0.03, 0.02, 0.04, 0.05],
            "route": ["iv", "iv", "intranasal", " ", None, "intranasal "],
            "label": ["A", "B", "C", "D", "E", "F"],
        },
        index=[0, 0, 1, 1, 2, 2],  # a duplicate index must not drop the wrong rows
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = km.subgroup(df, "route")
    assert res.levels == ("intranasal", "iv")  # "intranasal " stripped into the same level
    assert [r.k for r in res.results.values()] == [2, 2]
    assert dict(res.excluded) == {"D": "empty value of route", "E": "missing value of route"}
    assert any(issubclass(w.category, ExcludedStudyWarning) and "'D'" not in str(w.message)
               and "D (empty" in str(w.message) for w in caught)  # fmt: skip
    mixed = df.assign(route=[1, "1", 2, 2, 1, "2"])
    with pytest.raises(DataValidationError, match="mixes value types"):
        km.subgroup(mixed, "route")


def test_binary_counts_must_be_whole_and_alpha_in_range():
    import ketameta as km
    from ketameta.exceptions import DataValidationError

    with pytest.raises(DataValidationError, match="whole numbers"):
        km.meta_mh([3.5, 4], [20, 20], [2, 3], [20, 20])
    with pytest.raises(DataValidationError, match="boolean"):
        km.meta_mh([True, 4], [20, 20], [2, 3], [20, 20])
    res = km.meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03])
    for bad in (0, 1, 1.5, True):
        with pytest.raises(ValueError, match="alpha"):
            km.fail_safe_n(res, alpha=bad)


def test_pooling_rows_that_share_a_control_warns_with_the_rows_and_the_fix():
    import warnings

    import ketameta as km
    from ketameta.exceptions import KetametaWarning

    df = pd.DataFrame({"yi": [-0.5, -0.4, -0.3], "vi": [0.04, 0.05, 0.03],
                       "label": ["D 28 mg", "D 56 mg", "Other"],
                       "shared_control_group": ["p1", "p1", ""]})  # fmt: skip
    with pytest.warns(KetametaWarning, match=r"D 28 mg, D 56 mg \(control p1\).*resolve_shared"):
        km.meta(data=df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KetametaWarning)
        km.meta(data=df.assign(shared_control_group=["p1", "p2", ""]))  # no shared arm: silent
