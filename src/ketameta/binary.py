"""Common-effect pooling of 2x2 tables: ``meta_mh()`` (Mantel-Haenszel) and ``meta_peto()``.

The pooled estimate uses the raw counts, as metafor's ``rma.mh()``/``rma.peto()``; the
heterogeneity statistic Q (and I², H²) uses the per-study effects with the continuity
correction (``add``/``to``), tables without any event (or with only events) in both arms left
out of Q (``drop00=True``) and listed in ``excluded``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core import binary as core
from ketameta._core.effects import two_by_two
from ketameta.exceptions import ZeroCellWarning
from ketameta.results import ResultMixin


@dataclass(frozen=True)
class BinaryResult(ResultMixin):
    """A Mantel-Haenszel or Peto pooled result (log scale for OR, RR and Peto's OR)."""

    k: int
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_low: float
    ci_high: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    measure: str
    method: str
    level: float
    labels: tuple[str, ...]
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    excluded: tuple[tuple[str, str], ...] = ()
    cmh: float | None = None
    cmh_pvalue: float | None = None
    _title = "Common-effect pooling of 2x2 tables"

    def summary(self) -> pd.DataFrame:
        """One row; ``exp_*`` columns back-transform ratio measures."""
        row = {
            "method": self.method,
            "measure": self.measure,
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "q": self.q,
            "q_df": self.q_df,
            "q_pvalue": self.q_pvalue,
            "i2": self.i2,
            "h2": self.h2,
        }
        if self.measure in ("OR", "RR", "PETO"):
            row.update(
                exp_estimate=np.exp(self.estimate),
                exp_ci_low=np.exp(self.ci_low),
                exp_ci_high=np.exp(self.ci_high),
            )
        if self.cmh is not None:
            row.update(cmh=self.cmh, cmh_pvalue=self.cmh_pvalue)
        return pd.DataFrame([row])


def _counts(events1, n1, events2, n2, data, labels):
    arrays = []
    for name, value in (("events1", events1), ("n1", n1), ("events2", events2), ("n2", n2)):
        if value is None:
            raise ValueError(f"'{name}' is required")
        if isinstance(value, str):
            if data is None or value not in data.columns:
                raise ValueError(f"column {value!r} (for '{name}') is not in data")
            value = data[value]
        arr = np.asarray(value, dtype=float).reshape(-1)
        if arrays and arr.size != arrays[0].size:
            raise ValueError(f"length of '{name}' ({arr.size}) differs from the others")
        arrays.append(arr)
    a, n1_, c, n2_ = arrays
    k = a.size
    if k == 0:
        raise ValueError("no studies (k = 0)")
    rows = (
        [str(x) for x in labels]
        if labels is not None
        else [str(i) for i in (data.index if data is not None else range(1, k + 1))]
    )
    for name, arr in zip(("events1", "n1", "events2", "n2"), arrays, strict=True):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"'{name}' has missing or infinite values in rows "
                f"{', '.join(r for r, m in zip(rows, bad, strict=True) if m)}"
            )
        if (arr < 0).any():
            raise ValueError(f"'{name}' must not be negative")
    for ev, n, name in ((a, n1_, "events1"), (c, n2_, "events2")):
        if (ev > n).any():
            raise ValueError(
                f"'{name}' exceeds its n in rows "
                f"{', '.join(r for r, m in zip(rows, ev > n, strict=True) if m)}"
            )
    return a, n1_ - a, c, n2_ - c, rows


