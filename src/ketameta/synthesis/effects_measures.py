"""The computation of each ``escalc()`` measure from checked inputs, as metafor's ``escalc``.

`_continuous` (two-group means, pre-post changes, correlations), `_binary` (2x2 tables, with
metafor's continuity correction and the double-zero rule) and `_generic` (generic inverse
variance from an SE or an interval) check what each measure needs beyond the common input
checks (`ketameta.synthesis.effects_inputs`) and call `ketameta._core.effects`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import effects as core
from ketameta.exceptions import DataValidationError, ExcludedStudyWarning, ZeroCellWarning
from ketameta.synthesis._inputs import check_level
from ketameta.synthesis.effects_inputs import INPUTS, _finish, _list, _read_inputs


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
