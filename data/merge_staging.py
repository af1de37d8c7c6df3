"""Merge the curators' staging files into data/studies.csv and data/screening.csv.

Run from the repository root: ``python data/merge_staging.py``. The staging files
(``data/staging/part_*.csv`` and ``data/staging/screening_*.csv``) are the curators' working
copies; the merged files are what the package ships (also copied to ``src/ketameta/_data/``).
Rows are sorted by study and record so the merged files diff cleanly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
STAGING = ROOT / "staging"
PACKAGE_DATA = ROOT.parent / "src" / "ketameta" / "_data"


def merge(pattern: str, out: Path, sort_by: list[str]) -> pd.DataFrame:
    parts = [
        pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(STAGING.glob(pattern))
    ]
    merged = pd.concat(parts, ignore_index=True).sort_values(sort_by, kind="stable")
    merged.to_csv(out, index=False, lineterminator="\n")
    PACKAGE_DATA.mkdir(exist_ok=True)
    shutil.copyfile(out, PACKAGE_DATA / out.name)
    return merged


if __name__ == "__main__":
    studies = merge("part_*.csv", ROOT / "studies.csv", ["study_id", "record_id"])
    screening = merge("screening_*.csv", ROOT / "screening.csv", ["study_id"])
    print(f"studies.csv: {len(studies)} records from {studies['study_id'].nunique()} studies")
    print(f"screening.csv: {len(screening)} studies")
