"""Effect sizes: ``escalc()``, the pandas face of `ketameta._core.effects`.

Sign convention
---------------
Group 1 is the treatment (ketamine), group 2 the control, as metafor's ``m1i``/``ai``: ``yi`` is
group 1 minus (or over) group 2, and for pre-post measures follow-up minus baseline. On a
symptom scale where lower is better, a negative ``yi`` therefore favours ketamine. State the
outcome's ``direction`` and ``escalc`` records which sign favours group 1 in
``df.attrs["favours_group1"]``; also give ``favours_group1="negative"`` (or ``"positive"``) and
``yi`` is negated where needed, so that every pooled effect reads the same way
(``df.attrs["sign_flipped"]`` says whether it was). For event measures (RR, OR, RD) "better"
refers to the event: responders are ``higher_is_better``, relapses ``lower_is_better``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import effects as core
from ketameta.exceptions import ExcludedStudyWarning, ZeroCellWarning

Measure = Literal["SMD", "SMDH", "MD", "ROM", "SMCR", "SMCC", "RR", "OR", "RD", "ZCOR", "GEN"]

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
}
SIZE_INPUTS = {"n", "n1", "n2"}
SD_INPUTS = {"sd1", "sd2", "sd_pre", "sd_post"}
# sign of yi that favours group 1 when lower values of the outcome are better
_LOWER_IS_BETTER_SIGN = "negative"


def _column(value: Any, name: str, data: pd.DataFrame | None, length: int | None) -> np.ndarray:
    if isinstance(value, str):
        if data is None:
            raise ValueError(f"'{name}' is the column name {value!r} but no data= was given")
        if value not in data.columns:
            raise ValueError(f"column {value!r} (for '{name}') is not in data")
        value = data[value]
    try:
        array = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"'{name}' must be numeric: {exc}") from None
    if length is not None and array.shape[0] != length:
        raise ValueError(
            f"length of '{name}' ({array.shape[0]}) differs from the others ({length})"
        )
    return array


def _row_names(data: pd.DataFrame | None, k: int) -> list[str]:
    return [str(i) for i in (data.index if data is not None else range(k))]


def _check(name: str, values: np.ndarray, rows: Sequence[str]) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"'{name}' has missing or infinite values in rows {_list(rows, bad)}")
    if name in SIZE_INPUTS and (values < 1).any():
        raise ValueError(f"'{name}' must be at least 1 (rows {_list(rows, values < 1)})")
    if name in SD_INPUTS and (values < 0).any():
        raise ValueError(f"'{name}' must not be negative (rows {_list(rows, values < 0)})")
    if name.startswith("events") and (values < 0).any():
        raise ValueError(f"'{name}' must not be negative (rows {_list(rows, values < 0)})")
    if name == "r" and ((values < -1) | (values > 1)).any():
        raise ValueError(
            f"'r' must lie in [-1, 1] (rows {_list(rows, (values < -1) | (values > 1))})"
        )


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
        ``"SMD"`` (Hedges' g, exact correction), ``"SMDH"``, ``"MD"``, ``"ROM"`` (inputs
        ``m1, sd1, n1, m2, sd2, n2``); ``"SMCR"`` (``m_pre, m_post, sd_pre, n, r``); ``"SMCC"``
        (``m_pre, m_post, sd_pre, sd_post, n, r``); ``"RR"``, ``"OR"`` (log scale), ``"RD"``
        (``events1, n1, events2, n2``); ``"ZCOR"`` (``r, n``); ``"GEN"`` (``estimate`` with
        ``se``, or with ``ci_low, ci_high`` at ``level``; ``ratio=True`` logs them first).
    data : DataFrame, optional
        If given, string inputs name its columns and its other columns are passed through.
    direction, favours_group1 : str, optional
        The outcome's direction and the sign wanted for "favours group 1" (module docstring).
    vtype : str
        Variance estimator: "LS" (default), "UB", "LS2", "AV" for SMD; "LS", "HO" for MD/ROM.
    add, to, drop00 : continuity correction of 2x2 tables, as metafor (default: add 1/2 to
        each cell of a table with a zero cell; double-zero tables kept unless ``drop00``).
    **inputs : array_like or str
        The inputs the measure needs (arrays or, with ``data``, column names).

    Returns
    -------
    DataFrame
        Columns ``yi``, ``vi``, ``sei``, the inputs used and the other columns of ``data``;
        ``attrs``: ``measure``, ``favours_group1``, ``sign_flipped``, ``excluded``.

    Notes
    -----
    Formulas follow metafor 3.8's ``escalc``; validated against metafor output for every
    measure (tests/test_escalc_reference.py) to 1e-8 relative.

    Examples
    --------
    >>> out = escalc("SMD", m1=[-14.0], sd1=[9.0], n1=[30], m2=[-8.0], sd2=[10.0], n2=[30],
    ...              direction="lower_is_better")
    >>> round(float(out["yi"][0]), 4), out.attrs["favours_group1"]
    (-0.6225, 'negative')
    """
    if measure == "GEN":
        return _generic(data, level, ratio, direction, favours_group1, inputs)
    if measure not in INPUTS:
        raise ValueError(f"unknown measure {measure!r}; choose from {', '.join([*INPUTS, 'GEN'])}")
    needed = INPUTS[measure]
    missing = [name for name in needed if inputs.get(name) is None]
    if missing:
        raise ValueError(
            f"measure {measure!r} needs {', '.join(needed)}; missing: {', '.join(missing)}"
        )
    unknown = sorted(set(inputs) - set(needed))
    if unknown:
        raise ValueError(f"unexpected inputs for measure {measure!r}: {', '.join(unknown)}")
    length = len(data) if data is not None else None
    arrays: dict[str, np.ndarray] = {}
    for name in needed:
        arrays[name] = _column(inputs[name], name, data, length)
        length = arrays[name].shape[0]
    rows = _row_names(data, length or 0)
    for name, values in arrays.items():
        _check(name, values, rows)
    excluded: list[tuple[str, str]] = []
    if measure in ("RR", "OR", "RD"):
        yi, vi, excluded = _binary(measure, arrays, rows, add, to, drop00)
    else:
        yi, vi = _continuous(measure, arrays, rows, vtype)
    out = data.copy() if data is not None else pd.DataFrame(index=range(length or 0))
    for name, values in arrays.items():
        if not isinstance(inputs[name], str):
            out[name] = values
    natural = _natural_sign(direction)
    flipped = bool(natural and favours_group1 and natural != favours_group1)
    out["yi"] = -yi if flipped else yi
    out["vi"] = vi
    out["sei"] = np.sqrt(vi)
    out.attrs.update(
        measure=measure,
        favours_group1=favours_group1 or natural,
        sign_flipped=flipped,
        excluded=excluded,
    )
    return out


