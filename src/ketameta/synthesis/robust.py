"""Cluster-robust inference (metafor's ``robust()``, clubSandwich's ``coef_test`` /
``Wald_test``) for ``meta()``, ``metareg()`` and ``meta_mv()`` results.

The fitted model's marginal covariance ``M`` is the working model (``W = M^-1``); the sandwich
estimator, its small-sample adjustments and the Satterthwaite / Hotelling-T² (HTZ) degrees of
freedom come from :mod:`ketameta._core.sandwich`. Adjustments:

* ``"CR0"``: no adjustment (metafor ``robust(adjust=FALSE)``);
* ``"CR1"``: ``m/(m-1)`` (clubSandwich's CR1, Stata's); ``"CR1p"``: ``m/(m-p)``, which is
  metafor's ``robust(adjust=TRUE)``; ``"CR1S"``: ``m(k-1)/((m-1)(k-p))``;
* ``"CR2"`` (default): bias-reduced linearization (clubSandwich; metafor's
  ``robust(clubSandwich=TRUE)``), with Satterthwaite df. A cluster whose adjustment matrix is
  singular uses the Moore-Penrose inverse square root, as clubSandwich.

What is read from the fitted model lives in `ketameta.synthesis.robust_inputs`, the printout
(``format_robust``, re-exported here) in `ketameta.synthesis.robust_print`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core.sandwich import RobustModel, coef_test, prepare_robust
from ketameta._core.sandwich import wald_test as _wald_test
from ketameta.synthesis import printing
from ketameta.synthesis.printing import fmtx
from ketameta.synthesis.results import ResultMixin
from ketameta.synthesis.robust_inputs import _cluster, _model_parts
from ketameta.synthesis.robust_print import format_robust

__all__ = ["RobustResult", "WaldTest", "format_robust", "robust", "wald_test"]

ADJUSTS = ("CR0", "CR1", "CR1p", "CR1S", "CR2")
TESTS = ("Satterthwaite", "naive-t", "naive-tp", "z")
WALD_TESTS = ("HTZ", "HTA", "HTB", "chi-sq", "Naive-F", "Naive-Fp")


@dataclass(frozen=True)
class WaldTest(ResultMixin):
    """A cluster-robust Wald test of ``C b = rhs`` (clubSandwich's ``Wald_test``).

    ``statistic`` is clubSandwich's ``Fstat`` (``delta Q / q``), ``Q`` the Wald statistic,
    ``df_num``/``df_denom`` the F degrees of freedom (``inf`` for chi-sq).
    """

    statistic: float
    Q: float
    delta: float
    df_num: float
    df_denom: float
    pvalue: float
    test: str
    adjust: str
    constraints: pd.DataFrame = field(repr=False)
    _title = "Cluster-robust Wald test"

    def summary(self) -> pd.DataFrame:
        keys = ("test", "statistic", "delta", "df_num", "df_denom", "pvalue")
        return pd.DataFrame([{key: getattr(self, key) for key in keys}])

    def __str__(self) -> str:
        dfs = (
            f"df = {printing._df(self.df_num)}"
            if np.isinf(self.df_denom)
            else f"df1 = {printing._df(self.df_num)}, df2 = {printing._df(self.df_denom)}"
        )
        name = "QM" if np.isinf(self.df_denom) else "F"
        p = printing.fmtp(self.pvalue, equal=True, sep=True)
        return (
            f"Cluster-robust Wald test ({self.test}, var-cov estimator {self.adjust}):\n"
            f"{name}({dfs}) = {fmtx(self.statistic)}, p-val {p}"
        )


@dataclass(frozen=True, repr=False)
class RobustResult(ResultMixin):
    """Cluster-robust tests of a fitted model; ``print(res)`` shows the coefficient table.

    Attributes
    ----------
    coef : DataFrame
        Per term: ``estimate, se, statistic, df, pvalue, ci_low, ci_high`` (t with ``df``).
    df : ndarray
        Degrees of freedom per coefficient (``inf`` for ``test="z"``).
    vcov : DataFrame
        The cluster-robust covariance matrix.
    adjust, test : str
        Small-sample adjustment (CR0, CR1, CR1p, CR1S, CR2) and df method.
    n_clusters, k, p : int
    qm, qm_df, qm_pvalue
        Omnibus test of the moderators (HTZ for Satterthwaite, else F(q, m - p) as metafor,
        F(q, m - 1) or chi-square); ``qm`` is the F statistic, ``qm_df`` (q, df2).
    """

    coef: pd.DataFrame
    df: np.ndarray
    vcov: pd.DataFrame
    adjust: str
    test: str
    n_clusters: int
    cluster_sizes: np.ndarray
    k: int
    p: int
    level: float
    qm: float
    qm_df: tuple[float, float]
    qm_pvalue: float
    btt: tuple[int, ...]
    model: RobustModel = field(repr=False)
    result: Any = field(repr=False, default=None)
    _title = "Cluster-robust inference"

    def summary(self) -> pd.DataFrame:
        out = self.coef.copy()
        out.attrs.update(
            adjust=self.adjust,
            test=self.test,
            n_clusters=self.n_clusters,
            qm=self.qm,
            qm_df=self.qm_df,
            qm_pvalue=self.qm_pvalue,
        )
        return out

    def wald_test(
        self, constraints: Any = None, *, terms: Any = None, rhs: Any = None, test: str = "HTZ"
    ) -> WaldTest:
        """Robust Wald test of ``C b = rhs``: ``constraints`` a (q, p) matrix (or a list of term
        names, as ``terms``: every named coefficient zero). See :func:`wald_test`."""
        return wald_test(self, terms, constraints=constraints, rhs=rhs, test=test)

    def __str__(self) -> str:
        return format_robust(self)

    def text(self, **options: Any) -> str:
        return format_robust(self, **options)

    def __repr__(self) -> str:
        return (
            f"<RobustResult {self.adjust} ({self.test}) k={self.k} "
            f"clusters={self.n_clusters} p={self.p}>"
        )

    def _repr_html_(self) -> str:
        table = self.coef.to_html(float_format=lambda x: f"{x:.4g}", border=0)
        return (
            f"<div><strong>Cluster-robust inference ({self.adjust}, {self.n_clusters} "
            f"clusters)</strong>{table}</div>"
        )


def robust(
    result: Any,
    cluster: Any,
    *,
    adjust: str | bool = "CR2",
    test: str | None = None,
    data: pd.DataFrame | None = None,
    level: float | None = None,
) -> RobustResult:
    """Cluster-robust tests and confidence intervals of a fitted model (metafor ``robust()``).

    Parameters
    ----------
    result : MetaResult, MetaRegResult or MetaMVResult
        A ``meta()``, ``metareg()`` or ``meta_mv()`` fit: its marginal covariance is the
        working model.
    cluster : str or array_like
        Cluster of each row used: a column of the result's data (``meta``, ``meta_mv``; for
        ``metareg`` pass ``data=``) or an array. Clusters must nest the model's blocks.
    adjust : {"CR2", "CR0", "CR1", "CR1p", "CR1S"} or bool
        Small-sample adjustment. metafor's ``robust(adjust=TRUE)`` is ``"CR1p"`` (``m/(m-p)``;
        clubSandwich's ``"CR1"`` is ``m/(m-1)``), ``adjust=FALSE`` is ``"CR0"``; ``True`` and
        ``False`` are accepted as those two.
    test : {"Satterthwaite", "naive-t", "naive-tp", "z"}, optional
        Degrees of freedom: Satterthwaite (default with CR2, clubSandwich), ``m - p``
        (``"naive-tp"``, metafor's robust() and the default otherwise), ``m - 1``, or normal.
    data : DataFrame, optional
        Where a column name ``cluster`` is looked up (default: the result's data).
    level : float, optional
        Confidence level (percent); default the result's.

    Returns
    -------
    RobustResult

    Examples
    --------
    >>> import pandas as pd
    >>> from ketameta.synthesis.multilevel import meta_mv
    >>> df = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3, 4, 4], "yi": [.1, .3, .6, .4, -.2, 0,
    ...                    .7, .9], "vi": [.02] * 8})
    >>> res = robust(meta_mv("yi", "vi", data=df, random="~ 1 | s"), "s")
    >>> res.coef.loc["intrcpt", ["estimate", "se", "df"]].round(4).tolist()
    [0.35, 0.1936, 3.0]
    """
    if isinstance(adjust, bool):
        adjust = "CR1p" if adjust else "CR0"
    if adjust not in ADJUSTS:
        raise ValueError(f"robust(): adjust must be one of {', '.join(ADJUSTS)}, got {adjust!r}")
    test = ("Satterthwaite" if adjust == "CR2" else "naive-tp") if test is None else test
    if test not in TESTS:
        raise ValueError(f"robust(): test must be one of {', '.join(TESTS)}, got {test!r}")
    level = float(getattr(result, "level", 95.0) if level is None else level)
    X, y, M, names, own = _model_parts(result)
    k, p = X.shape
    codes = _cluster(cluster, own if data is None else data, result, k)
    try:
        mod = prepare_robust(X, y, M, codes)
    except ValueError as err:
        raise ValueError(f"robust(): {err}") from None
    if mod.n_clusters <= p and adjust == "CR1p":
        raise ValueError(
            f"robust(): CR1p needs more clusters ({mod.n_clusters}) than coefficients ({p})"
        )
    ct = coef_test(mod, type=adjust, test=test)
    finite = np.isfinite(ct.df)
    crit = np.where(
        finite,
        stats.t.ppf(0.5 + level / 200.0, np.where(finite, ct.df, 1.0)),
        stats.norm.ppf(0.5 + level / 200.0),
    )
    coef = pd.DataFrame(
        {
            "estimate": ct.beta,
            "se": ct.se,
            "statistic": ct.tstat,
            "df": ct.df,
            "pvalue": ct.p_value,
            "ci_low": ct.beta - crit * ct.se,
            "ci_high": ct.beta + crit * ct.se,
        },
        index=pd.Index(names, name="term"),
    )
    intercept = names[0] == "intrcpt" and p > 1
    btt = tuple(range(1, p)) if intercept else tuple(range(p))
    wtest = {"Satterthwaite": "HTZ", "naive-t": "Naive-F", "naive-tp": "Naive-Fp", "z": "chi-sq"}[
        test
    ]
    wt = _wald_test(mod, constraints=np.eye(p)[list(btt)], type=adjust, test=wtest)
    stat = wt.Q if wtest == "chi-sq" else wt.F
    return RobustResult(
        coef=coef,
        df=np.asarray(ct.df, dtype=np.float64),
        vcov=pd.DataFrame(ct.vcov, index=names, columns=names),
        adjust=adjust,
        test=test,
        n_clusters=mod.n_clusters,
        cluster_sizes=np.array([m.size for m in mod.members]),
        k=k,
        p=p,
        level=level,
        qm=float(stat),
        qm_df=(float(wt.df_num), float(wt.df_denom)),
        qm_pvalue=float(wt.p_value),
        btt=btt,
        model=mod,
        result=result,
    )


def wald_test(
    result: RobustResult,
    terms: Any = None,
    *,
    constraints: Any = None,
    rhs: Any = None,
    test: str = "HTZ",
) -> WaldTest:
    """Cluster-robust Wald test of several coefficients (clubSandwich's ``Wald_test``).

    Parameters
    ----------
    result : RobustResult
        From :func:`robust` (its adjustment is used).
    terms : list of str, optional
        Coefficients tested jointly equal to zero (clubSandwich's ``constrain_zero``).
    constraints : array_like (q, p) or DataFrame, optional
        Constraint matrix ``C`` instead (e.g. ``[[0, -1, 1]]`` for equality of two terms).
    rhs : array_like (q,), optional
        Values under the null (default 0).
    test : {"HTZ", "HTA", "HTB", "chi-sq", "Naive-F", "Naive-Fp"}
        HTZ: Hotelling's T² with the approximate df of Tipton & Pustejovsky (2015).

    Returns
    -------
    WaldTest

    Examples
    --------
    >>> import pandas as pd
    >>> from ketameta.synthesis.multilevel import meta_mv
    >>> df = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "x": [0, 1] * 5,
    ...                    "yi": [.1, .3, .6, .4, -.2, 0, .7, .9, .2, .5], "vi": [.02] * 10})
    >>> fit = meta_mv("yi", "vi", data=df, random="~ 1 | s", mods="~ x")
    >>> round(wald_test(robust(fit, "s"), ["x"]).pvalue, 4)
    0.1836
    """
    if not isinstance(result, RobustResult):
        raise TypeError("wald_test(): give a robust() result")
    if test not in WALD_TESTS:
        raise ValueError(f"wald_test(): test must be one of {', '.join(WALD_TESTS)}")
    names = list(result.coef.index)
    if (
        constraints is not None
        and terms is None
        and all(isinstance(c, str) for c in np.ravel(constraints))
    ):
        terms, constraints = list(np.ravel(constraints)), None
    if (terms is None) == (constraints is None):
        raise ValueError("wald_test(): give either terms or constraints")
    if terms is not None:
        terms = [terms] if isinstance(terms, str) else list(terms)
        unknown = [t for t in terms if t not in names]
        if unknown:
            raise ValueError(f"wald_test(): terms {unknown} are not coefficients ({names})")
        C = np.eye(result.p)[[names.index(t) for t in terms]]
    else:
        C = np.atleast_2d(np.asarray(constraints, dtype=np.float64))
        if C.shape[1] != result.p:
            raise ValueError(f"wald_test(): constraints must have {result.p} columns ({names})")
    wt = _wald_test(result.model, constraints=C, rhs=rhs, type=result.adjust, test=test)
    return WaldTest(
        statistic=float(wt.F),
        Q=float(wt.Q),
        delta=float(wt.delta),
        df_num=float(wt.df_num),
        df_denom=float(wt.df_denom),
        pvalue=float(wt.p_value),
        test=test,
        adjust=result.adjust,
        constraints=pd.DataFrame(C, columns=names),
    )
