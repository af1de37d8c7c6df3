"""The ``ketameta`` command: ``pool``, ``subgroup``, ``validate-data`` and ``report``.

Every error a person can cause with their input (a missing, unreadable or malformed file, a
cell that is not a number, an unknown column) is printed as one line, ``ketameta: error: ...``,
naming the file, row and column, and the command exits with status 1; warnings are printed
once each, one line, ``ketameta: warning: ...``. Heavy modules (the report, the plots) are
imported inside the subcommands so that ``ketameta --help`` does not load them.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ketameta.exceptions import DataValidationError, KetametaError

METHODS = (
    "REML", "ML", "DL", "PM", "EB", "HE", "HS", "HSk", "SJ", "PMM", "DLIT", "SJIT", "MP", "EE",
    "FE",
)  # fmt: skip
LABEL_COLUMNS = ("study", "label", "study_label")
OUT_FORMATS = {".csv": "CSV", ".md": "Markdown", ".markdown": "Markdown", ".json": "JSON"}
PLOT_FORMATS = (".png", ".pdf", ".svg")
RATIO_MEASURES = frozenset({"RR", "OR", "ROM", "PETO", "HR"})
STUDIES_TABLE_COLUMNS = ("record_id", "source_quote")
PREPARE_HINT = (
    "compute effect sizes first, in Python: "
    "effects, _ = ketameta.analyses.prepare_effects(ketameta.load_studies({path!r}), "
    "ketameta.analyses.Settings()); effects.to_csv('effects.csv', index=False); "
    "then run 'ketameta pool effects.csv' (or 'ketameta report' for the review's analyses)"
)


class CliError(KetametaError):
    """A problem with the user's input, reported as one line and exit status 1."""


# ---------------------------------------------------------------------------- reading input