def _natural_sign(direction: str | None) -> str | None:
    if direction is None:
        return None
    if direction == "lower_is_better":
        return _LOWER_IS_BETTER_SIGN
    if direction == "higher_is_better":
        return "positive"
    raise ValueError(
        f"direction must be 'lower_is_better' or 'higher_is_better', got {direction!r}"
    )


def _continuous(measure: str, a: dict[str, np.ndarray], rows, vtype: str):
    if measure in ("SMD", "SMDH", "ROM"):
        for name in ("sd1", "sd2"):
            if measure != "ROM" and (a[name] == 0).any():
                raise ValueError(
                    f"'{name}' is zero in rows {_list(rows, a[name] == 0)}: "
                    "a standardized difference needs a positive SD"
                )
        for name in ("n1", "n2"):
            if (a[name] < 2).any():
                raise ValueError(f"'{name}' must be at least 2 (rows {_list(rows, a[name] < 2)})")
    args = [a[n] for n in INPUTS[measure]]
    if measure == "SMD":
        return core.smd(*args, vtype=vtype)
    if measure == "SMDH":
        return core.smdh(*args)
    if measure == "MD":
        return core.md(*args, vtype=vtype)
    if measure == "ROM":
        return core.rom(*args, vtype=vtype)
    if measure in ("SMCR", "SMCC"):
        if (a["n"] < 2).any():
            raise ValueError(f"'n' must be at least 2 (rows {_list(rows, a['n'] < 2)})")
        return (core.smcr if measure == "SMCR" else core.smcc)(*args)
    if (a["n"] <= 3).any():
        raise ValueError(f"'n' must exceed 3 for ZCOR (rows {_list(rows, a['n'] <= 3)})")
    return core.zcor(*args)