def _finish(method, measure, est, se, yi, vi, rows, level, cmh=None, q=None) -> BinaryResult:
    z = stats.norm.ppf(0.5 + level / 200.0)
    ok = np.isfinite(yi) & np.isfinite(vi)
    excluded = tuple(
        (r, "no events (or only events) in both arms: left out of Q")
        for r, keep in zip(rows, ok, strict=True)
        if not keep
    )
    for r, reason in excluded:
        warnings.warn(f"row {r}: {reason}", ZeroCellWarning, stacklevel=3)
    if q is None:
        q = float(np.sum((yi[ok] - est) ** 2 / vi[ok]))
    df = int(ok.sum()) - 1
    i2 = max(0.0, 100.0 * (q - df) / q) if q > 0 else 0.0
    return BinaryResult(
        k=len(rows),
        estimate=est,
        se=se,
        statistic=est / se,
        pvalue=float(2 * stats.norm.sf(abs(est / se))),
        ci_low=est - z * se,
        ci_high=est + z * se,
        q=q,
        q_df=df,
        q_pvalue=float(stats.chi2.sf(q, df)) if df > 0 else float("nan"),
        i2=i2,
        h2=q / df if df > 0 else float("nan"),
        measure=measure,
        method=method,
        level=level,
        labels=tuple(rows),
        yi=yi,
        vi=vi,
        excluded=excluded,
        cmh=None if cmh is None else cmh[0],
        cmh_pvalue=None if cmh is None else cmh[1],
    )


def meta_mh(
    events1=None,
    n1=None,
    events2=None,
    n2=None,
    *,
    data: pd.DataFrame | None = None,
    measure: Literal["OR", "RR", "RD"] = "OR",
    level: float = 95.0,
    correct: bool = True,
    add: float = 0.5,
    to: str = "only0",
    labels: Any = None,
) -> BinaryResult:
    """Mantel-Haenszel pooling, as metafor's ``rma.mh()``.

    Returns the MH estimate (log scale for OR and RR) with its SE (Robins-Breslow-Greenland for
    OR, Greenland-Robins for RR, Sato/Greenland-Robins for RD), z test and CI, Q from the
    per-study effects, I², H² and, for OR, the Cochran-Mantel-Haenszel test (``cmh``).

    Examples
    --------
    >>> res = meta_mh([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220])
    >>> round(float(np.exp(res.estimate)), 3)
    0.243
    """
    if measure not in ("OR", "RR", "RD"):
        raise ValueError(f"measure must be 'OR', 'RR' or 'RD', got {measure!r}")
    a, b, c, d, rows = _counts(events1, n1, events2, n2, data, labels)
    est, se = core.mantel_haenszel(a, b, c, d, measure)
    yi, vi = two_by_two(a, a + b, c, c + d, measure, add, to)
    double = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    yi, vi = np.where(double, np.nan, yi), np.where(double, np.nan, vi)
    cmh = core.cmh_test(a, b, c, d, correct=correct) if measure == "OR" else None
    return _finish("MH", measure, est, se, yi, vi, rows, level, cmh)


def meta_peto(
    events1=None,
    n1=None,
    events2=None,
    n2=None,
    *,
    data: pd.DataFrame | None = None,
    level: float = 95.0,
    add: float = 0.5,
    to: str = "only0",
    labels: Any = None,
) -> BinaryResult:
    """Peto's one-step odds ratio, as metafor's ``rma.peto()`` (log scale).

    Examples
    --------
    >>> res = meta_peto([4, 6, 3], [123, 306, 231], [11, 29, 11], [139, 303, 220])
    >>> res.measure, res.k
    ('PETO', 3)
    """
    a, b, c, d, rows = _counts(events1, n1, events2, n2, data, labels)
    est, se, raw_oe, raw_v = core.peto(a, b, c, d)
    # metafor's Q for Peto uses the uncorrected per-table O - E and V (tables with V = 0 out)
    informative = raw_v > 0
    q = float(
        np.sum(raw_oe[informative] ** 2 / raw_v[informative]) - raw_oe.sum() ** 2 / raw_v.sum()
    )
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    shift = np.where(zero if to == "only0" else np.full(a.shape, to == "all"), add, 0.0)
    _, _, oe, v = core.peto(a + shift, b + shift, c + shift, d + shift)
    double = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        yi, vi = np.where(double, np.nan, oe / v), np.where(double, np.nan, 1.0 / v)
    return _finish("PETO", "PETO", est, se, yi, vi, rows, level, q=q)
