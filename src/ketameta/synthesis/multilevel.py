"""Multilevel / multivariate meta-analysis: ``vcalc()`` and ``meta_mv()`` (metafor's ``vcalc``
and ``rma.mv``).

``meta_mv`` reads effects, their sampling (co)variances, the random-effects formulas and the
moderators from a DataFrame (or arrays), fits the model with :func:`ketameta._core.multilevel.
fit_mv` (REML or ML, block by block) and returns a :class:`MetaMVResult`. Random effects are
written as in metafor: ``"~ 1 | district/school"`` (nested random intercepts: district, then
school within district), ``"~ 1 | study"``, or ``"~ outcome | trial"`` with ``struct`` one of
``CS, HCS, UN, AR, HAR, CAR, ID, DIAG`` for the covariance of the inner levels.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import sparse as sp

from ketameta._core.multilevel import InnerOuter, Intercept, fit_mv
from ketameta._core.multilevel_struct import STRUCTS
from ketameta._core.vcalc import CorrMatrix, vcalc_blocks
from ketameta.exceptions import ConvergenceWarning, DataValidationError, ExcludedStudyWarning
from ketameta.synthesis.multilevel_results import MetaMVResult, RandomTerm, build_result

__all__ = ["CorrMatrix", "MetaMVResult", "meta_mv", "vcalc"]

_VCALC_COLUMNS = ("obs", "type", "time1", "time2", "grp1", "grp2", "w1", "w2", "subgroup")


def _column(value: Any, name: str, data: pd.DataFrame | None, caller: str) -> Any:
    """A column of ``data`` when ``value`` is a string and data is given, else ``value``."""
    if isinstance(value, str) and data is not None:
        if value not in data.columns:
            raise ValueError(f"{caller}(): {name}: column {value!r} is not in data")
        return data[value].to_numpy()
    if isinstance(value, str):
        raise ValueError(f"{caller}(): {name}: a column name ({value!r}) needs data=")
    if isinstance(value, pd.Series):
        return value.to_numpy()
    return value


def vcalc(
    vi: Any,
    cluster: Any,
    *,
    obs: Any = None,
    type: Any = None,  # noqa: A002 - metafor's name
    time1: Any = None,
    time2: Any = None,
    grp1: Any = None,
    grp2: Any = None,
    w1: Any = None,
    w2: Any = None,
    rho: Any = None,
    phi: float | None = None,
    data: pd.DataFrame | None = None,
    sparse: bool | str = False,
    subgroup: Any = None,
    rvars: Any = None,
    checkpd: bool = True,
) -> np.ndarray | sp.csr_matrix | list[tuple[np.ndarray, np.ndarray]]:
    """Sampling covariance matrix of dependent effect sizes, as metafor's ``vcalc()``.

    Parameters
    ----------
    vi : str, array_like or float
        Sampling variances (a column of ``data``, an array, or one value for every row).
    cluster : str or array_like
        Clusters (e.g. studies): rows of different clusters are independent.
    obs, type : str or array_like, optional
        Different observations (scales) of one construct, and different constructs; ``rho``
        gives their correlation (a scalar, a matrix over the sorted codes, a
        :class:`CorrMatrix`, or ``(within, between)`` with both).
    time1, time2 : str or array_like, optional
        Time points of the two conditions; means at times ``s`` and ``t`` correlate
        ``phi^|s - t|``.
    grp1, grp2, w1, w2 : str or array_like, optional
        Groups of the two conditions (a shared control gives correlated contrasts) and their
        sizes (inverse-variance weights).
    rho, phi : optional
        Correlations (not columns).
    data : DataFrame, optional
        Where string arguments are looked up.
    sparse : bool or "blocks"
        ``False``: dense ``(k, k)`` array; ``True``: ``scipy.sparse.csr_matrix`` (block
        diagonal); ``"blocks"``: list of ``(row indices, block)`` per cluster.
    subgroup : str or array_like, optional
        Independent subgroups within clusters.
    rvars : list of str or array_like (k, r), optional
        metafor's ``rvars``: the correlation matrix of each cluster, row by row, in columns
        (all other correlation arguments are then ignored).
    checkpd : bool
        Warn for blocks that are not positive definite.

    Returns
    -------
    ndarray, csr_matrix or list of (ndarray, ndarray)

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"study": [1, 1, 2], "esid": [1, 2, 1], "vi": [0.04, 0.09, 0.01]})
    >>> vcalc("vi", "study", obs="esid", rho=0.5, data=df).round(4)
    array([[0.04, 0.03, 0.  ],
           [0.03, 0.09, 0.  ],
           [0.  , 0.  , 0.01]])
    """
    given = dict(
        zip(_VCALC_COLUMNS, (obs, type, time1, time2, grp1, grp2, w1, w2, subgroup), strict=True)
    )
    vi_arr = _column(vi, "vi", data, "vcalc")
    cl = _column(cluster, "cluster", data, "vcalc")
    if cl is None:
        raise ValueError("vcalc(): cluster must be given")
    cl = np.asarray(cl)
    if cl.ndim != 1:
        raise ValueError(f"vcalc(): cluster must be one-dimensional, got shape {cl.shape}")
    k = cl.size
    vi_arr = np.asarray(vi_arr, dtype=np.float64)
    if vi_arr.ndim > 1 or (vi_arr.ndim == 1 and vi_arr.size != k):
        raise ValueError(f"vcalc(): vi must be a scalar or have length {k} (as cluster)")
    if np.any(~np.isfinite(vi_arr)) or np.any(vi_arr < 0):
        raise ValueError("vcalc(): vi must be finite and non-negative")
    args: dict[str, Any] = {}
    for name, value in given.items():
        value = _column(value, name, data, "vcalc")
        if value is not None and np.ndim(value) == 1 and len(value) != k:
            raise ValueError(f"vcalc(): {name} must have length {k} (as cluster)")
        args[name] = value
    if rvars is not None:
        if (
            data is not None
            and isinstance(rvars, Sequence)
            and all(isinstance(r, str) for r in rvars)
        ):
            missing = [r for r in rvars if r not in data.columns]
            if missing:
                raise ValueError(f"vcalc(): rvars: columns {missing} are not in data")
            rvars = data[list(rvars)].to_numpy(dtype=np.float64)
        args["rvars"] = rvars
    try:
        blocks = vcalc_blocks(vi_arr, cl, rho=rho, phi=phi, checkpd=checkpd, **args)
    except ValueError as err:
        raise ValueError(f"vcalc(): {err}") from None
    if sparse == "blocks":
        return blocks
    if sparse:
        rows = np.concatenate([np.repeat(i, i.size) for i, _ in blocks])
        cols = np.concatenate([np.tile(i, i.size) for i, _ in blocks])
        vals = np.concatenate([b.ravel() for _, b in blocks])
        return sp.csr_matrix((vals, (rows, cols)), shape=(k, k))
    V = np.zeros((k, k))
    for idx, block in blocks:
        V[np.ix_(idx, idx)] = block
    return V


# ---- meta_mv --------------------------------------------------------------------------------

_TERM = re.compile(r"^\s*~\s*(?P<lhs>[^|]+?)\s*\|\s*(?P<rhs>.+?)\s*$")


def _parse_random(random: str | Sequence[str]) -> list[tuple[str, list[str]]]:
    """``[(lhs, [outer variables])]`` of each formula (``lhs`` is ``"1"`` or the inner one)."""
    forms = [random] if isinstance(random, str) else list(random)
    if not forms:
        raise ValueError("meta_mv(): random must give at least one term")
    out = []
    for f in forms:
        m = _TERM.match(str(f))
        if m is None:
            raise ValueError(
                f"meta_mv(): random: cannot read {f!r}; write '~ 1 | a/b' or '~ inner | outer'"
            )
        lhs, parts = m["lhs"].strip(), [p.strip() for p in m["rhs"].split("/")]
        if not all(parts):
            raise ValueError(f"meta_mv(): random: empty variable in {f!r}")
        if lhs != "1" and len(parts) != 1:
            raise ValueError(f"meta_mv(): random: '~ inner | outer' takes one outer ({f!r})")
        out.append((lhs, parts))
    return out


def _levels(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Integer codes of the joint values of the columns (sorted as R's factor) and labels."""
    if frame.shape[1] == 1:
        codes, uniq = pd.factorize(frame.iloc[:, 0], sort=True)
        return np.asarray(codes), [str(u) for u in uniq]
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(frame), sort=True)
    return np.asarray(codes), ["/".join(str(v) for v in u) for u in uniq]


