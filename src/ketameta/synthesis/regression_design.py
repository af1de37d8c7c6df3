"""The design side of ``metareg()``: moderator columns, the fast design matrix, checks, se(tau²).

Helpers of `ketameta.synthesis.regression`: which columns a formula names, the design matrix of
``"~ x1 + x2"`` built without patsy, empty factor levels and collinear terms, the
intercept-only fit used for R², and metafor's ``se.tau2`` with moderators.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ketameta._core.batch import fit_batch
from ketameta._core.fastpath import fit_one
from ketameta._core.regression import normal_traces


def _variables(data: pd.DataFrame, mods: str, skip: tuple[str, ...]) -> list[str]:
    """Columns of ``data`` that the formula names (for messages)."""
    return [
        c
        for c in data.columns
        if c not in skip and re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", mods)
    ]


_SIMPLE = re.compile(r"\s*~\s*(?:1\s*\+\s*)?([A-Za-z_]\w*(?:\s*\+\s*[A-Za-z_]\w*)*)\s*")


def _simple_design(data: pd.DataFrame, mods: str) -> pd.DataFrame | None:
    """The design matrix of ``"~ x1 + x2 + ..."`` (numeric columns, with the intercept) as
    patsy builds it (columns ``Intercept, x1, x2, ...``; rows with a missing value dropped),
    without patsy (~15 ms a call). None for any other formula: patsy builds it then."""
    match = _SIMPLE.fullmatch(mods)
    if match is None:
        return None
    names = [n.strip() for n in match.group(1).split("+")]
    if len(set(names)) != len(names) or any(n not in data.columns for n in names):
        return None
    columns = [data[n] for n in names]
    if not all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "fiu" for c in columns):
        return None  # bool, categorical, text, nullable types: patsy's rules apply
    values = np.column_stack([np.ones(len(data))] + [c.to_numpy(dtype=float) for c in columns])
    keep = ~np.isnan(values).any(axis=1)
    return pd.DataFrame(values[keep], index=data.index[keep], columns=["Intercept", *names])


def _intercept_only(y: np.ndarray, v: np.ndarray, method: str) -> dict:
    """The model without moderators (for R²): the lean single fit, else the batched one."""
    out = fit_one(y, v, method=method)
    return out if out is not None else fit_batch(y, v, method=method, ci_tau2=False)


def _check_levels(data: pd.DataFrame, variables: list[str]) -> None:
    """A declared category with no study gives an all-zero design column: say which."""
    for name in variables:
        column = data[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            empty = [str(c) for c in column.cat.categories if not (column == c).any()]
            if empty:
                raise ValueError(
                    f"moderator {name!r}: level(s) {', '.join(empty)} have no studies in the "
                    "rows used; drop them (Series.cat.remove_unused_categories())"
                )


def _collinear_terms(X_df: pd.DataFrame) -> list[str]:
    """Design columns involved in a linear dependency (non-zero in the null space)."""
    X = X_df.to_numpy(dtype=float)
    _, sv, vt = np.linalg.svd(X)
    null = vt[np.sum(sv > sv[0] * max(X.shape) * np.finfo(float).eps) :]
    return [c for c, w in zip(X_df.columns, np.abs(null).max(axis=0), strict=True) if w > 1e-8]


def _se_tau2(v: np.ndarray, X: np.ndarray, tau2: float, method: str) -> float:
    """metafor's se.tau2 with moderators (REML, ML, DL, PM); NaN for the other estimators."""
    k, p = X.shape
    t = max(tau2, 0.0)
    w = 1.0 / (v + (0.0 if method == "DL" else t))
    tr, tr_pp, _ = normal_traces(X, w)  # p x p algebra: no k x k projection matrix
    if method == "REML":
        return float(np.sqrt(2.0 / tr_pp))
    if method == "ML":
        return float(np.sqrt(2.0 / np.sum(w * w)))
    if method == "DL":
        return float(np.sqrt(2.0 * (k - p) + 4.0 * t * tr + 2.0 * t * t * tr_pp) / tr)
    if method == "PM":
        return float(np.sqrt(2.0 * k * k / (k - p)) / np.sum(w))
    return float("nan")
