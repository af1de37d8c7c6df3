"""Input checks shared by the pandas-facing API (``meta()``, ``meta_bayes()``, ``escalc()``
and any function that reads ``yi``/``vi`` columns the same way): options, numeric columns,
labels, escalc's attributes.

Every error is a :class:`~ketameta.exceptions.DataValidationError` (a ``ValueError``) that names
the argument; for DataFrames every unusable row is listed with its label, position and column;
nothing is dropped. The reusable checkers:

* `numeric_input` (one argument to a 1-D float array: booleans, datetimes, text, other objects,
  complex numbers, ragged or 2-D input refused by argument name) and `numeric_column` (a
  DataFrame column, bad cells listed by row);
* `align_series` (pandas Series are paired by index, not position: reordered when they hold the
  same labels, refused when the labels differ) and `unique_columns` (a duplicated column name of
  ``data`` is refused, naming it);
* `whole_numbers` (counts), `check_number`, `check_integer`, `check_level`, `check_alpha`,
  `check_flag` (bounds and types of scalar options; numpy scalars accepted, booleans refused
  where a number is meant);
* `subgroup_levels` (a moderator column: missing and empty levels listed and left out, mixed
  types refused).
"""

from __future__ import annotations

import datetime as _dt
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ketameta._core.pooling import TESTS
from ketameta._core.tau2 import METHODS
from ketameta.exceptions import DataValidationError


def _fail(message: str, **problem: Any) -> DataValidationError:
    """A `DataValidationError` with one problem record (argument, row, column, ...)."""
    return DataValidationError(message, problems=[{**problem, "problem": message}])


@dataclass(frozen=True)
class Effects:
    """Checked study-level input: ``yi``, ``vi`` (float arrays), labels, escalc's attributes."""

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    favours_group1: str | None = None
    excluded: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------- scalar options


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    caller: str = "",
) -> float | None:
    """``value`` as a finite float within the bounds, else a `DataValidationError` naming
    ``name`` and the allowed range. Booleans and text are refused; numpy scalars accepted.

    >>> check_number(np.float32(0.5), "alpha", low=0, high=1, low_open=True, high_open=True)
    0.5
    """
    prefix = f"{caller}: " if caller else ""
    if value is None and allow_none:
        return None
    if not _is_real(value) or not np.isfinite(float(value)):
        raise _fail(
            f"{prefix}'{name}' must be a finite number, got {value!r} ({type(value).__name__})",
            argument=name,
            value=repr(value),
        )
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise _fail(
            f"{prefix}'{name}' must lie in {left}{lo}, {hi}{right}, got {value!r}",
            argument=name,
            value=repr(value),
        )
    return number


def check_integer(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
    caller: str = "",
) -> int | None:
    """``value`` as a Python int (any integer type, numpy's included; a float only if whole,
    e.g. ``1e6``) within ``[minimum, maximum]``; booleans refused.

    >>> check_integer(np.int64(500), "n_perm", minimum=2)
    500
    """
    prefix = f"{caller}: " if caller else ""
    if value is None and allow_none:
        return None
    whole = isinstance(value, numbers.Integral) or (
        _is_real(value) and np.isfinite(float(value)) and float(value).is_integer()
    )
    if isinstance(value, bool | np.bool_) or not whole:
        raise _fail(
            f"{prefix}'{name}' must be a whole number, got {value!r} ({type(value).__name__})",
            argument=name,
            value=repr(value),
        )
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = (
            f">= {minimum}" if maximum is None
            else f"<= {maximum}" if minimum is None
            else f"in [{minimum}, {maximum}]"
        )  # fmt: skip
        raise _fail(f"{prefix}'{name}' must be {bounds}, got {value!r}", argument=name)
    return number


def check_level(level: Any, name: str = "level", *, caller: str = "") -> float:
    """A confidence level in percent, in (0, 100); a bool is refused."""
    return check_number(level, name, low=0.0, high=100.0, low_open=True, high_open=True,
                        caller=caller)  # fmt: skip


def check_alpha(alpha: Any, name: str = "alpha", *, caller: str = "") -> float:
    """A significance level in (0, 1); a bool is refused."""
    return check_number(alpha, name, low=0.0, high=1.0, low_open=True, high_open=True,
                        caller=caller)  # fmt: skip


def check_flag(value: Any, name: str, *, caller: str = "") -> bool:
    """A true/false option: ``bool`` or ``numpy.bool_`` only (not 0/1, not the text "no")."""
    if not isinstance(value, bool | np.bool_):
        prefix = f"{caller}: " if caller else ""
        raise _fail(f"{prefix}'{name}' must be True or False, got {value!r}", argument=name)
    return bool(value)


def check_options(method, test, level) -> float:
    if method not in METHODS:
        raise _fail(
            f"Unknown 'method' {method!r}; choose one of {', '.join(METHODS)}.", argument="method"
        )
    if test not in TESTS:
        raise _fail(f"Unknown 'test' {test!r}; choose 'z' or 'knha'.", argument="test")
    if not _is_real(level):
        raise _fail(f"'level' must be a number (percent), got {level!r}.", argument="level")
    level = float(level)
    if not 0.0 < level < 100.0:
        raise _fail(f"'level' must be a percentage in (0, 100), got {level!r}.", argument="level")
    return level


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


SHARED_CONTROL = "shared_control_group"  # the column resolve_shared_controls() reads


