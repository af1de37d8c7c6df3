"""Mixed-effects meta-regression on numpy arrays: ``y``, ``v`` shaped (k,), ``X`` (k, p).

Model: ``y = X b + u + e`` with ``u ~ N(0, tau2)`` and ``e ~ N(0, v)``. tau² estimators with
moderators follow metafor's ``rma.uni`` (Raudenbush 2009; Viechtbauer 2005):

* ``FE``/``EE``: tau² = 0.
* ``DL``: ``(QE - (k - p)) / tr(P)`` with ``P = W - W X (X'WX)⁻¹ X'W`` at ``W = diag(1/v)``.
* ``ML``/``REML``: Fisher scoring to a change below ``tol`` (default 1e-12: the exact root;
  metafor's default stops at 1e-5), with step halving that keeps tau² ≥ 0.
* ``PM``/``EB``: the root of ``y'P(tau²)y = k - p`` (Brent's method to 1e-12 relative).

Then ``b = (X'WX)⁻¹X'Wy`` with ``W = diag(1/(v + tau²))``; for ``test="knha"`` the covariance is
scaled by ``y'Py/(k-p)`` and tests use t(k-p) and F(m, k-p), as metafor.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

Array = NDArray[np.float64]
METHODS = ("FE", "EE", "DL", "ML", "REML", "PM", "EB")


def _projection(X: Array, w: Array) -> tuple[Array, Array]:
    """``P = W - W X (X'WX)⁻¹ X'W`` and ``(X'WX)⁻¹``."""
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    wx = w[:, None] * X
    return np.diag(w) - wx @ xtwx_inv @ wx.T, xtwx_inv


def tau2_mods(
    y: Array, v: Array, X: Array, method: str, *, tol: float = 1e-12, maxiter: int = 1000
) -> tuple[float, bool]:
    """tau² of the mixed-effects model; returns ``(tau2, converged)``."""
    k, p = X.shape
    if method in ("FE", "EE"):
        return 0.0, True
    if method == "DL":
        P, _ = _projection(X, 1.0 / v)
        qe = float(y @ P @ y)
        return max(0.0, (qe - (k - p)) / float(np.trace(P))), True
    if method in ("PM", "EB"):

        def excess(t: float) -> float:
            P, _ = _projection(X, 1.0 / (v + t))
            return float(y @ P @ y) - (k - p)

        if excess(0.0) <= 0:
            return 0.0, True
        upper = max(1.0, float(np.var(y)) * 10)
        while excess(upper) > 0:
            upper *= 10
        return float(
            optimize.brentq(excess, 0.0, upper, xtol=tol * 1e-3, rtol=4 * np.finfo(float).eps)
        ), True
    if method not in ("ML", "REML"):
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    # start from the Hedges-type estimator, as metafor does
    P0, _ = _projection(X, np.ones(k))
    tau2 = max(0.0, (float(y @ P0 @ y) - float(np.trace(P0 @ np.diag(v)))) / (k - p))
    for _ in range(maxiter):
        w = 1.0 / (v + tau2)
        P, _ = _projection(X, w)
        Py = P @ y
        if method == "REML":
            step = (float(Py @ Py) - float(np.trace(P))) / float(np.sum(P * P))
        else:
            step = (float(Py @ Py) - float(np.sum(w))) / float(np.sum(w * w))
        new = tau2 + step
        while new < 0:
            step /= 2.0
            new = tau2 + step
            if abs(step) < tol:
                new = 0.0
                break
        if abs(new - tau2) < tol:
            return new, True
        tau2 = new
    return tau2, False


def fit_mods(
    y: Array,
    v: Array,
    X: Array,
    tau2: float,
    *,
    test: str = "z",
    level: float = 95.0,
    intercept: bool = True,
    fixed: bool = False,
) -> dict[str, object]:
    """Coefficients, their tests, QM and QE for given tau² (``intercept``: X[:, 0] is 1).

    ``fixed=True`` (an FE/EE model) takes I² and H² from QE, as metafor does.
    """
    k, p = X.shape
    w = 1.0 / (v + tau2)
    P, vb = _projection(X, w)
    b = vb @ (X.T @ (w * y))
    df = k - p
    if test == "knha":
        s2 = float(y @ P @ y) / df
        vb = vb * s2
    se = np.sqrt(np.diag(vb))
    stat = b / se
    alpha = 1.0 - level / 100.0
    if test == "knha":
        crit = stats.t.ppf(1.0 - alpha / 2.0, df)
        pval = 2.0 * stats.t.sf(np.abs(stat), df)
    else:
        crit = stats.norm.ppf(1.0 - alpha / 2.0)
        pval = 2.0 * stats.norm.sf(np.abs(stat))
    idx = np.arange(1 if intercept and p > 1 else 0, p)
    m = len(idx)
    bm = b[idx]
    qm = float(bm @ np.linalg.solve(vb[np.ix_(idx, idx)], bm))
    if test == "knha":
        qm /= m
        qm_p = float(stats.f.sf(qm, m, df))
    else:
        qm_p = float(stats.chi2.sf(qm, m))
    P_fe, _ = _projection(X, 1.0 / v)
    qe = float(y @ P_fe @ y)
    vt = (k - p) / float(np.trace(P_fe))
    if fixed:
        i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
        h2 = qe / (k - p) if k > p else float("nan")
    else:
        i2, h2 = 100.0 * tau2 / (vt + tau2), (vt + tau2) / vt
    return {
        "b": b,
        "vb": vb,
        "se": se,
        "statistic": stat,
        "pvalue": pval,
        "ci_low": b - crit * se,
        "ci_high": b + crit * se,
        "df": df if test == "knha" else None,
        "qm": qm,
        "qm_df": m,
        "qm_pvalue": qm_p,
        "qe": qe,
        "qe_df": k - p,
        "qe_pvalue": float(stats.chi2.sf(qe, k - p)) if k > p else float("nan"),
        "vt": vt,
        "i2": i2,
        "h2": h2,
        "weights": 100.0 * w / w.sum(),
        "crit": crit,
    }


def predict_mods(
    X_new: Array, fit: dict[str, object], tau2: float
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Predicted values with CI and PI at the rows of ``X_new`` (metafor's ``predict``)."""
    vb = np.asarray(fit["vb"])
    pred = X_new @ np.asarray(fit["b"])
    se = np.sqrt(np.einsum("ij,jk,ik->i", X_new, vb, X_new))
    crit = float(fit["crit"])  # type: ignore[arg-type]
    half_pi = crit * np.sqrt(se**2 + tau2)
    return pred, se, pred - crit * se, pred + crit * se, pred - half_pi, pred + half_pi
