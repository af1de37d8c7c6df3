"""The GLS meta-analytic model split by cluster, the building block of the sandwich variance.

`prepare_robust` splits ``y = X b + e`` with working covariance ``M`` into per-cluster blocks
(`RobustModel`: the bread ``(X'WX)^-1``, the GLS estimate and the residuals); the model gives
the adjustment matrices ``A_j`` of each CR type, the cluster-robust variance and the low-rank
parts of ``Omega`` from which the tests of `ketameta._core.sandwich` take their degrees of
freedom (formulas in that module's docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg

Array = NDArray[np.float64]
Blocks = Sequence[tuple[ArrayLike, ArrayLike]]
_EIG_RTOL = 1e-12


def _sym_power(a: Array, power: float) -> Array:
    """Symmetric matrix power with eigenvalues <= 1e-12 * max dropped (generalised inverse)."""
    a = 0.5 * (a + a.T)
    val, vec = np.linalg.eigh(a)
    keep = val > _EIG_RTOL * max(float(np.max(np.abs(val))), np.finfo(float).tiny)
    vp = np.zeros_like(val)
    vp[keep] = val[keep] ** power
    return (vec * vp) @ vec.T


def _cluster_blocks(
    M: ArrayLike | Blocks, codes: NDArray[np.intp], n_clusters: int, k: int
) -> list[Array]:
    """Per-cluster blocks of ``M`` (rows of each cluster in their original order)."""
    members = [np.flatnonzero(codes == j) for j in range(n_clusters)]
    if isinstance(M, np.ndarray) or not isinstance(M, Sequence) or not isinstance(M[0], tuple):
        dense = np.asarray(M, dtype=np.float64)
        if dense.shape != (k, k):
            raise ValueError(f"M must be ({k}, {k}) or a sequence of (indices, block) pairs")
        same = codes[:, None] == codes[None, :]
        if np.any(dense[~same] != 0.0):
            raise ValueError("M has covariance between clusters: clusters must nest the model")
        return [dense[np.ix_(m, m)] for m in members]
    pos = np.empty(k, dtype=np.intp)
    for m in members:
        pos[m] = np.arange(m.size)
    out = [np.zeros((m.size, m.size)) for m in members]
    seen = np.zeros(k, dtype=bool)
    for idx, block in M:
        idx = np.asarray(idx, dtype=np.intp).ravel()
        blk = np.asarray(block, dtype=np.float64).reshape(idx.size, idx.size)
        cl = np.unique(codes[idx])
        if cl.size != 1:
            raise ValueError("a block of M spans more than one cluster")
        if np.any(seen[idx]):
            raise ValueError("blocks of M overlap")
        seen[idx] = True
        out[int(cl[0])][np.ix_(pos[idx], pos[idx])] = blk
    if not seen.all():
        raise ValueError("the blocks of M do not cover every row")
    return out


@dataclass(frozen=True)
class RobustModel:
    """The GLS fit split by cluster; build it with :func:`prepare_robust`.

    Attributes
    ----------
    X, y, members : ndarray, ndarray, list of ndarray
        Design (k, p), outcomes (k,), row indices of each cluster (codes in sorted order).
    M_blocks, W_blocks : list of ndarray
        Working covariance blocks ``M_j`` and weights ``W_j = M_j^-1``.
    bread, beta, resid : ndarray
        ``(X'WX)^-1`` (p, p), the GLS estimate (p,) and ``y - X beta`` (k,).
    """

    X: Array
    y: Array
    members: list[NDArray[np.intp]]
    M_blocks: list[Array]
    W_blocks: list[Array]
    bread: Array
    beta: Array
    resid: Array
    _adjustments: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_clusters(self) -> int:
        """Number of clusters ``m``."""
        return len(self.members)

    def adjustments(self, type: str) -> list[Array]:
        """Adjustment matrices ``A_j`` of a CR type (computed once per type: the t-tests and
        the Wald test of one ``robust()`` call share them; treat them as read-only)."""
        cached = self._adjustments.get(type)
        if cached is None:
            cached = self._adjustments[type] = self._compute_adjustments(type)
        return cached

    def _compute_adjustments(self, type: str) -> list[Array]:
        m, (k, p) = self.n_clusters, self.X.shape
        scalar = {
            "CR0": 1.0,
            "CR1": m / (m - 1.0),
            "CR1p": m / (m - float(p)),
            "CR1S": m * (k - 1.0) / ((m - 1.0) * (k - p)),
        }
        if type in scalar:
            f = np.sqrt(scalar[type])
            return [f * np.eye(idx.size) for idx in self.members]
        if type != "CR2":
            raise ValueError(f"unknown type {type!r}")
        out = []
        for idx, Mj in zip(self.members, self.M_blocks, strict=True):
            Xj = self.X[idx]
            D = linalg.cholesky(Mj, lower=False)  # D'D = M_j
            Bj = D @ (Mj - Xj @ self.bread @ Xj.T) @ D.T
            out.append(D.T @ _sym_power(Bj, -0.5) @ D)
        return out

    def vcov(self, type: str = "CR2", adj: list[Array] | None = None) -> Array:
        """Cluster-robust variance matrix (p, p)."""
        adj = self.adjustments(type) if adj is None else adj
        p = self.X.shape[1]
        meat = np.zeros((p, p))
        for idx, Wj, Aj in zip(self.members, self.W_blocks, adj, strict=True):
            u = self.X[idx].T @ (Wj @ (Aj @ self.resid[idx]))
            meat += np.outer(u, u)
        v = self.bread @ meat @ self.bread
        return 0.5 * (v + v.T)

    def omega_parts(self, C: Array, adj: list[Array]) -> tuple[Array, Array]:
        """Low-rank parts of ``Omega^{st}_ij = g_si' Phi g_tj = delta_ij d^{st}_j - r_si'B r_tj``.

        Returns ``d`` of shape (q, q, m) and ``R`` of shape (q, p, m) (``r_sj = X_j' q_sj``)
        for the rows ``c_s`` of ``C`` (q, p).
        """
        C = np.atleast_2d(C)
        q, m = C.shape[0], self.n_clusters
        BCt = self.bread @ C.T  # (p, q)
        d = np.zeros((q, q, m))
        R = np.zeros((q, self.X.shape[1], m))
        for j, (idx, Mj, Wj, Aj) in enumerate(
            zip(self.members, self.M_blocks, self.W_blocks, adj, strict=True)
        ):
            Xj = self.X[idx]
            Qj = Aj.T @ (Wj @ (Xj @ BCt))  # (n_j, q)
            d[:, :, j] = Qj.T @ Mj @ Qj
            R[:, :, j] = (Xj.T @ Qj).T
        return d, R

    def expected_vcov(self, C: Array, adj: list[Array]) -> Array:
        """``E(C V_CR C')`` under the working model (``tr Omega^{st}``), shape (q, q)."""
        d, R = self.omega_parts(C, adj)
        return d.sum(axis=2) - np.einsum("apj,pr,brj->ab", R, self.bread, R)


def _frob(d: Array, R: Array, B: Array) -> Array:
    """``F[a,b,c,e] = sum_ij Omega^{ab}_ij Omega^{ce}_ij`` without forming m x m matrices."""
    kd = np.einsum("apj,pr,brj->abj", R, B, R)  # diagonals of R_a' B R_b
    S = np.einsum("apj,brj->abpr", R, R)  # R_a R_b'
    t4 = np.einsum("pq,beqr,rs,casp->abce", B, S, B, S, optimize=True)
    return (
        np.einsum("abj,cej->abce", d, d)
        - np.einsum("abj,cej->abce", d, kd)
        - np.einsum("abj,cej->abce", kd, d)
        + t4
    )


def prepare_robust(
    X: ArrayLike, y: ArrayLike, M: ArrayLike | Blocks, cluster: ArrayLike
) -> RobustModel:
    """Split a GLS meta-analytic model by cluster.

    Parameters
    ----------
    X : array_like of shape (k, p)
        Design matrix.
    y : array_like of shape (k,)
        Observed effect sizes.
    M : array_like of shape (k, k), or sequence of ``(indices, block)`` pairs
        The fitted marginal covariance (e.g. ``V + sum sigma2 Z Z'``). Dense ``M`` must have no
        covariance between clusters; blocks may be finer than clusters but not span two.
    cluster : array_like of shape (k,)
        Cluster codes (any hashable values numpy can sort).

    Returns
    -------
    RobustModel
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    k = y.size
    X = np.asarray(X, dtype=np.float64).reshape(k, -1)
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1].ravel()
    m = int(codes.max()) + 1
    members = [np.flatnonzero(codes == j) for j in range(m)]
    Mb = _cluster_blocks(M, codes, m, k)
    Wb = [linalg.cho_solve(linalg.cho_factor(Mj, lower=True), np.eye(Mj.shape[0])) for Mj in Mb]
    p = X.shape[1]
    xtwx, xtwy = np.zeros((p, p)), np.zeros(p)
    for idx, Wj in zip(members, Wb, strict=True):
        xtwx += X[idx].T @ Wj @ X[idx]
        xtwy += X[idx].T @ Wj @ y[idx]
    bread = np.linalg.inv(xtwx)
    bread = 0.5 * (bread + bread.T)
    beta = bread @ xtwy
    return RobustModel(X, y, members, Mb, Wb, bread, beta, y - X @ beta)


def _model(
    X: ArrayLike | RobustModel,
    y: ArrayLike | None,
    M: ArrayLike | Blocks | None,
    cluster: ArrayLike | None,
) -> RobustModel:
    if isinstance(X, RobustModel):
        return X
    if y is None or M is None or cluster is None:
        raise ValueError("give X, y, M and cluster, or a RobustModel as X")
    return prepare_robust(X, y, M, cluster)