def _binary(measure, a, rows, add, to, drop00):
    ai, n1, ci, n2 = a["events1"], a["n1"], a["events2"], a["n2"]
    for ev, n, name in ((ai, n1, "events1"), (ci, n2, "events2")):
        if (ev > n).any():
            raise ValueError(f"'{name}' exceeds its n in rows {_list(rows, ev > n)}")
    yi, vi = core.two_by_two(ai, n1, ci, n2, measure, add, to)
    excluded: list[tuple[str, str]] = []
    double_zero = ((ai == 0) & (ci == 0)) | ((ai == n1) & (ci == n2))
    for row in np.asarray(rows)[double_zero]:
        if drop00:
            excluded.append((row, "no events (or only events) in both arms: dropped (drop00)"))
        else:
            warnings.warn(
                f"row {row}: no events (or only events) in both arms; kept with the "
                f"continuity correction, as metafor (drop00=True drops it)",
                ZeroCellWarning,
                stacklevel=3,
            )
    if drop00:
        yi, vi = np.where(double_zero, np.nan, yi), np.where(double_zero, np.nan, vi)
        for row, reason in excluded:
            warnings.warn(f"row {row} excluded: {reason}", ExcludedStudyWarning, stacklevel=3)
    return yi, vi, excluded


def _generic(data, level, ratio, direction, favours_group1, inputs) -> pd.DataFrame:
    if inputs.get("estimate") is None:
        raise ValueError("measure 'GEN' needs 'estimate' with 'se' or with 'ci_low' and 'ci_high'")
    if not 0 < level < 100:
        raise ValueError(f"level must lie between 0 and 100, got {level}")
    length = len(data) if data is not None else None
    est = _column(inputs["estimate"], "estimate", data, length)
    rows = _row_names(data, est.shape[0])
    if inputs.get("se") is not None:
        se = _column(inputs["se"], "se", data, est.shape[0])
        if ratio:
            raise ValueError("ratio=True needs ci_low/ci_high (an SE of a ratio is ambiguous)")
    elif inputs.get("ci_low") is not None and inputs.get("ci_high") is not None:
        low = _column(inputs["ci_low"], "ci_low", data, est.shape[0])
        high = _column(inputs["ci_high"], "ci_high", data, est.shape[0])
        if ratio:
            for name, values in (("estimate", est), ("ci_low", low), ("ci_high", high)):
                if (values <= 0).any():
                    raise ValueError(
                        f"'{name}' must be positive for a ratio (rows {_list(rows, values <= 0)})"
                    )
            est, low, high = np.log(est), np.log(low), np.log(high)
        if (high < low).any():
            raise ValueError(f"ci_high is below ci_low in rows {_list(rows, high < low)}")
        se = (high - low) / (2.0 * stats.norm.ppf(0.5 + level / 200.0))
    else:
        raise ValueError("measure 'GEN' needs 'se', or both 'ci_low' and 'ci_high'")
    _check("estimate", est, rows)
    _check("se", se, rows)
    if (se <= 0).any():
        raise ValueError(f"'se' must be positive (rows {_list(rows, se <= 0)})")
    out = data.copy() if data is not None else pd.DataFrame(index=range(est.shape[0]))
    natural = _natural_sign(direction)
    flipped = bool(natural and favours_group1 and natural != favours_group1)
    out["yi"] = -est if flipped else est
    out["vi"] = se**2
    out["sei"] = se
    out.attrs.update(
        measure="GEN", favours_group1=favours_group1 or natural, sign_flipped=flipped, excluded=[]
    )
    return out
