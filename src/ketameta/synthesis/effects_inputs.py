"""The inputs and output of ``escalc()``: each measure's inputs, their checks, the signs.

`INPUTS` names the inputs of every measure and `VTYPES` its variance types; `_read_inputs`
turns arrays or column names into checked float arrays of one length, with error messages that
name the argument, its column and the bad rows; `_finish` attaches ``yi``/``vi``/``sei`` and the
sign convention of `ketameta.synthesis.effects` (``favours_group1``, ``sign_flipped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ketameta.exceptions import DataValidationError
from ketameta.synthesis._inputs import align_series, numeric_input, unique_columns, whole_numbers

Measure = Literal[
    "SMD", "SMDH", "MD", "ROM", "SMCR", "SMCC", "RR", "OR", "RD", "ZCOR", "COR", "GEN"
]

INPUTS: dict[str, tuple[str, ...]] = {
    "SMD": ("m1", "sd1", "n1", "m2", "sd2", "n2"),
    "SMDH": ("m1", "sd1", "n1", "m2", "sd2", "n2"),
    "MD": ("m1", "sd1", "n1", "m2", "sd2", "n2"),
    "ROM": ("m1", "sd1", "n1", "m2", "sd2", "n2"),
    "SMCR": ("m_pre", "m_post", "sd_pre", "n", "r"),
    "SMCC": ("m_pre", "m_post", "sd_pre", "sd_post", "n", "r"),
    "RR": ("events1", "n1", "events2", "n2"),
    "OR": ("events1", "n1", "events2", "n2"),
    "RD": ("events1", "n1", "events2", "n2"),
    "ZCOR": ("r", "n"),
    "COR": ("r", "n"),
}
VTYPES = {"SMD": ("LS", "UB", "LS2", "AV"), "MD": ("LS", "HO"), "ROM": ("LS", "HO")}
SIZE_INPUTS = {"n", "n1", "n2"}
COUNT_INPUTS = {"n", "n1", "n2", "events1", "events2"}  # whole numbers
SD_INPUTS = {"sd1", "sd2", "sd_pre", "sd_post"}
# sign of yi that favours group 1 when lower values of the outcome are better
_LOWER_IS_BETTER_SIGN = "negative"


def _column(value: Any, name: str, data: pd.DataFrame | None, length: int | None) -> np.ndarray:
    if isinstance(value, str):
        if data is None:
            raise DataValidationError(
                f"'{name}' is the column name {value!r} but no data= was given"
            )
        if value not in data.columns:
            raise DataValidationError(f"column {value!r} (for '{name}') is not in data")
        value = data[value]
        shown = f"'{name}' (column {value.name!r})"
    else:
        shown = f"'{name}'"
    if np.ndim(value) == 0 and not isinstance(value, pd.Series | pd.DataFrame):
        value = [value]  # one number: one study
    try:
        array = numeric_input(value, name, caller="escalc()")
    except DataValidationError as exc:
        raise DataValidationError(
            str(exc).replace(f"'{name}'", shown, 1), problems=exc.problems
        ) from None
    if length is not None and array.shape[0] != length:
        raise DataValidationError(
            f"length of '{name}' ({array.shape[0]}) differs from the others ({length})"
        )
    return array


def _row_names(data: pd.DataFrame | None, k: int) -> list[str]:
    return [str(i) for i in (data.index if data is not None else range(k))]


def _check(name: str, values: np.ndarray, rows: Sequence[str], shown: str | None = None) -> None:
    """Raise ValueError naming the argument (``shown``, with its column) and the bad rows."""
    shown = shown or f"'{name}'"
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataValidationError(
            f"{shown} has missing or infinite values in rows {_list(rows, bad)}"
        )
    if name in SIZE_INPUTS and (values < 1).any():
        raise DataValidationError(f"{shown} must be at least 1 (rows {_list(rows, values < 1)})")
    if name in SD_INPUTS and (values < 0).any():
        raise DataValidationError(f"{shown} must not be negative (rows {_list(rows, values < 0)})")
    if name.startswith("events") and (values < 0).any():
        raise DataValidationError(f"{shown} must not be negative (rows {_list(rows, values < 0)})")
    if name in COUNT_INPUTS:
        whole_numbers(values, name, rows, shown=shown)
    if name == "r" and ((values < -1) | (values > 1)).any():
        raise DataValidationError(
            f"{shown} must lie in [-1, 1] (rows {_list(rows, (values < -1) | (values > 1))})"
        )


def _shown(name: str, value: Any) -> str:
    return f"'{name}' (column {value!r})" if isinstance(value, str) else f"'{name}'"


def _list(rows: Sequence[str], mask: np.ndarray) -> str:
    return ", ".join(r for r, m in zip(rows, mask, strict=True) if m)


def _finish(out, yi, vi, measure, direction, favours_group1, excluded) -> pd.DataFrame:
    """Attach yi/vi/sei and the attrs; negate yi where the requested sign disagrees."""
    natural = _natural_sign(direction)
    flipped = bool(natural and favours_group1 and natural != favours_group1)
    out["yi"] = -yi if flipped else yi
    out["vi"] = vi
    out["sei"] = np.sqrt(vi)
    out.attrs.update(
        measure=measure,
        favours_group1=favours_group1 or natural,
        sign_flipped=flipped,
        excluded=list(excluded),
    )
    return out


def _read_inputs(
    inputs: dict[str, Any], needed: Sequence[str], data: pd.DataFrame | None
) -> tuple[dict[str, np.ndarray], list[str], dict[str, str]]:
    """The needed inputs as checked float arrays of one length, the row names, and how each
    input is named in messages (the column name or the argument)."""
    length = len(data) if data is not None else None
    if data is not None:
        unique_columns(data, [inputs[name] for name in needed], caller="escalc()")
    values = align_series(
        {name: inputs[name] for name in needed},
        index=data.index if data is not None else None,
        caller="escalc()",
    )
    arrays: dict[str, np.ndarray] = {}
    for name in needed:
        arrays[name] = _column(values[name], name, data, length)
        length = arrays[name].shape[0]
    rows = _row_names(data, length or 0)
    shown = {name: _shown(name, inputs[name]) for name in needed}
    for name, values in arrays.items():
        _check(name, values, rows, shown[name])
    return arrays, rows, shown


def _check_signs(direction: str | None, favours_group1: str | None) -> None:
    if direction not in (None, "lower_is_better", "higher_is_better"):
        raise DataValidationError(
            f"'direction' must be 'lower_is_better' or 'higher_is_better', got {direction!r}"
        )
    if favours_group1 not in (None, "negative", "positive"):
        raise DataValidationError(
            f"'favours_group1' must be 'negative' or 'positive', got {favours_group1!r}"
        )


def _natural_sign(direction: str | None) -> str | None:
    if direction is None:
        return None
    return _LOWER_IS_BETTER_SIGN if direction == "lower_is_better" else "positive"
