"""The pandas-facing API for pooling: ``meta()`` (one analysis) and ``meta_batch()`` (many).

Both sit on :func:`ketameta._core.batch.fit_batch`; this module only checks input, picks up
labels and escalc's attributes, and wraps the numbers in result objects.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, partial
from typing import Literal

import numpy as np
import pandas as pd

from ketameta._core.batch import fit_batch
from ketameta._core.fastpath import deferred, fit_one, upper_bound_at_limit
from ketameta._core.pooling import T_TESTS
from ketameta._core.tau2 import COMMON_METHODS
from ketameta.exceptions import ConvergenceWarning, KetametaWarning, SingleStudyWarning
from ketameta.synthesis._inputs import (
    Effects,
    check_options,
    frozen,
    labels_from_sequence,
    read_effects,
)
from ketameta.synthesis.results import BatchResult, MetaResult

MethodName = Literal[
    "EE", "FE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "MP", "PMM", "DLIT", "SJIT"
]
TestName = Literal["z", "t", "knha", "adhoc"]


def meta(
    yi=None,
    vi=None,
    *,
    data: pd.DataFrame | None = None,
    method: MethodName | Literal["GENQ", "GENQM"] = "REML",
    test: TestName = "z",
    level: float = 95,
    labels=None,
    measure: str | None = None,
    tol: float = 1e-12,
    maxiter: int = 1000,
    weights=None,
) -> MetaResult:
    """Fit a random-effects (or common-effect) meta-analysis, as metafor's ``rma()``.

    Parameters
    ----------
    yi, vi : array_like or str
        Effect sizes and sampling variances (vi > 0). With ``data``, the names of its columns
        (default ``"yi"`` and ``"vi"``, as escalc writes them).
    data : pandas.DataFrame, optional
        One row per study, e.g. the output of ``escalc()``. Its ``attrs`` supply ``measure``,
        ``favours_group1`` and ``excluded`` (studies escalc could not use) when present.
    method : {"REML", "ML", "DL", "PM", "EB", "HE", "HS", "HSk", "SJ", "PMM", "DLIT", "SJIT",
        "MP", "EE", "FE"}
        tau² estimator (metafor's names; "EE"/"FE" fit the common-effect model). Iterative
        estimators are solved to the exact root (tol 1e-12); metafor's defaults stop early
        (PM off by up to ~4e-4 relative), so compare with
        ``rma(..., control=list(tol=1e-12, threshold=1e-12))``.
    test : {"z", "t", "knha", "adhoc"}
        metafor's ``test=``: ``"z"`` Wald z test; ``"t"`` the same standard error with t(k - 1)
        quantiles for the test, CI and prediction interval; ``"knha"`` Hartung-Knapp(-Sidik-
        Jonkman): the variance times s² = sum w (y - estimate)² / (k - 1), t(k - 1);
        ``"adhoc"`` Hartung-Knapp with the ad hoc truncation max(1, s²), so the standard error
        is never smaller than the unadjusted one (Jackson et al. 2017), t(k - 1).
    level : float
        Confidence level in percent (default 95).
    labels : sequence of str or str, optional
        Study labels, or (with ``data``) a column name. Default: the ``label`` or
        ``study_label`` column, else the index; without ``data`` "Study 1", "Study 2", ...
    measure : str, optional
        Effect-size measure (e.g. "SMD", "RR"); overrides ``data.attrs["measure"]``.
    tol, maxiter
        Convergence tolerance and iteration limit of the iterative steps (tau² estimators and
        Q-profile bounds); the defaults give the exact roots.
    weights : array_like or str, optional
        User weights a_i >= 0 (or a column of ``data``), as metafor's ``rma(weights=)``: the
        estimate is then sum a y / sum a with its sandwich variance, and ``method`` may also
        be ``"GENQ"`` (generalized Q moment estimator) or ``"GENQM"`` (its median-unbiased
        version), whose tau² CI comes from the distribution of the weighted Q. See
        :mod:`ketameta.synthesis.weighted`.

    Returns
    -------
    MetaResult
        Pooled estimate, se, test, CI, prediction interval, tau² with its Q-profile CI, tau,
        I² (percent) and H² with CIs, Q test, per-study weights (percent).

    Raises
    ------
    ValueError, DataValidationError
        Lengths of yi and vi differ, no studies, a yi or vi that is NaN or infinite, a vi <= 0
        (every offending row is listed, by label for DataFrames), unknown ``method`` or
        ``test``, ``level`` outside (0, 100).

    Warns
    -----
    SingleStudyWarning
        With one study: it is returned as the pooled estimate (tau² = 0, z interval).
    ConvergenceWarning
        An iterative estimator or the Q-profile search did not converge.
    KetametaWarning
        The upper Q-profile bound of tau² is beyond metafor's search limit
        ``max(100, 10 tau²)``; the limit is reported.

    Examples
    --------
    The BCG vaccine trials (Colditz et al. 1994; log risk ratios, rounded to 4 decimals;
    metafor's ``rma(yi, vi, data=dat.bcg-escalc)`` gives -0.7145, tau² 0.3132, I² 92.2%):

    >>> from ketameta.synthesis.pooling import meta
    >>> yi = [-0.8893, -1.5854, -1.3481, -1.4416, -0.2175, -0.7861, -1.6209, 0.012, -0.4694,
    ...       -1.3713, -0.3394, 0.4459, -0.0173]
    >>> vi = [0.3256, 0.1946, 0.4154, 0.02, 0.0512, 0.0069, 0.223, 0.004, 0.0564, 0.073,
    ...       0.0124, 0.5325, 0.0714]
    >>> res = meta(yi, vi, method="REML")
    >>> round(res.estimate, 4), round(res.tau2, 4), round(res.i2, 1)
    (-0.7145, 0.3133, 92.2)
    >>> round(res.ci_low, 3), round(res.ci_high, 3)
    (-1.067, -0.362)
    """
    if weights is not None or method in ("GENQ", "GENQM"):
        from ketameta.synthesis.weighted import meta_weighted

        return meta_weighted(
            yi, vi, weights, data=data, method=method, test=test, level=level, labels=labels,
            measure=measure, tol=tol, maxiter=maxiter,
        )  # fmt: skip
    level = check_options(method, test, level)
    study = _plain_effects(yi, vi, labels) if data is None else None
    if study is None:  # read_effects checks everything and names every unusable row
        study = read_effects(yi, vi, data=data, labels=labels, caller="meta()")
    y, v, labs, k = study.yi, study.vi, study.labels, study.yi.size
    if data is not None:
        measure = measure if measure is not None else data.attrs.get("measure")
    used_test = test
    if k == 1:
        warnings.warn(
            f"Only one study ({labs[0]!r}): it is returned as the pooled estimate with tau2 = 0"
            + (f" and its z interval ({test} needs k >= 2)." if test in T_TESTS else "."),
            SingleStudyWarning,
            stacklevel=2,
        )
        used_test = "z"
    out = fit_one(y, v, method=method, test=used_test, level=level, tol=tol, maxiter=maxiter)
    if out is None or k == 1:
        out = fit_batch(
            y, v, method=method, test=used_test, level=level, ci_tau2=False, stats=False,
            tol=tol, maxiter=maxiter,
        )  # fmt: skip
        out = {key: val if key == "weights" else val.item() for key, val in out.items()}
    converged = bool(out["converged"])
    if not converged:
        warnings.warn(
            f"meta(): the {method} estimator of tau2 did not converge in "
            f"{int(out['iterations'])} iterations; tau2 = {float(out['tau2']):.6g} is not a root.",
            ConvergenceWarning,
            stacklevel=2,
        )
    tau2 = float(out["tau2"])
    deferred = partial(
        _deferred_parts, y, v, method=method, level=level, tau2=tau2, vt=float(out["vt"]),
        tol=tol, maxiter=maxiter, scaled=None,  # normalized on first access, as fit_batch
    )  # fmt: skip
    given = {}
    if maxiter < EAGER_BELOW_MAXITER:  # a capped search: every warning at fit time
        given = deferred(eager=True)
    elif k > 1 and method not in COMMON_METHODS:
        limit = max(100.0, 10.0 * tau2)  # metafor's tau2.max for confint()
        if upper_bound_at_limit(y, v, level=level, tau2=tau2, scaled=out.get("_scaled")):
            _warn_limit(limit, stacklevel=3)
    return MetaResult._from_fields(
        k=k,
        estimate=float(out["estimate"]),
        se=float(out["se"]),
        statistic=float(out["statistic"]),
        pvalue=float(out["pvalue"]),
        ci_low=float(out["ci_low"]),
        ci_high=float(out["ci_high"]),
        pi_low=float(out["pi_low"]),
        pi_high=float(out["pi_high"]),
        tau2=tau2,
        tau=float(out["tau"]),
        i2=float(out["i2"]),
        h2=float(out["h2"]),
        q=float(out["q"]),
        q_df=k - 1,
        q_pvalue=float(out["q_pvalue"]),
        weights=_read_only(out["weights"]),
        method=method,
        test=used_test,
        level=level,
        df=k - 1 if used_test in T_TESTS else None,
        yi=frozen(y),
        vi=frozen(v),
        labels=labs,
        measure=measure,
        favours_group1=study.favours_group1,
        excluded=study.excluded,
        data=data,
        converged=converged,
        vt=float(out["vt"]),
        _deferred=None if given else deferred,
        **given,
    )


def _plain_effects(yi, vi, labels):
    """``read_effects`` for float64 vectors that are clearly fine (same length, finite,
    vi > 0), with two reductions instead of a check per kind of problem; None for anything
    else (read_effects then converts, checks and reports what is wrong)."""
    if not (_is_vector(yi) and _is_vector(vi)) or yi.shape != vi.shape or yi.size == 0:
        return None
    # NaN or inf anywhere makes the sum non-finite (so may an overflow: read_effects decides)
    if not (float(vi.min()) > 0.0 and math.isfinite(float(yi.sum()) + float(vi.sum()))):
        return None
    labs = _default_labels(yi.size) if labels is None else labels_from_sequence(labels, yi.size)
    return Effects(yi, vi, labs)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A freshly computed array of this fit, made read-only (no copy needed)."""
    a = np.asarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _is_vector(x) -> bool:
    return type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == 1


@lru_cache(maxsize=64)
def _default_labels(k):
    """The labels "Study 1", ..., "Study k" (one tuple per k, shared by its results)."""
    return labels_from_sequence(None, k)


#: ``meta(maxiter=...)`` below this computes the Q-profile interval at fit time (so that its
#: ConvergenceWarning is raised by ``meta()``); otherwise on first access.
EAGER_BELOW_MAXITER = 100


def _warn_limit(limit, stacklevel):
    warnings.warn(
        f"meta(): the upper Q-profile bound of tau2 lies beyond metafor's search limit "
        f"tau2.max = {limit:.6g} and is reported as that limit (metafor prints '>').",
        KetametaWarning,
        stacklevel=stacklevel,
    )


def _deferred_parts(y, v, *, method, level, tau2, vt, tol, maxiter, scaled, eager=False):
    """The Q-profile intervals and secondary statistics of a ``meta()`` fit (``MetaResult``
    computes them on first access), with the Q-profile warnings of ``meta()`` (``eager``: called
    by ``meta()`` itself, which then also warns about the search limit here)."""
    out = deferred(
        y, v, method=method, level=level, tau2=tau2, vt=vt, tol=tol, maxiter=maxiter,
        scaled=scaled,
    )  # fmt: skip
    if not out.pop("ci_converged"):
        warnings.warn(
            "meta(): the Q-profile search for the tau2 confidence bounds did not converge.",
            ConvergenceWarning,
            stacklevel=3,  # meta()'s caller, or the line that reads the interval
        )
    if eager and y.size > 1 and method not in COMMON_METHODS:
        limit = max(100.0, 10.0 * tau2)
        if out["tau2_ci"][1] >= limit:
            _warn_limit(limit, stacklevel=4)
    return out


def meta_batch(
    yi,
    vi,
    *,
    method: MethodName = "REML",
    test: TestName = "z",
    level: float = 95,
    ci: bool = True,
    chunk: int | None = None,
    executor: object = None,
) -> BatchResult:
    """Fit many meta-analyses at once: one per row of 2-D ``yi``/``vi``.

    Rows are checked and fitted ``chunk`` rows at a time, so the memory in use is the output
    arrays (about 27 arrays of ``n`` values) plus the working arrays of one chunk, whatever
    ``n``; the results are exactly those of one call on all rows (every row is fitted on its
    own). ``executor`` fans the chunks out (see ``docs/distributed.md``).

    Parameters
    ----------
    yi, vi : array_like, shape (n, k)
        Row ``i`` holds the studies of meta-analysis ``i``; a row with fewer studies is padded
        with NaN in *both* ``yi`` and ``vi`` (a NaN in only one of them is an error).
    method, test, level
        As :func:`meta`.
    ci : bool
        Compute the Q-profile intervals of tau², I² and H² (default). ``False`` leaves them NaN
        and saves about 40% of the time, for simulation studies that need only the estimates.
    chunk : int, optional
        Rows per chunk. Default: a 64 MiB budget of working arrays,
        ``64 MiB // (8 bytes * (16 k + 64))`` rows (21,845 for k = 20; at least 1).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where the chunks run: ``None`` (default) fits them one after another in this process;
        a ``ProcessPoolExecutor``, ``ThreadPoolExecutor`` or a dask ``Client`` (recognised by
        its ``get_executor``; dask is not imported by ketameta) receives them with ``map`` and
        they come back in order. Convergence warnings are raised here, with global rows.

    Returns
    -------
    BatchResult
        Arrays of shape ``(n,)``; ``summary()`` gives one DataFrame row per meta-analysis.

    Raises
    ------
    ValueError
        Shapes differ or are not 2-D, an infinite value, a NaN in only one of yi/vi, a vi <= 0,
        a row with no studies (rows and columns are those of the whole input), unknown
        method/test, level outside (0, 100), a chunk that is not a positive integer.

    Warns
    -----
    ConvergenceWarning
        Names the rows whose tau² iteration did not converge.

    Examples
    --------
    >>> import numpy as np
    >>> from ketameta.synthesis.pooling import meta_batch
    >>> yi = np.array([[0.1, 0.3, 0.5], [0.2, 0.4, np.nan]])
    >>> vi = np.array([[0.02, 0.03, 0.04], [0.05, 0.05, np.nan]])
    >>> res = meta_batch(yi, vi, method="DL")
    >>> res.k.tolist()
    [3, 2]
    >>> bool((meta_batch(yi, vi, method="DL", chunk=1).estimate == res.estimate).all())
    True
    """
    from ketameta.synthesis import _parallel

    level = check_options(method, test, level)
    y = np.asarray(yi, dtype=np.float64)
    v = np.asarray(vi, dtype=np.float64)
    if y.ndim != 2 or v.ndim != 2:
        raise ValueError(f"'yi' and 'vi' must be 2-D (n, k), got shapes {y.shape} and {v.shape}.")
    if y.shape != v.shape:
        raise ValueError(f"'yi' {y.shape} and 'vi' {v.shape} must have the same shape.")
    size = _parallel.default_chunk(y.shape[1]) if chunk is None else _parallel.check_chunk(chunk)
    bounds = _parallel.chunk_bounds(y.shape[0], size)
    k, full = _parallel.validate_batch(y, v, bounds)
    out = _parallel.fit_batch_chunked(
        y, v, bounds, padded=not full, method=method, test=test, level=level, ci=ci,
        executor=executor, fit=fit_batch,
    )  # fmt: skip
    if not out["converged"].all():
        rows = np.flatnonzero(~out["converged"]).tolist()
        warnings.warn(
            f"meta_batch(): the {method} tau2 iteration did not converge for rows {rows}.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return BatchResult(k=k, **out, method=method, test=test, level=level)
