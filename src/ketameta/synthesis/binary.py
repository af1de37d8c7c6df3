"""Common-effect pooling of 2x2 tables: ``meta_mh()`` (Mantel-Haenszel) and ``meta_peto()``.

The pooled estimate uses the raw counts, as metafor's ``rma.mh()``/``rma.peto()``. The
heterogeneity statistic Q (with I², H²) uses the per-study effects ``yi``/``vi`` computed as
``escalc()`` does, with the continuity correction ``add``/``to``; with ``drop00=True`` tables
without events (or with only events) in both arms are left out of Q, listed in ``excluded`` and
named in a :class:`~ketameta.exceptions.ZeroCellWarning`.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import binary as core
from ketameta.exceptions import ExcludedStudyWarning, ZeroCellWarning
from ketameta.synthesis._inputs import (
    check_level,
    check_number,
    frozen,
    labels_from_data,
    labels_from_sequence,
    numeric_input,
    whole_numbers,
)
from ketameta.synthesis.results import BinaryResult

_ARGS = ("events1", "n1", "events2", "n2")
__all__ = ["BinaryResult", "meta_mh", "meta_peto"]


def _problem_rows(labels, bad) -> str:
    return ", ".join(labels[i] for i in np.flatnonzero(bad))


def _read_counts(inputs: dict, data, labels) -> tuple[list[np.ndarray], tuple[str, ...], dict]:
    """Four checked float arrays, the labels, and how each argument is named in messages."""
    arrays, shown = [], {}
    for name in _ARGS:
        value = inputs[name]
        if value is None:
            raise ValueError(f"'{name}' is required")
        if data is not None:
            if not isinstance(value, str) or value not in data.columns:
                raise ValueError(f"'{name}': column {value!r} is not in 'data'")
            shown[name] = f"'{name}' (column {value!r})"
            column = data[value]
            if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(
                column.dtype
            ):
                raise ValueError(f"{shown[name]} must be numeric, got dtype {column.dtype}")
            value = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            shown[name] = f"'{name}'"
            value = numeric_input(value, name, caller="meta_mh()/meta_peto()")
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"{shown[name]} must be one-dimensional, got shape {arr.shape}")
        if arrays and arr.size != arrays[0].size:
            raise ValueError(
                f"length of {shown[name]} ({arr.size}) differs from 'events1' ({arrays[0].size})"
            )
        arrays.append(arr)
    k = arrays[0].size
    if k == 0:
        raise ValueError("'events1' is empty: no studies (k = 0)")
    rows = labels_from_data(data, labels) if data is not None else labels_from_sequence(labels, k)
    for name, arr in zip(_ARGS, arrays, strict=True):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{shown[name]} is missing or infinite in rows {_problem_rows(rows, bad)}"
            )
        if (arr < 0).any():
            raise ValueError(f"{shown[name]} is negative in rows {_problem_rows(rows, arr < 0)}")
    for name in ("n1", "n2"):
        arr = arrays[_ARGS.index(name)]
        if (arr == 0).any():
            raise ValueError(f"{shown[name]} is 0 in rows {_problem_rows(rows, arr == 0)}")
    for name, arr in zip(_ARGS, arrays, strict=True):
        whole_numbers(arr, name, rows, shown=shown[name])  # counts, never 30.2
    for ev, n in (("events1", "n1"), ("events2", "n2")):
        over = arrays[_ARGS.index(ev)] > arrays[_ARGS.index(n)]
        if over.any():
            raise ValueError(f"{shown[ev]} exceeds {shown[n]} in rows {_problem_rows(rows, over)}")
    return arrays, rows, shown


def _counts_frame(data, counts, rows) -> pd.DataFrame:
    """The counts as ``events1, n1, events2, n2`` beside the caller's other columns."""
    frame = pd.DataFrame(dict(zip(_ARGS, counts, strict=True)), index=range(len(rows)))
    if data is not None:
        others = data.reset_index(drop=True).drop(columns=list(_ARGS), errors="ignore")
        frame = pd.concat([others, frame], axis=1)
    return frame


def _check_options(level, add, to) -> float:
    level = check_level(level)
    check_number(add, "add", low=0.0)
    if to not in core.TO_OPTIONS:
        raise ValueError(f"'to' must be one of {', '.join(core.TO_OPTIONS)}, got {to!r}")
    return float(level)


