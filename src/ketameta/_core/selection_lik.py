"""The selection functions and the likelihood of a selection model (metafor's ``selmodel()``).

p-values of the studies, the selection functions w(p; delta) of every type, the normalisers
log A_i (step functions exactly, by normal probabilities; the others by composite Gauss-Legendre
quadrature) and the log-likelihood; the fit is in `ketameta._core.selection`, whose module
docstring gives the formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

TYPES: tuple[str, ...] = ("stepfun", "beta", "halfnorm", "negexp", "logistic", "power")
Alternative = Literal["greater", "less", "two.sided"]
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
_Z_GRID = np.linspace(-9.0, 9.0, 73)  # panels of 0.25 where w(p(z)) varies
_N_GRID = np.linspace(-12.0, 12.0, 33)  # panels of 0.75 sd for the normal density
_Z_GRADED = 0.25 * 2.0 ** -np.arange(1, 21)  # two-sided: |z|^a-type behaviour of 1 - p at 0
_EPS = np.finfo(float).eps


def p_values(yi, vi, alternative: Alternative = "greater") -> np.ndarray:
    """One-sided (``"greater"``, ``"less"``) or two-sided p-values of z_i = y_i / sqrt(v_i)."""
    return _p_of_z(np.asarray(yi, float) / np.sqrt(np.asarray(vi, float)), alternative)


def _p_of_z(z, alternative):
    if alternative == "greater":
        return special.ndtr(-z)
    if alternative == "less":
        return special.ndtr(z)
    if alternative == "two.sided":
        return 2.0 * special.ndtr(-np.abs(z))
    raise ValueError(f"Unknown alternative {alternative!r}.")


@dataclass(frozen=True)
class _Spec:
    type: str
    steps: np.ndarray  # stepfun: cut points ending in 1; others: (a,), a = 0 without a step
    lb: np.ndarray  # parameter space of delta
    ub: np.ndarray
    dmin: np.ndarray  # limits imposed for the fit (metafor's delta.min / delta.max)
    dmax: np.ndarray
    h0: np.ndarray  # no selection
    init: np.ndarray
    pval_min: float


def _spec(type_, steps, delta_min, delta_max, pval_min) -> _Spec:
    if type_ not in TYPES:
        raise ValueError(f"Unknown type {type_!r}; choose one of {', '.join(TYPES)}.")
    st = None if steps is None else np.unique(np.asarray(steps, float).ravel())
    if st is not None and (st[0] <= 0 or st[-1] > 1):
        raise ValueError("'steps' must lie in (0, 1].")
    if type_ == "stepfun":
        if st is None:
            raise ValueError("type='stepfun' needs 'steps'.")
        st = st if st[-1] == 1 else np.append(st, 1.0)
        n, dmin, h0, init, pmin = st.size, 0.0, 1.0, np.linspace(1.0, 0.8, st.size), 0.0
    elif type_ == "beta":  # 'steps' does not apply
        st, n, dmin, h0, init, pmin = np.zeros(1), 2, 1e-5, 1.0, np.ones(2), 1e-5
    else:
        st = np.zeros(1) if st is None else st[st < 1]
        if st.size != 1:
            raise ValueError(f"type={type_!r} takes a single 'steps' value below 1.")
        n, dmin, h0, init, pmin = 1, 0.0, 0.0, np.ones(1), 1e-5 if type_ == "power" else 0.0

    def full(value, default):
        return np.broadcast_to(np.asarray(default if value is None else value, float), (n,)).copy()

    pmin = pmin if pval_min is None else float(pval_min)
    return _Spec(type_, st, np.zeros(n), np.full(n, np.inf), full(delta_min, dmin),
                 full(delta_max, 100.0), np.full(n, h0), init, pmin)  # fmt: skip


def _weights(p, spec: _Spec, delta):
    t, a = spec.type, spec.steps[0]
    if t == "stepfun":
        return np.asarray(delta)[np.searchsorted(spec.steps, p, side="left")]
    if t == "beta":
        return p ** (delta[0] - 1.0) * (1.0 - p) ** (delta[1] - 1.0)
    d = delta[0]
    with np.errstate(over="ignore", invalid="ignore"):
        if t == "halfnorm":
            w = np.exp(-d * (p * p - a * a))
        elif t == "negexp":
            w = np.exp(-d * (p - a))
        elif t == "logistic":
            w = (1.0 + np.exp(d * a)) / (1.0 + np.exp(d * p))
        else:  # power
            w = ((1.0 - p) / (1.0 - a)) ** d
    return np.where(p <= a, 1.0, w)


def selection_weights(p, type: str, delta, steps=None) -> np.ndarray:  # noqa: A002
    """The selection function w(p; delta) of ``type`` (no censoring of p)."""
    spec = _spec(type, steps, None, None, 0.0)
    return _weights(np.asarray(p, float), spec, np.asarray(delta, float))


def _interval_probs(mu, s, sv, steps, alternative):
    """P(alpha_(j-1) < p(Y) <= alpha_j), Y ~ N(mu, s²): shape (k, len(steps))."""
    half = alternative == "two.sided"
    c = sv[:, None] * -special.ndtri(np.concatenate(([0.0], steps)) / (2.0 if half else 1.0))
    c[:, -1] = 0.0 if half else -np.inf  # p = 1

    def upper(m):  # P(c_j <= T < c_(j-1)) for T ~ N(m, s²), computed in the far tail if needed
        a = (c - m[:, None]) / s[:, None]
        hi, lo = a[:, :-1], a[:, 1:]
        return np.where(lo > 0, special.ndtr(-lo) - special.ndtr(-hi),
                        special.ndtr(hi) - special.ndtr(lo))  # fmt: skip

    if alternative == "greater":
        return upper(mu)
    if alternative == "less":
        return upper(-mu)
    return upper(mu) + upper(-mu)


def _log_norm(mu, tau2, delta, vi, spec: _Spec, alternative):
    """log A_i for every study (vectorised over studies)."""
    sv = np.sqrt(vi)
    s = np.sqrt(vi + tau2)
    mu = np.broadcast_to(mu, vi.shape)
    if spec.type == "stepfun":
        return np.log(_interval_probs(mu, s, sv, spec.steps, alternative) @ np.asarray(delta))
    m, sd = mu / sv, s / sv  # the normal density on the z scale
    kinks = [q for q in (spec.pval_min, 1.0 - spec.pval_min, spec.steps[0]) if 0 < q < 1]
    zk = -special.ndtri(np.array(kinks) / (2.0 if alternative == "two.sided" else 1.0))
    if alternative == "less":
        zk = -zk
    elif alternative == "two.sided":
        zk = np.concatenate((zk, -zk, [0.0], _Z_GRADED, -_Z_GRADED))
    lo, hi = (m - 12.0 * sd)[:, None], (m + 12.0 * sd)[:, None]
    edges = np.concatenate(
        (np.broadcast_to(np.concatenate((_Z_GRID, zk)), (m.size, _Z_GRID.size + zk.size)),
         m[:, None] + sd[:, None] * _N_GRID), axis=1)  # fmt: skip
    edges = np.sort(np.clip(edges, lo, hi), axis=1)
    mid, hw = 0.5 * (edges[:, 1:] + edges[:, :-1]), 0.5 * (edges[:, 1:] - edges[:, :-1])
    z = mid[..., None] + hw[..., None] * _GL_X
    p = np.clip(_p_of_z(z, alternative), spec.pval_min, 1.0 - spec.pval_min)
    dens = np.exp(-0.5 * ((z - m[:, None, None]) / sd[:, None, None]) ** 2)
    dens /= sd[:, None, None] * math.sqrt(2.0 * math.pi)
    return np.log(np.einsum("kp,n,kpn->k", hw, _GL_W, _weights(p, spec, delta) * dens))


def _loglik(mu, tau2, delta, y, v, pv, spec, alternative):
    tau2 = 0.0 if tau2 < 10 * _EPS else tau2
    with np.errstate(divide="ignore", invalid="ignore"):
        lw = np.log(_weights(pv, spec, delta))
        ln = -0.5 * (np.log(2 * np.pi * (v + tau2)) + (y - mu) ** 2 / (v + tau2))
        ll = float(np.sum(lw + ln - _log_norm(mu, tau2, delta, v, spec, alternative)))
    return ll if np.isfinite(ll) else -np.inf


def log_normalisers(mu, tau2, delta, vi, *, type: str, steps=None,  # noqa: A002
                    alternative: Alternative = "greater", pval_min=None) -> np.ndarray:  # fmt: skip
    """log A_i = log E[w(p(Y_i))], Y_i ~ N(mu, v_i + tau²), for every study."""
    spec = _spec(type, steps, None, None, pval_min)
    v = np.atleast_1d(np.asarray(vi, float))
    return _log_norm(float(mu), float(tau2), np.asarray(delta, float), v, spec, alternative)


def selection_loglik(yi, vi, mu, tau2, delta, *, type: str, steps=None,  # noqa: A002
                     alternative: Alternative = "greater", pval_min=None) -> float:  # fmt: skip
    """Log-likelihood of the selection model at (mu, tau², delta)."""
    spec = _spec(type, steps, None, None, pval_min)
    y, v = np.asarray(yi, float), np.asarray(vi, float)
    pv = np.clip(p_values(y, v, alternative), spec.pval_min, 1 - spec.pval_min)
    return _loglik(float(mu), float(tau2), np.asarray(delta, float), y, v, pv, spec, alternative)
