"""The random-effect terms of the multilevel/multivariate model (metafor's ``rma.mv``).

:class:`Intercept` (``~ 1 | f``), :class:`InnerOuter` (``~ inner | outer`` with one of
metafor's structures, `STRUCTS`) and :class:`GTerm`, an ``InnerOuter`` term prepared for the
likelihood by :func:`make_gterm` (levels, row positions, distances, parameter kinds, the
correlation matrix ``R`` and ``G`` with their derivatives). `ketameta._core.multilevel_struct`
re-exports all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "STRUCTS",
    "ZMAX",
    "Array",
    "GTerm",
    "InnerOuter",
    "Intercept",
    "make_gterm",
]

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
