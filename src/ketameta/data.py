"""The curated evidence: ``load_studies()`` and the schema of ``studies.csv``.

The schema is declarative (`SCHEMA`: one rule set per column) and `validate_studies` reports
*every* problem at once, each with its row, ``record_id``, column, value and message. Besides the
column rules it checks: duplicate ``record_id``; events within ``[0, n]``; single-arm records
without arm-2 numbers; and that every number of a row appears in its ``source_quote`` unless the
row's ``derived`` column names that column (so each number can be traced to the text it came
from). The data dictionary is ``data/README.md``.
"""

from __future__ import annotations

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
    "contrast": ("ketamine_vs_control", "therapy_added_to_ketamine", "prepost"),
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
    "primary": ("true", "false"),
}
REQUIRED_TEXT = (
    "study_id",
    "record_id",
    "first_author",
    "year",
    "design",
    "drug",
    "route",
    "psychotherapy",
    "comparator",
    "contrast",
    "outcome_construct",
    "direction",
    "outcome_type",
    "source",
    "source_location",
    "source_quote",
)
COUNTS = ("n1", "n2", "events1", "events2", "sessions")
NONNEGATIVE = ("sd1", "sd2", "se1", "se2", "baseline_sd1", "effect_se", "dose_mg_kg")
NUMBERS = (
    "n1",
    "mean1",
    "sd1",
    "se1",
    "n2",
    "mean2",
    "sd2",
    "se2",
    "baseline_mean1",
    "baseline_sd1",
    "prepost_r",
    "events1",
    "events2",
    "effect",
    "effect_se",
    "effect_ci_low",
    "effect_ci_high",
)
ARM2 = ("n2", "mean2", "sd2", "se2", "events2")
OPTIONAL_NUMERIC = (*NUMBERS, "year", "dose_mg_kg", "sessions", "timepoint_days", "ci_level")


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what is wrong."""

    row: int
    record_id: str
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row} ({self.record_id}), column {self.column!r}"
        return f"{where}, value {self.value!r}: {self.message}"


def bundled_path(name: str = "studies.csv") -> Path:
    """Path of a bundled data file (works from a source checkout and from an installed wheel)."""
    return Path(str(resources.files("ketameta") / "_data" / name))


def _normalise(text: str) -> str:
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2009", " ")
    return re.sub(r"-\s+(?=\d)", "-", text)


def _number_tokens(quote: str) -> set[float]:
    tokens = re.findall(r"-?\d[\d,]*\.?\d*|-?\.\d+", _normalise(quote))
    values = set()
    for token in tokens:
        try:
            values.add(float(token.replace(",", "")))
        except ValueError:
            continue
        values.add(abs(float(token.replace(",", ""))))
    return values


def validate_studies(df: pd.DataFrame) -> list[Problem]:
    """Check a studies table against the schema; return every problem found (empty = valid).

    Row numbers are 1-based data rows (row 1 is the first line after the header).

    Examples
    --------
    >>> import pandas as pd
    >>> bad = pd.DataFrame({"record_id": ["x1"], "route": ["nasal"]})
    >>> any(p.column == "route" for p in validate_studies(bad))
    True
    """
    problems: list[Problem] = []
    text = df.fillna("").astype(str)

    def add(i: int, column: str, value: object, message: str) -> None:
        rid = text["record_id"].iloc[i] if "record_id" in text.columns else ""
        problems.append(Problem(i + 1, str(rid), column, str(value), message))

    for column in REQUIRED_TEXT:
        if column not in df.columns:
            problems.append(Problem(0, "", column, "", "required column is missing"))
            continue
        for i in np.flatnonzero(text[column].str.strip() == ""):
            add(int(i), column, "", "required value is empty")
    for column, allowed in ENUMS.items():
        if column not in df.columns:
            continue
        for i, value in enumerate(text[column]):
            if value.strip() and value.strip() not in allowed:
                add(i, column, value, f"not one of: {', '.join(allowed)}")
    numeric: dict[str, pd.Series] = {}
    for column in OPTIONAL_NUMERIC:
        if column not in df.columns:
            continue
        values = pd.to_numeric(text[column].str.strip(), errors="coerce").astype(float)
        for i in np.flatnonzero(values.isna() & (text[column].str.strip() != "")):
            add(int(i), column, text[column].iloc[i], "not a number")
        numeric[column] = values
    for column in COUNTS:
        if column in numeric:
            bad = numeric[column].notna() & (
                (numeric[column] < (0 if "events" in column else 1)) | (numeric[column] % 1 != 0)
            )
            for i in np.flatnonzero(bad):
                add(
                    int(i),
                    column,
                    numeric[column].iloc[i],
                    "must be a whole number " + (">= 0" if "events" in column else ">= 1"),
                )
    for column in NONNEGATIVE:
        if column in numeric:
            for i in np.flatnonzero(numeric[column] < 0):
                add(int(i), column, numeric[column].iloc[i], "must not be negative")
    for ev, n in (("events1", "n1"), ("events2", "n2")):
        if ev in numeric and n in numeric:
            for i in np.flatnonzero(numeric[ev] > numeric[n]):
                add(int(i), ev, numeric[ev].iloc[i], f"exceeds {n} ({numeric[n].iloc[i]:g})")
    if "prepost_r" in numeric:
        for i in np.flatnonzero(numeric["prepost_r"].abs() > 1):
            add(int(i), "prepost_r", numeric["prepost_r"].iloc[i], "must lie in [-1, 1]")
    if "record_id" in df.columns:
        for i in np.flatnonzero(text["record_id"].duplicated(keep="first")):
            add(int(i), "record_id", text["record_id"].iloc[i], "duplicate record_id")
    if "design" in df.columns:
        single = text["design"] == "single_arm"
        for column in ARM2:
            if column in numeric:
                for i in np.flatnonzero(single & numeric[column].notna()):
                    add(int(i), column, numeric[column].iloc[i], "a single-arm record has no arm 2")
    if "source_quote" in df.columns:
        derived = text["derived"] if "derived" in text.columns else pd.Series("", index=text.index)
        for i, quote in enumerate(text["source_quote"]):
            tokens = _number_tokens(quote)
            for column in NUMBERS:
                value = numeric.get(column, pd.Series(dtype=float))
                if column not in numeric or pd.isna(value.iloc[i]):
                    continue
                if re.search(rf"\b{column}\b", derived.iloc[i]):
                    continue
                if float(value.iloc[i]) not in tokens:
                    add(
                        i,
                        column,
                        value.iloc[i],
                        "number does not appear in source_quote and the row's 'derived' "
                        "does not name this column",
                    )
    return problems


def load_studies(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the studies table (the bundled ``studies.csv`` by default).

    Raises
    ------
    DataValidationError
        Listing every problem (row, record_id, column, value, message); ``.problems`` holds them.

    Examples
    --------
    >>> studies = load_studies()
    >>> {"study_id", "route", "source_quote"} <= set(studies.columns)
    True
    """
    path = bundled_path() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"studies file not found: {path}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    problems = validate_studies(df)
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
    out.attrs["source_path"] = str(path)
    return out


def load_screening(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``screening.csv``: every study considered with its decision and reason."""
    path = bundled_path("screening.csv") if path is None else Path(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)
