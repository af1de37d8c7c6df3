"""Small-study tests for binary outcomes (2x2 tables): Peters, Harbord and Macaskill.

None of them is in metafor (``meta::metabias`` has them); each is a weighted least-squares
regression with a multiplicative error (R's ``lm()``; t tests with k - 2 df), written from the
papers and checked against plain ``lm()`` fits of the published formulas and against metafor's
``regtest()`` where the two coincide (tests/reference/regtest_binary).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ketameta._core.regression import fit_mods
from ketameta.synthesis import bias
from ketameta.synthesis.bias import _column, _need, _sample_sizes

__all__ = ["harbord_test", "macaskill_test", "peters_test"]


def _counts(result: Any, names: tuple[Any, Any, Any, Any]) -> tuple[np.ndarray, ...]:
    """Cells a, b, c, d of each study's 2x2 table from ``events1, n1, events2, n2``."""
    args = ("'events1'", "'n1'", "'events2'", "'n2'")
    e1, n1, e2, n2 = (_column(result, v, a) for v, a in zip(names, args, strict=True))
    return e1, n1 - e1, e2, n2 - e2


def _wls_test(name, y, x, w, level, *, term: int, limit: int | None) -> bias.TestResult:
    """lm(y ~ x, weights = w): the t test of coefficient ``term`` (k - 2 df)."""
    X = np.column_stack([np.ones_like(y), x])
    fit = fit_mods(y, 1.0 / w, X, 0.0, test="knha", level=level, fixed=True)
    lim = (
        (None, None, None)
        if limit is None
        else (float(fit["b"][limit]), float(fit["ci_low"][limit]), float(fit["ci_high"][limit]))
    )
    return bias.TestResult(
        name,
        float(fit["statistic"][term]),
        float(fit["pvalue"][term]),
        fit["df"],
        *lim,
        coef=tuple(float(b) for b in fit["b"]),
        coef_se=tuple(float(b) for b in fit["se"]),
    )


def _binary_input(result, name, counts, need_or=True):
    _need(result, 3, name)
    if need_or and (result.measure or "OR").upper() not in ("OR",):
        raise ValueError(
            f"{name}() is a test on log odds ratios; the result's measure is {result.measure!r}"
        )
    a, b, c, d = _counts(result, counts)
    y = np.asarray(result.yi, dtype=float)
    ok = np.isfinite(y) & np.isfinite(a + b + c + d)
    return y[ok], np.asarray(result.vi, dtype=float)[ok], a[ok], b[ok], c[ok], d[ok]


_COUNTS = ("events1", "n1", "events2", "n2")


def peters_test(
    result: Any,
    *,
    events1: Any = "events1",
    n1: Any = "n1",
    events2: Any = "events2",
    n2: Any = "n2",
) -> bias.TestResult:
    """Peters' regression test for log odds ratios (Peters et al. 2006, JAMA 295, 676-680).

    lm(yi ~ 1/N, weights = 1 / (1/(a + c) + 1/(b + d))): N the study's total size, a + c its
    events, b + d its non-events; the test is the slope (t, k - 2 df); ``estimate`` is the
    intercept (the log OR as N -> infinity). metafor's ``regtest(model="lm", predictor="ninv")``
    is the same regression with weights 1/vi (``egger_test(res, model="lm",
    predictor="ninv")``). Counts: arrays, or columns of ``result.data`` (escalc's names by
    default); rows whose yi is not finite (tables left out) are dropped.

    Examples
    --------
    >>> import ketameta as km
    >>> es = km.escalc("OR", events1=[4, 6, 3, 62, 33, 180], n1=[123, 306, 231, 13598, 5069,
    ...                1541], events2=[11, 29, 11, 248, 47, 372], n2=[139, 303, 220, 12867,
    ...                5808, 1451])
    >>> t = peters_test(km.meta(data=es, method="FE"))
    >>> t.test, t.df
    ('Peters', 4)
    """
    y, _, a, b, c, d = _binary_input(result, "peters_test", (events1, n1, events2, n2))
    w = 1.0 / (1.0 / (a + c) + 1.0 / (b + d))
    return _wls_test("Peters", y, 1.0 / (a + b + c + d), w, result.level, term=1, limit=0)


