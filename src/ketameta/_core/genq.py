"""Generalized Q-statistic estimators of tau² with user weights (metafor's GENQ and GENQM).

With weights ``a`` (A = diag(a)) and an intercept-only model, the weighted Q statistic is
``Q_a = y' P y`` with ``P = A - a a' / sum(a)``. Under tau² it is distributed as
``sum_j lambda_j chi²_1``, lambda the k - 1 largest eigenvalues of ``S P S``,
``S = diag(sqrt(vi + tau²))`` (DerSimonian & Kacker 2007; Jackson 2013).

* ``GENQ``: the moment estimator ``(Q_a - tr(P V)) / tr(P)``, truncated at 0 (metafor 3.8-1).
  Weights ``1/vi`` give DerSimonian-Laird, weights 1 Hedges' (HE) estimator.
* ``GENQM``: the median-unbiased estimator, the tau² at which ``P(Q_a > Q_obs) = 1/2``
  (0 when that probability already exceeds 1/2 at tau² = 0).
* The confidence interval of both (metafor's ``confint(type="GENQ")``): the tau² at which
  ``P(Q_a > Q_obs)`` equals ``alpha/2`` (lower) and ``1 - alpha/2`` (upper), searched in
  ``[0, max(100, 10 tau²)]`` with metafor's boundary rules.

metafor computes the distribution with Farebrother's algorithm (CompQuadForm); here it is
Imhof's (1961) inversion formula, integrated by Gauss-Legendre rules on pieces of half an
oscillation period (:func:`quadform_sf`), exact to about 1e-14 absolute.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import integrate, optimize

__all__ = ["GenqCI", "GenqFit", "genq_ci", "genq_estimate", "genq_matrix", "genq_sf", "quadform_sf"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)


class GenqFit(NamedTuple):
    """GENQ/GENQM estimate: ``tau2``, its ``se_tau2``, the observed ``q`` (Q_a), ``converged``."""

    tau2: float
    se_tau2: float
    q: float
    converged: bool


class GenqCI(NamedTuple):
    """Confidence bounds of tau² and metafor's ``lb.sign``/``ub.sign`` ("", "<" or ">")."""

    low: float
    high: float
    low_sign: str
    high_sign: str


def quadform_sf(q: float, lambdas) -> float:
    """``P(Q > q)`` for ``Q = sum_j lambda_j chi²_1`` (independent central chi², lambda > 0).

    Imhof's (1961) formula ``1/2 + 1/pi int_0^inf sin(theta(u)) / (u rho(u)) du`` with
    ``theta(u) = sum atan(lambda_j u) / 2 - q u / 2`` and
    ``rho(u) = prod (1 + lambda_j² u²)^(1/4)``, lambda and q scaled by max(lambda) first,
    integrated by 24-point Gauss-Legendre rules on pieces no longer than half a period of the
    oscillation (``2 pi / q``) or 1/2 up to ``U = 40 / max(lambda)`` (or 20 periods), and
    beyond U as two Fourier integrals
    (``theta(u) = a(u) - q u / 2`` with ``a`` smooth) by QUADPACK's QAWF.

    Parameters
    ----------
    q : float
        The point (q <= 0 gives 1).
    lambdas : array_like
        The weights of the chi²_1 terms; those <= 1e-13 max(lambda) are dropped.

    Returns
    -------
    float
        The upper-tail probability, clipped to [0, 1].

    Examples
    --------
    Two equal weights make ``lambda chi²_2``, whose upper tail is ``exp(-q / (2 lambda))``:

    >>> import math
    >>> from ketameta._core.genq import quadform_sf
    >>> abs(quadform_sf(3.0, [1.5, 1.5]) - math.exp(-1.0)) < 1e-13
    True
    """
    lam = np.asarray(lambdas, dtype=np.float64).ravel()
    if lam.size == 0 or not np.all(np.isfinite(lam)) or not np.isfinite(q):
        return float("nan")
    top = float(lam.max())
    if top <= 0.0:
        return 0.0 if q >= 0 else 1.0
    if q <= 0.0:
        return 1.0
    lam = lam[lam > 1e-13 * top] / top
    x = float(q) / top
    # [0, U]: Gauss-Legendre pieces of at most half a period; [U, inf): theta = a(u) - x u / 2
    # with a(u) = sum atan(lambda_j u) / 2 smooth, so sin(theta) = sin(a) cos(x u / 2)
    # - cos(a) sin(x u / 2): two Fourier integrals for QUADPACK's QAWF (scipy's weight=)
    step = min(0.5, np.pi / x)
    n_pieces = max(8, int(np.ceil(40.0 / step)))  # U = 40 / max(lambda) at least 20 periods
    upper = n_pieces * step
    half = 0.5 * step
    u = ((np.arange(n_pieces) + 0.5)[:, None] * step + half * _NODES[None, :]).ravel()
    a, env = _phase_envelope(lam, u)
    f = np.sin(a - 0.5 * x * u) * env
    total = half * float((f.reshape(-1, _NODES.size) @ _WEIGHTS).sum())
    for weight, part, sign in (("cos", np.sin, 1.0), ("sin", np.cos, -1.0)):
        value = integrate.quad(
            _tail_integrand,
            upper,
            np.inf,
            args=(lam, part),
            weight=weight,
            wvar=0.5 * x,
            epsabs=1e-15,
            limlst=200,
            limit=500,
            full_output=1,
        )[0]  # full_output: QAWF diagnostics returned, not warned
        total += sign * value
    return float(min(1.0, max(0.0, 0.5 + total / np.pi)))


