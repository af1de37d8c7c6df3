"""Checks of scalar options, shared by every public function of the library.

`check_number`, `check_integer`, `check_level`, `check_alpha`, `check_flag` and
`check_options` (bounds and types of scalar options; numpy scalars accepted, booleans refused
where a number is meant), and `_fail`, the one-problem `DataValidationError` that every check
of `ketameta.synthesis._checks` raises. `ketameta.synthesis._checks` re-exports all of them.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ketameta._core.pooling import TESTS, TESTS_TEXT
from ketameta._core.tau2 import METHODS
from ketameta.exceptions import DataValidationError

__all__ = [
    "METHODS",
    "TESTS",
    "TESTS_TEXT",
    "check_alpha",
    "check_flag",
    "check_integer",
    "check_level",
    "check_number",
    "check_options",
]


def _fail(message: str, **problem: Any) -> DataValidationError:
    """A `DataValidationError` with one problem record (argument, row, column, ...)."""
    return DataValidationError(message, problems=[{**problem, "problem": message}])


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
        raise _fail(f"Unknown 'test' {test!r}; choose {TESTS_TEXT}.", argument="test")
    if not _is_real(level):
        raise _fail(f"'level' must be a number (percent), got {level!r}.", argument="level")
    level = float(level)
    if not 0.0 < level < 100.0:
        raise _fail(f"'level' must be a percentage in (0, 100), got {level!r}.", argument="level")
    return level
