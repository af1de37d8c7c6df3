"""Random-effect terms of the multilevel/multivariate model and their block structure.

Model (metafor's ``rma.mv``): ``y = X b + sum_j Z_j u_j + (G-part) + e`` with ``e ~ N(0, V)``,
so the marginal covariance is ``M = V + sum_j sigma2_j Z_j Z_j' + sum_t (S_t o Z_t G_t Z_t')``
where ``S_t`` marks rows sharing an outer level and ``G_t`` is the covariance of the inner levels.

Two kinds of term:

* :class:`Intercept`: random intercepts ``~ 1 | f`` (one ``sigma2``);
* :class:`InnerOuter`: ``~ inner | outer`` with ``G`` one of metafor's structures
  (``CS``, ``HCS``, ``UN``, ``AR``, ``HAR``, ``CAR``, ``ID``, ``DIAG``).

Internally every variance is one of three kinds: ``var`` (a variance, linear in ``M``), ``sd`` (the
square root of a variance, used for the heteroscedastic structures HCS/UN/HAR, whose ``G`` is
``s s' o R``), and correlations ``cor`` (in (-1, 1)), ``cor01`` (CAR, in (0, 1)) or ``ucor``
(the UN correlations, which together must keep ``R`` positive definite).

Rows that share no level of any term and no nonzero off-diagonal ``V`` entry are independent;
:func:`build_groups` finds these blocks (connected components) and stacks them, padded to a few
common sizes, so that every computation is one batched numpy call per stack.

The terms live in :mod:`ketameta._core.multilevel_terms` and the parameter layout in
:mod:`ketameta._core.multilevel_params`; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ketameta._core.multilevel_params import ParamLayout, corr_to_vine, vine_to_corr
from ketameta._core.multilevel_terms import (
    STRUCTS,
    ZMAX,
    Array,
    GTerm,
    InnerOuter,
    Intercept,
    make_gterm,
)

__all__ = [
    "STRUCTS",
    "ZMAX",
    "Array",
    "GTerm",
    "Group",
    "InnerOuter",
    "Intercept",
    "ParamLayout",
    "block_labels",
    "build_groups",
    "corr_to_vine",
    "make_gterm",
    "residual_q",
    "vine_to_corr",
]


@dataclass
class Group:
    """Independent blocks stacked: ``nb`` blocks of ``n`` rows (shorter ones padded)."""

    rows: NDArray  # (nb, n) row indices, -1 for padding
    y: Array  # (nb, n)
    X: Array  # (nb, n, p)
    V: Array  # (nb, n, n)
    A: list[Array]  # per Intercept term: (nb, n, n) 1 where rows share the level
    S: list[Array]  # per InnerOuter term: (nb, n, n) 1 where rows share the outer level
    inner: list[NDArray]  # per InnerOuter term: (nb, n) inner-level positions


def _chain(codes: NDArray) -> tuple[NDArray, NDArray]:
    """Edges linking consecutive rows (in sorted order) that share a code."""
    order = np.argsort(codes, kind="stable")
    same = codes[order][1:] == codes[order][:-1]
    return order[:-1][same], order[1:][same]


def block_labels(k: int, V: Array, icodes: Sequence[NDArray], gterms: Sequence[GTerm]) -> NDArray:
    """Label each row with its independent block (connected components of all links)."""
    heads, tails = [np.arange(k)], [np.arange(k)]
    links = list(icodes)
    for gt in gterms:
        if gt.struct in ("ID", "DIAG"):  # G diagonal: only rows with the same inner level link
            links.append(gt.outer * (gt.g + 1) + gt.index)
        else:
            links.append(gt.outer)
    for c in links:
        a, b = _chain(np.asarray(c))
        heads.append(a)
        tails.append(b)
    if V.ndim == 2:
        a, b = np.nonzero(V - np.diag(np.diag(V)))
        heads.append(a)
        tails.append(b)
    h, t = np.concatenate(heads), np.concatenate(tails)
    graph = coo_matrix((np.ones(h.size), (h, t)), shape=(k, k))
    return connected_components(graph, directed=False)[1]


def residual_q(groups: Sequence[Group], p: int) -> tuple[float, float]:
    """``QE = r'V^-1 r`` at the GLS fit with ``V`` alone, and ``log|V|`` (block by block: the
    blocks of ``V`` lie within those of ``M``)."""
    logdet_v, wxx, wxy, yy = 0.0, np.zeros((p, p)), np.zeros(p), 0.0
    for grp in groups:
        try:
            W = np.linalg.inv(grp.V)
        except np.linalg.LinAlgError:  # a singular V (e.g. a zero variance): no QE
            return np.nan, np.nan
        logdet_v += np.linalg.slogdet(grp.V)[1].sum()
        WX = W @ grp.X
        wxx += np.einsum("bnp,bnq->pq", grp.X, WX)
        wxy += np.einsum("bnp,bn->p", WX, grp.y)
        yy += (grp.y * (W @ grp.y[:, :, None])[:, :, 0]).sum()
    return float(yy - wxy @ np.linalg.solve(wxx, wxy)), float(logdet_v)


def _buckets(sizes: NDArray) -> dict[int, int]:
    """Padded size of each block size: a small problem is one stack; otherwise sizes within a
    factor 1.6 share a stack (fewer numpy calls for little padding)."""
    distinct = np.unique(sizes)[::-1]
    if sizes.size * distinct[0] ** 2 <= 50_000:
        return {int(n): int(distinct[0]) for n in distinct}
    out, top = {}, int(distinct[0])
    for n in distinct:
        top = top if top <= 1.6 * n else int(n)
        out[int(n)] = top
    return out


def build_groups(
    y: Array, V: Array, X: Array, icodes: Sequence[NDArray], gterms: Sequence[GTerm]
) -> list[Group]:
    """Split the problem into independent blocks and stack them, padded to a common size.

    Padding rows (index -1) have ``y = 0``, ``X = 0``, unit variance and no random effects, so
    they add nothing to the (restricted) log-likelihood or its score."""
    k = y.shape[0]
    labels = block_labels(k, V, icodes, gterms)
    order = np.lexsort((np.arange(k), labels))
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pad = _buckets(sizes)
    groups = []
    for n in sorted(set(pad.values())):
        blocks = np.flatnonzero([pad[int(s)] == n for s in sizes])
        pos = starts[blocks][:, None] + np.arange(n)
        ok = np.arange(n)[None, :] < sizes[blocks][:, None]
        rows = np.where(ok, order[np.minimum(pos, k - 1)], -1)
        r = np.maximum(rows, 0)
        both = (ok[:, :, None] & ok[:, None, :]).astype(np.float64)
        if V.ndim == 2:
            Vb = V[r[:, :, None], r[:, None, :]] * both
        else:
            Vb = np.zeros((rows.shape[0], n, n))
            Vb[:, np.arange(n), np.arange(n)] = V[r]
        Vb[:, np.arange(n), np.arange(n)] = np.where(ok, np.diagonal(Vb, axis1=1, axis2=2), 1.0)
        A = [(c[r][:, :, None] == c[r][:, None, :]) * both for c in icodes]
        S = [(gt.outer[r][:, :, None] == gt.outer[r][:, None, :]) * both for gt in gterms]
        inner = [gt.index[r] for gt in gterms]
        groups.append(Group(rows, y[r] * ok, X[r] * ok[:, :, None], Vb, A, S, inner))
    return groups
