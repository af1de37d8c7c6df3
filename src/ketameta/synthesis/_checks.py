"""Reusable checks of single arguments, shared by every public function of the library.

* `numeric_input` (one argument to a float array: booleans, datetimes, text, other objects,
  complex numbers, ragged or wrongly shaped input refused by argument name) and
  `numeric_column` (a DataFrame column, bad cells listed by row);
* `align_series` (pandas Series paired by index, not position) and `unique_columns`;
* `whole_numbers` (counts), `check_number`, `check_integer`, `check_level`, `check_alpha`,
  `check_flag`, `check_options` (bounds and types of scalar options; numpy scalars accepted,
  booleans refused where a number is meant);
* `subgroup_levels` (a moderator column: missing and empty levels listed and left out, mixed
  types refused).

Every error is a :class:`~ketameta.exceptions.DataValidationError` (a ``ValueError``) naming the
argument. The checks of scalar options live in `ketameta.synthesis._checks_scalar` and are
re-exported here; `ketameta.synthesis._inputs` re-exports all of them.
"""

from __future__ import annotations

import datetime as _dt
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ketameta.synthesis._checks_scalar import (
    METHODS,
    TESTS,
    TESTS_TEXT,
    _fail,
    check_alpha,
    check_flag,
    check_integer,
    check_level,
    check_number,
    check_options,
)

__all__ = [
    "METHODS",
    "TESTS",
    "TESTS_TEXT",
    "SubgroupLevels",
    "_fail",
    "align_series",
    "check_alpha",
    "check_flag",
    "check_integer",
    "check_level",
    "check_number",
    "check_options",
    "numeric_column",
    "numeric_input",
    "numeric_vector",
    "subgroup_levels",
    "unique_columns",
    "whole_numbers",
]


# ---------------------------------------------------------------------------- arrays, columns


def _kind_of(value: Any) -> str | None:
    """What a non-numeric cell is ("a boolean", "a date/time", "text", ...), None if a number."""
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, _dt.date | _dt.time | _dt.timedelta | np.datetime64 | np.timedelta64):
        return "a date/time"
    if isinstance(value, str | bytes):
        return "text"
    if isinstance(value, complex | np.complexfloating):
        return "a complex number"
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, numbers.Real):
        return None
    return f"a {type(value).__name__} object"


def _dtype_problem(dtype: Any) -> str | None:
    if pd.api.types.is_bool_dtype(dtype):
        return "booleans (True/False)"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "dates/times"
    if isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype):
        return f"{dtype} values"
    if pd.api.types.is_complex_dtype(dtype):
        return "complex numbers"
    return None


def numeric_input(values: Any, name: str, *, caller: str = "", ndim: int = 1) -> np.ndarray:
    """One argument as a float array of ``ndim`` dimensions (1: a vector; 2: ``meta_batch``),
    or a `DataValidationError` naming ``name``: booleans, dates/times, text, complex numbers
    and other objects are refused (with the first offending position), as are ragged nested
    sequences, a scalar and the wrong number of dimensions. NaN / None become NaN (the callers
    report them by row).

    >>> numeric_input([1, 2.5], "yi").tolist()
    [1.0, 2.5]
    """
    prefix = f"{caller}: " if caller else ""
    if isinstance(values, str | bytes):
        raise _fail(
            f"{prefix}'{name}' must be numeric: it is the text {values!r:.60}", argument=name
        )
    if isinstance(values, pd.DataFrame) and ndim == 1:
        raise _fail(
            f"{prefix}'{name}' is a DataFrame ({values.shape[1]} columns); pass one column",
            argument=name,
        )
    if isinstance(values, pd.Series | pd.Index):
        problem = _dtype_problem(values.dtype)
        if problem:
            raise _fail(f"{prefix}'{name}' must be numeric: it holds {problem}", argument=name)
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        if pd.api.types.is_numeric_dtype(values.dtype):
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = values.to_numpy(dtype=object)
    else:
        if isinstance(values, list | tuple):
            for pos, cell in enumerate(values):
                if isinstance(cell, list | tuple | np.ndarray):
                    continue
                kind = _kind_of(cell)
                if kind:
                    raise _fail(
                        f"{prefix}'{name}' must be numeric: '{name}'[{pos}] is {kind} "
                        f"({cell!r:.60})",
                        argument=name,
                        position=pos,
                    )
        try:
            arr = np.asarray(values)
        except ValueError:
            arr = None
        if arr is None or (arr.dtype == object and arr.ndim == 1 and _is_ragged(arr)):
            raise _fail(
                f"{prefix}'{name}' is ragged (nested sequences of different lengths); "
                f"pass a flat sequence of numbers"
                + (" or a rectangular array" if ndim > 1 else ""),
                argument=name,
            ) from None
    problem = _dtype_problem(arr.dtype)
    if problem:
        raise _fail(f"{prefix}'{name}' must be numeric: it holds {problem}", argument=name)
    if arr.dtype.kind in "USa":
        flat = [str(c) for c in arr.reshape(-1)]
        first = next((c for c in flat if pd.isna(pd.to_numeric(c, errors="coerce"))), flat[:1])
        raise _fail(
            f"{prefix}'{name}' must be numeric: it holds text (e.g. {str(first)!r:.60}); "
            "convert it first (e.g. pd.to_numeric)",
            argument=name,
        )
    if arr.dtype == object:
        shape = arr.shape
        flat = arr.reshape(-1)
        for pos, cell in enumerate(flat):
            kind = _kind_of(cell)
            if kind:
                raise _fail(
                    f"{prefix}'{name}' must be numeric: '{name}'[{pos}] is {kind} ({cell!r:.60})",
                    argument=name,
                    position=pos,
                )
        arr = np.array([np.nan if c is None or c is pd.NA else c for c in flat], dtype=np.float64)
        arr = arr.reshape(shape)
    if arr.ndim != ndim:
        what = "one-dimensional" if ndim == 1 else f"{ndim}-dimensional"
        raise _fail(
            f"{prefix}'{name}' must be {what}, got shape {arr.shape}"
            + (" (a single number: wrap it in a list)" if arr.ndim == 0 else ""),
            argument=name,
        )
    return np.asarray(arr, dtype=np.float64)


