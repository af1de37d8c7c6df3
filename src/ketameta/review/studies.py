"""The curated evidence: ``load_studies()``, ``validate_studies()`` and the schema of studies.csv.

The schema is declarative: `SCHEMA` holds one `Rule` per column of the data dictionary
(``data/README.md``): kind (text, enum, whole number, number, true/false), required or not,
allowed values, bounds, whether the number must be found in the row's ``source_quote``, and
whether it belongs to arm 2. `validate_studies` applies it and the checks across columns
(events within ``[0, n]``, CI bounds in order, unique ``record_id``, single-arm records without
arm-2 numbers, every quoted number printed in ``source_quote`` unless ``derived`` assigns it),
and reports *every* problem at once, each with its row, ``record_id``, column, value and message.

This module loads the tables (`load_studies`, `load_screening`), finds the bundled files
(`bundled_path`) and labels the studies (`study_labels`); it re-exports the parts: the schema
(`ketameta.review.studies_schema`: `ENUMS`, `Rule`, `SCHEMA`, `Problem`), the reader
(`ketameta.review.studies_reading`: `read_studies_file`) and the validator
(`ketameta.review.studies_validation`: `validate_studies`, `quote_numbers`,
`derived_columns`).

The data files are ``data/studies.csv``, ``data/screening.csv`` and
``data/published_meta_analyses.csv`` at the repository root. The package reaches them through
``ketameta/review/_data/``, whose entries are symbolic links to those files: from a checkout
(editable install) the file analysed is the file you edit, and a wheel ships the files the links
point to, so there is one copy (``tests/test_data.py`` checks the links).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ketameta.exceptions import DataValidationError
from ketameta.review.studies_reading import read_studies_file
from ketameta.review.studies_schema import (
    BOOL,
    ENUM,
    ENUMS,
    EVENT_LIMITS,
    FLOAT,
    INT,
    NUMBERS,
    OPTIONAL_NUMERIC,
    SCHEMA,
    TEXT,
    Problem,
    Rule,
)
from ketameta.review.studies_validation import derived_columns, quote_numbers, validate_studies

__all__ = [
    "BOOL",
    "ENUM",
    "ENUMS",
    "EVENT_LIMITS",
    "FLOAT",
    "INT",
    "NUMBERS",
    "OPTIONAL_NUMERIC",
    "SCHEMA",
    "TEXT",
    "Problem",
    "Rule",
    "bundled_path",
    "derived_columns",
    "load_screening",
    "load_studies",
    "quote_numbers",
    "read_studies_file",
    "study_labels",
    "validate_studies",
]


def bundled_path(name: str = "studies.csv") -> Path:
    """Path of a bundled data file (works from a source checkout and from an installed wheel)."""
    return Path(str(resources.files("ketameta.review") / "_data" / name))


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