def _phase_envelope(lam: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Imhof's ``a(u) = sum atan(lambda_j u) / 2`` and ``1 / (u rho(u))`` at the points u."""
    lu = lam[:, None] * u[None, :]
    a = 0.5 * np.arctan(lu).sum(axis=0)
    return a, np.exp(-0.25 * np.log1p(lu * lu).sum(axis=0)) / u


def _tail_integrand(t: float, lam: np.ndarray, part) -> float:
    a, env = _phase_envelope(lam, np.array([t]))
    return float(part(a[0]) * env[0])


def genq_matrix(weights) -> np.ndarray:
    """``P = A - a a' / sum(a)``: the intercept-only model's residual-forming matrix under A."""
    a = np.asarray(weights, dtype=np.float64)
    return np.diag(a) - np.outer(a, a) / a.sum()


def genq_sf(tau2: float, p_matrix: np.ndarray, vi, q: float, n_coef: int = 1) -> float:
    """``P(Q_a > q)`` under ``tau2``: ``quadform_sf`` of the k - p largest eigenvalues of SPS."""
    vi = np.asarray(vi, dtype=np.float64)
    s = np.sqrt(vi + tau2)
    lam = np.linalg.eigvalsh(s[:, None] * p_matrix * s[None, :])[::-1]
    return quadform_sf(q, lam[: vi.size - n_coef])


def genq_estimate(yi, vi, weights, *, median: bool = False, tol: float = 1e-12,
                  maxiter: int = 1000) -> GenqFit:  # fmt: skip
    """GENQ (``median=False``) or GENQM (``median=True``) estimate of tau², as metafor 3.8-1.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances (intercept-only model).
    weights : array_like
        The user weights a_i >= 0, not all 0.
    median : bool
        GENQM: solve ``P(Q_a > Q_obs | tau2) = 1/2`` (Brent's method to ``tol``, relative;
        the bracket [0, 100] is doubled while the root lies beyond it, where metafor stops
        with "Value of 'tau2.max' too low").
    tol, maxiter
        Root tolerance and iteration limit of GENQM.

    Returns
    -------
    GenqFit
        ``tau2`` (>= 0), ``se_tau2`` (metafor's formula, the same for both),
        ``q`` (Q_a) and ``converged``.

    Examples
    --------
    Weights 1/vi give the DerSimonian-Laird estimate:

    >>> from ketameta._core.genq import genq_estimate
    >>> yi, vi = [0.1, 0.35, 0.62, 0.21], [0.04, 0.03, 0.05, 0.02]
    >>> round(genq_estimate(yi, vi, [1 / v for v in vi]).tau2, 6)
    0.005643
    """
    y = np.asarray(yi, dtype=np.float64)
    v = np.asarray(vi, dtype=np.float64)
    p_mat = genq_matrix(weights)
    q = float(y @ p_mat @ y)
    pv = p_mat * v[None, :]
    tr_p, tr_pv = float(np.trace(p_mat)), float(np.trace(pv))
    converged = True
    if not median:
        tau2 = max(0.0, (q - tr_pv) / tr_p)
    elif genq_sf(0.0, p_mat, v, q) > 0.5:
        tau2 = 0.0
    else:
        tau2, converged = _root(lambda t: genq_sf(t, p_mat, v, q) - 0.5, 100.0, tol, maxiter)
    t = max(tau2, 0.0)
    se = np.sqrt(
        (2.0 * float((pv * pv.T).sum()) + 4.0 * t * float((pv * p_mat).sum())
         + 2.0 * t * t * float((p_mat * p_mat).sum())) / tr_p**2
    )  # fmt: skip
    return GenqFit(float(tau2), float(se), q, converged)


def _root(fun, upper: float, tol: float, maxiter: int, lower: float = 0.0) -> tuple[float, bool]:
    """Root of an increasing ``fun`` on [lower, upper], ``upper`` doubled while fun(upper) < 0."""
    for _ in range(60):
        if fun(upper) >= 0.0:
            break
        lower, upper = upper, 2.0 * upper
    else:
        return float("nan"), False
    root, info = optimize.brentq(
        fun, lower, upper, xtol=1e-300, rtol=max(tol, 4 * np.finfo(float).eps),
        maxiter=maxiter, full_output=True, disp=False,
    )  # fmt: skip
    return float(root), bool(info.converged)


def genq_ci(yi, vi, weights, tau2: float, *, level: float = 95.0, tol: float = 1e-12,
            maxiter: int = 1000) -> GenqCI:  # fmt: skip
    """Confidence interval of tau² from the distribution of Q_a (metafor's ``type="GENQ"``).

    The bounds solve ``P(Q_a > Q_obs | tau2) = alpha/2`` (lower) and ``1 - alpha/2`` (upper)
    in ``[0, tau2_max]``, ``tau2_max = max(100, 10 tau2)`` (metafor's defaults). A bound
    outside that range is reported as the range's end, with metafor's sign: both bounds 0 and
    "<" when even tau² = 0 gives a probability above 1 - alpha/2, an upper bound at tau2_max
    with ">" when the root lies beyond it.

    Examples
    --------
    >>> from ketameta._core.genq import genq_ci
    >>> yi, vi = [0.1, 0.35, 0.62, 0.21, -0.3], [0.04, 0.03, 0.05, 0.02, 0.03]
    >>> ci = genq_ci(yi, vi, [1, 1, 1, 1, 1], 0.05)
    >>> round(ci.low, 4), ci.high > ci.low
    (0.0064, True)
    """
    y = np.asarray(yi, dtype=np.float64)
    v = np.asarray(vi, dtype=np.float64)
    p_mat = genq_matrix(weights)
    q = float(y @ p_mat @ y)
    alpha = 1.0 - level / 100.0
    t_min, t_max = min(0.0, tau2), max(100.0, 10.0 * tau2)
    at_min, at_max = genq_sf(t_min, p_mat, v, q), genq_sf(t_max, p_mat, v, q)

    def solve(target: float) -> float:
        root, _ = _root(lambda t: genq_sf(t, p_mat, v, q) - target, t_max, tol, maxiter, t_min)
        return root

    lo_sign = hi_sign = ""
    if at_min > 1.0 - alpha / 2.0:
        lo = hi = t_min
        lo_sign = hi_sign = "<"
    elif at_max < 1.0 - alpha / 2.0:
        hi, hi_sign = t_max, ">"
    else:
        hi = solve(1.0 - alpha / 2.0)
    if at_max < alpha / 2.0:
        lo = hi = t_max
        lo_sign = hi_sign = ">"
    elif at_min > alpha / 2.0:
        lo = t_min
        if t_min > 0:
            lo_sign = "<"
    else:
        lo = solve(alpha / 2.0)
    return GenqCI(float(lo), float(hi), lo_sign, hi_sign)
