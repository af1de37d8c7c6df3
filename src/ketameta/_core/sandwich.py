"""Cluster-robust (sandwich) variance, t-tests and Wald tests for GLS meta-analytic models.

The model is ``y = X b + e`` with working marginal covariance ``M`` (block-diagonal by cluster)
and working weights ``W = M^-1``; ``b = (X'WX)^-1 X'W y`` and ``e = y - X b``. With the bread
``B = (X'WX)^-1`` the cluster-robust variance is (Pustejovsky & Tipton 2018, JBES 36:672)

    V_CR = B [ sum_j X_j' W_j A_j e_j e_j' A_j' W_j X_j ] B

with per-cluster adjustment matrices ``A_j``:

* ``CR0``: ``A_j = I`` (metafor ``robust(adjust=FALSE)``);
* ``CR1``: ``A_j = sqrt(m/(m-1)) I``; ``CR1p``: ``sqrt(m/(m-p)) I`` (metafor
  ``robust(adjust=TRUE)``); ``CR1S``: ``sqrt(m(k-1)/((m-1)(k-p))) I`` (m clusters);
* ``CR2`` (bias-reduced linearization): ``A_j = D_j' B_j^{-1/2} D_j`` where ``D_j'D_j = Phi_j``
  (the target, here the working ``M_j``) and ``B_j = D_j (Phi_j - X_j B X_j') D_j'``, the
  cluster's block of ``(I - H) Phi (I - H)'`` in the metric of ``D_j``. A singular ``B_j`` uses
  the Moore-Penrose inverse square root (eigenvalues below ``1e-12`` times the largest are
  dropped), as clubSandwich does. ``A_j`` does not depend on which square root ``D_j`` is used.

Satterthwaite degrees of freedom and the Hotelling-T^2 approximations (HTZ, HTA, HTB) come from
the variance of the estimator under the working model: for a contrast ``c``,
``c'V_CR c = sum_j (g_j'y)^2`` with ``g_j = (I-H)_j' A_j' W_j X_j B c``, and with ``W = Phi^-1``

    Omega_ij = g_i' Phi g_j = delta_ij q_i' M_i q_i - (X_i'q_i)' B (X_j'q_j),  q_j = A_j'W_jX_jBc,

so ``E = tr(Omega)``, ``Var = 2 ||Omega||_F^2`` and ``df = tr(Omega)^2 / ||Omega||_F^2``.

This module holds the tests; the model split by cluster (`prepare_robust`, `RobustModel`) is in
:mod:`ketameta._core.sandwich_model` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ketameta._core.sandwich_model import (
    Array,
    Blocks,
    RobustModel,
    _frob,
    _model,
    _sym_power,
    prepare_robust,
)

__all__ = [
    "CoefTestResult",
    "WaldTestResult",
    "RobustModel",
    "prepare_robust",
    "vcov_cr",
    "coef_test",
    "wald_test",
]

CRType = Literal["CR0", "CR1", "CR1p", "CR1S", "CR2"]
CoefTest = Literal["Satterthwaite", "naive-t", "naive-tp", "z"]
WaldTest = Literal["HTZ", "HTA", "HTB", "chi-sq", "Naive-F", "Naive-Fp"]


@dataclass(frozen=True)
class CoefTestResult:
    """Per-coefficient robust t-tests.

    Attributes
    ----------
    beta, se, tstat, df, p_value : ndarray of shape (p,)
        Estimate, robust SE, ``beta / se``, df (``inf`` for ``z``), two-sided p-value.
    vcov : ndarray of shape (p, p)
        The robust variance matrix used.
    type, test : str
    """

    beta: Array
    se: Array
    tstat: Array
    df: Array
    p_value: Array
    vcov: Array
    type: str
    test: str


@dataclass(frozen=True)
class WaldTestResult:
    """A robust Wald test of ``C b = rhs``.

    Attributes
    ----------
    Q, F, delta : float
        Wald statistic ``(Cb - rhs)' (C V C')^-1 (Cb - rhs)``; test statistic ``delta Q / q``
        (clubSandwich's ``Fstat``); ``delta`` is 1, or ``(eta - q + 1) / eta`` for HT*.
    df_num, df_denom, p_value : float
        ``q``, the denominator df (``inf`` for chi-sq) and the upper-tail p-value.
    test : str
    """

    Q: float
    F: float
    delta: float
    df_num: float
    df_denom: float
    p_value: float
    test: str


def vcov_cr(
    X: ArrayLike | RobustModel,
    y: ArrayLike | None = None,
    M: ArrayLike | Blocks | None = None,
    cluster: ArrayLike | None = None,
    type: CRType = "CR2",
) -> Array:
    """Cluster-robust variance matrix of the GLS estimate.

    Parameters
    ----------
    X, y, M, cluster
        As in :func:`prepare_robust` (or a prepared :class:`RobustModel` as ``X``).
    type : {"CR0", "CR1", "CR1p", "CR1S", "CR2"}
        Small-sample adjustment (see the module docstring). metafor's ``robust(adjust=TRUE)``
        is ``CR1p``; ``robust(clubSandwich=TRUE)`` is ``CR2``.

    Returns
    -------
    ndarray of shape (p, p)
    """
    return _model(X, y, M, cluster).vcov(type)


def coef_test(
    X: ArrayLike | RobustModel,
    y: ArrayLike | None = None,
    M: ArrayLike | Blocks | None = None,
    cluster: ArrayLike | None = None,
    type: CRType = "CR2",
    test: CoefTest = "Satterthwaite",
) -> CoefTestResult:
    """Robust t-tests of every coefficient (clubSandwich's ``coef_test``).

    Parameters
    ----------
    X, y, M, cluster
        As in :func:`prepare_robust` (or a prepared :class:`RobustModel` as ``X``).
    type : {"CR0", "CR1", "CR1p", "CR1S", "CR2"}
        Adjustment of the variance; the Satterthwaite df use the same adjustment matrices.
    test : {"Satterthwaite", "naive-t", "naive-tp", "z"}
        df from the working-model approximation, ``m - 1``, ``m - p`` (metafor's robust()
        t-tests), or a standard normal reference.

    Returns
    -------
    CoefTestResult
    """
    mod = _model(X, y, M, cluster)
    adj = mod.adjustments(type)
    vc = mod.vcov(type, adj)
    p, m = mod.X.shape[1], mod.n_clusters
    se = np.sqrt(np.diag(vc))
    t = mod.beta / se
    if test == "Satterthwaite":
        df = np.empty(p)
        for s in range(p):  # df = tr(Omega)^2 / ||Omega||_F^2 per coefficient
            d, R = mod.omega_parts(np.eye(p)[[s]], adj)
            ebar = d.sum() - np.einsum("apj,pr,arj->", R, mod.bread, R)
            df[s] = ebar**2 / _frob(d, R, mod.bread)[0, 0, 0, 0]
    elif test in ("naive-t", "naive-tp", "z"):
        val = {"naive-t": m - 1.0, "naive-tp": float(m - p), "z": np.inf}[test]
        df = np.full(p, val)
    else:
        raise ValueError(f"unknown test {test!r}")
    pval = np.where(
        np.isinf(df),
        2.0 * stats.norm.sf(np.abs(t)),
        2.0 * stats.t.sf(np.abs(t), np.where(np.isinf(df), 1.0, df)),
    )
    return CoefTestResult(mod.beta, se, t, df, pval, vc, type, test)


def _ht_eta(F: Array, test: str) -> float:
    """Hotelling-T^2 df ``eta`` from ``F`` (:func:`_frob`) of the standardised Omega.

    ``Cov(S_st, S_uv) = F[s,u,t,v] + F[s,v,t,u]`` for ``S = sum_j z_j z_j'``, ``z_sj = g_sj'y``.
    """
    q = F.shape[0]
    cov = np.einsum("sutv->stuv", F) + np.einsum("svtu->stuv", F)
    var = np.einsum("stst->st", cov)
    if test == "HTZ":
        return q * (q + 1) / float(np.sum(var))
    if test == "HTA":
        return 2.0 * float(np.sum(var)) / float(np.sum(cov * cov))
    # HTB: each distinct (st, uv) pair of the symmetric index sets once
    num, den = 0.0, 0.0
    for s in range(q):
        for t in range(s + 1):
            num += var[s, t]
            for u in range(s + 1):
                for v in range(t + 1 if u == s else u + 1):
                    den += cov[s, t, u, v] ** 2
    return 2.0 * num / den


def wald_test(
    X: ArrayLike | RobustModel,
    y: ArrayLike | None = None,
    M: ArrayLike | Blocks | None = None,
    cluster: ArrayLike | None = None,
    *,
    constraints: ArrayLike,
    rhs: ArrayLike | None = None,
    type: CRType = "CR2",
    test: WaldTest = "HTZ",
) -> WaldTestResult:
    """Robust Wald test of ``C b = rhs`` (clubSandwich's ``Wald_test``).

    Parameters
    ----------
    X, y, M, cluster
        As in :func:`prepare_robust` (or a prepared :class:`RobustModel` as ``X``).
    constraints : array_like of shape (q, p)
        Constraint matrix ``C`` (full row rank).
    rhs : array_like of shape (q,), optional
        Hypothesised values (default zero).
    type : {"CR0", "CR1", "CR1p", "CR1S", "CR2"}
        Adjustment of the variance.
    test : {"HTZ", "HTA", "HTB", "chi-sq", "Naive-F", "Naive-Fp"}
        ``HTZ``: Hotelling T^2 with ``eta = q(q+1) / sum_st Var(S_st)`` where ``S`` is
        ``C V_CR C'`` standardised by ``E(C V_CR C')^-1/2`` under the working model,
        ``F = (eta - q + 1) Q / (eta q) ~ F(q, eta - q + 1)``; ``HTA``/``HTB`` match the
        variances and covariances instead (Tipton & Pustejovsky 2015). ``chi-sq``: ``Q ~
        chi2(q)``; ``Naive-F``: ``Q/q ~ F(q, m-1)``; ``Naive-Fp``: ``F(q, m-p)`` (metafor's
        robust() omnibus test).

    Returns
    -------
    WaldTestResult
    """
    mod = _model(X, y, M, cluster)
    C = np.atleast_2d(np.asarray(constraints, dtype=np.float64))
    q, p, m = C.shape[0], mod.X.shape[1], mod.n_clusters
    if C.shape[1] != p:
        raise ValueError(f"constraints must have {p} columns")
    d = C @ mod.beta - (np.zeros(q) if rhs is None else np.asarray(rhs, dtype=np.float64))
    adj = mod.adjustments(type)
    cvc = C @ mod.vcov(type, adj) @ C.T
    Q = float(d @ np.linalg.solve(cvc, d))
    if test == "chi-sq":
        return WaldTestResult(Q, Q / q, 1.0, float(q), np.inf, float(stats.chi2.sf(Q, q)), test)
    if test in ("Naive-F", "Naive-Fp"):
        df2 = m - 1.0 if test == "Naive-F" else float(m - p)
        return WaldTestResult(Q, Q / q, 1.0, float(q), df2, float(stats.f.sf(Q / q, q, df2)), test)
    if test not in ("HTZ", "HTA", "HTB"):
        raise ValueError(f"unknown test {test!r}")
    d, R = mod.omega_parts(C, adj)
    T = _sym_power(mod.expected_vcov(C, adj), -0.5)  # standardise by E(C V C')^-1/2
    d, R = np.einsum("sa,tb,abj->stj", T, T, d), np.einsum("sa,apj->spj", T, R)
    eta = _ht_eta(_frob(d, R, mod.bread), test)
    delta = (eta - q + 1.0) / eta
    df2 = eta - q + 1.0
    F = delta * Q / q
    pval = float(stats.f.sf(F, q, df2)) if df2 > 0 else np.nan
    return WaldTestResult(Q, F, delta, float(q), df2, pval, test)