def _effects(yi, V, data, k_hint) -> tuple[np.ndarray, np.ndarray]:
    y = _column(yi, "yi", data, "meta_mv")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"meta_mv(): yi must be one-dimensional, got shape {y.shape}")
    if isinstance(V, list) and V and isinstance(V[0], tuple):  # vcalc(sparse="blocks")
        dense = np.zeros((y.size, y.size))
        for idx, block in V:
            dense[np.ix_(idx, idx)] = block
        V = dense
    elif sp.issparse(V):
        V = V.toarray()
    Varr = np.asarray(_column(V, "V", data, "meta_mv"), dtype=np.float64)
    if Varr.ndim == 2 and Varr.shape == (y.size, y.size):
        if not np.allclose(Varr, Varr.T, rtol=0, atol=1e-12 * np.abs(Varr).max()):
            raise ValueError("meta_mv(): V must be symmetric")
    elif Varr.ndim != 1 or Varr.size != y.size:
        raise ValueError(
            f"meta_mv(): V must be {y.size} variances or a ({y.size}, {y.size}) matrix, "
            f"got shape {Varr.shape}"
        )
    return y, Varr


def meta_mv(
    yi: Any,
    V: Any,
    *,
    data: pd.DataFrame | None = None,
    random: str | Sequence[str] = "~ 1 | study/record",
    mods: str | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 95,
    struct: str | Sequence[str] = "CS",
    sparse: bool = False,
) -> MetaMVResult:
    """Multilevel / multivariate meta-analysis, as metafor's ``rma.mv``.

    Parameters
    ----------
    yi : str or array_like
        Effect sizes (a column of ``data`` or an array).
    V : str, array_like or sparse matrix
        Sampling variances (a column or an array of ``k``) or the ``(k, k)`` sampling
        covariance matrix (e.g. from :func:`vcalc`; dense, scipy.sparse or its blocks).
    data : DataFrame, optional
        Holds the columns named in ``yi``, ``V``, ``random`` and ``mods``.
    random : str or list of str
        ``"~ 1 | a/b"`` (random intercepts of ``a`` and of ``b`` within ``a``), ``"~ 1 | a"``,
        or ``"~ inner | outer"`` (correlated effects of the inner levels within each outer
        level, covariance ``struct``). Terms are numbered as metafor: ``sigma2`` in order of
        the intercept terms (outer level first), ``tau2``/``rho`` for the first
        inner|outer term and ``gamma2``/``phi`` for the second.
    mods : str, optional
        A patsy formula of moderators (``"~ x"``, ``"~ C(g) - 1"``, ``"~ center(year)"``);
        None fits the intercept only.
    method : {"REML", "ML"}
    test : {"z", "t"}
        ``"t"`` (metafor's ``test="t"``): t(k - p) tests and intervals, QM as F(m, k - p).
    level : float
        Confidence level in percent.
    struct : str or list of str
        Structure of each inner|outer term: ``CS``, ``HCS``, ``UN``, ``AR``, ``HAR``,
        ``CAR``, ``ID``, ``DIAG``.
    sparse : bool
        Accepted for metafor compatibility; the model is always fitted block by block.

    Returns
    -------
    MetaMVResult

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "study": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
    ...     "es": range(10),
    ...     "yi": [0.1, 0.3, 0.5, 0.4, -0.1, 0.0, 0.6, 0.9, 0.2, 0.25],
    ...     "vi": [0.02, 0.03, 0.02, 0.04, 0.03, 0.02, 0.05, 0.03, 0.02, 0.02]})
    >>> res = meta_mv("yi", "vi", data=df, random="~ 1 | study/es")
    >>> round(res.estimate, 4), res.sigma2.round(4).tolist()
    (0.3167, [0.0815, 0.0])
    """
    if method not in ("REML", "ML"):
        raise ValueError(f"meta_mv(): method must be 'REML' or 'ML', got {method!r}")
    if test not in ("z", "t"):
        raise ValueError(f"meta_mv(): test must be 'z' or 't', got {test!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 100:
        raise ValueError(f"meta_mv(): level must be a percentage in (0, 100), got {level!r}")
    if data is not None and not isinstance(data, pd.DataFrame):
        raise ValueError("meta_mv(): data must be a pandas DataFrame")
    y, Varr = _effects(yi, V, data, None)
    k = y.size
    frame = data.reset_index(drop=True) if data is not None else pd.DataFrame(index=range(k))
    if len(frame) != k:
        raise ValueError(f"meta_mv(): data has {len(frame)} rows but yi has {k}")
    terms = _parse_random(random)
    n_io = sum(lhs != "1" for lhs, _ in terms)
    structs = [struct] * n_io if isinstance(struct, str) else list(struct)
    if len(structs) != n_io:
        raise ValueError(f"meta_mv(): struct gives {len(structs)} structures for {n_io} terms")
    for s in structs:
        if str(s).upper() not in STRUCTS:
            raise ValueError(f"meta_mv(): struct must be one of {', '.join(STRUCTS)}, got {s!r}")
    names = {v for lhs, parts in terms for v in parts + ([lhs] if lhs != "1" else [])}
    for v in sorted(names):
        if v not in frame.columns:
            raise ValueError(f"meta_mv(): random: column {v!r} is not in data")
    # rows with a missing value anywhere are left out, as metafor does (with a warning)
    vdiag = np.diag(Varr) if Varr.ndim == 2 else Varr
    keep = np.isfinite(y) & np.isfinite(vdiag)
    keep &= frame[sorted(names)].notna().all(axis=1).to_numpy() if names else True
    env = patsy.EvalEnvironment.capture(1).with_outer_namespace({"np": np})
    if mods is not None:
        try:
            X_all = patsy.dmatrix(
                mods, frame, return_type="dataframe", NA_action="drop", eval_env=env
            )
        except patsy.PatsyError as err:
            raise ValueError(
                f"meta_mv(): mods: cannot build the design from {mods!r}: {err}"
            ) from None
        keep &= frame.index.isin(X_all.index)
    excluded = tuple((str(r), "missing value") for r in np.flatnonzero(~keep))
    if excluded:
        warnings.warn(
            f"meta_mv(): {len(excluded)} row(s) with missing values excluded (positions "
            f"{', '.join(r for r, _ in excluded)})",
            ExcludedStudyWarning,
            stacklevel=2,
        )
    idx = np.flatnonzero(keep)
    used = frame.iloc[idx].reset_index(drop=True)
    y = y[idx]
    Varr = Varr[np.ix_(idx, idx)] if Varr.ndim == 2 else Varr[idx]
    vd = np.diag(Varr) if Varr.ndim == 2 else Varr
    if np.any(vd < 0):
        bad = [str(int(idx[i])) for i in np.flatnonzero(vd < 0)]
        raise DataValidationError(
            f"meta_mv(): sampling variances must be >= 0; rows {', '.join(bad)} are not",
            problems=[{"row": r, "column": "V"} for r in bad],
        )
    if mods is None:
        X_df = pd.DataFrame({"intrcpt": np.ones(y.size)})
    else:
        X_df = patsy.dmatrix(mods, used, return_type="dataframe", NA_action="raise", eval_env=env)
        X_df.columns = ["intrcpt" if c == "Intercept" else str(c) for c in X_df.columns]
    X = X_df.to_numpy(dtype=np.float64)
    k, p = X.shape
    if k <= p:
        raise ValueError(f"meta_mv(): {p} coefficients need more than {p} rows; there are {k}")
    if np.linalg.matrix_rank(X) < p:
        raise ValueError(f"meta_mv(): mods: design columns {list(X_df.columns)} are collinear")
    comps, rterms, si = [], [], 0
    for lhs, parts in terms:
        if lhs == "1":
            for depth in range(1, len(parts) + 1):
                codes, labels = _levels(used[parts[:depth]])
                comps.append(Intercept(codes))
                rterms.append(RandomTerm("/".join(parts[:depth]), None, None, tuple(labels), codes))
        else:
            s = str(structs[si]).upper()
            si += 1
            outer, _ = _levels(used[parts])
            inner = used[lhs].to_numpy()
            comps.append(InnerOuter(inner, outer, s))
            rterms.append(RandomTerm(parts[0], lhs, s, (), outer))
    comps = [c for c in comps if isinstance(c, Intercept)] + [
        c for c in comps if isinstance(c, InnerOuter)
    ]
    rterms = [t for t in rterms if t.inner is None] + [t for t in rterms if t.inner is not None]
    fit = fit_mv(y, Varr, X, comps, method=method, level=float(level))
    if not fit.converged:
        warnings.warn("meta_mv(): the optimiser did not converge", ConvergenceWarning, stacklevel=2)
    return build_result(
        fit, X_df, y, Varr, used, rterms, mods, random, test, float(level), excluded
    )
