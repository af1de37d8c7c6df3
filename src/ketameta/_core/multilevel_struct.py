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
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Array = NDArray[np.float64]
STRUCTS = ("CS", "HCS", "UN", "AR", "HAR", "CAR", "ID", "DIAG")
_HETERO = ("HCS", "UN", "HAR")
ZMAX = 12.0  # |atanh(rho)| bound: |rho| <= 1 - 7.6e-11


@dataclass(frozen=True)
class Intercept:
    """Random intercepts ``~ 1 | codes``: the level of each row (any sortable values)."""

    codes: NDArray


@dataclass(frozen=True)
class InnerOuter:
    """The ``~ inner | outer`` term with covariance structure ``struct`` of the inner levels.

    ``times`` (CAR only) holds each row's time; by default the inner values themselves.
    """

    inner: NDArray
    outer: NDArray
    struct: str = "CS"
    times: NDArray | None = None


@dataclass
class GTerm:
    """An :class:`InnerOuter` term prepared for the likelihood."""

    struct: str
    levels: NDArray  # sorted unique inner levels (for CAR: the unique times)
    index: NDArray  # (k,) position of each row's inner level in ``levels``
    outer: NDArray  # (k,) outer codes
    dist: Array  # (g, g) |i - j| (AR/HAR: positions; CAR: times)
    kinds: list[str] = field(default_factory=list)  # internal parameter kinds, variances first

    @property
    def g(self) -> int:
        return len(self.levels)

    @property
    def n_var(self) -> int:
        return sum(kd in ("var", "sd") for kd in self.kinds)

    def pairs(self) -> list[tuple[int, int]]:
        """UN correlation pairs in metafor's order (upper triangle, column by column)."""
        return [(a, b) for b in range(self.g) for a in range(b)]

    def corr(self, rho: Array) -> tuple[Array, list[Array]]:
        """Correlation matrix ``R`` of the inner levels and its derivatives in ``rho``."""
        g = self.g
        eye = np.eye(g)
        if self.struct in ("ID", "DIAG"):
            return eye, []
        if self.struct in ("CS", "HCS"):
            r = rho[0]
            return (1.0 - r) * eye + r, [np.ones((g, g)) - eye]
        if self.struct in ("AR", "HAR", "CAR"):
            r, d = rho[0], self.dist
            with np.errstate(divide="ignore", invalid="ignore"):
                dr = np.where(d > 0, d * r ** np.maximum(d - 1.0, 0.0), 0.0)
            return r**d, [dr]
        R = eye.copy()
        dRs = []
        for (a, b), r in zip(self.pairs(), rho, strict=True):
            R[a, b] = R[b, a] = r
            dR = np.zeros((g, g))
            dR[a, b] = dR[b, a] = 1.0
            dRs.append(dR)
        return R, dRs

    def gmatrix(self, q: Array) -> tuple[Array, list[Array]]:
        """``G`` at internal parameters ``q`` (variances first) and ``dG/dq``."""
        nv = self.n_var
        R, dRs = self.corr(q[nv:])
        if self.struct == "DIAG":
            dG = [np.diag(np.eye(self.g)[i]) for i in range(self.g)]
            return np.diag(q[:nv]), dG
        if self.struct in _HETERO:
            s = q[:nv]
            ss = np.outer(s, s)
            dG = []
            for i in range(self.g):
                e = np.zeros(self.g)
                e[i] = 1.0
                dG.append((np.outer(e, s) + np.outer(s, e)) * R)
            return ss * R, dG + [ss * dR for dR in dRs]
        t = q[0]
        return t * R, [R] + [t * dR for dR in dRs]


def _codes(x: NDArray) -> NDArray:
    return np.unique(np.asarray(x), return_inverse=True)[1].ravel()


def make_gterm(term: InnerOuter) -> GTerm:
    """Prepare an :class:`InnerOuter` term: levels, row positions, distances, parameter kinds."""
    struct = term.struct.upper()
    if struct not in STRUCTS:
        raise ValueError(f"struct must be one of {STRUCTS}, got {term.struct!r}")
    if struct == "CAR":
        t = np.asarray(term.inner if term.times is None else term.times, dtype=np.float64)
        levels, index = np.unique(t, return_inverse=True)
        dist = np.abs(levels[:, None] - levels[None, :])
    else:
        levels, index = np.unique(np.asarray(term.inner), return_inverse=True)
        pos = np.arange(len(levels), dtype=np.float64)
        dist = np.abs(pos[:, None] - pos[None, :])
    g = len(levels)
    kinds = {
        "CS": ["var", "cor"],
        "HCS": ["sd"] * g + ["cor"],
        "UN": ["sd"] * g + ["ucor"] * (g * (g - 1) // 2),
        "AR": ["var", "cor"],
        "HAR": ["sd"] * g + ["cor"],
        "CAR": ["var", "cor01"],
        "ID": ["var"],
        "DIAG": ["var"] * g,
    }[struct]
    return GTerm(struct, levels, index.ravel(), _codes(term.outer), dist, kinds)


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
