"""Meta-regression: ``metareg()`` and its permutation test, as metafor's ``rma(mods=)``.

Formulas are patsy formulas (``"~ ablat"``, ``"~ C(route) + dose_mg_kg"``); categorical terms
use treatment coding with the first level (sorted) as reference, as R's ``factor()``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy

from ketameta._core.regression import METHODS, fit_mods, predict_mods, tau2_mods
from ketameta.exceptions import ConvergenceWarning, DataValidationError, ExcludedStudyWarning
from ketameta.synthesis import printing
from ketameta.synthesis.regression_design import (
    _check_levels,
    _collinear_terms,
    _intercept_only,
    _se_tau2,
    _simple_design,
    _variables,
)
from ketameta.synthesis.regression_perm import (
    COMPARE_TOL,
    MAX_EXACT,
    PermutationResult,
    _permutest,
)
from ketameta.synthesis.results import ResultMixin

__all__ = [
    "COMPARE_TOL",
    "MAX_EXACT",
    "MetaRegResult",
    "PermutationResult",
    "metareg",
    "permutest",
]


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
