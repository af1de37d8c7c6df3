"""Inverse-variance pooling given tau²: estimate, test, CI, prediction interval, Q, I², H².

Arrays are shaped ``(..., k)`` (last axis = studies) with an optional boolean ``mask``; see
:mod:`ketameta._core.tau2`. Every formula follows metafor 3.8-1 (``rma.uni()`` with an
intercept-only model and ``predict.rma()``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special

from ketameta._core.arrays import normalize, prepare, vdot, weighted_residuals, weights
from ketameta._core.tau2 import COMMON_METHODS

Test = Literal["z", "t", "knha", "adhoc"]
#: metafor's ``test=`` options: Wald z; t(k - p) with the unadjusted SE ("t"); Knapp-Hartung
#: ("knha"); Knapp-Hartung with the scale factor truncated below at 1 ("adhoc").
TESTS: tuple[str, ...] = ("z", "t", "knha", "adhoc")
#: Tests with t(k - p) quantiles (and F tests of moderators).
T_TESTS: frozenset[str] = frozenset({"t", "knha", "adhoc"})
#: Tests that scale the variance by the Knapp-Hartung factor.
KH_TESTS: frozenset[str] = frozenset({"knha", "adhoc"})
TESTS_TEXT = "'z', 't', 'knha' or 'adhoc'"
_EPS = np.finfo(
    np.float64
).eps  # metafor sets the Knapp-Hartung factor to 0 below .Machine$double.eps


def kh_factor(rss, df, test):
    """The variance scale factor of ``test`` from the weighted residual sum of squares.

    ``"t"`` and ``"z"``: 1. ``"knha"``: rss / df, 0 where rss <= machine epsilon (metafor).
    ``"adhoc"``: the knha factor truncated below at 1, max(1, rss / df) (metafor 3.8-1;
    Jackson et al. 2017, sec. 4.3): the SE is never smaller than the unadjusted one.
    """
    if test not in KH_TESTS:
        return np.ones(np.shape(rss))
    with np.errstate(invalid="ignore", divide="ignore"):
        s2w = np.where(rss <= _EPS, 0.0, rss / df)
    return np.maximum(s2w, 1.0) if test == "adhoc" else s2w


def critical_values(level, df=None):
    """Two-sided critical value: normal (``df=None``) or t(df); NaN where df <= 0."""
    alpha = 1.0 - np.asarray(level, dtype=np.float64) / 100.0
    if df is None:
        return -special.ndtri(alpha / 2.0)
    df = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(
            df > 0, special.stdtrit(np.where(df > 0, df, 1.0), 1.0 - alpha / 2.0), np.nan
        )


def heterogeneity(yi, vi, m, k):
    """Cochran's Q (weights 1/vi), its df and p-value, and metafor's typical variance vt.

    vt = (k - 1) / (sum w - sum w² / sum w) with w = 1/vi; for k = 1 metafor sets Q = 0,
    p = 1 and vt = 0. Computed on the centred and rescaled problem
    (:func:`ketameta._core.arrays.normalize`), so Q is finite wherever its value is a float.
    Returns ``(q, q_df, q_pvalue, vt)``.
    """
    y, v, _, s = normalize(yi, vi, m)
    q, q_df, q_p, vt = _heterogeneity_scaled(y, v, m, k)
    with np.errstate(over="ignore"):
        return q, q_df, q_p, vt * s * s


def _heterogeneity_scaled(yi, vi, m, k):
    w = weights(vi, 0.0, m)
    sw, _, e = weighted_residuals(yi, w)
    q = np.maximum(vdot(w * e, e), 0.0)
    q_df = k - 1.0
    single = k <= 1
    with np.errstate(invalid="ignore", divide="ignore"):
        q_p = special.chdtrc(np.where(single, 1.0, q_df), q)
        vt = q_df / (sw - vdot(w, w) / sw)
    q = np.where(single, 0.0, q)
    q_p = np.where(single, 1.0, q_p)
    vt = np.where(single, 0.0, vt)
    return q, q_df, q_p, vt


def pool(
    yi,
    vi,
    tau2,
    *,
    mask=None,
    test: Test = "z",
    level: float = 95.0,
    method: str | None = None,
) -> dict[str, np.ndarray]:
    """Pool effect sizes with weights 1/(vi + tau²), as metafor's ``rma.uni()``.

    Parameters
    ----------
    yi, vi : array_like, shape (..., k)
        Effect sizes and sampling variances; last axis = studies.
    tau2 : array_like, shape (...)
        Between-study variance for each meta-analysis (0 for a common-effect model).
    mask : array_like of bool, shape (..., k), optional
        ``True`` where the study takes part.
    test : {"z", "t", "knha", "adhoc"}
        metafor's options. ``"z"``: Wald z test. ``"t"``: the same (unadjusted) SE with
        t(k - 1) quantiles. ``"knha"``: Hartung-Knapp(-Sidik-Jonkman): the variance is
        multiplied by s² = sum w (y - estimate)² / (k - 1) (not truncated at 1; s² = 0 when the
        weighted residual sum of squares is <= machine epsilon, as metafor) and t(k - 1)
        quantiles are used. ``"adhoc"``: as knha with s² truncated below at 1, max(1, s²).
        A single study (k = 1, no t(0) distribution) keeps its z interval and has df NaN
        (metafor would report se = 0 and no p-value).
    level : float
        Confidence level in percent, in (0, 100).
    method : str, optional
        The tau² estimator's name. Only its kind matters: for ``"EE"``/``"FE"`` I² and H² come
        from Q (I² = max(0, 100 (Q - (k-1)) / Q), H² = Q / (k - 1)); otherwise (random effects)
        from tau² and vt (I² = 100 tau² / (vt + tau²), H² = tau² / vt + 1), as metafor.

    Returns
    -------
    dict of ndarray
        ``k, estimate, se, statistic, pvalue, ci_low, ci_high, pi_low, pi_high, df`` (t df for
        t/knha/adhoc, NaN for z), ``weights`` (percent, shape (..., k), 0 where masked), ``q, q_df,
        q_pvalue, i2`` (percent), ``h2, vt``. The prediction interval is metafor's
        ``predict()``: estimate ± crit · sqrt(se² + tau²) with crit the normal (z) or t(k - 1)
        (t, knha, adhoc) quantile and se the test's (adjusted) standard error.

    Examples
    --------
    >>> import numpy as np
    >>> yi = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79])
    >>> vi = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01])
    >>> res = pool(yi, vi, 0.2206)
    >>> round(float(res["estimate"]), 4), round(float(res["se"]), 4)
    (-0.99, 0.2357)
    """
    if test not in TESTS:
        raise ValueError(f"Unknown 'test' {test!r}; choose {TESTS_TEXT}.")
    if not 0.0 < float(level) < 100.0:
        raise ValueError(f"'level' must be a percentage in (0, 100), got {level!r}.")
    yi, vi, m, k = prepare(yi, vi, mask)
    return _pool_prepared(yi, vi, m, k, tau2, test=test, level=level, method=method)


def _pool_prepared(
    yi, vi, m, k, tau2, *, test, level, method, scaled=None
) -> dict[str, np.ndarray]:
    """:func:`pool` on the output of :func:`ketameta._core.arrays.prepare` (options checked).

    Computed on the centred and rescaled problem of :func:`ketameta._core.arrays.normalize`
    (yi -> (yi - c) / s, vi -> vi / s², tau² -> tau² / s²) and mapped back: estimates and
    bounds are c + s x, standard errors s x, vt s² x; Q, I², H² and the weights are scale
    free. Nothing overflows for yi ~ 1e±300 or vi ~ 1e±300 unless the result itself does.
    ``scaled=(c, s)`` says that yi, vi are already normalized (tau² is still in yi's units).
    """
    yi, vi, c, s = normalize(yi, vi, m) if scaled is None else (yi, vi, *scaled)
    s2 = s * s
    with np.errstate(over="ignore", invalid="ignore"):
        tau2 = np.asarray(tau2, dtype=np.float64) / s2
    w = weights(vi, tau2, m)
    sw, est, e = weighted_residuals(yi, w)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        uncentred = c / s + est  # the estimate in the scaled units, for the test statistic
    var = 1.0 / sw
    if test in T_TESTS:
        single = k <= 1  # no t(0): a single study keeps its own z interval, as meta() does
        df = np.where(single, np.nan, k - 1.0)
        if test in KH_TESTS:
            s2w = np.where(single, 1.0, kh_factor(vdot(w * e, e), df, test))
            var = s2w * var
        se = np.sqrt(var)
        crit = np.where(single, critical_values(level), critical_values(level, df))
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = uncentred / se
            p_t = 2.0 * special.stdtr(np.where(single, 1.0, df), -np.abs(stat))
            pval = np.where(single, 2.0 * special.ndtr(-np.abs(stat)), p_t)
    else:
        df = np.full(est.shape, np.nan)
        se = np.sqrt(var)
        crit = critical_values(level)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            stat = uncentred / se
        pval = 2.0 * special.ndtr(-np.abs(stat))
    half = crit * se
    pi_half = crit * np.sqrt(var + tau2)
    q, q_df, q_p, vt = _heterogeneity_scaled(yi, vi, m, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method is not None and method in COMMON_METHODS:
            i2 = np.maximum(0.0, 100.0 * (q - q_df) / q)
            i2 = np.where(np.isnan(i2), 0.0, i2)  # metafor: max(0, NaN) for Q = 0, k = 1
            h2 = np.where(q_df > 0, q / q_df, 1.0)
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
        single = k <= 1
        i2 = np.where(single, 0.0, i2)
        h2 = np.where(single, 1.0, h2)
    with np.errstate(over="ignore", invalid="ignore"):
        est_0 = c + s * est
        half, pi_half, se, vt = s * half, s * pi_half, s * se, s2 * vt
    return {
        "k": k,
        "estimate": est_0,
        "se": se,
        "statistic": stat,
        "pvalue": pval,
        "ci_low": est_0 - half,
        "ci_high": est_0 + half,
        "pi_low": est_0 - pi_half,
        "pi_high": est_0 + pi_half,
        "df": df,
        "weights": 100.0 * w / sw[..., None],
        "q": q,
        "q_df": q_df,
        "q_pvalue": q_p,
        "i2": i2,
        "h2": h2,
        "vt": vt,
    }