def _is_ragged(values: Any) -> bool:
    lengths = {len(v) for v in values if isinstance(v, Sequence | np.ndarray) and
               not isinstance(v, str | bytes)}  # fmt: skip
    return bool(lengths) and (len(lengths) > 1 or len(lengths) < len(values))


def numeric_vector(values, name: str) -> np.ndarray:
    """`numeric_input` for one unpaired argument. A pandas Series is refused here (a
    `DataValidationError`) because Series must be paired by index with the other arguments:
    fast paths that call this fall back to `read_effects`, which pairs them (`align_series`)."""
    if isinstance(values, pd.Series):
        raise _fail(
            f"'{name}' is a pandas Series: pair it by index with read_effects()/align_series()",
            argument=name,
        )
    return numeric_input(values, name)


def numeric_column(column: pd.Series, name: str) -> tuple[np.ndarray, list]:
    """Column as floats; a cell that is not a number becomes NaN and is reported by position
    (text that does not read as a number, a boolean, a date, any other object). A column of
    booleans or dates as a whole is refused naming the argument."""
    problem = _dtype_problem(column.dtype)
    if problem:
        raise _fail(
            f"'{name}' (column {column.name!r}) holds {problem}, not numbers",
            argument=name,
            column=str(column.name),
        )
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), []
    cells = column.astype(object).tolist()
    values = np.full(len(cells), np.nan)
    problems = []
    for pos, cell in enumerate(cells):
        kind = _kind_of(cell)
        if kind is None:
            values[pos] = np.nan if cell is None or cell is pd.NA or cell is pd.NaT else cell
        elif kind == "text":
            number = pd.to_numeric(pd.Series([cell]), errors="coerce").iloc[0]
            if pd.isna(number):
                if str(cell).strip():
                    problems.append((pos, name, f"{name} is {cell!r} (not a number)"))
            else:
                values[pos] = float(number)
        else:
            problems.append((pos, name, f"{name} is {kind} ({cell!r}), not a number"))
    return values, problems


def unique_columns(data: pd.DataFrame, columns: Sequence[str], *, caller: str = "") -> None:
    """Refuse a DataFrame whose used columns are duplicated (``data[col]`` would be a frame)."""
    prefix = f"{caller}: " if caller else ""
    counts = pd.Index(data.columns).value_counts()
    twice = [c for c in columns if isinstance(c, str) and counts.get(c, 0) > 1]
    if twice:
        raise _fail(
            f"{prefix}'data' has duplicate column(s) {', '.join(map(repr, twice))}: "
            "rename them so that each name is used once",
            column=", ".join(twice),
        )


