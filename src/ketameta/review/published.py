"""Published meta-analyses of ketamine, to set the review's pooled results beside.

``data/published_meta_analyses.csv`` holds one row per pooled result that a published
meta-analysis reports (an outcome at a timepoint), copied from its abstract with the source,
the location and the verbatim quote, under the same rules as ``studies.csv``: every number in
``estimate``, ``ci_low``, ``ci_high``, ``k_studies``, ``n_participants`` and ``i2`` must be printed
in ``source_quote``. Signs stay as the source reports them; ``favours_ketamine`` says which side
favours ketamine (``"negative"``, ``"positive"`` or ``"RR > 1"``), because reviews differ.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ketameta.exceptions import DataValidationError
from ketameta.review.studies import Problem, bundled_path, quote_numbers

COLUMNS = (
    "ma_id", "record_id", "first_author", "year", "title", "doi", "pmid", "scope", "comparison",
    "outcome", "timepoint", "measure", "estimate", "ci_low", "ci_high", "k_studies",
    "n_participants", "i2", "favours_ketamine", "source", "source_location", "source_quote",
    "notes",
)  # fmt: skip
REQUIRED = (
    "ma_id", "record_id", "first_author", "year", "title", "comparison", "outcome", "measure",
    "estimate", "ci_low", "ci_high", "favours_ketamine", "source", "source_location",
    "source_quote",
)  # fmt: skip
QUOTED = ("estimate", "ci_low", "ci_high", "k_studies", "n_participants", "i2")
MEASURES = ("RR", "OR", "SMD_d", "SMD_g", "MD", "MD_decrease", "SMD_decrease")
FAVOURS = ("negative", "positive", "RR > 1", "RR < 1", "OR > 1")


def validate_published(df: pd.DataFrame) -> list[Problem]:
    """Every problem of a published-results table (empty list = valid).

    Checks the columns, required cells, the measure and direction vocabularies, that each number
    is printed in the row's quote, ``ci_low <= estimate <= ci_high`` and unique ``record_id``.

    Examples
    --------
    >>> row = {c: "" for c in COLUMNS}
    >>> row.update(ma_id="x", record_id="x_r", first_author="A", year="2020", title="T",
    ...            comparison="k vs p", outcome="response", measure="RR", estimate="2.1",
    ...            ci_low="1.5", ci_high="2.9", favours_ketamine="RR > 1", source="doi",
    ...            source_location="Abstract", source_quote="RR 2.1 (95% CI 1.5-2.8)")
    >>> [p.column for p in validate_published(pd.DataFrame([row]))]
    ['ci_high']
    """
    problems: list[Problem] = []
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    for name in missing:
        problems.append(Problem(0, "", name, "", "column missing"))
    for name in extra:
        problems.append(Problem(0, "", name, "", "unknown column"))
    if missing:
        return problems
    seen: set[str] = set()
    for i, row in enumerate(df.to_dict("records"), start=1):
        rid = str(row["record_id"])

        def bad(column: str, message: str, row=row, i=i, rid=rid) -> None:
            problems.append(Problem(i, rid, column, str(row[column]), message))

        for name in REQUIRED:
            if str(row[name]).strip() in ("", "nan"):
                bad(name, "required")
        if rid in seen:
            bad("record_id", "duplicate record_id")
        seen.add(rid)
        if row["measure"] not in MEASURES:
            bad("measure", f"must be one of {', '.join(MEASURES)}")
        if row["favours_ketamine"] not in FAVOURS:
            bad("favours_ketamine", f"must be one of {', '.join(FAVOURS)}")
        printed = quote_numbers(str(row["source_quote"]))
        values: dict[str, float] = {}
        for name in QUOTED:
            text = str(row[name]).strip()
            if text in ("", "nan"):
                continue
            try:
                values[name] = float(text)
            except ValueError:
                bad(name, "not a number")
                continue
            if values[name] not in printed:
                bad(name, "number not printed in source_quote")
        if {"estimate", "ci_low", "ci_high"} <= set(values):
            if not values["ci_low"] <= values["estimate"] <= values["ci_high"]:
                bad("estimate", "not inside [ci_low, ci_high]")
    return problems


def load_published(path: str | Path | None = None, *, as_text: bool = False) -> pd.DataFrame:
    """The published meta-analytic results (bundled file by default), validated.

    ``as_text=True`` keeps every cell as the file's text (numbers as the source prints them,
    e.g. ``"-0.80"``), for display; otherwise numeric columns are converted.

    Raises
    ------
    DataValidationError
        Listing every problem (row, record, column, value).

    Examples
    --------
    >>> table = load_published()
    >>> {"bahji2022", "an2021"} <= set(table["ma_id"])
    True
    """
    source = Path(path) if path is not None else bundled_path("published_meta_analyses.csv")
    df = pd.read_csv(source, dtype=str, keep_default_na=False)
    problems = validate_published(df)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise DataValidationError(
            f"{source}: {len(problems)} problem(s):\n{lines}", [vars(p) for p in problems]
        )
    if as_text:
        return df
    for name in ("estimate", "ci_low", "ci_high", "i2"):
        df[name] = pd.to_numeric(df[name].replace("", None))
    for name in ("year", "k_studies", "n_participants"):
        df[name] = pd.to_numeric(df[name].replace("", None)).astype("Int64")
    return df
