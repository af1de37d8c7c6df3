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

from typing import Any, Literal

import numpy as np
import pandas as pd

from ketameta._core import effects as core
from ketameta.exceptions import DataValidationError
from ketameta.synthesis._inputs import check_flag, check_number
from ketameta.synthesis.effects_inputs import (
    COUNT_INPUTS,
    INPUTS,
    SD_INPUTS,
    SIZE_INPUTS,
    VTYPES,
    Measure,
    _check_signs,
    _finish,
    _read_inputs,
)
from ketameta.synthesis.effects_measures import _binary, _continuous, _generic

__all__ = ["COUNT_INPUTS", "INPUTS", "SD_INPUTS", "SIZE_INPUTS", "VTYPES", "Measure", "escalc"]


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
