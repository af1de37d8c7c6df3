"""Sampling covariance matrices of dependent effect sizes (metafor's ``vcalc``).

Rows in the same cluster (``cluster`` combined with ``subgroup``) are correlated, rows in
different clusters are independent. Within a cluster, row ``i`` is treated as the contrast
``u(grp1_i, time1_i) - u(grp2_i, time2_i)`` of condition means with variances ``1/w1_i`` and
``1/w2_i``; means of the same group at times ``s`` and ``t`` correlate ``phi^|s - t|``, means
of different groups are independent. With ``g(a, b, s, t) = [a == b] phi^|s - t|``:

    r_ij = c_ij [ g(1i,1j)/sqrt(w1_i w1_j) - g(1i,2j)/sqrt(w1_i w2_j)
                - g(2i,1j)/sqrt(w2_i w1_j) + g(2i,2j)/sqrt(w2_i w2_j) ] / (d_i d_j),
    d_i^2 = 1/w1_i + 1/w2_i - 2 g(1i,2i)/sqrt(w1_i w2_i),

where ``c_ij`` is the construct correlation: 1 for the same ``type`` and ``obs``,
``rho_obs[obs_i, obs_j]`` for the same ``type`` but different ``obs``, and
``rho_type[type_i, type_j]`` for different types. ``V = diag(sqrt vi) R diag(sqrt vi)``.

Defaults follow metafor: ``grp1 = 1`` and ``grp2 = 2`` for every row (so a shared condition is
only ever the one coded), ``time1 = 1``, ``time2 = time1``, ``w1 = 1``, ``w2 = w1``, ``phi = 1``
without times. So ``time1`` alone gives the AR(1) correlation ``phi^|t_i - t_j|`` (times the
construct correlation), and two contrasts sharing their second group with equal weights correlate
0.5; with group sizes ``n`` the shared-control correlation is
``sqrt(n1_i n1_j / ((n1_i + n2) (n1_j + n2)))``. Rows of one cluster with nothing to tell
them apart correlate 1 (metafor then warns that the block is not positive definite).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["CorrMatrix", "vcalc", "vcalc_blocks"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class CorrMatrix:
    """A correlation matrix over labelled codes (metafor's ``rho`` matrix with dimnames).

    Attributes
    ----------
    values : array_like of shape (n, n)
        Correlations; row/column ``a`` belongs to ``labels[a]``.
    labels : sequence
        The ``obs`` or ``type`` values of the rows/columns (matched by equality, then as
        strings, as metafor's ``as.character`` look-up).
    """

    values: ArrayLike
    labels: Sequence[Hashable]


RhoSpec = float | ArrayLike | CorrMatrix


def _as_corr(spec: RhoSpec, codes: NDArray) -> Array:
    """Matrix over ``np.unique(codes)`` from a scalar, a CorrMatrix or a plain matrix."""
    levels = np.unique(codes)
    if isinstance(spec, CorrMatrix):
        vals = np.asarray(spec.values, dtype=np.float64)
        lab = list(spec.labels)
        where = {v: a for a, v in enumerate(lab)}
        where_s = {str(v): a for a, v in enumerate(lab)}
        pos = []
        for lv in levels.tolist():
            if lv in where:
                pos.append(where[lv])
            elif str(lv) in where_s:
                pos.append(where_s[str(lv)])
            else:
                raise ValueError(f"code {lv!r} has no row/column in the correlation matrix")
        out = vals[np.ix_(pos, pos)]
    elif np.ndim(spec) == 0:
        out = np.full((levels.size, levels.size), float(spec))  # type: ignore[arg-type]
    else:
        out = np.asarray(spec, dtype=np.float64)
        if out.shape != (levels.size, levels.size):
            raise ValueError(
                f"a plain rho matrix must be ({levels.size}, {levels.size}) over the sorted "
                "codes; use CorrMatrix to give labels"
            )
    if out.ndim != 2 or out.shape[0] != out.shape[1]:
        raise ValueError("rho matrices must be square")
    if np.any(np.abs(out) > 1):
        raise ValueError("all correlations in rho must be in [-1, 1]")
    out = out.copy()
    np.fill_diagonal(out, 1.0)
    return out


def _is_spec(x) -> bool:
    return isinstance(x, CorrMatrix) or np.ndim(x) in (0, 2)


def _split_rho(rho, has_obs: bool, has_type: bool) -> tuple[RhoSpec, RhoSpec]:
    """(within-construct, between-construct) specifications, as metafor reads ``rho``."""
    if not (has_obs or has_type):
        return 0.0, 0.0
    if rho is None:
        raise ValueError("rho must be given when obs or type is given")
    if has_obs and has_type:
        if (
            isinstance(rho, list | tuple | np.ndarray)
            and len(rho) == 2
            and not (isinstance(rho, np.ndarray) and rho.ndim != 1)
            and all(_is_spec(r) for r in rho)
        ):
            return rho[0], rho[1]
        raise ValueError("with obs and type, rho gives (within, between) correlations")
    one = rho
    if (
        isinstance(one, list | tuple | np.ndarray)
        and not isinstance(one, CorrMatrix)
        and (len(one) == 1 or np.ndim(one) == 1)
    ):
        if len(one) != 1:
            raise ValueError("with only obs or only type, rho is a scalar or a matrix")
        one = one[0]
    if not _is_spec(one):
        raise ValueError("rho must be a scalar, a square matrix or a CorrMatrix")
    return (one, 0.0) if has_obs else (0.0, one)


def _factor(*arrays: NDArray) -> list[NDArray[np.intp]]:
    """Integer codes over the joint values of the arrays (Python equality: 1 == 1.0)."""
    table: dict = {}
    out = []
    for arr in arrays:
        out.append(np.array([table.setdefault(v, len(table)) for v in arr.tolist()], dtype=np.intp))
    return out


def _codes(x, k: int, name: str, default) -> NDArray:
    if x is None:
        return np.full(k, default)
    arr = np.asarray(x)
    if arr.ndim == 0:
        arr = np.full(k, arr.item())
    if arr.shape != (k,):
        raise ValueError(f"{name} must have length {k}")
    if arr.dtype.kind == "f" and np.any(np.isnan(arr)):
        raise ValueError(f"no missing values allowed in {name}")
    return arr


def _groups(cluster: NDArray, subgroup: NDArray | None) -> list[NDArray[np.intp]]:
    """Row indices of each cluster (x subgroup), clusters in order of first appearance."""
    sub = cluster if subgroup is None else subgroup
    keys = [
        (c,) if subgroup is None else (c, s)
        for c, s in zip(cluster.tolist(), sub.tolist(), strict=True)
    ]
    first: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, []).append(i)
    return [np.asarray(v, dtype=np.intp) for v in first.values()]


def _is_pd(r: Array) -> bool:
    return bool(np.all(np.isfinite(r))) and float(np.linalg.eigvalsh(r).min()) > 1e-12


def vcalc_blocks(
    vi: ArrayLike,
    cluster: ArrayLike,
    *,
    subgroup: ArrayLike | None = None,
    obs: ArrayLike | None = None,
    type: ArrayLike | None = None,
    time1: ArrayLike | None = None,
    time2: ArrayLike | None = None,
    grp1: ArrayLike | None = None,
    grp2: ArrayLike | None = None,
    w1: ArrayLike | None = None,
    w2: ArrayLike | None = None,
    rho=None,
    phi: float | None = None,
    rvars: ArrayLike | None = None,
    checkpd: bool = True,
) -> list[tuple[NDArray[np.intp], Array]]:
    """Per-cluster blocks of metafor's ``vcalc()`` covariance matrix.

    Parameters
    ----------
    vi : array_like of shape (k,) or scalar
        Sampling variances (a scalar is used for every row).
    cluster : array_like of shape (k,)
        Cluster codes (e.g. study); rows of different clusters are independent.
    subgroup : array_like of shape (k,), optional
        Independent subgroups within clusters.
    obs, type : array_like of shape (k,), optional
        Different observations (scales) of one construct, and different constructs.
    time1, time2 : array_like of shape (k,), optional
        Time points of the first / second condition (``time2`` defaults to ``time1``).
    grp1, grp2 : array_like of shape (k,), optional
        Groups of the first / second condition of each contrast (default 1 and 2).
    w1, w2 : array_like of shape (k,), optional
        Group sizes (inverse-variance weights) of the conditions (default 1 and ``w1``).
    rho : float, array_like, CorrMatrix, or a pair of those
        Correlation of different ``obs`` (only obs), of different ``type`` (only type), or
        ``(within, between)`` with both. A plain matrix is over the sorted unique codes.
    phi : float, optional
        Autocorrelation per unit of time (required with times; ``|phi| <= 1``).
    rvars : array_like of shape (k, r), optional
        metafor's ``rvars``: row ``i`` of a cluster with ``n`` rows holds row ``i`` of its
        correlation matrix in the first ``n`` columns (the lower triangle is used). All of
        obs/type/time/grp/w/rho/phi are then ignored.
    checkpd : bool
        Warn (``UserWarning``, naming the cluster) for blocks that are not positive definite.

    Returns
    -------
    list of (indices, block)
        One entry per cluster in order of first appearance: the row indices and the
        ``(n, n)`` covariance block.
    """
    cl = np.asarray(cluster)
    k = cl.size
    vi_arr = np.broadcast_to(np.asarray(vi, dtype=np.float64), (k,)).copy()
    if k < 2:
        raise ValueError("k must be at least 2")
    sg = None if subgroup is None else _codes(subgroup, k, "subgroup", 0)
    groups = _groups(_codes(cl, k, "cluster", 0), sg)
    if rvars is not None:
        rv = np.asarray(rvars, dtype=np.float64).reshape(k, -1)
        sizes = max(g.size for g in groups)
        if sizes != rv.shape[1]:
            raise ValueError(
                f"rvars has {rv.shape[1]} columns but the largest cluster has {sizes} rows"
            )
        blocks_r = []
        for g in groups:
            low = np.tril(rv[np.ix_(g, np.arange(g.size))])
            blocks_r.append(low + np.tril(low, -1).T)
    else:
        blocks_r = _contrast_blocks(
            groups, k, obs, type, time1, time2, grp1, grp2, w1, w2, rho, phi
        )
    out = []
    for g, r in zip(groups, blocks_r, strict=True):
        if checkpd and not _is_pd(r):
            label = cl[g[0]] if sg is None else f"{cl[g[0]]}.{sg[g[0]]}"
            warnings.warn(
                f"The var-cov matrix appears to be not positive definite in cluster {label}.",
                UserWarning,
                stacklevel=3,
            )
        s = np.sqrt(vi_arr[g])
        out.append((g, s[:, None] * r * s[None, :]))
    return out


def _contrast_blocks(groups, k, obs, type, time1, time2, grp1, grp2, w1, w2, rho, phi):
    """Correlation blocks from the contrast rule (see the module docstring)."""
    if grp2 is not None and grp1 is None:
        raise ValueError("give only grp1, both grp1 and grp2, or neither")
    if time2 is not None and time1 is None:
        raise ValueError("give only time1, both time1 and time2, or neither")
    if time2 is not None and grp2 is None:
        raise ValueError("grp2 must be given when time2 is given")
    if w2 is not None and w1 is None:
        raise ValueError("give only w1, both w1 and w2, or neither")
    if w2 is not None and grp2 is None:
        raise ValueError("grp2 must be given when w2 is given")
    if time1 is not None and phi is None:
        raise ValueError("phi must be given when time1 and/or time2 is given")
    phi = 1.0 if phi is None else float(phi)
    if abs(phi) > 1:
        raise ValueError("phi must be in [-1, 1]")
    within, between = _split_rho(rho, obs is not None, type is not None)
    obs_c = _codes(obs, k, "obs", 1)
    type_c = _codes(type, k, "type", 1)
    r_obs, r_type = _as_corr(within, obs_c), _as_corr(between, type_c)
    oi = np.unique(obs_c, return_inverse=True)[1].ravel()  # rows/cols of r_obs: sorted codes
    ti = np.unique(type_c, return_inverse=True)[1].ravel()
    # grp1/grp2 share one code space; the defaults are distinct sentinels 1 and 2
    c1, c2 = _factor(_codes(grp1, k, "grp1", 1), _codes(grp2, k, "grp2", 2))
    t1 = _codes(time1, k, "time1", 1.0).astype(np.float64)
    t2 = t1 if time2 is None else _codes(time2, k, "time2", 1.0).astype(np.float64)
    a1 = _codes(w1, k, "w1", 1.0).astype(np.float64)
    a2 = a1 if w2 is None else _codes(w2, k, "w2", 1.0).astype(np.float64)

    def g(ga, gb, sa, sb):
        return (ga[:, None] == gb[None, :]) * phi ** np.abs(sa[:, None] - sb[None, :])

    out = []
    for idx in groups:
        o, t = oi[idx], ti[idx]
        same_t = t[:, None] == t[None, :]
        cfac = np.where(
            same_t,
            np.where(o[:, None] == o[None, :], 1.0, r_obs[np.ix_(o, o)]),
            r_type[np.ix_(t, t)],
        )
        i1, i2 = 1.0 / np.sqrt(a1[idx]), 1.0 / np.sqrt(a2[idx])
        b1, b2, s1, s2 = c1[idx], c2[idx], t1[idx], t2[idx]
        num = (
            g(b1, b1, s1, s1) * np.outer(i1, i1)
            - g(b1, b2, s1, s2) * np.outer(i1, i2)
            - g(b2, b1, s2, s1) * np.outer(i2, i1)
            + g(b2, b2, s2, s2) * np.outer(i2, i2)
        )
        own = (b1 == b2) * phi ** np.abs(s1 - s2)
        d = np.sqrt(i1**2 + i2**2 - 2.0 * own * i1 * i2)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cfac * num / np.outer(d, d)
        np.fill_diagonal(r, 1.0)
        out.append(r)
    return out


def vcalc(vi: ArrayLike, cluster: ArrayLike, **kwargs) -> Array:
    """Dense ``(k, k)`` sampling covariance matrix of metafor's ``vcalc()``.

    Parameters
    ----------
    vi, cluster, **kwargs
        As in :func:`vcalc_blocks`.

    Returns
    -------
    ndarray of shape (k, k)
        Rows and columns in input order; zero between clusters.
    """
    cl = np.asarray(cluster)
    V = np.zeros((cl.size, cl.size))
    for idx, block in vcalc_blocks(vi, cluster, **kwargs):
        V[np.ix_(idx, idx)] = block
    return V
