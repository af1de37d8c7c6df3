"""The parameter layout of the multilevel/multivariate model: :class:`ParamLayout`.

The order of the variance components (sigma2, then tau2/rho, gamma2/phi, ...) and the
transforms between the reported ``theta``, the internal ``q`` and the optimiser's
unconstrained ``z``, with the partial-correlation (vine) parametrisation of the UN
correlations (:func:`vine_to_corr`, :func:`corr_to_vine`). `ketameta._core.multilevel_struct`
re-exports all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ketameta._core.multilevel_terms import ZMAX, Array, InnerOuter, make_gterm

__all__ = ["ParamLayout", "corr_to_vine", "vine_to_corr"]


def _vine_setup(g: int, first: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], NDArray]:
    """Pairs in metafor's order, the same pairs after moving level ``first`` to the front, and
    that permutation (so the correlations of ``first`` are the direct ones of the vine)."""
    pairs = [(a, b) for b in range(g) for a in range(b)]
    perm = np.array([first] + [i for i in range(g) if i != first])
    inv = np.argsort(perm)
    ppairs = [(min(inv[a], inv[b]), max(inv[a], inv[b])) for a, b in pairs]
    return pairs, ppairs, perm


def vine_to_corr(z: Array, g: int, first: int = 0) -> Array:
    """UN correlations (metafor's pair order) from unconstrained ``z``: canonical partial
    correlations ``tanh(z)`` (Lewandowski et al. 2009) of the levels ordered with ``first``
    in front, so every ``z`` gives a PD matrix and ``rho[first, j] = tanh(z)`` exactly."""
    pairs, ppairs, perm = _vine_setup(g, first)
    w = np.zeros((g, g))
    for (a, b), zz in zip(ppairs, z, strict=True):
        w[a, b] = np.tanh(zz)
    L = np.zeros((g, g))
    L[0, 0] = 1.0
    for i in range(1, g):
        rem = 1.0
        for j in range(i):
            L[i, j] = w[j, i] * np.sqrt(rem)
            rem -= L[i, j] ** 2
        L[i, i] = np.sqrt(max(rem, 0.0))
    R = L @ L.T
    return np.array([R[a, b] for a, b in ppairs])


def corr_to_vine(rho: Array, g: int, first: int = 0) -> Array:
    """Inverse of :func:`vine_to_corr` (``rho`` must give a PD correlation matrix)."""
    pairs, ppairs, perm = _vine_setup(g, first)
    R = np.eye(g)
    for (a, b), r in zip(pairs, rho, strict=True):
        R[a, b] = R[b, a] = r
    L = np.linalg.cholesky(R[np.ix_(perm, perm)])
    w = np.zeros((g, g))
    for i in range(1, g):
        rem = 1.0
        for j in range(i):
            w[j, i] = L[i, j] / np.sqrt(rem)
            rem -= L[i, j] ** 2
    return np.array([np.arctanh(np.clip(w[a, b], -1 + 1e-15, 1 - 1e-15)) for a, b in ppairs])


def _expit(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


class ParamLayout:
    """Parameter layout (sigma2, then tau2/rho, gamma2/phi, ...) and the transforms between the
    reported ``theta``, the internal ``q`` (sd for HCS/UN/HAR variances) and the optimiser's
    ``z`` (scaled variances >= 0; atanh / logit / partial-correlation scale for correlations)."""

    scale: float = 1.0
    first: dict[int, int] = {}  # UN term -> the level whose correlations are direct in the vine

    def __init__(self, n_sigma2: int, terms: Sequence[InnerOuter]):
        self.gterms = [make_gterm(c) for c in terms]
        self.kinds = ["var"] * n_sigma2
        self.names = [f"sigma2.{j + 1}" for j in range(n_sigma2)]
        self.slices = []
        for t, gt in enumerate(self.gterms):
            start = len(self.kinds)
            self.kinds += gt.kinds
            self.slices.append(slice(start, len(self.kinds)))
            vn, cn = [("tau2", "rho"), ("gamma2", "phi")][t] if t < 2 else (f"v{t}", f"c{t}")
            nv = gt.n_var
            self.names += [vn if nv == 1 else f"{vn}.{i + 1}" for i in range(nv)]
            if gt.struct == "UN":
                self.names += [f"{cn}.{a + 1}.{b + 1}" for a, b in gt.pairs()]
            else:
                self.names += [cn] * (len(gt.kinds) - nv)

    def default_start(self) -> Array:
        """Starting ``theta``: variances at ``scale``, rho 0 (0.5 for AR/HAR/CAR)."""
        kinds = np.array(self.kinds)
        theta = np.where(np.isin(kinds, ("var", "sd")), self.scale, 0.0)
        theta[kinds == "cor01"] = 0.5
        for gt, sl in zip(self.gterms, self.slices, strict=True):
            if gt.struct in ("AR", "HAR"):
                theta[sl][gt.n_var :] = 0.5
        return theta

    def for_fixed(self, free: NDArray) -> ParamLayout:
        """This layout, or a copy whose UN vines start at the level shared by the fixed UN
        correlations (so that each of those is one direct ``tanh(z)``)."""
        fixed_un = ~free & (np.array(self.kinds) == "ucor")
        if not fixed_un.any():
            return self
        out = copy.copy(self)
        out.first = {}
        for t, (gt, sl) in enumerate(zip(self.gterms, self.slices, strict=True)):
            fx = fixed_un[sl][gt.n_var :]
            if gt.struct == "UN" and fx.any() and not fx.all():
                pairs = [set(pr) for pr, f in zip(gt.pairs(), fx, strict=True) if f]
                common = set.intersection(*pairs)
                if not common:
                    raise NotImplementedError("fixed UN correlations must share a level")
                out.first[t] = min(common)
        return out

    def theta(self, q: Array) -> Array:
        """Reported parameters (variances, correlations) from internal ``q`` (sd -> square)."""
        return np.where(np.array(self.kinds) == "sd", q * q, q)

    def q_from_theta(self, theta: Array) -> Array:
        return np.where(np.array(self.kinds) == "sd", np.sqrt(np.maximum(theta, 0.0)), theta)

    def q_from_z(self, z: Array) -> Array:
        q = np.empty_like(z)
        for i, kd in enumerate(self.kinds):
            if kd in ("cor", "ucor"):
                q[i] = np.tanh(z[i])
            elif kd == "cor01":
                q[i] = _expit(z[i])
            else:
                q[i] = z[i] * (self.scale if kd == "var" else np.sqrt(self.scale))
        for t, (gt, sl) in enumerate(zip(self.gterms, self.slices, strict=True)):
            if gt.struct == "UN" and gt.g > 1:
                q[sl][gt.n_var :] = vine_to_corr(z[sl][gt.n_var :], gt.g, self.first.get(t, 0))
        return q

    def z_scalar(self, i: int, qi: float) -> float:
        """``z`` of parameter ``i`` on its own (for UN: a direct correlation of the vine)."""
        kd = self.kinds[i]
        if kd == "var":
            return qi / self.scale
        if kd == "sd":
            return qi / np.sqrt(self.scale)
        if kd == "cor01":
            return float(np.log(qi / (1.0 - qi)))
        return float(np.arctanh(np.clip(qi, -np.tanh(ZMAX), np.tanh(ZMAX))))

    def z_from_q(self, q: Array) -> Array:
        z = np.array([self.z_scalar(i, qi) for i, qi in enumerate(q)], dtype=np.float64)
        for t, (gt, sl) in enumerate(zip(self.gterms, self.slices, strict=True)):
            if gt.struct == "UN" and gt.g > 1:
                z[sl][gt.n_var :] = corr_to_vine(q[sl][gt.n_var :], gt.g, self.first.get(t, 0))
        return z

    def jac(self, z: Array) -> Array:
        """``dq/dz`` (block diagonal; the UN block by central differences)."""
        J = np.zeros((z.size, z.size))
        for i, kd in enumerate(self.kinds):
            J[i, i] = {"var": self.scale, "sd": np.sqrt(self.scale)}.get(kd, 0.0)
            if kd in ("cor", "ucor"):
                J[i, i] = 1.0 - np.tanh(z[i]) ** 2
            elif kd == "cor01":
                J[i, i] = _expit(z[i]) * (1.0 - _expit(z[i]))
        for t, (gt, sl) in enumerate(zip(self.gterms, self.slices, strict=True)):
            if gt.struct == "UN" and gt.g > 1:
                zz, idx = z[sl][gt.n_var :], np.arange(z.size)[sl][gt.n_var :]
                f = self.first.get(t, 0)
                for j, col in enumerate(idx):
                    h = np.zeros(zz.size)
                    h[j] = 1e-6
                    d = vine_to_corr(zz + h, gt.g, f) - vine_to_corr(zz - h, gt.g, f)
                    J[idx, col] = d / 2e-6
        return J
