"""Input checks shared by the pandas-facing API (``meta()``, and any function that reads
``yi``/``vi`` columns the same way): options, numeric columns, labels, escalc's attributes.

Every error names the argument; for DataFrames every unusable row is listed with its label,
position and column (:class:`~ketameta.exceptions.DataValidationError`); nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketameta._core.pooling import TESTS
from ketameta._core.tau2 import METHODS
from ketameta.exceptions import DataValidationError


@dataclass(frozen=True)
class Effects:
    """Checked study-level input: ``yi``, ``vi`` (float arrays), labels, escalc's attributes."""

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    favours_group1: str | None = None
    excluded: tuple[tuple[str, str], ...] = ()


def check_options(method, test, level) -> float:
    if method not in METHODS:
        raise ValueError(f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.")
    if test not in TESTS:
        raise ValueError(f"Unknown 'test' {test!r}; choose 'z' or 'knha'.")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)):
        raise ValueError(f"'level' must be a number (percent), got {level!r}.")
    level = float(level)
    if not 0.0 < level < 100.0:
        raise ValueError(f"'level' must be a percentage in (0, 100), got {level!r}.")
    return level


def numeric_vector(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"'{name}' must be numeric: {err}") from None
    if arr.ndim != 1:
        raise ValueError(f"'{name}' must be one-dimensional, got shape {arr.shape}.")
    return arr


def numeric_column(column: pd.Series, name: str) -> tuple[np.ndarray, list]:
    """Column as floats; text that is not a number becomes NaN and is reported by position."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), []
    numbers = pd.to_numeric(column, errors="coerce")
    values = np.asarray(numbers, dtype=np.float64)
    text = np.flatnonzero(np.isnan(values) & column.notna().to_numpy())
    return values, [(int(p), name, f"{name} is {column.iloc[p]!r} (not a number)") for p in text]


def row_problems(yi: np.ndarray, vi: np.ndarray) -> list[tuple[int, str, str]]:
    """(position, column, problem) for every non-finite yi/vi and every vi <= 0."""
    problems = []
    for pos in np.flatnonzero(~np.isfinite(yi)):
        problems.append((int(pos), "yi", f"yi is {yi[pos]} (must be finite)"))
    for pos in np.flatnonzero(~np.isfinite(vi)):
        problems.append((int(pos), "vi", f"vi is {vi[pos]} (must be finite)"))
    for pos in np.flatnonzero(np.isfinite(vi) & (vi <= 0)):
        problems.append((int(pos), "vi", f"vi is {vi[pos]} (must be > 0)"))
    return sorted(problems)


def labels_from_data(data: pd.DataFrame, labels) -> tuple[str, ...]:
    if isinstance(labels, str):
        if labels not in data.columns:
            raise ValueError(f"'labels' column {labels!r} is not in 'data'.")
        return tuple(str(v) for v in data[labels])
    if labels is not None:
        return labels_from_sequence(labels, len(data))
    for column in ("label", "study_label"):
        if column in data.columns:
            return tuple(str(v) for v in data[column])
    return tuple(str(v) for v in data.index)


def labels_from_sequence(labels, k: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(f"Study {i + 1}" for i in range(k))
    if isinstance(labels, str) or not isinstance(labels, Sequence | np.ndarray | pd.Series):
        raise ValueError(
            "'labels' must be a sequence of study labels (or a column name of 'data')."
        )
    out = tuple(str(v) for v in labels)
    if len(out) != k:
        raise ValueError(f"'labels' has {len(out)} entries but there are {k} studies.")
    return out


def frozen(values: np.ndarray) -> np.ndarray:
    """A read-only copy (results are immutable; the caller's arrays stay untouched)."""
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def excluded_from_attrs(attrs: dict) -> tuple[tuple[str, str], ...]:
    raw = attrs.get("excluded") or ()
    return tuple((str(label), str(reason)) for label, reason in raw)


def read_effects(yi, vi, *, data=None, labels=None, caller: str = "meta()") -> Effects:
    """Check and read ``yi``/``vi`` (arrays, or column names of ``data``) and the labels.

    Raises ``ValueError`` naming the argument for bad arrays or options, and
    :class:`DataValidationError` listing every unusable row (label, position, column) of
    ``data``: NaN or infinite yi/vi, vi <= 0, text in a numeric column; also for k = 0.
    """
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"'data' must be a pandas DataFrame, got {type(data).__name__}.")
        ycol = "yi" if yi is None else yi
        vcol = "vi" if vi is None else vi
        for arg, col in (("yi", ycol), ("vi", vcol)):
            if not isinstance(col, str):
                raise ValueError(f"With 'data', '{arg}' must be a column name, got {col!r}.")
            if col not in data.columns:
                if col == arg:  # the default name: these are not effect sizes yet
                    hint = (
                        " 'data' needs one row per study with its effect size and sampling "
                        "variance: compute them first with km.escalc(measure, data=..., ...) from "
                        "arm-level data (for the bundled studies table: "
                        "km.analyses.prepare_effects(km.load_studies(), km.analyses.Settings())), "
                        f"or pass {arg}= naming the column that holds them."
                    )
                else:
                    hint = f" Its columns: {', '.join(map(str, data.columns[:20]))}."
                raise ValueError(f"{caller}: '{arg}' column {col!r} is not in 'data'.{hint}")
        labs = labels_from_data(data, labels)
        y, text_y = numeric_column(data[ycol], "yi")
        v, text_v = numeric_column(data[vcol], "vi")
        text_problems = text_y + text_v
        columns = {"yi": ycol, "vi": vcol}
    else:
        if yi is None or vi is None:
            raise ValueError("Give 'yi' and 'vi' (arrays), or 'data' (a DataFrame).")
        y = numeric_vector(yi, "yi")
        v = numeric_vector(vi, "vi")
        if y.shape != v.shape:
            raise ValueError(f"Length of 'yi' ({y.size}) and 'vi' ({v.size}) are not the same.")
        labs = labels_from_sequence(labels, y.size)
        columns = None
        text_problems = []
    if y.size == 0:
        raise ValueError("No studies: 'yi' and 'vi' are empty.")
    reported = {(pos, col) for pos, col, _ in text_problems}  # text already explains its NaN
    problems = text_problems + [p for p in row_problems(y, v) if (p[0], p[1]) not in reported]
    problems.sort()
    if problems:
        if columns is not None:
            lines = [
                f"row {labs[pos]!r} (position {pos}), column {columns[col]!r}: {msg}"
                for pos, col, msg in problems
            ]
            raise DataValidationError(
                f"{caller}: 'data' has unusable rows (fix or remove them):\n  "
                + "\n  ".join(lines),
                problems=[
                    {"row": labs[pos], "position": pos, "column": columns[col], "problem": msg}
                    for pos, col, msg in problems
                ],
            )
        lines = [f"'{col}'[{pos}] (study {labs[pos]!r}): {msg}" for pos, col, msg in problems]
        raise ValueError(f"{caller}: unusable input:\n  " + "\n  ".join(lines))
    if data is None:
        return Effects(y, v, labs)
    return Effects(y, v, labs, data.attrs.get("favours_group1"), excluded_from_attrs(data.attrs))
