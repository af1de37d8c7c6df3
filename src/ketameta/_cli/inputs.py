"""Reading the input of ``pool`` and ``subgroup``: the effects CSV and the output options.

Every problem (a missing, unreadable or malformed file, a cell that is not a number, an unknown
column, an output file of unknown format or in a missing folder) is a one-line `CliError`
naming the file, row and column.
"""

from __future__ import annotations

import argparse
import math
import re
import warnings
from pathlib import Path
from typing import Any

from ketameta._cli.errors import CliError, _one_line

LABEL_COLUMNS = ("study", "label", "study_label")
OUT_FORMATS = {".csv": "CSV", ".md": "Markdown", ".markdown": "Markdown", ".json": "JSON"}
PLOT_FORMATS = (".png", ".pdf", ".svg")
STUDIES_TABLE_COLUMNS = ("record_id", "source_quote")
PREPARE_HINT = (
    "compute effect sizes first, in Python: "
    "effects, _ = ketameta.analyses.prepare_effects(ketameta.load_studies({path!r}), "
    "ketameta.analyses.Settings()); effects.to_csv('effects.csv', index=False); "
    "then run 'ketameta pool effects.csv' (or 'ketameta report' for the review's analyses)"
)


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
