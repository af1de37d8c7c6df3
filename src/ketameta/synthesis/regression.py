"""Meta-regression: ``metareg()`` and its permutation test, as metafor's ``rma(mods=)``.

Formulas are patsy formulas (``"~ ablat"``, ``"~ C(route) + dose_mg_kg"``); categorical terms
use treatment coding with the first level (sorted) as reference, as R's ``factor()``.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy

from ketameta._core.batch import fit_batch
from ketameta._core.fastpath import fit_one
from ketameta._core.regression import (
    METHODS,
    distinct_permutation_count,
    distinct_permutations,
    fit_mods,
    normal_traces,
    predict_mods,
    tau2_mods,
)
from ketameta.exceptions import ConvergenceWarning, DataValidationError, ExcludedStudyWarning
from ketameta.synthesis import _parallel, printing
from ketameta.synthesis.results import ResultMixin

COMPARE_TOL = math.sqrt(np.finfo(float).eps)  # ties in permutation statistics, as metafor


@dataclass(frozen=True)
class PermutationResult(ResultMixin):
    """Permutation p-values of a meta-regression (metafor's ``permutest()``)."""

    pvalue: pd.Series
    qm_pvalue: float
    n_permutations: int
    exact: bool
    _title = "Permutation test"

    def summary(self) -> pd.DataFrame:
        out = pd.DataFrame({"pvalue_perm": self.pvalue})
        out.loc["QM (omnibus)", "pvalue_perm"] = self.qm_pvalue
        return out


@dataclass(frozen=True, repr=False)
class MetaRegResult(ResultMixin):
    """A fitted mixed-effects meta-regression; ``print(res)`` shows metafor's ``print.rma``.

    ``measure`` comes from ``data.attrs`` (escalc's; None otherwise): ratio measures stay on
    the log scale. ``se_tau2`` is metafor's se.tau2 (REML, ML, DL, PM; NaN otherwise).
    """

    coef: pd.DataFrame
    qm: float
    qm_df: int
    qm_pvalue: float
    qe: float
    qe_df: int
    qe_pvalue: float
    tau2: float
    i2: float
    h2: float
    r2: float
    k: int
    p: int
    method: str
    test: str
    level: float
    formula: str
    excluded: tuple[tuple[str, str], ...] = ()
    measure: str | None = None
    se_tau2: float = float("nan")
    yi: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    vi: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    X: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    design_info: Any = field(default=None, repr=False)
    _fit: dict = field(default=None, repr=False)  # type: ignore[assignment]
    _title = "Mixed-effects meta-regression"

    def summary(self, transform: str | None = None) -> pd.DataFrame:
        """Coefficient table; the omnibus and residual tests are in ``attrs``.

        ``transform="exp"`` (ratio measures): ``estimate``, ``ci_low``, ``ci_high`` become
        ``exp_estimate``, ``exp_ci_low``, ``exp_ci_high`` and ``se`` becomes ``se_log``.
        """
        out = self.coef.copy()
        out.attrs.update(
            qm=self.qm, qm_pvalue=self.qm_pvalue, qe=self.qe, tau2=self.tau2, i2=self.i2, r2=self.r2
        )
        return printing.apply_transform(out, self.measure, transform)

    def predict(self, newdata: pd.DataFrame) -> pd.DataFrame:
        """Predicted effects with CI and PI at new moderator values (``predict.rma``)."""
        info = self.design_info
        if info is None:  # numeric terms only (see _simple_design): the same design anywhere
            info = patsy.dmatrix(self.formula, newdata.iloc[:1], NA_action="raise").design_info
        (X_new,) = patsy.build_design_matrices([info], newdata)
        pred, se, lo, hi, plo, phi = predict_mods(np.asarray(X_new), self._fit, self.tau2)
        return pd.DataFrame(
            {"pred": pred, "se": se, "ci_low": lo, "ci_high": hi, "pi_low": plo, "pi_high": phi},
            index=newdata.index,
        )

    def permutest(
        self,
        n_perm: int = 1000,
        seed: int | None = None,
        exact: Any = "auto",
        *,
        executor: Any = None,
    ):
        """Permutation p-values as metafor's ``permutest()``.

        Intercept-only models flip the signs of ``yi`` (2^k patterns); models with moderators
        permute the rows of the model matrix (``k! / prod(n_g!)`` distinct orders when groups
        of ``n_g`` studies share identical moderator values, as metafor counts them). The test
        is exact (every distinct pattern, once) when ``exact=True`` or, with ``"auto"``, when
        there are at most ``n_perm`` patterns (metafor's default ``exact=FALSE`` switches the
        same way; ``exact=False`` here forces random draws); otherwise ``n_perm`` patterns are
        used of which the first is the observed data and ``n_perm - 1`` are random (seeded),
        as metafor, so the p-value is ``(1 + #{|z*| >= |z|}) / n_perm``. Ties are counted with
        metafor's tolerance ``sqrt(machine eps)``. The patterns are drawn (or enumerated) here,
        then fitted as vectorised batches of 4096 (``ketameta._core.regression``); ``executor``
        (a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``) fits the batches
        elsewhere, with the same numbers as in process (see ``docs/distributed.md``).

        Returns
        -------
        PermutationResult
            ``pvalue`` (Series by term), ``qm_pvalue``, ``n_permutations``, ``exact``.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5, 0.4], "vi": [0.02] * 5,
        ...                    "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
        >>> metareg(df, "~ x", method="DL").permutest().n_permutations
        120
        """
        return _permutest(self, n_perm, seed, exact, executor)


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


def metareg(
    data: pd.DataFrame,
    mods: str,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    yi: str = "yi",
    vi: str = "vi",
) -> MetaRegResult:
    """Fit a mixed-effects meta-regression, as ``rma(yi, vi, mods=, method=, test=)``.

    Parameters
    ----------
    data : DataFrame
        Effect sizes (``yi``, ``vi``) and moderator columns.
    mods : str
        A patsy formula such as ``"~ ablat"`` or ``"~ C(route) + dose_mg_kg"``.
    method : str
        tau² estimator with moderators, as metafor's ``rma(mods=)``: ``"REML"`` (default),
        ``"ML"``, ``"DL"``, ``"HE"``, ``"HS"``, ``"HSk"``, ``"SJ"``, ``"PM"``, ``"MP"``,
        ``"PMM"``, ``"EB"``, ``"DLIT"``, ``"SJIT"``, ``"FE"``, ``"EE"`` (``METHODS`` of
        `ketameta._core.regression`). Iterative ones are solved to exact roots.
    test : {"z", "t", "knha", "adhoc"}
        ``"z"``: Wald z tests and QM as chi-square. ``"t"``: the same covariance with t(k-p)
        tests and QM as F(m, k-p). ``"knha"`` scales the covariance by ``y'Py/(k-p)``,
        ``"adhoc"`` by ``max(1, y'Py/(k-p))``: both t(k-p) tests and QM as F(m, k-p).

    Returns
    -------
    MetaRegResult
        ``coef`` (estimate, se, statistic, pvalue, ci_low, ci_high per term), ``qm`` with
        ``qm_pvalue`` (omnibus test of the moderators), ``qe``/``qe_pvalue`` (residual
        heterogeneity), ``tau2``, ``i2``/``h2`` (residual; I² in percent) and ``r2`` (percent of
        tau² accounted for, ``max(0, 100 (tau²_RE - tau²_ME) / tau²_RE)`` as metafor; for
        FE/EE models metafor 3.8.1 reports ``max(0, 100 (H²_0 - H²) / H²_0)`` with
        ``H² = QE / (k - p)`` and ``H²_0`` of the intercept-only model (not documented by
        metafor; matched on its output), and so does ketameta; NaN without an intercept).

    Notes
    -----
    Validated against metafor 3.8.1 (BCG trials, ``mods = ~ ablat`` and ``~ ablat + year``;
    subgroups as factors) to 1e-8 (closed form) and 1e-6 (iterative). REML/ML/PM iterate to
    1e-12, tighter than metafor's defaults.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5, 0.4], "vi": [0.02] * 5,
    ...                    "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> res = metareg(df, "~ x", method="DL")
    >>> round(float(res.coef.loc["x", "estimate"]), 3)
    0.08
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError("data must be a pandas DataFrame with yi, vi and the moderators")
    for column in (yi, vi):
        if column not in data.columns:
            raise ValueError(f"column {column!r} is not in data")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(level, (int, float)) or not 0 < level < 100:
        raise ValueError(f"level must be a percentage between 0 and 100, got {level!r}")
    if test not in ("z", "t", "knha", "adhoc"):
        raise ValueError(f"test must be 'z' or 'knha' (or 't', 'adhoc'), got {test!r}")
    variables = _variables(data, mods, (yi, vi))
    X_all = _simple_design(data, mods)
    simple = X_all is not None
    if not simple:
        try:
            X_all = patsy.dmatrix(mods, data, return_type="dataframe", NA_action="drop")
        except patsy.PatsyError as err:
            raise ValueError(f"mods: cannot build the design matrix from {mods!r}: {err}") from err
    missing = [] if len(X_all) == len(data) else [r for r in data.index if r not in X_all.index]
    excluded: list[tuple[str, str]] = []
    if missing:
        for r in missing:
            names = [c for c in variables if pd.isna(data.at[r, c])] or variables
            excluded.append((str(r), f"missing moderator value ({', '.join(names)})"))
        listed = "; ".join(f"{r}: {why}" for r, why in excluded)
        warnings.warn(
            f"metareg(): {len(missing)} row(s) excluded for missing moderator values: {listed}",
            ExcludedStudyWarning,
            stacklevel=2,
        )
        data = data.drop(index=missing)
    _check_levels(data, variables)
    if missing and not simple:  # rebuilt on the rows kept (levels seen only there go)
        X_df = patsy.dmatrix(mods, data, return_type="dataframe", NA_action="raise")
    else:  # the design matrix is built once
        X_df = X_all
    X = X_df.to_numpy(dtype=float)
    y = data[yi].to_numpy(dtype=float)
    v = data[vi].to_numpy(dtype=float)
    ok = np.isfinite(y) & np.isfinite(v) & (v > 0)
    bad = [] if ok.all() else [str(r) for r in data.index[~ok]]
    if bad:
        raise DataValidationError(
            f"{yi!r} and {vi!r} must be finite with {vi!r} > 0; rows {', '.join(bad)} are not",
            problems=[{"row": r, "column": f"{yi}/{vi}"} for r in bad],
        )
    k, p = X.shape
    for term in X_df.columns[1:]:
        if np.ptp(X_df[term].to_numpy()) == 0:
            raise ValueError(f"moderator term {term!r} is constant in the rows used")
    if k <= p:
        raise ValueError(
            f"mods {mods!r} has {p} parameters ({', '.join(X_df.columns)}) and needs more than "
            f"{p} studies; there are {k}"
        )
    if np.linalg.matrix_rank(X) < p:
        raise ValueError(
            f"moderators are collinear: design columns {', '.join(_collinear_terms(X_df))} "
            "are linearly dependent"
        )
    tau2, converged = tau2_mods(y, v, X, method)
    if not converged:
        warnings.warn(f"metareg(): {method} did not converge", ConvergenceWarning, stacklevel=2)
    has_intercept = "Intercept" in X_df.columns
    fit = fit_mods(
        y, v, X, tau2, test=test, level=level, intercept=has_intercept, fixed=method in ("FE", "EE")
    )
    r2 = float("nan")
    if method in ("FE", "EE") and has_intercept and p > 1:
        # metafor 3.8.1's R² of a fixed-effects model: the relative reduction of H² = QE/df
        h2_null = float(_intercept_only(y, v, method)["q"]) / (k - 1)
        r2 = max(0.0, 100.0 * (h2_null - fit["h2"]) / h2_null) if h2_null > 0 else 0.0
    elif has_intercept and p > 1:
        tau2_re = float(_intercept_only(y, v, method)["tau2"])
        r2 = max(0.0, 100.0 * (tau2_re - tau2) / tau2_re) if tau2_re > 0 else 0.0
    names = ["intrcpt" if c == "Intercept" else c for c in X_df.columns]
    coef = pd.DataFrame(
        {
            "estimate": fit["b"],
            "se": fit["se"],
            "statistic": fit["statistic"],
            "pvalue": fit["pvalue"],
            "ci_low": fit["ci_low"],
            "ci_high": fit["ci_high"],
        },
        index=pd.Index(names, name="term"),
    )
    return MetaRegResult(
        coef=coef,
        qm=fit["qm"],
        qm_df=fit["qm_df"],
        qm_pvalue=fit["qm_pvalue"],
        qe=fit["qe"],
        qe_df=fit["qe_df"],
        qe_pvalue=fit["qe_pvalue"],
        tau2=tau2,
        i2=fit["i2"],
        h2=fit["h2"],
        r2=r2,
        k=k,
        p=p,
        method=method,
        test=test,
        level=level,
        formula=mods,
        excluded=tuple(excluded),
        measure=data.attrs.get("measure"),
        se_tau2=_se_tau2(v, X, tau2, method),
        yi=y,
        vi=v,
        X=X,
        design_info=None if simple else X_df.design_info,
        _fit=fit,
    )


def permutest(
    result: MetaRegResult,
    n_perm: int = 1000,
    *,
    seed: int | None = None,
    exact: Any = "auto",
    executor: Any = None,
) -> PermutationResult:
    """Permutation test of a fitted meta-regression (``result.permutest``, as a function).

    ``executor`` (a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``) fits
    the permutations in chunks of 4096 on its workers; the permutations themselves are drawn
    from ``seed`` here, so the result is the in-process one whatever the executor.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"yi": [0.1, 0.3, 0.2, 0.5, 0.4], "vi": [0.02] * 5,
    ...                    "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> perm = permutest(metareg(df, "~ x", method="DL"))
    >>> perm.n_permutations, round(float(perm.pvalue["x"]), 4)  # 16 of the 5! orders
    (120, 0.1333)
    """
    return _permutest(result, n_perm, seed, exact, executor)


MAX_EXACT = 2_000_000  # exact=True beyond this many permutations would not fit in memory


def _permutest(res: MetaRegResult, n_perm: int, seed: int | None, exact: Any, executor: Any = None):
    if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 2:
        raise ValueError(f"n_perm must be an integer >= 2, got {n_perm!r}")
    if exact not in ("auto", True, False):
        raise ValueError(f"exact must be 'auto', True or False, got {exact!r}")
    k = res.k
    intercept_only = res.p == 1 and res.coef.index[0] == "intrcpt"
    n_patterns = 2**k if intercept_only else distinct_permutation_count(res.X)
    use_exact = n_patterns <= n_perm if exact == "auto" else bool(exact)
    if use_exact and n_patterns > MAX_EXACT:
        raise ValueError(
            f"exact=True needs {n_patterns} permutations (more than {MAX_EXACT}); "
            "use exact=False with n_perm random permutations"
        )
    rng = np.random.default_rng(seed)
    obs_z = np.asarray(res.coef["statistic"])
    if intercept_only:
        signs = (
            np.array(list(itertools.product([1.0, -1.0], repeat=k)))
            if use_exact
            else np.vstack([np.ones(k), rng.choice([-1.0, 1.0], size=(n_perm - 1, k))])
        )
        args = (res.yi, res.vi, res.method, res.test, res.level)
        parts = _map_permutations(_parallel.sign_flip_chunk, signs, args, executor)
        z_perm = np.concatenate([p[0] for p in parts])[:, None]
        qm_perm, qm_obs = z_perm[:, 0] ** 2, obs_z[0] ** 2
        converged = np.concatenate([p[1] for p in parts])
    else:
        orders = (
            distinct_permutations(res.X)
            if use_exact
            else np.vstack(
                [np.arange(k), rng.permuted(np.tile(np.arange(k), (n_perm - 1, 1)), axis=1)]
            )
        )
        args = (res.yi, res.vi, res.X, res.method, res.test, res.coef.index[0] == "intrcpt")
        parts = _map_permutations(_parallel.row_order_chunk, orders, args, executor)
        z_perm, qm_perm, converged = (np.concatenate([p[i] for p in parts]) for i in range(3))
        qm_obs = res.qm
    if not converged.all():
        warnings.warn(
            f"permutest(): {int((~converged).sum())} permuted fits did not converge "
            "(their statistics are used as they stand)",
            ConvergenceWarning,
            stacklevel=3,
        )
    pvals = (np.abs(z_perm) >= np.abs(obs_z) - COMPARE_TOL).mean(axis=0)
    qm_p = float((qm_perm >= qm_obs - COMPARE_TOL).mean())
    return PermutationResult(
        pvalue=pd.Series(pvals, index=res.coef.index, name="pvalue_perm"),
        qm_pvalue=qm_p,
        n_permutations=int(z_perm.shape[0]),
        exact=use_exact,
    )


def _map_permutations(fn: Any, patterns: np.ndarray, args: tuple, executor: Any) -> list:
    """``fn(chunk, *args)`` over chunks of 4096 patterns, in order, in process or on
    ``executor`` (the same chunks either way, so the same numbers)."""
    bounds = _parallel.chunk_bounds(len(patterns), _parallel.PERMUTATION_CHUNK)
    pieces = [patterns[a:b] for a, b in bounds]
    consts = [[a] * len(pieces) for a in args]
    return list(_parallel.map_chunks(fn, pieces, *consts, executor=executor))
