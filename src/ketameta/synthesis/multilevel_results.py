"""The result of :func:`ketameta.meta_mv` and its metafor-like printout (``print.rma.mv``).

The printout itself (``format_mv``) lives in `ketameta.synthesis.multilevel_print` and is
re-exported here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core.multilevel import blup as _blup
from ketameta._core.multilevel import i2_multilevel, profile_ci
from ketameta.synthesis import printing
from ketameta.synthesis.multilevel_print import format_mv
from ketameta.synthesis.printing import fmtx
from ketameta.synthesis.results import ResultMixin

__all__ = ["MetaMVResult", "RandomTerm", "format_mv"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term: ``~ 1 | name`` (``inner`` None) or ``~ inner | name``."""

    name: str
    inner: str | None
    struct: str | None
    labels: tuple[str, ...]  # level labels of a random intercept (sorted as R's factor)
    codes: np.ndarray = field(repr=False)


def _metafor_name(name: str, single_rho: bool) -> str:
    for a, b in (("sigma2", "sigma^2"), ("tau2", "tau^2"), ("gamma2", "gamma^2")):
        if name.startswith(a):
            return b + name[len(a) :]
    if single_rho and name.count(".") == 2:
        return name.split(".")[0]
    return name


@dataclass(frozen=True, repr=False)
class MetaMVResult(ResultMixin):
    """A fitted multilevel/multivariate model; ``print(res)`` shows metafor's ``print.rma.mv``.

    Attributes
    ----------
    coef : DataFrame
        Per term: ``estimate, se, statistic, pvalue, ci_low, ci_high``.
    vcov : DataFrame
        Covariance matrix of the coefficients.
    sigma2, tau2, rho, gamma2, phi : ndarray
        Variance components as metafor: ``sigma2`` per random intercept (outer level first),
        ``tau2``/``rho`` of the first ``~ inner | outer`` term, ``gamma2``/``phi`` of the second.
    loglik, deviance, aic, bic, aicc : float
        metafor's ``fitstats`` (restricted likelihood for REML).
    qe, qe_df, qe_pvalue, qm, qm_df, qm_pvalue : float / int
        (Residual) heterogeneity test and the omnibus test of the moderators (F with
        ``test="t"``).
    X, yi, V, data
        Design matrix, effects, sampling (co)variances and the rows used.
    """

    coef: pd.DataFrame
    vcov: pd.DataFrame
    sigma2: np.ndarray
    tau2: np.ndarray
    rho: np.ndarray
    gamma2: np.ndarray
    phi: np.ndarray
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    qe: float
    qe_df: int
    qe_pvalue: float
    qm: float
    qm_df: int
    qm_pvalue: float
    k: int
    p: int
    method: str
    test: str
    level: float
    random: tuple[str, ...]
    formula: str | None
    converged: bool
    terms: tuple[RandomTerm, ...] = field(repr=False)
    excluded: tuple[tuple[str, str], ...] = ()
    data: pd.DataFrame | None = field(default=None, repr=False)
    yi: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    V: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    X: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    design_info: Any = field(default=None, repr=False)
    _fit: Any = field(default=None, repr=False)
    _title = "Multivariate Meta-Analysis Model"

    # ---- scalars of an intercept-only model -----------------------------------------------
    def _only(self, column: str) -> float:
        if self.p != 1:
            raise AttributeError(f"{column}: the model has {self.p} coefficients; use .coef")
        return float(self.coef[column].iloc[0])

    @property
    def estimate(self) -> float:
        """The pooled estimate (intercept-only models)."""
        return self._only("estimate")

    @property
    def se(self) -> float:
        """Its standard error (intercept-only models)."""
        return self._only("se")

    @property
    def ci_low(self) -> float:
        return self._only("ci_low")

    @property
    def ci_high(self) -> float:
        return self._only("ci_high")

    @property
    def df(self) -> float | None:
        """Degrees of freedom of the t tests (``test="t"``), else None."""
        return float(self.k - self.p) if self.test == "t" else None

    @property
    def theta_names(self) -> list[str]:
        """metafor's names of every variance component (``sigma^2.1``, ``tau^2``, ``rho``)."""
        names = self._fit.theta_names
        single = sum(n.startswith("rho.") for n in names) == 1
        return [_metafor_name(n, single) for n in names]

    # ---- what robust() needs ---------------------------------------------------------------
    def marginal_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The fitted marginal covariance ``M`` as ``(row indices, block)`` pairs."""
        prob, q = self._fit.problem, self._fit.q
        ns = len(prob.icodes)
        gmats = [gt.gmatrix(q[sl])[0] for gt, sl in zip(prob.gterms, prob.slices, strict=True)]
        out = []
        for grp in prob.groups:
            M = grp.V.copy()
            for s, A in zip(q[:ns], grp.A, strict=True):
                M += s * A
            for G, S, ii in zip(gmats, grp.S, grp.inner, strict=True):
                M += S * G[ii[:, :, None], ii[:, None, :]]
            for rows, Mb in zip(grp.rows, M, strict=True):
                ok = rows >= 0
                out.append((rows[ok], Mb[np.ix_(ok, ok)]))
        return out

    # ---- further output --------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        """Per-record ``yi, vi, ci_low, ci_high``: each effect with its own interval
        (yi ± z·sqrt(vi) at ``level``, as `MetaResult.studies` and metafor's forest plot)."""
        V = self.V
        if hasattr(V, "diagonal") and not isinstance(V, np.ndarray):
            vi = np.asarray(V.diagonal(), dtype=float)
        else:
            V = np.asarray(V, dtype=float)
            vi = np.diag(V) if V.ndim == 2 else V
        half = stats.norm.ppf(0.5 + self.level / 200.0) * np.sqrt(vi)
        yi = np.asarray(self.yi, dtype=float)
        return pd.DataFrame({"yi": yi, "vi": vi, "ci_low": yi - half, "ci_high": yi + half})

    def summary(self) -> pd.DataFrame:
        """Coefficient table; variance components and fit statistics in ``attrs``."""
        out = self.coef.copy()
        out.attrs.update(
            dict(zip(self.theta_names, self._fit.theta.tolist(), strict=True)),
            loglik=self.loglik,
            aic=self.aic,
            bic=self.bic,
            qe=self.qe,
            qm=self.qm,
        )
        return out

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Profile-likelihood CIs of the variance components (metafor's ``confint.rma.mv``).

        Returns a DataFrame indexed by component (``sigma^2.1``, ``sigma.1``, ...,
        ``rho``) with ``estimate, ci_low, ci_high``; square-root rows follow each variance.

        Examples
        --------
        >>> import pandas as pd
        >>> from ketameta.synthesis.multilevel import meta_mv
        >>> df = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3, 4, 4], "yi": [.1, .3, .6, .4, -.2, 0,
        ...                    .7, .9], "vi": [.02] * 8})
        >>> meta_mv("yi", "vi", data=df, random="~ 1 | s").confint().round(3)
                   estimate  ci_low  ci_high
        sigma^2.1     0.140   0.032    1.298
        sigma.1       0.374   0.180    1.139
        """
        level = self.level if level is None else float(level)
        fit, rows, index = self._fit, [], []
        for j, name in enumerate(self.theta_names):
            if not fit.free[j]:
                continue
            est, lo, hi = profile_ci(fit, j, level)
            rows.append((est, lo, hi))
            index.append(name)
            if fit.problem.kinds[j] in ("var", "sd"):
                rows.append(tuple(np.sqrt(max(v, 0.0)) for v in (est, lo, hi)))
                index.append(name.replace("^2", ""))
        return pd.DataFrame(rows, index=index, columns=["estimate", "ci_low", "ci_high"])

    def blup(self, level: float | None = None) -> pd.DataFrame:
        """BLUPs of the random intercepts (metafor's ``ranef``): one row per level of each
        ``~ 1 | ...`` term with ``factor, level, pred, se, pi_low, pi_high``."""
        level = self.level if level is None else float(level)
        parts = []
        terms = [t for t in self.terms if t.inner is None]
        for term, b in zip(terms, _blup(self._fit, level), strict=True):
            parts.append(
                pd.DataFrame(
                    {
                        "factor": term.name,
                        "level": list(term.labels),
                        "pred": b["pred"],
                        "se": b["se"],
                        "pi_low": b["pi_low"],
                        "pi_high": b["pi_high"],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def i2(self) -> pd.DataFrame:
        """Multilevel I² (Cheung 2014), percent of total variance at each random-intercept
        level and in total, with the typical sampling variance of ``diag(V)``."""
        vi = np.diag(self.V) if np.ndim(self.V) == 2 else np.asarray(self.V)
        per, total = i2_multilevel(vi, self.sigma2)
        names = [t.name for t in self.terms if t.inner is None]
        return pd.DataFrame({"i2": [*per, total]}, index=[*names, "total"])

    def __str__(self) -> str:
        return format_mv(self)

    def text(self, **options: Any) -> str:
        return format_mv(self, **options)

    def __repr__(self) -> str:
        head = f"<MetaMVResult {self.method} k={self.k}"
        if self.p == 1:
            return (
                f"{head} estimate={fmtx(self.estimate)} [{fmtx(self.ci_low)}, "
                f"{fmtx(self.ci_high)}]>"
            )
        return f"{head} mods={self.formula!r} QM={fmtx(self.qm)} p={printing.fmtp(self.qm_pvalue)}>"

    def _repr_html_(self) -> str:
        table = self.coef.to_html(float_format=lambda x: f"{x:.4g}", border=0)
        text = format_mv(self).splitlines()
        return f"<div><strong>{html.escape(text[0])}</strong>{table}</div>"


def build_result(fit, X_df, y, Varr, used, rterms, mods, random, test, level, excluded):
    """Wrap a :class:`~ketameta._core.multilevel.MVFit` (z or t inference) in a MetaMVResult."""
    k, p = fit.k, fit.p
    stat, se = fit.beta / fit.se, fit.se
    if test == "t":
        df = float(k - p)
        crit = stats.t.ppf(0.5 + level / 200.0, df)
        pval = 2.0 * stats.t.sf(np.abs(stat), df)
        qm = fit.qm / fit.qm_df
        qm_p = float(stats.f.sf(qm, fit.qm_df, df))
    else:
        crit = stats.norm.ppf(0.5 + level / 200.0)
        pval = 2.0 * stats.norm.sf(np.abs(stat))
        qm, qm_p = fit.qm, fit.qm_pvalue
    names = list(X_df.columns)
    coef = pd.DataFrame(
        {
            "estimate": fit.beta,
            "se": se,
            "statistic": stat,
            "pvalue": pval,
            "ci_low": fit.beta - crit * se,
            "ci_high": fit.beta + crit * se,
        },
        index=pd.Index(names, name="term"),
    )
    return MetaMVResult(
        coef=coef,
        vcov=pd.DataFrame(fit.vb, index=names, columns=names),
        sigma2=fit.sigma2.copy(),
        tau2=fit.tau2.copy(),
        rho=fit.rho.copy(),
        gamma2=fit.gamma2.copy(),
        phi=fit.phi.copy(),
        loglik=fit.loglik,
        deviance=fit.deviance,
        aic=fit.aic,
        bic=fit.bic,
        aicc=fit.aicc,
        qe=fit.qe,
        qe_df=fit.qe_df,
        qe_pvalue=fit.qe_pvalue,
        qm=float(qm),
        qm_df=fit.qm_df,
        qm_pvalue=qm_p,
        k=k,
        p=p,
        method=fit.method,
        test=test,
        level=level,
        random=(random,) if isinstance(random, str) else tuple(random),
        formula=mods,
        converged=fit.converged,
        terms=tuple(rterms),
        excluded=excluded,
        data=used,
        yi=y,
        V=Varr,
        X=X_df.to_numpy(dtype=np.float64),
        design_info=getattr(X_df, "design_info", None),
        _fit=fit,
    )
