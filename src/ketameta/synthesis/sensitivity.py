"""Sensitivity analyses of a pooled result: leave-one-out, influence, cumulative, risk of bias.

All functions take a `MetaResult` (from `ketameta.meta`) and refit with its method and test,
on the batched core (one vectorised fit for all k refits). Validated against metafor 3.8.1's
``leave1out()``, ``influence()`` and ``cumul()`` (BCG and Hackshaw reference cases).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ketameta._core import influence as core


def _frame(fit: dict, index: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "estimate": fit["estimate"],
            "se": fit["se"],
            "statistic": fit["statistic"],
            "pvalue": fit["pvalue"],
            "ci_low": fit["ci_low"],
            "ci_high": fit["ci_high"],
            "q": fit["q"],
            "q_pvalue": fit["q_pvalue"],
            "tau2": fit["tau2"],
            "i2": fit["i2"],
            "h2": fit["h2"],
        },
        index=pd.Index(index, name="omitted"),
    )


def leave_one_out(result: Any) -> pd.DataFrame:
    """The pooled result with each study omitted in turn, as metafor's ``leave1out()``.

    Returns
    -------
    DataFrame
        Indexed by the omitted study's label: ``estimate, se, statistic, pvalue, ci_low,
        ci_high, q, q_pvalue, tau2, i2, h2``.

    Examples
    --------
    >>> from ketameta import meta
    >>> res = meta([-0.5, -0.2, -0.4, -0.1], [0.04, 0.05, 0.03, 0.02], method="DL")
    >>> leave_one_out(res).shape
    (4, 11)
    """
    _need(result, 3, "leave_one_out")
    fit = core.leave_one_out(
        result.yi, result.vi, method=result.method, test=result.test, level=result.level
    )
    return _frame(fit, list(result.labels))


def influence(result: Any) -> pd.DataFrame:
    """Influence diagnostics as metafor's ``influence()``.

    Returns
    -------
    DataFrame
        Per study: ``rstudent, dffits, cooks_d, cov_ratio, tau2_del, qe_del, hat, weight
        (percent), dfbetas, influential``. A study is flagged influential (metafor's rule) if
        |DFFITS| > 3 sqrt(p/(k-p)), or its Cook's distance cuts off more than 50% of a
        chi-square(p) lower tail, or hat > 3p/k, or |DFBETAS| > 1.
    """
    _need(result, 3, "influence")
    out = core.influence_measures(
        result.yi,
        result.vi,
        estimate=result.estimate,
        se=result.se,
        tau2=result.tau2,
        method=result.method,
        test=result.test,
    )
    return pd.DataFrame(out, index=pd.Index(list(result.labels), name="study"))


def cumulative(result: Any, order: str | np.ndarray | None = None) -> pd.DataFrame:
    """Cumulative meta-analysis, adding studies in ``order`` (a column of ``result.data`` such
    as ``"year"``, or an array of sort keys; ties keep the input order), as ``cumul()``.

    Row j holds the fit of the first j + 1 studies; the index names the study added.
    """
    if order is None:
        keys = np.arange(result.k)
    elif isinstance(order, str):
        if result.data is None or order not in result.data.columns:
            raise ValueError(f"cumulative(): column {order!r} is not in the result's data")
        keys = result.data[order].to_numpy()
    else:
        keys = np.asarray(order)
        if keys.shape != (result.k,):
            raise ValueError(f"cumulative(): order must have one key per study ({result.k})")
    idx = np.argsort(keys, kind="stable")
    fit = core.cumulative(
        result.yi, result.vi, idx, method=result.method, test=result.test, level=result.level
    )
    return _frame(fit, [result.labels[i] for i in idx]).rename_axis("added")


def without_high_risk(result: Any, *, column: str = "risk_of_bias") -> Any:
    """Refit without the studies whose ``column`` is ``"high"`` (needs ``result.data``)."""
    from ketameta.synthesis.pooling import meta

    if result.data is None or column not in result.data.columns:
        raise ValueError(f"without_high_risk(): the result's data have no column {column!r}")
    keep = (result.data[column].astype(str) != "high").to_numpy()
    if keep.sum() == 0:
        raise ValueError("without_high_risk(): every study is at high risk of bias")
    data = result.data.loc[keep]
    return (
        meta(
            result.yi[keep],
            result.vi[keep],
            method=result.method,
            test=result.test,
            level=result.level,
            labels=[result.labels[i] for i in np.flatnonzero(keep)],
            measure=result.measure,
        )
        if data is not None
        else None
    )


def compare_results(results: dict[str, Any]) -> pd.DataFrame:
    """Side-by-side summary of several pooled results (e.g. all studies vs low risk of bias)."""
    rows = {name: res.summary().iloc[0] for name, res in results.items()}
    return pd.DataFrame(rows).T


def _need(result: Any, k_min: int, name: str) -> None:
    if result.k < k_min:
        raise ValueError(f"{name}() needs at least {k_min} studies; the result has {result.k}")


def gosh(
    result: Any,
    *,
    max_subsets: int | None = 1_000_000,
    seed: int | None = None,
    chunk: int = 8192,
    executor: Any = None,
) -> pd.DataFrame:
    """GOSH: the pooled estimate, tau² and I² of subsets of the studies (Olkin et al. 2012).

    All ``2^k - 1`` non-empty subsets are fitted when that is at most ``max_subsets``;
    otherwise ``max_subsets`` random subsets (seeded) are drawn. Fits run in chunks of
    ``chunk`` subsets (bounded memory): DL and common-effect (EE/FE) models by matrix products
    of the membership matrix (:mod:`ketameta._core.gosh`), every other estimator on the
    batched core. ``executor`` (any ``concurrent.futures.Executor``, e.g. a process pool or a
    dask client's executor) fans the chunks out.

    Returns
    -------
    DataFrame
        One row per subset: ``k, estimate, tau2, i2, q`` and a boolean column per study
        (membership).

    Examples
    --------
    >>> from ketameta import meta
    >>> res = meta([-0.5, -0.2, -0.4, -0.1], [0.04, 0.05, 0.03, 0.02], method="DL")
    >>> len(gosh(res))
    15
    """
    k = result.k
    total = 2**k - 1
    if max_subsets is None or total <= max_subsets:
        # studies x subsets, subset code c (1 .. 2^k - 1) in column c - 1: study j takes part
        # where bit j of c is set, i.e. in the second half of each block of 2^(j + 1) codes
        bits = np.zeros((k, total + 1), dtype=bool)
        for j in range(k):
            bits[j].reshape(-1, 2, 2**j)[:, 1, :] = True
        masks = np.ascontiguousarray(bits[:, 1:]).T
    else:
        rng = np.random.default_rng(seed)
        masks = rng.random((max_subsets, k)) < 0.5
        masks[~masks.any(axis=1), rng.integers(0, k)] = True
    pieces = [masks[i : i + chunk] for i in range(0, len(masks), chunk)]
    args = (np.asarray(result.yi), np.asarray(result.vi), result.method)
    if executor is None:
        fits = [_gosh_chunk(m, *args) for m in pieces]
    else:
        fits = list(executor.map(_gosh_chunk, pieces, *[[a] * len(pieces) for a in args]))
    names = ("k", "estimate", "tau2", "i2", "q")
    if len(fits) == 1:
        cols = [fits[0][name] for name in names]
    else:
        cols = [np.concatenate([f[name] for f in fits]) for name in names]
    # one frame from the columns (no concat); positional keys, as study labels may repeat
    out = pd.DataFrame(dict(enumerate([*cols, *masks.T])))
    out.columns = pd.Index([*names, *result.labels])
    return out


def _gosh_chunk(
    masks: np.ndarray, yi: np.ndarray, vi: np.ndarray, method: str
) -> dict[str, np.ndarray]:
    """Fits of one chunk of subsets: ``k`` (int64), ``estimate``, ``tau2``, ``i2``, ``q``."""
    from ketameta._core import gosh as fast

    if fast.fast_gosh_supported(yi, vi, method):
        return fast.gosh_fits(yi, vi, masks, method)
    from ketameta._core.batch import fit_batch

    masks = np.ascontiguousarray(masks)  # the engine's sums run along C-ordered rows
    n = masks.shape[0]
    fit = fit_batch(
        np.broadcast_to(yi, (n, yi.size)),
        np.broadcast_to(vi, (n, vi.size)),
        mask=masks,
        method=method,
        ci_tau2=False,
        stats=False,
    )
    out = {"k": masks.sum(axis=1).astype(np.int64)}
    out.update(
        (name, np.asarray(fit[name], dtype=np.float64)) for name in ("estimate", "tau2", "i2", "q")
    )
    return out


def baujat(result: Any) -> pd.DataFrame:
    """Baujat's diagnostics (Baujat et al. 2002), as metafor's ``baujat()``: per study, its
    contribution to Q, ``x = (y_i - estimate)² / (v_i + tau²)``, and its influence on the pooled
    estimate, ``y = (estimate - estimate_(-i))² / se_(-i)²``.

    Examples
    --------
    >>> from ketameta import meta
    >>> res = meta([-0.5, -0.2, -0.4, -0.1], [0.04, 0.05, 0.03, 0.02], method="DL")
    >>> list(baujat(res).columns)
    ['x', 'y']
    """
    _need(result, 3, "baujat")
    loo = core.leave_one_out(result.yi, result.vi, method=result.method, test=result.test)
    x = (result.yi - result.estimate) ** 2 / (result.vi + result.tau2)
    y = (result.estimate - loo["estimate"]) ** 2 / loo["se"] ** 2
    return pd.DataFrame({"x": x, "y": y}, index=pd.Index(list(result.labels), name="study"))
