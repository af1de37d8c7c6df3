"""Input checks shared by the pandas-facing API (``meta()``, ``meta_bayes()``, ``escalc()``
and any function that reads ``yi``/``vi`` columns the same way): options, numeric columns,
labels, escalc's attributes.

Every error is a :class:`~ketameta.exceptions.DataValidationError` (a ``ValueError``) that names
the argument; for DataFrames every unusable row is listed with its label, position and column;
nothing is dropped. The reusable checkers (in `ketameta.synthesis._checks`, re-exported here):

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketameta.exceptions import DataValidationError
from ketameta.synthesis._checks import (  # noqa: F401  (re-exported for every caller)
    METHODS,
    TESTS,
    SubgroupLevels,
    _fail,
    align_series,
    check_alpha,
    check_flag,
    check_integer,
    check_level,
    check_number,
    check_options,
    numeric_column,
    numeric_input,
    numeric_vector,
    subgroup_levels,
    unique_columns,
    whole_numbers,
)


@dataclass(frozen=True)
class Effects:
    """Checked study-level input: ``yi``, ``vi`` (float arrays), labels, escalc's attributes."""

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    favours_group1: str | None = None
    excluded: tuple[tuple[str, str], ...] = ()


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