def warn_shared_controls(data: pd.DataFrame, labels: Sequence[str], caller: str) -> None:
    """Warn when rows to be pooled share one control arm (the same non-empty tag in
    ``shared_control_group``): pooled as they are, the control's participants count twice."""
    if SHARED_CONTROL not in data.columns:
        return
    import warnings

    from ketameta.exceptions import KetametaWarning

    tags = data[SHARED_CONTROL].astype(object).where(data[SHARED_CONTROL].notna(), "")
    tags = tags.astype(str).str.strip()
    if "multiarm" in data.columns:  # rows resolve_shared_controls() already handled
        handled = data["multiarm"].fillna("").astype(str).str.strip() != ""
        tags = tags.where(~handled, "")
    counts = tags[tags != ""].value_counts()
    shared = counts[counts > 1]
    if shared.empty:
        return
    groups = []
    for tag in shared.index:
        rows = [str(labels[i]) for i in np.flatnonzero((tags == tag).to_numpy())]
        groups.append(f"{', '.join(rows)} (control {tag})")
    warnings.warn(
        f"{caller}: rows share a control arm, so its participants would be counted more than "
        f"once: {'; '.join(groups)}. Combine the arms or split the control first with "
        "km.resolve_shared_controls(data) (Cochrane Handbook 23.3.4), or model the dependence "
        "with km.vcalc + km.meta_mv.",
        KetametaWarning,
        stacklevel=4,
    )


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
            raise _fail(f"'labels' column {labels!r} is not in 'data'.", argument="labels")
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
        raise _fail(
            "'labels' must be a sequence of study labels (or a column name of 'data').",
            argument="labels",
        )
    out = tuple(str(v) for v in labels)
    if len(out) != k:
        raise _fail(
            f"'labels' has {len(out)} entries but there are {k} studies.", argument="labels"
        )
    return out


def frozen(values: np.ndarray) -> np.ndarray:
    """A read-only copy (results are immutable; the caller's arrays stay untouched)."""
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def excluded_from_attrs(attrs: dict) -> tuple[tuple[str, str], ...]:
    raw = attrs.get("excluded") or ()
    return tuple((str(label), str(reason)) for label, reason in raw)


def _read_arrays(yi, vi, labels, caller: str):
    """The array path of `read_effects`: Series paired by index, every value checked."""
    if yi is None or vi is None:
        raise _fail(
            f"{caller}: Give 'yi' and 'vi' (arrays), or 'data' (a DataFrame).", argument="yi"
        )
    for arg, value in (("yi", yi), ("vi", vi)):
        if isinstance(value, str):
            raise _fail(
                f"{caller}: '{arg}' is the column name {value!r} but no 'data' was given",
                argument=arg,
            )
    paired = align_series({"yi": yi, "vi": vi}, caller=caller)
    y = numeric_input(paired["yi"], "yi", caller=caller)
    v = numeric_input(paired["vi"], "vi", caller=caller)
    if y.shape != v.shape:
        raise _fail(
            f"{caller}: Length of 'yi' ({y.size}) and 'vi' ({v.size}) are not the same.",
            argument="vi",
        )
    return y, v, labels_from_sequence(labels, y.size)


def read_effects(yi, vi, *, data=None, labels=None, caller: str = "meta()") -> Effects:
    """Check and read ``yi``/``vi`` (arrays, or column names of ``data``) and the labels.

    Raises :class:`DataValidationError` (a ``ValueError``) naming the argument for bad arrays
    or options (booleans, dates, text or other objects; ragged or 2-D input; pandas Series
    whose indexes hold different labels: Series are paired by index, reordered when they hold
    the same labels; a duplicated column name of ``data``), and listing every unusable row
    (label, position, column) of ``data``: NaN or infinite yi/vi, vi <= 0, text in a numeric
    column; also for k = 0.
    """
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise _fail(
                f"{caller}: 'data' must be a pandas DataFrame, got {type(data).__name__}.",
                argument="data",
            )
        ycol = "yi" if yi is None else yi
        vcol = "vi" if vi is None else vi
        for arg, col in (("yi", ycol), ("vi", vcol)):
            if not isinstance(col, str):
                raise _fail(
                    f"{caller}: With 'data', '{arg}' must be a column name, got "
                    f"{type(col).__name__} {col!r:.60}.",
                    argument=arg,
                )
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
                raise _fail(
                    f"{caller}: '{arg}' column {col!r} is not in 'data'.{hint}",
                    argument=arg,
                    column=col,
                )
        unique_columns(data, [ycol, vcol, *([labels] if isinstance(labels, str) else [])],
                       caller=caller)  # fmt: skip
        labs = labels_from_data(data, labels)
        warn_shared_controls(data, labs, caller)
        y, text_y = numeric_column(data[ycol], "yi")
        v, text_v = numeric_column(data[vcol], "vi")
        text_problems = text_y + text_v
        columns = {"yi": ycol, "vi": vcol}
    else:
        y, v, labs = _read_arrays(yi, vi, labels, caller)
        columns = None
        text_problems = []
    if y.size == 0:
        raise _fail(f"{caller}: No studies: 'yi' and 'vi' are empty.", argument="yi")
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
        raise DataValidationError(
            f"{caller}: unusable input:\n  " + "\n  ".join(lines),
            problems=[
                {"argument": col, "position": pos, "row": labs[pos], "problem": msg}
                for pos, col, msg in problems
            ],
        )
    if data is None:
        return Effects(y, v, labs)
    return Effects(y, v, labs, data.attrs.get("favours_group1"), excluded_from_attrs(data.attrs))