def _exclusions(a, b, c, d, yi, rows, drop00, add, to, measure) -> tuple[tuple[str, str], ...]:
    """List (and warn about) every table left out of Q; warn about double-zero tables kept."""
    double = core.double_zero(a, b, c, d)
    out = []
    for i, label in enumerate(rows):
        if double[i] and drop00:
            reason = "no events (or only events) in both arms (drop00=True): left out of Q"
            out.append((label, reason))
            warnings.warn(f"study {label!r}: {reason}", ZeroCellWarning, stacklevel=3)
        elif not np.isfinite(yi[i]):
            reason = (
                f"zero cell without continuity correction (to={to!r}): {measure} not computable"
            )
            out.append((label, f"{reason}; left out of Q"))
            warnings.warn(f"study {label!r}: {reason}", ExcludedStudyWarning, stacklevel=3)
        elif double[i]:
            warnings.warn(
                f"study {label!r}: no events (or only events) in both arms; kept in Q with "
                f"add={add:g}, to={to!r} (drop00=False)",
                ZeroCellWarning,
                stacklevel=3,
            )
    return tuple(out)


def _result(pooled, het, level, yi, vi, rows, excluded, **extra) -> BinaryResult:
    est, se = float(pooled.estimate), float(pooled.se)
    crit = stats.norm.isf((1.0 - level / 100.0) / 2.0)
    if se == 0.0:  # RD (or RR with only events) and no table informative: metafor's 0, 0, NaN
        z = p = float("nan")
        warnings.warn(
            f"the MH {extra.get('measure')} has standard error 0 (no events, or only events, in "
            "every table): estimate 0 with a degenerate interval, no test (z and p are NaN)",
            ZeroCellWarning,
            stacklevel=3,
        )
    else:
        z = est / se
        p = float(2.0 * stats.norm.sf(abs(z)))
    return BinaryResult(
        k=len(rows),
        estimate=est,
        se=se,
        statistic=z,
        pvalue=p,
        ci_low=est - crit * se,
        ci_high=est + crit * se,
        q=float(het.q),
        q_df=int(het.q_df),
        q_pvalue=float(het.q_pvalue),
        i2=float(het.i2),
        h2=float(het.h2),
        level=level,
        labels=tuple(rows),
        yi=frozen(yi),
        vi=frozen(vi),
        excluded=excluded,
        **extra,
    )


def meta_mh(
    events1: Any = None,
    n1: Any = None,
    events2: Any = None,
    n2: Any = None,
    *,
    data: pd.DataFrame | None = None,
    measure: Literal["OR", "RR", "RD"] = "OR",
    level: float = 95,
    correct: bool = True,
    add: float = 0.5,
    to: Literal["only0", "all", "if0all", "none"] = "only0",
    drop00: bool = True,
    labels: Any = None,
) -> BinaryResult:
    """Mantel-Haenszel common-effect pooling of 2x2 tables, as metafor's ``rma.mh()``.

    Parameters
    ----------
    events1, n1, events2, n2 : array-like or str
        Events and sample size in group 1 (treatment) and group 2 (control); column names when
        ``data`` is given. Counts must be finite, non-negative, with events <= n and n > 0.
    data : DataFrame, optional
        Table holding the columns; labels then come from ``labels``, a ``label`` or
        ``study_label`` column, or the index.
    measure : {"OR", "RR", "RD"}
        Odds ratio, risk ratio (both on the log scale) or risk difference.
    level : float
        Confidence level in percent.
    correct : bool
        Continuity correction of the Cochran-Mantel-Haenszel test (OR only).
    add, to, drop00
        Continuity correction and double-zero handling of the per-study ``yi``/``vi`` used for
        Q, I² and H² only (as ``escalc()``); the MH estimate always uses the raw counts.
    labels : sequence or str, optional
        Study labels (default ``"Study 1"``, ...), or a column name of ``data``.

    Returns
    -------
    BinaryResult
        ``estimate`` (log OR, log RR or RD), ``se``, z test, CI, Q/I² (percent)/H², per-study
        ``yi``/``vi``, ``excluded``; for OR also the CMH test (``cmh``), Tarone's test
        (``tarone``) and the Breslow-Day test (``breslow_day``).

    Notes
    -----
    With ``a, b, c, d`` the cells and ``n`` the table total: OR = sum(a d / n) / sum(b c / n)
    with the Robins-Breslow-Greenland variance; RR = sum(a n2 / n) / sum(c n1 / n) with the
    Greenland-Robins variance; RD = sum((a n2 - c n1) / n) / sum(n1 n2 / n) with the Sato,
    Greenland & Robins (1989) variance. Tables without events in both arms stay in the MH sums
    (they add nothing to OR or RR, but their sizes enter the RD weights), as metafor. Q =
    sum((yi - estimate)^2 / vi) over the computable ``yi``, df = their number - 1. The estimate
    is NaN (with a ``ZeroCellWarning``) when the MH ratio is 0 or undefined, as metafor's NA.
    Validated against metafor 3.8.1 (``tests/test_binary_reference.py``) to 1e-8 relative.

    Examples
    --------
    >>> res = meta_mh([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220])
    >>> round(res.exp_estimate, 3), res.q_df
    (0.243, 2)
    """
    if measure not in core.MH_MEASURES:
        raise ValueError(f"'measure' must be one of OR, RR, RD, got {measure!r}")
    level = _check_options(level, add, to)
    inputs = dict(events1=events1, n1=n1, events2=events2, n2=n2)
    (a, m1, c, m2), rows, _ = _read_counts(inputs, data, labels)
    b, d = m1 - a, m2 - c
    extra: dict[str, Any] = dict(
        weights=frozen(core.table_weights(a, b, c, d, measure)),
        data=_counts_frame(data, (a, m1, c, m2), rows),
    )
    pooled = core.mantel_haenszel(a, b, c, d, measure)
    if not np.isfinite(pooled.estimate):
        warnings.warn(
            f"the MH {measure} is 0 or undefined (no events, or no non-events, in one group "
            "across all tables): estimate is NaN",
            ZeroCellWarning,
            stacklevel=2,
        )
    yi, vi = core.per_study(a, b, c, d, measure, add=add, to=to, drop00=drop00)
    excluded = _exclusions(a, b, c, d, yi, rows, drop00, add, to, measure)
    het = core.heterogeneity(yi, vi, pooled.estimate)
    if measure == "OR":
        cmh = core.cmh_test(a, b, c, d, correct=correct)
        bd, ta = core.tarone_test(a, b, c, d, np.exp(pooled.estimate))
        extra.update(
            cmh=float(cmh.statistic),
            cmh_pvalue=float(cmh.pvalue),
            tarone=float(ta.statistic),
            tarone_pvalue=float(ta.pvalue),
            breslow_day=float(bd.statistic),
            breslow_day_pvalue=float(bd.pvalue),
            k_pos=int(ta.df + 1) if np.isfinite(ta.df) else 0,
        )
    return _result(
        pooled,
        het,
        level,
        yi,
        vi,
        rows,
        excluded,
        measure=measure,
        method="MH",
        add=add,
        to=to,
        drop00=drop00,
        correct=correct,
        **extra,
    )


