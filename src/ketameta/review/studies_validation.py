"""`validate_studies`: a studies table checked against `SCHEMA`, every problem reported at once.

Besides the rules of each column, the checks across columns (events within ``[0, n]``, CI
bounds in order, unique ``record_id``, single-arm records without arm-2 numbers, every quoted
number printed in ``source_quote`` unless ``derived`` assigns it), and the parsing they need:
the numbers printed in a quote (`quote_numbers`), the columns ``derived`` assigns
(`derived_columns`) and what counts as a number cell.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ketameta.review.studies_schema import (
    BOOL,
    ENUM,
    EVENT_LIMITS,
    FLOAT,
    INT,
    NUMBERS,
    SCHEMA,
    Problem,
)

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