def harbord_test(
    result: Any,
    *,
    events1: Any = "events1",
    n1: Any = "n1",
    events2: Any = "events2",
    n2: Any = "n2",
) -> bias.TestResult:
    """Harbord's modified (score-based) Egger test for odds ratios (Harbord, Egger & Sterne
    2006, Statistics in Medicine 25, 3443-3457).

    Z = a - n1 (a + c) / N (efficient score) and V = n1 n2 (a + c)(b + d) / (N² (N - 1)) (its
    hypergeometric variance) from the raw counts; ordinary least squares of Z / sqrt(V) on
    sqrt(V); the test is the intercept (t, k - 2 df). ``estimate`` is the slope, the log odds
    ratio adjusted for small-study effects (with its CI). Tables with V = 0 (no events or no
    non-events) carry no information and are dropped. Counts as :func:`peters_test`; any
    measure's result can be used (only the counts enter).

    Examples
    --------
    >>> import ketameta as km
    >>> es = km.escalc("OR", events1=[4, 6, 3, 62, 33, 180], n1=[123, 306, 231, 13598, 5069,
    ...                1541], events2=[11, 29, 11, 248, 47, 372], n2=[139, 303, 220, 12867,
    ...                5808, 1451])
    >>> harbord_test(km.meta(data=es, method="FE")).test
    'Harbord'
    """
    _, _, a, b, c, d = _binary_input(
        result, "harbord_test", (events1, n1, events2, n2), need_or=False
    )
    m1, m2, n = a + b, c + d, a + b + c + d
    z = a - m1 * (a + c) / n
    v = m1 * m2 * (a + c) * (b + d) / (n**2 * (n - 1.0))
    keep = v > 0
    if keep.sum() < 3:
        raise ValueError("harbord_test() needs at least 3 tables with events and non-events")
    sv = np.sqrt(v[keep])
    res = _wls_test("Harbord", z[keep] / sv, sv, np.ones(sv.size), result.level, term=0, limit=1)
    return res


def macaskill_test(
    result: Any,
    *,
    weights: Literal["inverse-variance", "pooled"] = "inverse-variance",
    ni: Any = None,
    events1: Any = "events1",
    n1: Any = "n1",
    events2: Any = "events2",
    n2: Any = "n2",
) -> bias.TestResult:
    """Macaskill's regression test (Macaskill, Walter & Irwig 2001, Statistics in Medicine 20,
    641-654): lm(yi ~ N) with N the total sample size; the test is the slope (t, k - 2 df).

    ``weights="inverse-variance"`` (default; their "FIV" model and the meta package's
    ``metabias(method.bias="Macaskill")``): weights 1/vi; it equals ``egger_test(res,
    model="lm", predictor="ni")``. ``"pooled"`` ("FPV"): weights 1 / (1/(a + c) + 1/(b + d))
    from the pooled events and non-events (needs the counts, as :func:`peters_test`). ``ni``:
    sample sizes (default: the data's ``ni`` or ``n1 + n2``). No limit estimate is given.

    Examples
    --------
    >>> import ketameta as km
    >>> es = km.escalc("OR", events1=[4, 6, 3, 62, 33, 180], n1=[123, 306, 231, 13598, 5069,
    ...                1541], events2=[11, 29, 11, 248, 47, 372], n2=[139, 303, 220, 12867,
    ...                5808, 1451])
    >>> macaskill_test(km.meta(data=es, method="FE")).df
    4
    """
    _need(result, 3, "macaskill_test")
    y, v = np.asarray(result.yi, dtype=float), np.asarray(result.vi, dtype=float)
    if weights == "inverse-variance":
        n, w = _sample_sizes(result, ni), 1.0 / v
    elif weights == "pooled":
        y, _, a, b, c, d = _binary_input(result, "macaskill_test", (events1, n1, events2, n2))
        n, w = a + b + c + d, 1.0 / (1.0 / (a + c) + 1.0 / (b + d))
    else:
        raise ValueError(f"weights must be 'inverse-variance' or 'pooled', got {weights!r}")
    return _wls_test(f"Macaskill ({weights})", y, n, w, result.level, term=1, limit=None)