def _read_text(path: str) -> str:
    """The file's text, or a one-line `CliError` naming the file and what is wrong with it."""
    file = Path(path)
    if not file.exists():
        raise CliError(f"{path}: no such file")
    if file.is_dir():
        raise CliError(f"{path}: is a directory, not a CSV file")
    try:
        raw = file.read_bytes()
    except PermissionError:
        raise CliError(f"{path}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        raise CliError(
            f"{path}: not a UTF-8 text file (byte 0x{byte} at position {exc.start}); "
            "save it as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise CliError(f"{path}: a binary file, not a CSV text file")
    if not text.strip():
        raise CliError(
            f"{path}: the file is empty (expected a header line, e.g. 'study,yi,vi', "
            "then one row per study)"
        )
    header = next(line for line in text.splitlines() if line.strip())
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if sep in header and "," not in header:
            raise CliError(
                f"{path}: {name}-delimited (header {header.strip()!r}); ketameta reads "
                "comma-separated files: save it as CSV with commas between fields and "
                "points as decimal marks"
            )
    return text


def _read_csv(path: str, **options: Any):
    """Read a CSV into a DataFrame; every failure becomes a one-line `CliError`."""
    import io

    import pandas as pd

    text = _read_text(path)
    try:
        data = pd.read_csv(io.StringIO(text), **options)
    except pd.errors.EmptyDataError:
        raise CliError(f"{path}: no columns found (the file has no header line)") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:
            want, line, saw = found.groups()
            raise CliError(
                f"{path}, line {line}: {saw} fields where the header has {want} "
                "(a stray comma, or a text cell with a comma that needs quotes?)"
            ) from None
        raise CliError(f"{path}: not a readable CSV file ({_one_line(exc)})") from None
    if data.empty:
        raise CliError(f"{path}: has a header line but no rows (no studies to analyse)")
    return data


def _require_columns(data, path: str, columns: dict[str, str]) -> None:
    """Every ``option -> column`` must be in the file; the studies table gets a hint."""
    for option, column in columns.items():
        if column in data.columns:
            continue
        listing = ", ".join(map(str, data.columns))
        if len(listing) > 200:
            listing = listing[:200] + ", ..."
        if option in ("--yi", "--vi") and any(c in data.columns for c in STUDIES_TABLE_COLUMNS):
            raise CliError(
                f"{path}: column {column!r} not found: this looks like the review's studies "
                "table (one row per record, no effect sizes); " + PREPARE_HINT.format(path=path)
            )
        hint = ""
        if option in ("--yi", "--vi"):
            hint = (
                "; give the effect-size and variance columns with --yi/--vi, or compute them "
                "with ketameta.escalc()"
            )
        raise CliError(
            f"{path}: column {column!r} not found (option {option}; columns: {listing}){hint}"
        )


def _cell_problem(cell: Any, value: float, *, positive: bool) -> str | None:
    text = "" if cell is None or (isinstance(cell, float) and math.isnan(cell)) else str(cell)
    if not text.strip():
        return "the cell is empty (a number is needed)"
    if math.isnan(value):
        if re.fullmatch(r"\s*[-+]?\d*,\d+\s*", text):
            return f"{text!r} is not a number (use a point as the decimal mark)"
        return f"{text!r} is not a number"
    if not math.isfinite(value):
        return f"{text!r} is not a finite number"
    if positive and value <= 0:
        return f"{text!r} must be > 0 (a sampling variance)"
    return None


def _number_problems(data, path: str, column: str, *, positive: bool = False) -> list:
    """``(row, message)`` for every cell of ``column`` that is not a finite number (or not > 0
    for variances); rows counted from the first data row (the header is not a row). The
    column is converted to floats in place."""
    import pandas as pd

    raw = data[column].tolist()
    values = pd.to_numeric(data[column], errors="coerce").astype(float).tolist()
    problems = []
    for position, (cell, value) in enumerate(zip(raw, values, strict=True)):
        problem = _cell_problem(cell, value, positive=positive)
        if problem:
            row = position + 1
            problems.append((row, f"{path}, row {row}, column {column!r}: {problem}"))
    data[column] = values
    return problems


def _check_numbers(data, path: str, yi: str, vi: str) -> None:
    """A one-line `CliError` for the first bad yi/vi cell (and how many more there are)."""
    problems = _number_problems(data, path, yi) + _number_problems(data, path, vi, positive=True)
    if problems:
        problems.sort(key=lambda p: p[0])
        more = f" (and {len(problems) - 1} more such cell(s))" if len(problems) > 1 else ""
        raise CliError(problems[0][1] + more)


def _load_effects(args: argparse.Namespace, extra: dict[str, str] | None = None):
    """The effects table of ``pool``/``subgroup``: read, columns checked, labels chosen."""
    data = _read_csv(args.csv)
    needed = {"--yi": args.yi, "--vi": args.vi, **(extra or {})}
    if args.labels:
        needed["--labels"] = args.labels
    _require_columns(data, args.csv, needed)
    _check_numbers(data, args.csv, args.yi, args.vi)
    label = args.labels or next((c for c in LABEL_COLUMNS if c in data.columns), None)
    if label is None:
        label = "label"
        data[label] = [f"Study {i}" for i in range(1, len(data) + 1)]
    else:
        data[label] = data[label].astype(str)
    if args.measure:
        data.attrs["measure"] = args.measure
    return data, label


def _drop_missing(data, column: str, label: str, path: str):
    """Rows with no value of the moderator are left out, with one warning naming them."""
    missing = data[column].isna() | (data[column].astype(str).str.strip() == "")
    if missing.any():
        names = ", ".join(
            f"{data[label].iloc[i]!r} (row {i + 1})" for i in missing.to_numpy().nonzero()[0]
        )
        warnings.warn(f"{path}: no value of {column!r} for {names}: left out", stacklevel=2)
        data = data[~missing.to_numpy()].reset_index(drop=True)
    return data


def _check_outputs(args: argparse.Namespace) -> None:
    if args.out and Path(args.out).suffix.lower() not in OUT_FORMATS:
        raise CliError(
            f"--out {args.out}: unknown format {Path(args.out).suffix or '(no extension)'!r}; "
            "use a file ending in .csv, .md or .json"
        )
    for option, target in (("--out", args.out), ("--plot", args.plot)):
        if target and not Path(target).resolve().parent.is_dir():
            raise CliError(
                f"{option} {target}: the folder {str(Path(target).parent)!r} does not exist"
            )
        if target and Path(target).is_dir():
            raise CliError(f"{option} {target}: is a directory; give a file name")
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_FORMATS:
        raise CliError(
            f"--plot {args.plot}: unknown format {Path(args.plot).suffix or '(no extension)'!r};"
            " use a file ending in .png (or .pdf, .svg)"
        )


# ---------------------------------------------------------------------------- text output


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "NA"
    x = float(x)
    return "NA" if math.isnan(x) else f"{x:.{digits}f}"


def _pval(p: Any) -> str:
    if p is None or math.isnan(float(p)):
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


def _pval_eq(p: Any) -> str:
    text = _pval(p)
    return f"p-val {text[0]} {text[1:]}" if text.startswith("<") else f"p-val = {text}"


def _columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, names: bool = True
) -> list[str]:
    """Right-aligned columns; with ``names`` the first column (row names) left-aligned."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [c.rjust(w) for c, w in zip(r, widths, strict=True)]
        if names:
            cells[0] = r[0].ljust(widths[0])
        lines.append("  ".join(cells).rstrip())
    return lines


def _model_name(result) -> str:
    if result.method == "EE":
        return f"Equal-Effects Model (k = {result.k})"
    if result.method == "FE":
        return f"Fixed-Effects Model (k = {result.k})"
    return f"Random-Effects Model (k = {result.k}; tau^2 estimator: {result.method})"


def _format_meta(result, source: str, label: str) -> str:
    """A compact, metafor-like print of a `MetaResult`."""
    level = f"{result.level:g}%"
    measure = result.measure or ""
    lines = [_model_name(result), f"data: {source} (study labels: column {label!r})", ""]
    if result.method not in ("EE", "FE"):
        ci = result.tau2_ci
        lines.append(
            "tau^2 (estimated amount of total heterogeneity): "
            f"{_num(result.tau2)} (SE = {_num(result.se_tau2)}); "
            f"{level} CI [{_num(ci[0])}, {_num(ci[1])}]"
        )
        lines.append(f"tau (square root of estimated tau^2 value):      {_num(result.tau)}")
    lines.append(f"I^2 (total heterogeneity / total variability):   {_num(result.i2, 2)}%")
    lines.append(f"H^2 (total variability / sampling variability):  {_num(result.h2, 2)}")
    lines += [
        "",
        "Test for Heterogeneity:",
        f"Q(df = {result.q_df}) = {_num(result.q)}, {_pval_eq(result.q_pvalue)}",
        "",
        f"Model Results ({measure + '; ' if measure else ''}{level} CI; test: {result.test}):",
        "",
    ]
    stat = "zval" if result.test == "z" else "tval"
    header = ["estimate", "se", stat, *(["df"] if result.df is not None else [])]
    header += ["pval", "ci.lb", "ci.ub"]
    row = [_num(result.estimate), _num(result.se), _num(result.statistic)]
    row += [str(result.df)] if result.df is not None else []
    row += [_pval(result.pvalue), _num(result.ci_low), _num(result.ci_high)]
    lines += _columns(header, [row], names=False)
    if result.method not in ("EE", "FE") and result.k > 1:
        lines += ["", f"Prediction interval: [{_num(result.pi_low)}, {_num(result.pi_high)}]"]
    if measure.upper() in RATIO_MEASURES:
        exp = [math.exp(v) for v in (result.estimate, result.ci_low, result.ci_high)]
        lines.append(
            f"Back-transformed (exp): {measure} {_num(exp[0])}; "
            f"{level} CI [{_num(exp[1])}, {_num(exp[2])}]"
        )
    return "\n".join(lines)


def _format_subgroup(result, source: str) -> str:
    """Per-subgroup rows and the tests for subgroup differences, metafor-like."""
    first = next(iter(result.results.values()))
    measure = first.measure or "none given"
    if result.method in ("EE", "FE"):
        model = f"common-effect ({result.method})"
    else:
        model = f"random-effects ({result.method}, {result.tau2} tau^2)"
    lines = [
        f"Subgroup analysis by {result.by!r}: {model}; test: {result.test}; {result.level:g}% CI",
        f"data: {source}; measure: {measure}",
        "",
    ]
    header = ["subgroup", "k", "estimate", "se", "ci.lb", "ci.ub", "tau^2", "I^2", "Q", "pval(Q)"]
    rows = []
    for name in result.levels:
        r = result.results[name]
        flag = " *" if name in result.flagged else ""
        rows.append(
            [name + flag, str(r.k), _num(r.estimate), _num(r.se), _num(r.ci_low), _num(r.ci_high),
             _num(r.tau2), f"{_num(r.i2, 1)}%", _num(r.q, 2), _pval(r.q_pvalue)]
        )  # fmt: skip
    if result.overall is not None:
        o = result.overall
        rows.append(
            ["Overall", str(o.k), _num(o.estimate), _num(o.se), _num(o.ci_low), _num(o.ci_high),
             _num(o.tau2), f"{_num(o.i2, 1)}%", _num(o.q, 2), _pval(o.q_pvalue)]
        )  # fmt: skip
    lines += _columns(header, rows)
    if result.flagged:
        lines.append("* one study: shown, not pooled, and left out of the separate-tau2 test")
    lines += ["", "Test for subgroup differences:"]
    tests = (
        ("separate tau2 (Wald test on subgroup estimates)", result.test_separate),
        ("common tau2 (mixed-effects model, QM)", result.test_common),
    )
    for name, t in tests:
        if t is None:
            lines.append(f"  {name}: not available")
            continue
        if t.test == "F":
            df1, df2 = t.df
            stat = f"F(df1 = {df1}, df2 = {df2}) = {_num(t.statistic)}"
        else:
            stat = f"Q(df = {t.df}) = {_num(t.statistic)}"
        lines.append(f"  {name}: {stat}, {_pval_eq(t.pvalue)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- files written


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame) -> list[dict[str, Any]]:
    return [_jsonable(row) for row in frame.to_dict(orient="records")]


def _model_row(result):
    """``result.summary()`` as a plain one-row table with the measure as a column."""
    table = result.summary().reset_index(drop=True)
    table.insert(0, "measure", result.measure or "")
    table["level"] = result.level
    return table


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def _write_pool(result, args: argparse.Namespace) -> None:
    import json

    from ketameta.tables import to_markdown

    fmt = OUT_FORMATS[Path(args.out).suffix.lower()]
    model = _model_row(result)
    if fmt == "CSV":
        _write(args.out, model.to_csv(index=False))
    elif fmt == "JSON":
        doc = {
            "command": "pool",
            "input": args.csv,
            "model": _records(model)[0],
            "studies": _records(result.studies()),
        }
        _write(args.out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        title = f"Meta-analysis of {args.csv}"
        parts = [f"# {title}", "", to_markdown(model, digits=4), ""]
        if (result.measure or "").upper() in RATIO_MEASURES:
            parts += ["Back-transformed (exp):", "", to_markdown(result, digits=4), ""]
        parts += ["## Studies", ""]
        parts += [to_markdown(result.studies(), digits=4), ""]
        _write(args.out, "\n".join(parts))


def _subgroup_tables(result):
    import pandas as pd

    summary = result.summary()
    tests = result.tests()
    studies = pd.concat(
        [r.studies().assign(subgroup=name) for name, r in result.results.items()],
        ignore_index=True,
    )
    return summary, tests, studies


def _write_subgroup(result, args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from ketameta.tables import to_markdown

    fmt = OUT_FORMATS[Path(args.out).suffix.lower()]
    summary, tests, studies = _subgroup_tables(result)
    if fmt == "CSV":
        test_rows = tests.rename(columns={"test": "subgroup"}).assign(
            subgroup=lambda t: "test: " + t["subgroup"], df=tests["df"].astype(str)
        )
        table = pd.concat([summary, test_rows], ignore_index=True)
        table["k"] = table["k"].astype("Int64")
        _write(args.out, table.to_csv(index=False))
    elif fmt == "JSON":
        doc = {
            "command": "subgroup",
            "input": args.csv,
            "by": result.by,
            "method": result.method,
            "test": result.test,
            "level": result.level,
            "subgroups": _records(summary),
            "tests": _records(tests.assign(df=tests["df"].map(_jsonable))),
            "studies": _records(studies),
        }
        _write(args.out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        parts = [f"# Subgroup analysis of {args.csv} by {result.by!r}", ""]
        parts += [to_markdown(result, digits=4), "", "## Tests for subgroup differences", ""]
        parts += [to_markdown(tests.assign(df=tests["df"].astype(str)), digits=4), ""]
        _write(args.out, "\n".join(parts))


def _save_plot(result, path: str) -> None:
    fig = result.plot_forest()
    try:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    except OSError as exc:
        raise CliError(f"{path}: cannot be written ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------- subcommands


def _pool(args: argparse.Namespace) -> int:
    from ketameta.synthesis.pooling import meta

    _check_outputs(args)
    data, label = _load_effects(args)
    result = meta(
        data=data, yi=args.yi, vi=args.vi, method=args.method, test=args.test,
        level=args.level, labels=label, measure=args.measure,
    )  # fmt: skip
    print(_format_meta(result, args.csv, label))
    _finish(result, args, _write_pool)
    return 0


def _subgroup(args: argparse.Namespace) -> int:
    from ketameta.synthesis.subgroup import subgroup

    _check_outputs(args)
    data, label = _load_effects(args, {"--by": args.by})
    data = _drop_missing(data, args.by, label, args.csv)
    result = subgroup(
        data, args.by, method=args.method, test=args.test, level=args.level, tau2=args.tau2,
        yi=args.yi, vi=args.vi, labels=label,
    )  # fmt: skip
    print(_format_subgroup(result, args.csv))
    _finish(result, args, _write_subgroup)
    return 0


def _finish(result, args: argparse.Namespace, write: Callable[[Any, argparse.Namespace], None]):
    if args.out:
        write(result, args)
        print(f"\nResults written to {args.out}")
    if args.plot:
        _save_plot(result, args.plot)
        print(f"{'' if args.out else chr(10)}Forest plot written to {args.plot}")


def _validate_data(args: argparse.Namespace) -> int:
    """Print every problem of a studies CSV (exit 1) or ``OK: N records from M studies``.

    The file is read by `ketameta.review.studies.read_studies_file`, the parser of
    `load_studies`, so a file that validates here loads to the same values; a file that cannot
    be read (encoding, delimiter, empty, header only, ragged rows, a directory) is a one-line
    error and exit status 1."""
    from ketameta.review.studies import bundled_path, read_studies_file, validate_studies

    path = str(args.path or bundled_path())
    df = read_studies_file(path)
    problems = validate_studies(df)
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"OK: {len(df)} records from {df['study_id'].nunique()} studies ({path})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ketameta.review.report.build import build_report

    for value in (args.data, args.config):
        if value:
            _read_text(value)  # a one-line error for a missing, binary or empty file
    if args.data and Path(args.out).resolve() == Path(args.data).resolve():
        raise CliError(f"--out {args.out}: is the data file")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CliError(f"--out {args.out}: exists and is not a folder")
    out = build_report(
        data=args.data,
        config=args.config,
        out=args.out,
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
    )
    print(f"report written to {out}")
    return 0


# ---------------------------------------------------------------------------- the parser


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 95)") from None
    if not 0.0 < value < 100.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentage between 0 and 100")
    return value


def _measure(text: str) -> str:
    return text.strip().upper()


POOL_EPILOG = """\
input: a comma-separated UTF-8 file, one row per study, with the effect size (yi) and its
sampling variance (vi), e.g. written by ketameta.escalc(). Study names come from --labels,
else from a column named study, label or study_label, else "Study 1", "Study 2", ...
Rows in error messages are counted from the first row after the header.

