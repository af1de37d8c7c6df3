"""``meta(..., weights=)``: the weighted least-squares fit with user weights (metafor's
``rma(yi, vi, weights=a)``), and the GENQ/GENQM estimators of tau² that need those weights.

The estimate is ``sum a y / sum a`` with variance ``sum a² (vi + tau²) / (sum a)²`` (metafor's
``(X'AX)^-1 X'A M A X (X'AX)^-1``). tau² comes from ``method``: GENQ/GENQM use the weights
(:mod:`ketameta._core.genq`), every other estimator ignores them, as in metafor. Q, I², H² and
vt are the usual inverse-variance ones. ``test="knha"`` scales the variance by
``sum w (y - mu_w)² / (k - 1)`` with ``w = 1/(vi + tau²)`` and ``mu_w`` the inverse-variance
estimate (metafor 3.8-1); the prediction interval is ``estimate ± crit sqrt(se² + tau²)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import special

from ketameta._core.fitstats import fit_statistics
from ketameta._core.genq import genq_ci, genq_estimate
from ketameta._core.pooling import KH_TESTS, T_TESTS, critical_values, kh_factor
from ketameta._core.tau2 import heterogeneity_bounds
from ketameta.exceptions import KetametaWarning
from ketameta.synthesis._inputs import check_options, frozen, read_effects
from ketameta.synthesis.results import MetaResult

GENQ_METHODS = ("GENQ", "GENQM")


def check_weights(weights, data, labels: tuple[str, ...]) -> np.ndarray:
    """The user weights as a float array: a ``data`` column name or a sequence of length k.

    Raises ValueError for a wrong length, and naming the rows, for NaN, infinite or negative
    weights; also when every weight is 0. A weight of 0 is allowed (as metafor: the study stays
    in k with weight 0%).
    """
    if isinstance(weights, str):
        if data is None or weights not in data.columns:
            raise ValueError(f"meta(): 'weights' {weights!r} is not a column of 'data'.")
        weights = data[weights]
    try:
        a = np.asarray(weights, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta(): 'weights' must be numbers ({err}).") from None
    k = len(labels)
    if a.size != k:
        raise ValueError(f"meta(): 'weights' has {a.size} values but there are {k} studies.")
    for bad, what in ((np.isnan(a), "NaN"), (np.isinf(a), "infinite"), (a < 0, "negative")):
        if bad.any():
            rows = ", ".join(f"{labels[i]!r} (row {i})" for i in np.flatnonzero(bad))
            raise ValueError(f"meta(): 'weights' must be finite and >= 0; {what} for {rows}.")
    if not (a > 0).any():
        raise ValueError("meta(): 'weights' are all 0; at least one must be positive.")
    return a


def meta_weighted(yi, vi, weights, *, data, method, test, level, labels, measure, tol,
                  maxiter) -> MetaResult:  # fmt: skip
    """:func:`ketameta.synthesis.pooling.meta` with user ``weights`` (see the module doc).

    Examples
    --------
    Weights 1/vi with GENQ give the DerSimonian-Laird tau² (the estimate is then the
    common-effect one, since the weights do not include tau²):

    >>> from ketameta.synthesis.pooling import meta
    >>> yi, vi = [0.10, 0.35, 0.62, 0.21], [0.04, 0.03, 0.05, 0.02]
    >>> res = meta(yi, vi, weights=[1 / v for v in vi], method="GENQ")
    >>> round(res.tau2, 6), round(meta(yi, vi, method="DL").tau2, 6)
    (0.005643, 0.005643)
    """
    if method in GENQ_METHODS:
        if weights is None:
            raise ValueError(
                f"method={method!r} needs weights= (metafor: \"Must specify 'weights' when "
                f"method='{method}'.\")."
            )
        level = check_options("DL", test, level)
    else:
        level = check_options(method, test, level)
    study = read_effects(yi, vi, data=data, labels=labels, caller="meta()")
    y, v, labs = study.yi, study.vi, study.labels
    k = y.size
    if k < 2:
        raise ValueError("meta(): 'weights' needs at least 2 studies.")
    a = check_weights(weights, data, labs)
    if data is not None and measure is None:
        measure = data.attrs.get("measure")
    extra = {}
    if method in GENQ_METHODS:
        fit = genq_estimate(y, v, a, median=method == "GENQM", tol=tol, maxiter=maxiter)
        tau2, converged = fit.tau2, fit.converged
        w_fe = 1.0 / v
        mu_fe = float(w_fe @ y / w_fe.sum())
        q = float(w_fe @ (y - mu_fe) ** 2)
        vt = (k - 1) / float(w_fe.sum() - (w_fe @ w_fe) / w_fe.sum())
        ci = genq_ci(y, v, a, tau2, level=level, tol=tol, maxiter=maxiter)
        if ">" in (ci.low_sign, ci.high_sign):
            warnings.warn(
                f"meta(): the {'lower and upper' if ci.low_sign == '>' else 'upper'} GENQ bound "
                f"of tau2 lies beyond metafor's search limit tau2.max = {ci.high:g} and is "
                "reported as that limit (metafor prints '>').",
                KetametaWarning,
                stacklevel=3,
            )
        b = heterogeneity_bounds(ci.low, ci.high, vt)
        extra = dict(
            tau2_ci=(ci.low, ci.high),
            tau_ci=(float(b[0]), float(b[1])),
            i2_ci=(float(b[2]), float(b[3])),
            h2_ci=(float(b[4]), float(b[5])),
            se_tau2=fit.se_tau2,
        )
        i2, h2 = 100.0 * tau2 / (vt + tau2), tau2 / vt + 1.0
        q_pvalue = float(special.chdtrc(k - 1, q))
    else:
        from ketameta.synthesis.pooling import meta

        base = meta(y, v, method=method, test="z", level=level, tol=tol, maxiter=maxiter)
        tau2, converged, vt, q, q_pvalue = base.tau2, base.converged, base.vt, base.q, base.q_pvalue
        i2, h2 = base.i2, base.h2
        extra = {f: getattr(base, f) for f in ("tau2_ci", "tau_ci", "i2_ci", "h2_ci", "se_tau2")}
    est, se, stat, pval, ci_low, ci_high, pi_low, pi_high, df = _model(y, v, a, tau2, test, level)
    extra.update(_fit_stats(y, v, est, tau2, method))
    return MetaResult(
        k=k, estimate=est, se=se, statistic=stat, pvalue=pval, ci_low=ci_low, ci_high=ci_high,
        pi_low=pi_low, pi_high=pi_high, tau2=tau2, tau=math.sqrt(tau2), i2=i2, h2=h2, q=q,
        q_df=k - 1, q_pvalue=q_pvalue, weights=_read_only(100.0 * a / a.sum()), method=method,
        test=test, level=level, df=df, yi=frozen(y), vi=frozen(v), labels=labs,
        measure=measure, favours_group1=study.favours_group1, excluded=study.excluded,
        data=data, converged=converged, vt=vt, **extra,
    )  # fmt: skip


def _model(y, v, a, tau2, test, level):
    """Weighted estimate, its se (knha-scaled), test, CI and prediction interval."""
    k = y.size
    sa = float(a.sum())
    est = float(a @ y) / sa
    var = float((a * a) @ (v + tau2)) / sa**2
    if test in KH_TESTS:
        w = 1.0 / (v + tau2)
        mu = float(w @ y) / float(w.sum())
        var *= float(kh_factor(float(w @ (y - mu) ** 2), k - 1, test))
    df = k - 1 if test in T_TESTS else None
    se = math.sqrt(var)
    crit = float(critical_values(level, df))
    stat = est / se if se > 0 else math.nan
    pval = float(2.0 * (special.stdtr(df, -abs(stat)) if df else special.ndtr(-abs(stat))))
    half_pi = crit * math.sqrt(var + tau2)
    return est, se, stat, pval, est - crit * se, est + crit * se, est - half_pi, est + half_pi, df


def _fit_stats(y, v, est, tau2, method) -> dict:
    """metafor's fitstats() of the weighted fit: the likelihood at the weighted estimate."""
    stats = fit_statistics(y, v, tau2, method, estimate=est)
    return {key: float(val) for key, val in stats.items()}


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a
