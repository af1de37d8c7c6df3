"""The curated evidence: ``load_studies()``, ``validate_studies()`` and the schema of studies.csv.

The schema is declarative: `SCHEMA` holds one `Rule` per column of the data dictionary
(``data/README.md``): kind (text, enum, whole number, number, true/false), required or not,
allowed values, bounds, whether the number must be found in the row's ``source_quote``, and
whether it belongs to arm 2. `validate_studies` applies it and the checks across columns
(events within ``[0, n]``, CI bounds in order, unique ``record_id``, single-arm records without
arm-2 numbers, every quoted number printed in ``source_quote`` unless ``derived`` assigns it),
and reports *every* problem at once, each with its row, ``record_id``, column, value and message.

The data files are ``data/studies.csv``, ``data/screening.csv`` and
``data/published_meta_analyses.csv`` at the repository root. The package reaches them through
``ketameta/review/_data/``, whose entries are symbolic links to those files: from a checkout
(editable install) the file analysed is the file you edit, and a wheel ships the files the links
point to, so there is one copy (``tests/test_data.py`` checks the links).
"""

from __future__ import annotations

import csv
import errno
import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ketameta.exceptions import DataValidationError

ENUMS: dict[str, tuple[str, ...]] = {
    "design": (
        "parallel_rct",
        "crossover_rct",
        "factorial_rct",
        "single_arm",
        "nonrandomised_controlled",
        "observational",
    ),
    "blinding": ("double_blind", "single_blind", "open_label"),
    "condition": (
        "trd",
        "mdd",
        "bipolar_depression",
        "mixed_depression",
        "ptsd",
        "suicidal_ideation",
        "substance_use",
        "chronic_pain_depression",
        "eating_disorder",
        "other",
    ),
    "drug": ("racemic_ketamine", "esketamine", "arketamine"),
    "route": ("iv", "intranasal", "oral", "im", "sc", "sublingual"),
    "psychotherapy_both_arms": ("yes", "no", "na"),
    "comparator": (
        "saline_placebo",
        "midazolam",
        "placebo_spray_plus_oral_ad",
        "psychotherapy_alone",
        "usual_care",
        "other_active",
        "none",
    ),
    "contrast": ("ketamine_vs_control", "therapy_added_to_ketamine", "head_to_head", "prepost"),
    "source_type": ("primary", "secondary"),
    "crossover_data": ("first_period", "paired", "both_periods"),
    "outcome_construct": (
        "depression",
        "ptsd",
        "suicidal_ideation",
        "substance_use",
        "anxiety",
        "other",
    ),
    "direction": ("lower_is_better", "higher_is_better"),
    "outcome_type": ("endpoint", "change", "response", "remission", "relapse", "effect_estimate"),
    "effect_type": ("MD", "LSMD", "SMD_d", "SMD_g", "RR", "OR", "HR", "RD"),
    "risk_of_bias": ("low", "some_concerns", "high"),
}
TEXT, ENUM, INT, FLOAT, BOOL = "text", "enum", "int", "float", "bool"


@dataclass(frozen=True)
class Rule:
    """What one column of ``studies.csv`` may hold (``data/README.md`` is the dictionary).

    ``kind``: text, enum (``allowed``), int (whole numbers), float or bool (``true``/``false``);
    ``required``: no empty cell; ``minimum``/``maximum``: inclusive bounds; ``quoted``: the
    number must appear in ``source_quote`` unless ``derived`` assigns this column; ``arm2``:
    must be empty in a single-arm record.
    """

    kind: str = TEXT
    required: bool = False
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    quoted: bool = False
    arm2: bool = False


def _enum(column: str, required: bool = True) -> Rule:
    return Rule(ENUM, required=required, allowed=ENUMS[column])