examples:
  ketameta pool effects.csv
  ketameta pool effects.csv --method DL --test knha --measure SMD --out result.json
  ketameta pool effects.csv --labels author --plot forest.png
"""

SUBGROUP_EPILOG = """\
input: as for 'ketameta pool', plus the moderator column named by --by.

examples:
  ketameta subgroup effects.csv --by route
  ketameta subgroup effects.csv --by route --tau2 common --out route.md --plot route.png
"""


def _add_effects_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "csv", metavar="FILE.csv", help="effects CSV: one row per study with yi and vi columns"
    )
    sub.add_argument(
        "--yi", default="yi", metavar="COLUMN", help="column of effect sizes (default: yi)"
    )
    sub.add_argument(
        "--vi", default="vi", metavar="COLUMN",
        help="column of sampling variances, > 0 (default: vi)",
    )  # fmt: skip
    sub.add_argument(
        "--labels", metavar="COLUMN",
        help="column of study names (default: the first of study, label, study_label; "
        "else 'Study 1', 'Study 2', ...)",
    )  # fmt: skip
    sub.add_argument(
        "--measure", type=_measure, metavar="NAME",
        help="effect-size measure, e.g. SMD, MD, RR, OR (ratio measures are shown "
        "back-transformed; default: none)",
    )  # fmt: skip
    sub.add_argument(
        "--method", default="REML", choices=METHODS, metavar="METHOD",
        help=f"tau^2 estimator, one of {', '.join(METHODS)}; EE/FE: common-effect model "
        "(default: REML)",
    )  # fmt: skip
    sub.add_argument(
        "--test", default="z", choices=("z", "t", "knha", "adhoc"),
        help="z: Wald z test; t: t(k-1) quantiles; knha: Hartung-Knapp; adhoc: Hartung-Knapp "
        "never below the z standard error (default: z)",
    )  # fmt: skip
    sub.add_argument(
        "--level", default=95.0, type=_percent, metavar="PERCENT",
        help="confidence level in percent (default: 95)",
    )  # fmt: skip
    sub.add_argument(
        "--out", metavar="FILE",
        help="also write the results: .csv, .md (Markdown) or .json, by extension "
        "(default: none)",
    )  # fmt: skip
    sub.add_argument(
        "--plot", metavar="FILE.png",
        help="also draw a forest plot to FILE.png (.pdf, .svg also work; default: none)",
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    from ketameta import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ketameta",
        description="Meta-analysis of the ketamine evidence, exact to R's metafor.",
        epilog="Run 'ketameta COMMAND --help' for the options of a command.",
        formatter_class=formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"ketameta {__version__}",
        help="print the version and exit",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pool = commands.add_parser(
        "pool", help="pool the effect sizes of a CSV (yi, vi columns)",
        description="Pool the effect sizes of a CSV (one row per study) in a common- or\n"
        "random-effects model and print the result as metafor does.",
        epilog=POOL_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    _add_effects_options(pool)
    sub = commands.add_parser(
        "subgroup", help="pool a CSV by subgroup and test the difference",
        description="Pool each level of a moderator column and test whether they differ\n"
        "(the Wald test on the subgroup estimates and the mixed-effects QM test).",
        epilog=SUBGROUP_EPILOG, formatter_class=formatter,
    )  # fmt: skip
    _add_effects_options(sub)
    sub.add_argument(
        "--by", required=True, metavar="COLUMN", help="the moderator column (required)"
    )
    sub.add_argument(
        "--tau2", default="separate", choices=("separate", "common"),
        help="separate: a tau^2 per subgroup; common: one tau^2 for all (default: separate)",
    )  # fmt: skip
    validate = commands.add_parser(
        "validate-data", help="check a studies CSV against the schema",
        description="Check a studies table (the schema of data/studies.csv) and list every\n"
        "problem with its row, column and value; exit 1 if there is any.",
    )  # fmt: skip
    validate.add_argument(
        "path", nargs="?", metavar="PATH",
        help="studies CSV (default: the bundled data/studies.csv)",
    )  # fmt: skip
    report = commands.add_parser(
        "report", help="build the HTML report of the review from the data",
        description="Build DIR/index.html and DIR/tables/*.csv: every question of the review.",
    )  # fmt: skip
    report.add_argument(
        "--data", metavar="FILE.csv",
        help="studies CSV (default: the bundled data/studies.csv)",
    )  # fmt: skip
    report.add_argument(
        "--config", metavar="FILE.toml",
        help="ketameta.toml with the analysis settings (default: the built-in settings)",
    )  # fmt: skip
    report.add_argument(
        "--out", default="build/report", metavar="DIR",
        help="output folder (default: build/report)",
    )  # fmt: skip
    report.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress messages, only the result and errors (default: off)",
    )  # fmt: skip
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": _report,
    "validate-data": _validate_data,
    "pool": _pool,
    "subgroup": _subgroup,
}


# ---------------------------------------------------------------------------- entry point


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason} at position {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return _one_line(exc)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = _one_line(w.message)
        if text not in seen:
            seen.add(text)
            print(f"ketameta: warning: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ketameta`` command; returns the exit status (0 ok, 1 error,
    2 bad usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    import pandas as pd

    handled = (
        KetametaError, DataValidationError, ValueError, OSError, UnicodeDecodeError,
        pd.errors.ParserError, pd.errors.EmptyDataError,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return COMMANDS[args.command](args)
        except handled as exc:
            print(f"ketameta: error: {_error_message(exc)}", file=sys.stderr)
            return 1
        finally:
            _print_warnings(caught)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
