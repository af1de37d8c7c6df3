"""Secondary statistics of a fit: the standard error of tau² and the likelihood-based fit
statistics (log-likelihood, deviance, AIC, BIC, AICc), as metafor's ``rma.uni()`` and
``fitstats()`` compute them for the intercept-only model (metafor 3.8-1).

Arrays are ``(..., k)`` with an optional float mask ``m`` (see :mod:`ketameta._core.arrays`).
"""

from __future__ import annotations

import numpy as np

from ketameta._core.arrays import vdot, weighted_residuals, weights

_LOG_2PI = np.log(2.0 * np.pi)


def _traces(w, vi, m):
    """Traces of P = W - w w'/sum w with V = diag(vi): tr P, tr PP, tr PV, tr PVP, tr PVPV."""
    mm = 1.0 if m is None else m
    s = w.sum(axis=-1)
    w2 = w * w
    w3 = w2 * w
    s2 = w2.sum(axis=-1)
    wv = (w * vi * mm).sum(axis=-1)
    w2v = (w2 * vi).sum(axis=-1)
    tr_p = s - s2 / s
    tr_pp = s2 - 2.0 * w3.sum(axis=-1) / s + s2 * s2 / (s * s)
    tr_pv = wv - w2v / s
    tr_pvp = w2v - 2.0 * (w3 * vi).sum(axis=-1) / s + s2 * w2v / (s * s)
    tr_pvpv = (w2 * vi * vi).sum(axis=-1) - 2.0 * (w3 * vi * vi).sum(axis=-1) / s
    tr_pvpv = tr_pvpv + w2v * w2v / (s * s)
    return tr_p, tr_pp, tr_pv, tr_pvp, tr_pvpv


def se_tau2(yi, vi, tau2, method: str, *, m=None, k=None):
    """Standard error of the tau² estimate, with metafor's formula for each estimator.

    DL/DLIT, HS/HSk, HE and SJ use the variance of their quadratic form (P at the weights each
    estimator uses: 1/vi for DL/HS/HSk, 1/(vi + tau²) for DLIT, unweighted for HE,
    1/(vi + tau²_0) for SJ); ML: sqrt(2 / sum w²); REML: sqrt(2 / tr PP); EB/PM/MP/PMM/SJIT:
    sqrt(2 k² / (k - 1)) / sum w, with w = 1/(vi + tau²). NaN for EE/FE and k < 2.
    """
    tau2 = np.asarray(tau2, dtype=np.float64)
    if k is None:
        k = np.full(tau2.shape, float(yi.shape[-1])) if m is None else m.sum(axis=-1)
    t = np.maximum(tau2, 0.0)
    df = k - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if method in ("EE", "FE"):
            out = np.full(tau2.shape, np.nan)
        elif method in ("DL", "HS", "HSk"):
            w = weights(vi, 0.0, m)
            tr_p, tr_pp, *_ = _traces(w, vi, m)
            core = 2.0 * df + 4.0 * t * tr_p + 2.0 * t * t * tr_pp
            if method == "DL":
                out = np.sqrt(core) / tr_p
            else:
                out = np.sqrt(core) / w.sum(axis=-1)
                if method == "HSk":
                    out = k / df * out
        elif method == "DLIT":
            w = weights(vi, t, m)
            tr_p, tr_pp, *_ = _traces(w, vi, m)
            out = np.sqrt(2.0 * df + 4.0 * t * tr_p + 2.0 * t * t * tr_pp) / tr_p
        elif method == "HE":
            w = np.ones(vi.shape) if m is None else m.copy()
            _, _, tr_pv, _, tr_pvpv = _traces(w, vi, m)
            out = np.sqrt(2.0 * tr_pvpv + 4.0 * t * tr_pv + 2.0 * t * t * df) / df
        elif method == "SJ":
            mm = 1.0 if m is None else m
            ybar = (mm * yi).sum(axis=-1) / k
            t0 = (mm * (yi - ybar[..., None]) ** 2).sum(axis=-1) / k
            w = weights(vi, t0, m)
            _, tr_pp, _, tr_pvp, tr_pvpv = _traces(w, vi, m)
            out = t0 / df * np.sqrt(2.0 * tr_pvpv + 4.0 * t * tr_pvp + 2.0 * t * t * tr_pp)
        else:
            w = weights(vi, t, m)
            if method == "ML":
                out = np.sqrt(2.0 / vdot(w, w))
            elif method == "REML":
                out = np.sqrt(2.0 / _traces(w, vi, m)[1])
            else:  # EB, PM, MP, PMM, SJIT
                out = np.sqrt(2.0 * k * k / df) / w.sum(axis=-1)
    return np.where(k > 1, out, np.nan)


def fit_statistics(
    yi, vi, tau2, method: str, *, m=None, k=None, estimate=None
) -> dict[str, np.ndarray]:
    """Log-likelihood, deviance, AIC, BIC and AICc, as metafor's ``fitstats()``.

    The residuals are about the inverse-variance estimate, or about ``estimate`` when given
    (a fit with user weights: metafor evaluates the likelihood at the weighted estimate).

    The restricted (REML) versions for ``method="REML"``, the ML versions otherwise; the
    number of parameters is 1 (EE/FE) or 2 (the mean and tau²). The ML deviance is relative to
    the saturated model, the REML deviance is -2 logLik (metafor's convention). The REML
    log-likelihood includes metafor's constant +1/2 log|X'X| = +1/2 log k.
    """
    tau2 = np.asarray(tau2, dtype=np.float64)
    mm = 1.0 if m is None else m
    if k is None:
        k = np.full(tau2.shape, float(yi.shape[-1])) if m is None else m.sum(axis=-1)
    parms = 1.0 if method in ("EE", "FE") else 2.0
    w = weights(vi, tau2, m)
    sw, _, e = weighted_residuals(yi, w)
    if estimate is not None:
        e = yi - np.asarray(estimate, dtype=np.float64)[..., None]
    rss = vdot(w * e, e)
    logdet = (mm * np.log(vi + tau2[..., None])).sum(axis=-1)
    if method == "REML":
        n = k - 1.0
        ll = -0.5 * n * _LOG_2PI + 0.5 * np.log(k) - 0.5 * logdet - 0.5 * np.log(sw) - 0.5 * rss
        dev = -2.0 * ll
    else:
        n = k
        ll = -0.5 * k * _LOG_2PI - 0.5 * logdet - 0.5 * rss
        saturated = -0.5 * (mm * (_LOG_2PI + np.log(vi))).sum(axis=-1)
        dev = np.where(k > 1, -2.0 * (ll - saturated), 0.0)
    big = np.maximum(n, parms + 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "loglik": ll,
            "deviance": dev,
            "aic": -2.0 * ll + 2.0 * parms,
            "bic": -2.0 * ll + parms * np.log(n),
            "aicc": -2.0 * ll + 2.0 * parms * big / (big - parms - 1.0),
        }