_COUNT = {"kind": INT, "quoted": True}
SCHEMA: dict[str, Rule] = {
    "study_id": Rule(required=True),
    "record_id": Rule(required=True),
    "first_author": Rule(required=True),
    "year": Rule(INT, required=True, minimum=1900, maximum=2100),
    "title": Rule(),
    "doi": Rule(),
    "pmid": Rule(),
    "pmcid": Rule(),
    "registry_id": Rule(),
    "design": _enum("design"),
    "blinding": _enum("blinding", required=False),
    "population": Rule(),
    "condition": _enum("condition"),
    "drug": _enum("drug"),
    "route": _enum("route"),
    "dose": Rule(),
    "dose_mg_kg": Rule(FLOAT, minimum=0),
    "sessions": Rule(INT, minimum=1),
    "psychotherapy": Rule(required=True),
    "psychotherapy_both_arms": _enum("psychotherapy_both_arms"),
    "arm1_label": Rule(),
    "arm2_label": Rule(),
    "comparator": _enum("comparator"),
    "contrast": _enum("contrast"),
    "shared_control_group": Rule(),
    "outcome_construct": _enum("outcome_construct"),
    "scale": Rule(),
    "direction": _enum("direction"),
    "outcome_type": _enum("outcome_type"),
    "timepoint_days": Rule(FLOAT, minimum=0),
    "timepoint_label": Rule(),
    "primary": Rule(BOOL, required=True),
    "n1": Rule(**_COUNT, minimum=1),
    "mean1": Rule(FLOAT, quoted=True),
    "sd1": Rule(FLOAT, minimum=0, quoted=True),
    "se1": Rule(FLOAT, minimum=0, quoted=True),
    "n2": Rule(**_COUNT, minimum=1, arm2=True),
    "mean2": Rule(FLOAT, quoted=True, arm2=True),
    "sd2": Rule(FLOAT, minimum=0, quoted=True, arm2=True),
    "se2": Rule(FLOAT, minimum=0, quoted=True, arm2=True),
    "baseline_mean1": Rule(FLOAT, quoted=True),
    "baseline_sd1": Rule(FLOAT, minimum=0, quoted=True),
    "prepost_r": Rule(FLOAT, minimum=-1, maximum=1, quoted=True),
    "events1": Rule(**_COUNT, minimum=0),
    "events2": Rule(**_COUNT, minimum=0, arm2=True),
    "effect_type": _enum("effect_type", required=False),
    "effect": Rule(FLOAT, quoted=True),
    "effect_se": Rule(FLOAT, minimum=0, quoted=True),
    "effect_ci_low": Rule(FLOAT, quoted=True),
    "effect_ci_high": Rule(FLOAT, quoted=True),
    "ci_level": Rule(FLOAT, minimum=50, maximum=99.99),
    "analysis_set": Rule(),
    "crossover_data": _enum("crossover_data", required=False),
    "duplicate_of": Rule(),
    "t_stat": Rule(FLOAT, quoted=True),
    "source": Rule(required=True),
    "source_type": _enum("source_type"),
    "source_location": Rule(required=True),
    "source_quote": Rule(required=True),
    "derived": Rule(),
    "risk_of_bias": _enum("risk_of_bias"),
    "risk_of_bias_reason": Rule(),
    "notes": Rule(),
}
NUMBERS = tuple(name for name, rule in SCHEMA.items() if rule.quoted)
OPTIONAL_NUMERIC = tuple(name for name, rule in SCHEMA.items() if rule.kind in (INT, FLOAT))
# events within [0, n] of the same arm
EVENT_LIMITS = (("events1", "n1"), ("events2", "n2"))


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is (1-based data row; line = row + 1) and what."""

    row: int
    record_id: str
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row} ({self.record_id or '-'}), column {self.column!r}"
        return f"{where}, value {self.value!r}: {self.message}"


def bundled_path(name: str = "studies.csv") -> Path:
    """Path of a bundled data file (works from a source checkout and from an installed wheel)."""
    return Path(str(resources.files("ketameta.review") / "_data" / name))


# A minus sign is a '-' (or U+2212 minus, U+2013 en dash, U+2012, U+FE63, U+FF0D) that does not
# follow a digit, letter, '.', '%', ')' or ']', so "1.2-3.4", "1.1%-19.0%" and "0.36–1.91" are
# ranges of two positive numbers while "(-0.55 to 1.82)", "= −3.1" and "[–0.30" are negative.
_MINUS = "-\u2212\u2013\u2012\ufe63\uff0d"
_NUMBER = re.compile(
    rf"(?<![\w.%)\]])(?P<sign>[{_MINUS}]\s?)?(?P<body>\d[\d,]*(?:\.\d+)?|\.\d+)"
    rf"|(?P<inner>\d[\d,]*(?:\.\d+)?|\.\d+)"
)


def _bodies(body: str) -> list[float]:
    """A number as printed: "1,234" is 1234 (thousands) and also 1 and 234 (a list)."""
    out = [float(part) for part in body.split(",") if part and part != "."]
    if "," in body and re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", body):
        out.append(float(body.replace(",", "")))
    return out


def quote_numbers(quote: str) -> set[float]:
    """Every number printed in ``quote``, signed as printed (see ``_MINUS``).

    "1,204" gives 1204 and, as it may be a list, 1 and 204:

    >>> sorted(quote_numbers("MADRS −12.0 (SD 7.5), n = 1,204; d = .35 [0.36–1.91]"))
    [-12.0, 0.35, 0.36, 1.0, 1.91, 7.5, 204.0, 1204.0]
    """
    values: set[float] = set()
    for match in _NUMBER.finditer(quote):
        body = match.group("body") or match.group("inner")
        sign = -1.0 if match.group("sign") else 1.0
        values.update(sign * value for value in _bodies(body))
    return values


def derived_columns(derived: str) -> set[str]:
    """Columns the ``derived`` text assigns (``"sd1 = se1 * sqrt(n1)"`` -> ``{"sd1"}``)."""
    return {name for name in SCHEMA if re.search(rf"\b{name}\s*=(?!=)", derived)}


# A number cell: ASCII digits, an optional sign, decimal point and exponent. Python's float()
# also takes "2_0" (= 20), full-width or Arabic-Indic digits, "nan" and "inf": all refused.
_NUMBER_CELL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(text: str) -> float | None:
    """The value of a number cell (already stripped), or None if it is not one (`_NUMBER_CELL`)."""
    if not _NUMBER_CELL.fullmatch(text):
        return None
    value = float(text)
    return value if np.isfinite(value) else None


def _not_a_number(cell: str) -> str:
    """Why a cell is not a number, for the validation message."""
    if "_" in cell:
        return "not a number (no '_' digit separators: write e.g. 20 or 2.0)"
    if any(ch.isdigit() and not ("0" <= ch <= "9") for ch in cell):
        return "not a number (use the ASCII digits 0-9, not full-width or other digits)"
    if re.fullmatch(r"[+-]?[0-9]*,[0-9]+", cell):
        return "not a number (use a point as the decimal mark)"
    return "not a number"


# ---------------------------------------------------------------------------- reading the file


def _decode(raw: bytes, where: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataValidationError(
            f"{where}: UTF-16 encoded (byte-order mark at position 0); save it as CSV UTF-8"
        )
    try:
        text = raw.decode("utf-8-sig")  # UTF-8, with or without a byte-order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise DataValidationError(
            f"{where}: not a UTF-8 text file (byte 0x{byte} at position {exc.start}, line "
            f"{line}); save it as CSV UTF-8",
            problems=[{"row": None, "column": None, "value": f"0x{byte}", "position": exc.start}],
        ) from None
    if "\x00" in text:
        raise DataValidationError(f"{where}: a binary file, not a CSV text file")
    return text


def read_studies_file(path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a studies CSV into a DataFrame of text cells, the one parser of ``validate-data``
    and `load_studies` (so that what validates loads to the same values).

    Every cell and column name is stripped of surrounding whitespace (``" iv "`` is ``iv``,
    ``"TRUE "`` is ``TRUE``, ``" 12.5"`` is ``12.5``); an empty cell is ``""``; blank lines are
    skipped. One-line errors naming the file (and line): a missing file (`FileNotFoundError`);
    a directory, an unreadable file, an encoding other than UTF-8 (with or without a byte-order
    mark; the offending byte and its offset are named), a binary file, an empty file, a
    semicolon- or tab-delimited file, a duplicated or unnamed column, rows with more or fewer
    fields than the header, and (unless ``allow_empty``) a header without rows:
    `DataValidationError` (a `KetametaError`).
    """
    file = Path(path)
    where = str(path)
    if not file.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", where)
    if file.is_dir():
        raise DataValidationError(f"{where}: is a directory, not a CSV file")
    try:
        raw = file.read_bytes()
    except PermissionError:
        raise DataValidationError(f"{where}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise DataValidationError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    text = _decode(raw, where)
    if not text.strip():
        raise DataValidationError(
            f"{where}: the file is empty (expected the header line of data/README.md's "
            "columns, then one row per record)"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if record:  # a blank line gives []
                rows.append((reader.line_num, [cell.strip() for cell in record]))
    except csv.Error as exc:
        raise DataValidationError(
            f"{where}, line {reader.line_num}: not a readable CSV row ({exc})"
        ) from None
    (header_line, header), records = rows[0], rows[1:]
    if len(header) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab")):
            if sep in header[0]:
                raise DataValidationError(
                    f"{where}: {name}-delimited (header {header[0][:60]!r}...); studies files are "
                    "comma-separated: save it as CSV with commas between fields and points as "
                    "decimal marks"
                )
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise DataValidationError(
            f"{where}, line {header_line}: header field(s) {', '.join(map(str, unnamed))} "
            "have no column name (a trailing or doubled comma?)"
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataValidationError(
            f"{where}, line {header_line}: duplicate column(s) {', '.join(map(repr, twice))}",
            problems=[{"row": 0, "column": name, "problem": "duplicate column"} for name in twice],
        )
    ragged = [(line, len(cells)) for line, cells in records if len(cells) != len(header)]
    if ragged:
        (line, got), more = ragged[0], ragged[1:]
        also = (
            f" (and {len(more)} more such line(s): {', '.join(str(x) for x, _ in more[:10])})"
            if more
            else ""
        )
        raise DataValidationError(
            f"{where}, line {line}: {got} fields where the header has {len(header)} (a stray "
            f"comma, or a text cell with a comma that needs quotes?){also}",
            problems=[
                {
                    "row": None,
                    "line": x,
                    "column": None,
                    "problem": f"{n} fields, not {len(header)}",
                }
                for x, n in ragged
            ],
        )
    if not records and not allow_empty:
        raise DataValidationError(f"{where}: has a header line but no rows (no records)")
    df = pd.DataFrame([cells for _, cells in records], columns=header, dtype=str)
    df.attrs["source_path"] = where
    return df


def validate_studies(df: pd.DataFrame, *, allow_empty: bool = False) -> list[Problem]:
    """Check a studies table against `SCHEMA`; return every problem found (empty = valid).

    Checks: every dictionary column present (and no unknown column), required cells filled,
    enums, numbers (whole numbers for counts) within their bounds, events within ``[0, n]``,
    ``effect_ci_low <= effect_ci_high``, unique ``record_id``, no arm-2 numbers in a
    ``single_arm`` record, and every number of the quoted columns (`NUMBERS`) printed in
    ``source_quote`` unless ``derived`` assigns that column (e.g. ``"sd1 = se1 * sqrt(n1)"``).
    Quote matching compares values, so "5" matches 5.0, ".35" matches 0.35, "1,204" matches
    1204 and a Unicode minus or en dash before a number counts as a minus sign.

    Rows are numbered from 1 (the first line after the header, i.e. file line = row + 1).
    Cells are compared stripped of surrounding whitespace, as `read_studies_file` stores them.
    Numbers are ASCII decimals (``12``, ``-0.5``, ``.35``, ``1e-3``): ``2_0``, full-width
    digits, a decimal comma, ``nan`` and ``inf`` are "not a number". A duplicated column name
    and (unless ``allow_empty``) a table without rows are problems too.

    Examples
    --------
    >>> import pandas as pd
    >>> bad = pd.DataFrame({"record_id": ["test_a"], "route": ["nasal"]})
    >>> [(p.row, p.record_id, p.value) for p in validate_studies(bad) if p.column == "route"]
    [(1, 'test_a', 'nasal')]
    """
    problems: list[Problem] = []
    duplicated = pd.Index(df.columns).duplicated()
    for column in sorted({str(c) for c in pd.Index(df.columns)[duplicated]}):
        problems.append(Problem(0, "", column, "", "duplicate column (the first is checked)"))
    df = df.loc[:, ~duplicated]
    if len(df) == 0 and not allow_empty:
        problems.append(Problem(0, "", "", "", "the table has no records"))
    text = df.astype(object).where(df.notna(), "").astype(str).apply(lambda c: c.str.strip())
    ids = text["record_id"] if "record_id" in text.columns else pd.Series("", index=text.index)

    def add(i: int, column: str, value: object, message: str) -> None:
        problems.append(Problem(i + 1, str(ids.iloc[i]), column, str(value), message))

    for column in SCHEMA:
        if column not in df.columns:
            problems.append(Problem(0, "", column, "", "required column is missing"))
    for column in df.columns:
        if column not in SCHEMA:
            problems.append(
                Problem(0, "", str(column), "", "unknown column (not in data/README.md)")
            )
    numbers: dict[str, list[float | None]] = {}
    for column, rule in SCHEMA.items():
        if column not in text.columns:
            continue
        cells = text[column].tolist()
        if rule.kind in (INT, FLOAT):
            numbers[column] = [_number(cell) if cell else None for cell in cells]
        for i, cell in enumerate(cells):
            if not cell:
                if rule.required:
                    add(i, column, "", "required value is empty")
                continue
            if rule.kind == ENUM and cell not in rule.allowed:
                add(i, column, cell, f"not one of: {', '.join(rule.allowed)}")
            elif rule.kind == BOOL and cell.lower() not in ("true", "false"):
                add(i, column, cell, "must be true or false")
            elif rule.kind in (INT, FLOAT):
                value = numbers[column][i]
                if value is None:
                    add(i, column, cell, _not_a_number(cell))
                elif rule.kind == INT and value % 1 != 0:
                    add(i, column, cell, "must be a whole number")
                elif rule.minimum is not None and value < rule.minimum:
                    add(i, column, cell, f"must be >= {rule.minimum:g}")
                elif rule.maximum is not None and value > rule.maximum:
                    add(i, column, cell, f"must be <= {rule.maximum:g}")
    for events, n in EVENT_LIMITS:
        if events not in numbers or n not in numbers:
            continue
        for i, (ev, size) in enumerate(zip(numbers[events], numbers[n], strict=True)):
            if ev is not None and size is not None and ev > size:
                add(i, events, text[events].iloc[i], f"exceeds {n} ({text[n].iloc[i]})")
    lows = numbers.get("effect_ci_low", [None] * len(text))
    highs = numbers.get("effect_ci_high", [None] * len(text))
    for i, (low, high) in enumerate(zip(lows, highs, strict=True)):
        if low is not None and high is not None and low > high:
            add(i, "effect_ci_low", text["effect_ci_low"].iloc[i], "above effect_ci_high")
    if "record_id" in text.columns:
        first: dict[str, int] = {}
        for i, rid in enumerate(ids):
            if rid and rid in first:
                add(i, "record_id", rid, f"duplicate record_id (first in row {first[rid] + 1})")
            first.setdefault(rid, i)
    if "design" in text.columns:
        for column, rule in SCHEMA.items():
            if rule.arm2 and column in text.columns:
                for i in np.flatnonzero((text["design"] == "single_arm") & (text[column] != "")):
                    add(int(i), column, text[column].iloc[i], "a single-arm record has no arm 2")
    if {"design", "crossover_data"} <= set(text.columns):
        crossover = text["design"] == "crossover_rct"
        for i in np.flatnonzero(crossover & (text["crossover_data"] == "")):
            add(int(i), "crossover_data", "", "a crossover record must say which data it holds")
        for i in np.flatnonzero(~crossover & (text["crossover_data"] != "")):
            add(int(i), "crossover_data", text["crossover_data"].iloc[i], "only for crossover_rct")
    if {"duplicate_of", "study_id"} <= set(text.columns):
        known = set(text["study_id"])
        for i, other in enumerate(text["duplicate_of"]):
            if other and (other not in known or other == text["study_id"].iloc[i]):
                add(i, "duplicate_of", other, "must name another study_id of this table")
    if "source_quote" in text.columns:
        derived = text["derived"] if "derived" in text.columns else pd.Series("", index=text.index)
        for i, quote in enumerate(text["source_quote"]):
            printed, assigned = quote_numbers(quote), derived_columns(derived.iloc[i])
            for column in NUMBERS:
                value = numbers.get(column, [None] * len(text))[i]
                if value is None or column in assigned or value in printed:
                    continue
                add(
                    i,
                    column,
                    text[column].iloc[i],
                    "number not found in source_quote, and 'derived' does not assign this "
                    f"column (write e.g. '{column} = <formula>' there)",
                )
    return problems


def load_studies(path: str | Path | None = None, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read and validate the studies table (the bundled ``studies.csv`` by default).

    The file is read by `read_studies_file` (the parser of ``ketameta validate-data``: cells
    stripped of surrounding whitespace) and checked by `validate_studies`, so a file that
    validates loads to the same values: numbers as numbers, ``primary`` as True/False (any
    case), empty cells as NaN. ``allow_empty=True`` accepts a header without rows.

    Raises
    ------
    DataValidationError
        Listing every problem (row, record_id, column, value, message); ``.problems`` holds them.
        Also (one line) for a file that cannot be read as a CSV: see `read_studies_file`.
    FileNotFoundError
        No such file.

    Examples
    --------
    >>> studies = load_studies()
    >>> {"study_id", "route", "source_quote"} <= set(studies.columns)
    True
    """
    path = bundled_path() if path is None else Path(path)
    df = read_studies_file(path, allow_empty=allow_empty)
    problems = validate_studies(df, allow_empty=allow_empty)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise DataValidationError(
            f"{path}: {len(problems)} problem(s):\n{listing}",
            problems=[p.__dict__ for p in problems],
        )
    out = df.replace("", np.nan)
    for column in OPTIONAL_NUMERIC:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column])
    out["primary"] = out["primary"].astype(str).str.lower() == "true"
    out["study_label"] = study_labels(out) if len(out) else pd.Series(dtype=object)
    out.attrs["source_path"] = str(path)
    return out


def study_labels(studies: pd.DataFrame) -> pd.Series:
    """One label per study, used everywhere: the author and year of its primary record (else
    its first record); the study id is added where two studies would share a label.

    Examples
    --------
    >>> df = pd.DataFrame({"study_id": ["t12", "t12"], "first_author": ["Turkoz", "Jones"],
    ...                    "year": [2021, 2022], "primary": [False, True]})
    >>> study_labels(df).tolist()
    ['Jones 2022', 'Jones 2022']
    """
    author_year = (
        studies["first_author"].astype(str) + " " + studies["year"].map(lambda y: f"{float(y):.0f}")
    )
    rank = (~studies["primary"].astype(bool)).astype(int)
    chosen = (
        pd.DataFrame({"study": studies["study_id"], "rank": rank, "label": author_year})
        .sort_values("rank", kind="stable")
        .drop_duplicates("study")
        .set_index("study")["label"]
    )
    clash = chosen.map(chosen.value_counts()) > 1
    chosen = chosen.where(~clash, chosen + " (" + chosen.index.to_series() + ")")
    return studies["study_id"].map(chosen)


def load_screening(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``screening.csv``: every study considered with its decision and reason."""
    path = bundled_path("screening.csv") if path is None else Path(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)