def meta_peto(
    events1: Any = None,
    n1: Any = None,
    events2: Any = None,
    n2: Any = None,
    *,
    data: pd.DataFrame | None = None,
    level: float = 95,
    add: float = 0.5,
    to: Literal["only0", "all", "if0all", "none"] = "only0",
    drop00: bool = True,
    labels: Any = None,
) -> BinaryResult:
    """Peto's one-step odds ratio, as metafor's ``rma.peto()`` (log scale).

    Arguments as :func:`meta_mh`. The estimate is sum(O - E) / sum(V) on the raw counts, with
    O - E the observed minus expected events in group 1 and V the hypergeometric variance; SE
    = 1 / sqrt(sum(V)). Q is Peto's: sum((O - E)^2 / V) - sum(O - E)^2 / sum(V) over the tables
    with V > 0; its df is the number of computable per-study ``yi`` (``escalc("PETO")`` with
    ``add``/``to``/``drop00``) minus 1, and p, I², H² are reported only when more than one table
    has V > 0 (else 1, 0, 1), as metafor. Raises ValueError when no table has both outcomes.
    Validated against metafor 3.8.1 to 1e-8 relative.

    Examples
    --------
    >>> res = meta_peto([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220])
    >>> res.measure, res.k, round(res.exp_estimate, 3)
    ('PETO', 3, 0.29)
    """
    level = _check_options(level, add, to)
    inputs = dict(events1=events1, n1=n1, events2=events2, n2=n2)
    (a, m1, c, m2), rows, _ = _read_counts(inputs, data, labels)
    b, d = m1 - a, m2 - c
    pooled, q, k_pos = core.peto(a, b, c, d)
    if not np.isfinite(pooled.estimate):
        raise ValueError(
            "'events1'/'events2': one of the two outcomes never occurs in any table; "
            "Peto's method cannot be used"
        )
    yi, vi = core.per_study(a, b, c, d, "PETO", add=add, to=to, drop00=drop00)
    excluded = _exclusions(a, b, c, d, yi, rows, drop00, add, to, "PETO")
    het = core.heterogeneity(yi, vi, pooled.estimate, q=q, several=k_pos > 1)
    return _result(
        pooled,
        het,
        level,
        yi,
        vi,
        rows,
        excluded,
        measure="PETO",
        method="PETO",
        add=add,
        to=to,
        drop00=drop00,
        k_pos=int(k_pos),
        weights=frozen(core.table_weights(a, b, c, d, "PETO")),
        data=_counts_frame(data, (a, m1, c, m2), rows),
    )
