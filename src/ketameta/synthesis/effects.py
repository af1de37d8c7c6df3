"""Effect sizes: ``escalc()``, the pandas face of `ketameta._core.effects`.

Sign convention
---------------
Group 1 is the treatment (ketamine), group 2 the control, as metafor's ``m1i``/``ai``. ``yi`` is
always what metafor computes: group 1 minus group 2 (MD, SMD, SMDH, RD), the log of group 1 over
group 2 (ROM, RR, OR), and for the pre-post measures (SMCR, SMCC) follow-up minus baseline.

``direction`` says what is better on the outcome (``"lower_is_better"`` or
``"higher_is_better"``); ``escalc`` then records in ``df.attrs["favours_group1"]`` which sign of
``yi`` favours group 1: ``"negative"`` for ``lower_is_better``, ``"positive"`` for
``higher_is_better``. This holds for every measure because differences and log ratios share
their sign: on a symptom scale (lower is better) a negative MD/SMD favours ketamine; for events,
"better" refers to the event counted in ``events1``/``events2``, so relapses or dropouts are
``lower_is_better`` (log RR < 0 favours ketamine) and responders or remitters
``higher_is_better`` (log RR > 0 favours ketamine). For pre-post measures (no group 2) it
states whether a decrease (negative ``yi``) is an improvement.

Give also ``favours_group1="negative"`` (or ``"positive"``) and ``yi`` is negated where the
natural sign disagrees, so that every pooled effect reads the same way, e.g. "negative favours
ketamine" across scales and event types; ``df.attrs["sign_flipped"]`` says whether it was.
Without ``direction``, ``favours_group1`` is only recorded (nothing is negated).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import effects as core
from ketameta.exceptions import DataValidationError, ExcludedStudyWarning, ZeroCellWarning
from ketameta.synthesis._inputs import (
    align_series,
    check_flag,
    check_level,
    check_number,
    numeric_input,
    unique_columns,
    whole_numbers,
)

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


def escalc(
    measure: Measure,
    *,
    data: pd.DataFrame | None = None,
    direction: Literal["lower_is_better", "higher_is_better"] | None = None,
    favours_group1: Literal["negative", "positive"] | None = None,
    vtype: str = "LS",
    add: float = 0.5,
    to: Literal["only0", "all", "if0all", "none"] = "only0",
    drop00: bool = False,
    level: float = 95.0,
    ratio: bool = False,
    **inputs: Any,
) -> pd.DataFrame:
    """Compute effect sizes ``yi`` and sampling variances ``vi`` as metafor's ``escalc()``.

    Parameters
    ----------
    measure : str
        Two groups, continuous (inputs ``m1, sd1, n1, m2, sd2, n2``): ``"SMD"`` (Hedges' g with
        the exact gamma-function correction), ``"SMDH"`` (SDs not assumed equal), ``"MD"``,
        ``"ROM"`` (log ratio of means). One group, pre-post: ``"SMCR"`` (``m_pre, m_post,
        sd_pre, n, r``; raw-score standardisation by the baseline SD) and ``"SMCC"`` (``m_pre,
        m_post, sd_pre, sd_post, n, r``; change-score standardisation); ``r`` is the pre-post
        correlation and is required (there is no default). Two groups, events (``events1, n1,
        events2, n2``): ``"RR"``, ``"OR"`` (log scale), ``"RD"``. Correlations (``r, n``):
        ``"ZCOR"`` (Fisher's z), ``"COR"``. Generic inverse variance ``"GEN"``: ``estimate``
        with ``se``, or with ``ci_low, ci_high`` at ``level`` percent, ``se = (ci_high -
        ci_low) / (2 z)``; with ``ratio=True`` the estimate and bounds are ratios (RR, OR, HR)
        and are logged first (``yi`` on the log scale).
    data : DataFrame, optional
        If given, string inputs name its columns; every column of ``data`` is passed through.
    direction : {"lower_is_better", "higher_is_better"}, optional
        What is better on the outcome; sets ``attrs["favours_group1"]`` (module docstring).
    favours_group1 : {"negative", "positive"}, optional
        The sign wanted for "favours group 1"; ``yi`` is negated if ``direction`` implies the
        other sign.
    vtype : str
        Variance estimator, as metafor: "LS" (default) for every measure; also "UB", "LS2",
        "AV" for SMD and "HO" for MD and ROM.
    add, to : continuity correction of 2x2 tables, as metafor: ``add`` (default 1/2) is added
        to every cell of the tables selected by ``to``: ``"only0"`` (default; tables with a zero
        cell), ``"all"``, ``"if0all"`` (all tables if any has a zero cell) or ``"none"``.
    drop00 : bool
        Double-zero tables (no events, or only events, in both arms) are kept and corrected, as
        metafor, with a ``ZeroCellWarning`` naming the row; ``drop00=True`` removes them.
    level : float
        Confidence level (percent) of ``ci_low``/``ci_high`` for ``"GEN"``.
    ratio : bool
        ``"GEN"`` only: the estimate and its interval are ratios; log them.
    **inputs : array_like or str
        The inputs the measure needs (arrays or, with ``data``, column names).

    Returns
    -------
    DataFrame
        ``yi``, ``vi``, ``sei`` (= sqrt(vi)), the inputs given as arrays and the columns of
        ``data``. Rows removed (``drop00=True``, or a zero cell with ``to="none"``) are listed
        in ``attrs["excluded"]`` as ``(row label, reason)`` with an ``ExcludedStudyWarning``.
        ``attrs``: ``measure``, ``favours_group1``, ``sign_flipped``, ``excluded``.

    Raises
    ------
    ValueError
        Naming the argument (and its column) and the rows: unknown measure, missing input,
        lengths that differ, NaN/inf, n < 2 (n <= 3 for ZCOR), a negative SD (zero SD for
        SMD, SMDH, SMCR, SMCC), events outside [0, n], r outside [-1, 1].

    Notes
    -----
    Formulas as metafor 3.8's ``escalc`` (SMD: ``yi = c(m) d`` with ``c(m) = Γ(m/2) /
    (sqrt(m/2) Γ((m-1)/2))``, ``m = n1 + n2 - 2``; "LS" ``vi = 1/n1 + 1/n2 + yi^2 / (2 (n1 +
    n2))``). Validated against metafor 3.8.1 for every measure, variance type and continuity
    correction in the reference cases (tests/test_escalc_reference.py) to 1e-8 relative.

    Examples
    --------
    >>> out = escalc("SMD", m1=[-14.0], sd1=[9.0], n1=[30], m2=[-8.0], sd2=[10.0], n2=[30],
    ...              direction="lower_is_better")
    >>> round(float(out["yi"][0]), 4), out.attrs["favours_group1"]
    (-0.6225, 'negative')
    >>> responders = escalc("RR", events1=[20], n1=[40], events2=[10], n2=[40],
    ...                     direction="higher_is_better", favours_group1="negative")
    >>> round(float(responders["yi"][0]), 4), responders.attrs["sign_flipped"]
    (-0.6931, True)
    """
    _check_signs(direction, favours_group1)
    if not isinstance(measure, str):
        raise DataValidationError(f"'measure' must be a measure name (text), got {measure!r}")
    drop00 = check_flag(drop00, "drop00", caller="escalc()")
    ratio = check_flag(ratio, "ratio", caller="escalc()")
    add = check_number(add, "add", low=0.0, caller="escalc()")
    if to not in core.TO_OPTIONS:
        raise DataValidationError(
            f"'to' must be one of {', '.join(map(repr, core.TO_OPTIONS))}, got {to!r}"
        )
    if data is not None and not isinstance(data, pd.DataFrame):
        raise DataValidationError(f"'data' must be a pandas DataFrame, got {type(data).__name__}")
    if measure == "GEN":
        return _generic(data, level, ratio, direction, favours_group1, inputs)
    if measure not in INPUTS:
        raise DataValidationError(
            f"unknown measure {measure!r}; choose from {', '.join([*INPUTS, 'GEN'])}"
        )
    needed = INPUTS[measure]
    missing = [name for name in needed if inputs.get(name) is None]
    if missing:
        raise DataValidationError(
            f"measure {measure!r} needs {', '.join(needed)}; missing: {', '.join(missing)}"
        )
    if vtype not in VTYPES.get(measure, ("LS",)):
        raise DataValidationError(
            f"vtype {vtype!r} is not available for {measure!r}; choose from "
            f"{', '.join(VTYPES.get(measure, ('LS',)))}"
        )
    unknown = sorted(set(inputs) - set(needed))
    if unknown:
        raise DataValidationError(
            f"unexpected inputs for measure {measure!r}: {', '.join(unknown)}"
        )
    arrays, rows, shown = _read_inputs(inputs, needed, data)
    excluded: list[tuple[str, str]] = []
    keep = np.ones(len(rows), dtype=bool)
    if measure in ("RR", "OR", "RD"):
        yi, vi, keep, excluded = _binary(measure, arrays, rows, add, to, drop00, shown)
    else:
        yi, vi = _continuous(measure, arrays, rows, vtype, shown)
    out = data.copy() if data is not None else pd.DataFrame(index=range(len(rows)))
    for name, values in arrays.items():
        if not isinstance(inputs[name], str):
            out[name] = values
    if not keep.all():
        out, yi, vi = out.loc[keep].copy(), yi[keep], vi[keep]
    return _finish(out, yi, vi, measure, direction, favours_group1, excluded)


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


def _continuous(measure: str, a: dict[str, np.ndarray], rows, vtype: str, shown: dict):
    if measure in ("SMD", "SMDH", "MD", "ROM"):
        for name in ("sd1", "sd2"):
            if measure in ("SMD", "SMDH") and (a[name] == 0).any():
                raise DataValidationError(
                    f"{shown[name]} is zero in rows {_list(rows, a[name] == 0)}: "
                    "a standardized difference needs a positive SD"
                )
        for name in ("n1", "n2"):
            if (a[name] < 2).any():
                raise DataValidationError(
                    f"{shown[name]} must be at least 2 (rows {_list(rows, a[name] < 2)})"
                )
    if measure == "ROM":
        for name in ("m1", "m2"):
            if (a[name] <= 0).any():
                raise DataValidationError(
                    f"{shown[name]} must be positive for a ratio of means "
                    f"(rows {_list(rows, a[name] <= 0)})"
                )
    args = [a[n] for n in INPUTS[measure]]
    if measure == "SMD":
        return core.smd(*args, vtype=vtype)
    if measure == "SMDH":
        return core.smdh(*args)
    if measure == "MD":
        return core.md(*args, vtype=vtype)
    if measure == "ROM":
        return core.rom(*args, vtype=vtype)
    if measure in ("SMCR", "SMCC", "COR"):
        if (a["n"] < 2).any():
            raise DataValidationError(
                f"{shown['n']} must be at least 2 (rows {_list(rows, a['n'] < 2)})"
            )
        if measure == "COR":
            _check_r_open(a["r"], rows, shown["r"], measure)
            return core.cor(*args)
        if (a["sd_pre"] == 0).any():
            raise DataValidationError(
                f"{shown['sd_pre']} is zero in rows {_list(rows, a['sd_pre'] == 0)}: "
                "a standardized mean change needs a positive SD"
            )
        if measure == "SMCC":
            a_sd = a["sd_pre"] ** 2 + a["sd_post"] ** 2 - 2.0 * a["r"] * a["sd_pre"] * a["sd_post"]
            flat = ~(a_sd > 0)
            if flat.any():
                raise DataValidationError(
                    f"the SD of the change (from {shown['sd_pre']}, {shown['sd_post']} and "
                    f"{shown['r']}) is zero in rows {_list(rows, flat)}: SMCC is not defined "
                    "(r = 1 with equal SDs?)"
                )
        return (core.smcr if measure == "SMCR" else core.smcc)(*args)
    if (a["n"] <= 3).any():
        raise DataValidationError(
            f"{shown['n']} must exceed 3 for ZCOR (rows {_list(rows, a['n'] <= 3)})"
        )
    _check_r_open(a["r"], rows, shown["r"], measure)
    return core.zcor(*args)


def _check_r_open(r: np.ndarray, rows, shown: str, measure: str) -> None:
    """|r| = 1 gives an infinite Fisher z (ZCOR) or a zero variance (COR): refuse, naming it."""
    edge = np.abs(r) >= 1.0
    if edge.any():
        raise DataValidationError(
            f"{shown} is -1 or 1 in rows {_list(rows, edge)}: {measure} needs |r| < 1 "
            + ("(atanh(±1) is infinite)" if measure == "ZCOR" else "(its variance would be 0)"),
            problems=[
                {"argument": "r", "row": row, "problem": f"|r| = 1 ({measure})"}
                for row, bad in zip(rows, edge, strict=True)
                if bad
            ],
        )


def _binary(measure, a, rows, add, to, drop00, shown):
    """2x2 measures; returns ``(yi, vi, keep, excluded)``: rows not kept are listed and warned."""
    ai, n1, ci, n2 = a["events1"], a["n1"], a["events2"], a["n2"]
    for ev, n, name in ((ai, n1, "events1"), (ci, n2, "events2")):
        if (ev > n).any():
            raise DataValidationError(f"{shown[name]} exceeds its n in rows {_list(rows, ev > n)}")
    yi, vi = core.two_by_two(ai, n1, ci, n2, measure, add, to)
    rows = np.asarray(rows, dtype=object)
    double_zero = ((ai == 0) & (ci == 0)) | ((ai == n1) & (ci == n2))
    computable = np.isfinite(yi) & np.isfinite(vi)
    keep = ~double_zero if drop00 else np.ones(ai.shape, dtype=bool)
    excluded = [
        (str(row), "no events (or only events) in both arms (drop00=True)")
        for row in rows[double_zero & ~keep]
    ]
    for row in rows[double_zero & keep & computable]:
        warnings.warn(
            f"row {row}: no events (or only events) in both arms; kept as metafor does "
            f"(add={add:g}, to={to!r}; drop00=True drops it)",
            ZeroCellWarning,
            stacklevel=3,
        )
    failed = keep & ~computable
    excluded += [
        (str(row), f"zero cell without continuity correction (to={to!r}): {measure} not computable")
        for row in rows[failed]
    ]
    keep &= ~failed
    for row, reason in excluded:
        warnings.warn(f"row {row} excluded: {reason}", ExcludedStudyWarning, stacklevel=3)
    return yi, vi, keep, excluded


def _generic(data, level, ratio, direction, favours_group1, inputs) -> pd.DataFrame:
    """Generic inverse variance: ``estimate`` with ``se`` or with a ``level`` % interval."""
    level = check_level(level, caller="escalc()")
    by_se = inputs.get("se") is not None
    needed = ("estimate", "se") if by_se else ("estimate", "ci_low", "ci_high")
    missing = [name for name in needed if inputs.get(name) is None]
    if missing:
        raise DataValidationError(
            "measure 'GEN' needs 'estimate' with 'se', or 'estimate' with both 'ci_low' and "
            f"'ci_high'; missing: {', '.join(missing)}"
        )
    unknown = sorted(set(inputs) - set(needed))
    if unknown:
        raise DataValidationError(f"unexpected inputs for measure 'GEN': {', '.join(unknown)}")
    if by_se and ratio:
        raise DataValidationError(
            "ratio=True needs 'ci_low'/'ci_high' (an SE of a ratio is ambiguous)"
        )
    arrays, rows, shown = _read_inputs(inputs, needed, data)
    for name, values in arrays.items():
        if ratio and (values <= 0).any():
            raise DataValidationError(
                f"{shown[name]} must be positive for a ratio (rows {_list(rows, values <= 0)})"
            )
    est = np.log(arrays["estimate"]) if ratio else arrays["estimate"]
    if by_se:
        se = arrays["se"]
    else:
        low, high = arrays["ci_low"], arrays["ci_high"]
        if ratio:
            low, high = np.log(low), np.log(high)
        if (high <= low).any():
            raise DataValidationError(
                f"{shown['ci_high']} is not above {shown['ci_low']} "
                f"(rows {_list(rows, high <= low)})"
            )
        outside = (est < low) | (est > high)
        if outside.any():
            raise DataValidationError(
                f"{shown['estimate']} lies outside its interval (rows {_list(rows, outside)})"
            )
        se = (high - low) / (2.0 * stats.norm.ppf(0.5 + level / 200.0))
    if (se <= 0).any():
        raise DataValidationError(
            f"{shown.get('se', repr('se'))} must be positive (rows {_list(rows, se <= 0)})"
        )
    out = data.copy() if data is not None else pd.DataFrame(index=range(len(rows)))
    for name, values in arrays.items():
        if not isinstance(inputs[name], str):
            out[name] = values
    return _finish(out, est, se**2, "GEN", direction, favours_group1, [])