def align_series(
    values: dict[str, Any], *, index: pd.Index | None = None, caller: str = ""
) -> dict[str, Any]:
    """Pair the pandas Series among ``values`` by index, not position.

    The reference index is ``index`` (e.g. ``data.index``) or that of the first Series. A
    Series with the same labels in another order is reordered to it; one whose labels differ
    (or that has duplicate labels in another order) is refused naming both arguments and
    some of the labels found in only one. Other values (lists, arrays) pass unchanged.

    >>> a, b = pd.Series([1.0, 2.0], index=["x", "y"]), pd.Series([20.0, 10.0], index=["y", "x"])
    >>> align_series({"yi": a, "vi": b})["vi"].tolist()
    [10.0, 20.0]
    """
    prefix = f"{caller}: " if caller else ""
    series = {k: v for k, v in values.items() if isinstance(v, pd.Series)}
    if not series:
        return dict(values)
    ref_name, ref = (
        ("data", index) if index is not None else next((k, v.index) for k, v in series.items())
    )
    out = dict(values)
    for name, s in series.items():
        if s.index.equals(ref):
            continue
        same = (
            len(s.index) == len(ref) and s.index.is_unique and ref.is_unique
            and set(s.index) == set(ref)
        )  # fmt: skip
        if same:
            out[name] = s.reindex(ref)
            continue
        only_here = [str(x) for x in s.index.difference(ref)[:5]]
        only_ref = [str(x) for x in pd.Index(ref).difference(s.index)[:5]]
        detail = (
            "; ".join(
                part
                for part in (
                    f"only in '{name}': {', '.join(only_here)}" if only_here else "",
                    f"only in '{ref_name}': {', '.join(only_ref)}" if only_ref else "",
                )
                if part
            )
            or "duplicate index labels in a different order"
        )
        raise _fail(
            f"{prefix}'{name}' is a pandas Series whose index does not match that of "
            f"'{ref_name}' ({detail}); Series are paired by index: align them, or pass arrays "
            "(paired by position)",
            argument=name,
        )
    return out


def whole_numbers(
    values: np.ndarray, name: str, rows: Sequence[str], *, shown: str | None = None
) -> None:
    """Counts (events, sample sizes) must be whole numbers; refuse naming the rows."""
    bad = np.isfinite(values) & (values % 1 != 0)
    if bad.any():
        listing = ", ".join(f"{r} ({v:g})" for r, v, b in zip(rows, values, bad, strict=True) if b)
        raise _fail(
            f"{shown or repr(name)} must be whole numbers (counts); not whole in rows {listing}",
            argument=name,
            rows=[r for r, b in zip(rows, bad, strict=True) if b],
        )


# ---------------------------------------------------------------------------- subgroups


@dataclass(frozen=True)
class SubgroupLevels:
    """A moderator column read for ``subgroup()``: ``keep`` (bool per row, by position),
    ``groups`` (the level of each kept row, as text), ``levels`` (sorted), ``excluded``
    (``(row label, reason)`` of every row left out: missing or empty level)."""

    keep: np.ndarray
    groups: tuple[str, ...]
    levels: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]


def subgroup_levels(column: pd.Series, by: str, labels: Sequence[str] | None = None):
    """Read a moderator column by position: missing (None, NaN, NaT) and empty or blank text
    levels are listed in ``excluded`` and left out (``keep`` False); text is stripped; levels
    of mixed types (e.g. ``1`` and ``"1"``, or numbers and text) are refused with a
    `DataValidationError` naming the column and the types, since their text forms could merge.

    >>> lv = subgroup_levels(pd.Series(["iv", None, " ", "oral "]), "route")
    >>> lv.keep.tolist(), lv.levels, lv.excluded
    ([True, False, False, True], ('iv', 'oral'), (('1', 'missing value of route'), \
('2', 'empty value of route')))
    """
    cells = column.astype(object).tolist()
    names = [str(x) for x in (labels if labels is not None else column.index)]
    if len(names) != len(cells):
        raise _fail(f"labels ({len(names)}) and column {by!r} ({len(cells)}) differ in length")
    keep = np.ones(len(cells), dtype=bool)
    excluded: list[tuple[str, str]] = []
    kinds: dict[str, list] = {}
    groups: list[str] = []
    for pos, cell in enumerate(cells):
        if (
            cell is None
            or cell is pd.NA
            or cell is pd.NaT
            or (isinstance(cell, float | np.floating) and np.isnan(cell))
        ):
            keep[pos] = False
            excluded.append((names[pos], f"missing value of {by}"))
            continue
        if isinstance(cell, str) and not cell.strip():
            keep[pos] = False
            excluded.append((names[pos], f"empty value of {by}"))
            continue
        kind = (
            "text" if isinstance(cell, str)
            else "boolean" if isinstance(cell, bool | np.bool_)
            else "number" if isinstance(cell, numbers.Number)
            else type(cell).__name__
        )  # fmt: skip
        kinds.setdefault(kind, []).append(cell)
        groups.append(cell.strip() if isinstance(cell, str) else str(cell))
    if len(kinds) > 1:
        example = "; ".join(f"{k}: {v[0]!r}" for k, v in kinds.items())
        raise _fail(
            f"moderator {by!r} mixes value types ({example}); make the column one type "
            "(e.g. all text) so that levels are not merged or split by accident",
            column=by,
        )
    return SubgroupLevels(
        keep=keep,
        groups=tuple(groups),
        levels=tuple(sorted(set(groups))),
        excluded=tuple(excluded),
    )
