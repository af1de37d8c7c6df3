"""Frozen result objects: what every analysis returns.

Each result is a small frozen dataclass of named numbers (metafor's vocabulary: ``estimate``,
``se``, ``ci_low``, ``tau2``, ``i2``, ...). ``summary()`` gives a tidy DataFrame and Jupyter
shows that table through ``_repr_html_``. Results never recompute; plots and tables only read them.
The shared mixins and the deferred-field descriptor live in `ketameta.synthesis.results_base`
and are re-exported here.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ketameta.synthesis import printing
from ketameta.synthesis.results_base import (
    _DEFERRED_FIELDS,
    ResultMixin,
    StudyRowsMixin,
    _Deferred,
)

__all__ = [
    "_DEFERRED_FIELDS",
    "BatchResult",
    "BinaryResult",
    "MetaResult",
    "ResultMixin",
    "StudyRowsMixin",
    "_Deferred",
]


@dataclass(frozen=True, eq=False, repr=False)
class MetaResult(StudyRowsMixin, ResultMixin):
    """A fitted common-effect or random-effects meta-analysis (metafor's ``rma.uni`` record).

    Attributes (metafor's names in brackets): ``k``; ``estimate`` [b], ``se``, ``statistic``
    [zval, a t value when ``test`` is ``"t"``, ``"knha"`` or ``"adhoc"``], ``pvalue`` [pval],
    ``ci_low``/``ci_high`` [ci.lb/ci.ub]; ``pi_low``/``pi_high`` [predict()'s pi.lb/pi.ub];
    ``tau2`` with its Q-profile interval ``tau2_ci``, ``tau``/``tau_ci``, ``i2``
    (percent)/``i2_ci``, ``h2``/``h2_ci`` [confint()]; ``q``, ``q_df``, ``q_pvalue`` [QE, QEp];
    ``weights`` (percent per study); ``method``, ``test``, ``level`` (percent), ``df`` (t df for
    t/knha/adhoc, else None); the inputs ``yi``, ``vi``, ``labels``; ``measure`` and
    ``favours_group1`` (from escalc); ``excluded`` (``(label, reason)`` pairs excluded
    upstream); ``data`` (the rows used, or None); ``converged``; ``vt`` (typical within-study
    variance used for I² and H²); ``se_tau2`` [se.tau2]; ``loglik``, ``deviance``, ``aic``,
    ``bic``, ``aicc`` [fitstats(): restricted likelihood for REML, ML likelihood otherwise].
    Ratio measures (RR, OR, ROM, PETO) stay on the log scale here.

    Examples
    --------
    >>> from ketameta.synthesis.pooling import meta
    >>> res = meta([0.10, 0.35, 0.62, 0.21], [0.04, 0.03, 0.05, 0.02], method="DL")
    >>> res.k, round(res.estimate, 4), round(res.tau2, 4)
    (4, 0.2931, 0.0056)
    >>> res.summary()[["k", "estimate", "ci_low", "ci_high"]].round(3)
              k  estimate  ci_low  ci_high
    estimate  4     0.293   0.104    0.483
    >>> res.studies()["weight"].round(1).tolist()
    [20.5, 26.2, 16.8, 36.5]
    """

    k: int
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    tau: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_pvalue: float
    weights: np.ndarray
    method: str
    test: str
    level: float
    df: int | None
    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    measure: str | None = None
    favours_group1: str | None = None
    excluded: tuple[tuple[str, str], ...] = ()
    data: pd.DataFrame | None = field(default=None, repr=False)
    converged: bool = True
    vt: float = float("nan")
    # Computed on first access from ``_deferred`` (see :class:`_Deferred`) when not given:
    tau2_ci: tuple[float, float] = _Deferred()
    tau_ci: tuple[float, float] = _Deferred()
    i2_ci: tuple[float, float] = _Deferred()
    h2_ci: tuple[float, float] = _Deferred()
    se_tau2: float = _Deferred()
    loglik: float = _Deferred()
    deviance: float = _Deferred()
    aic: float = _Deferred()
    bic: float = _Deferred()
    aicc: float = _Deferred()
    _deferred: Any = field(default=None, repr=False)

    _title = "Meta-analysis"

    @classmethod
    def _from_fields(cls, **values: Any) -> MetaResult:
        """The instance ``MetaResult(**values)`` builds, without the generated ``__init__``
        (one ``object.__setattr__`` per field, ~40 of them: a sixth of a small fit). For
        ``meta()``, which passes every field without a default; no validation happens in
        ``__init__`` either way."""
        obj = object.__new__(cls)
        d = obj.__dict__
        d.update(_meta_defaults())
        for name, value in values.items():
            d["_v_" + name if name in _DEFERRED_FIELDS else name] = value
        return obj

    def summary(self, transform: str | None = None) -> pd.DataFrame:
        """One-row DataFrame: pooled estimate, its test and intervals, and heterogeneity.

        Parameters
        ----------
        transform : {None, "exp"}
            None: the numbers as stored (log scale for RR, OR, ROM, PETO). ``"exp"`` (ratio
            measures only): ``estimate``, ``ci_low``, ``ci_high``, ``pi_low``, ``pi_high``
            replaced by ``exp_estimate``, ``exp_ci_low``, ... and ``se`` renamed ``se_log``
            (see :func:`ketameta.synthesis.printing.apply_transform`).

        Returns
        -------
        DataFrame
            Columns ``k, estimate, se, statistic, pvalue, ci_low, ci_high, pi_low, pi_high,
            tau2, tau2_ci_low, tau2_ci_high, tau, i2`` (percent), ``i2_ci_low, i2_ci_high, h2,
            q, q_df, q_pvalue, method, test``. The index holds the measure (or "estimate").
        """
        row = {
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "pi_low": self.pi_low,
            "pi_high": self.pi_high,
            "tau2": self.tau2,
            "tau2_ci_low": self.tau2_ci[0],
            "tau2_ci_high": self.tau2_ci[1],
            "tau": self.tau,
            "i2": self.i2,
            "i2_ci_low": self.i2_ci[0],
            "i2_ci_high": self.i2_ci[1],
            "h2": self.h2,
            "q": self.q,
            "q_df": self.q_df,
            "q_pvalue": self.q_pvalue,
            "method": self.method,
            "test": self.test,
        }
        table = pd.DataFrame([row], index=[self.measure or "estimate"])
        return printing.apply_transform(table, self.measure, transform)


@lru_cache(maxsize=1)
def _meta_defaults() -> dict:
    """``MetaResult``'s field defaults as stored in an instance ``__dict__``."""
    out = {}
    for f in fields(MetaResult):
        if f.default is not MISSING:
            out["_v_" + f.name if f.name in _DEFERRED_FIELDS else f.name] = f.default
    return out


@dataclass(frozen=True, eq=False, repr=False)
class BatchResult(ResultMixin):
    """Many meta-analyses fitted at once (``meta_batch``): one array entry per analysis.

    Every numeric attribute is an array of shape ``(n,)`` (``n`` = number of analyses) with
    the meaning it has in :class:`MetaResult`; interval bounds are split into ``*_low`` and
    ``*_high`` arrays. ``converged`` flags each analysis' tau² iteration.

    Examples
    --------
    >>> import numpy as np
    >>> from ketameta.synthesis.pooling import meta_batch
    >>> yi = np.array([[0.10, 0.35, 0.62, 0.21], [0.3, 0.1, np.nan, np.nan]])
    >>> vi = np.array([[0.04, 0.03, 0.05, 0.02], [0.02, 0.02, np.nan, np.nan]])
    >>> res = meta_batch(yi, vi, method="DL")
    >>> len(res), res.summary()["k"].tolist()
    (2, [4, 2])
    """

    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    pi_low: np.ndarray
    pi_high: np.ndarray
    tau2: np.ndarray
    tau2_ci_low: np.ndarray
    tau2_ci_high: np.ndarray
    tau: np.ndarray
    i2: np.ndarray
    i2_ci_low: np.ndarray
    i2_ci_high: np.ndarray
    h2: np.ndarray
    h2_ci_low: np.ndarray
    h2_ci_high: np.ndarray
    q: np.ndarray
    q_df: np.ndarray
    q_pvalue: np.ndarray
    df: np.ndarray
    vt: np.ndarray
    converged: np.ndarray
    se_tau2: np.ndarray
    loglik: np.ndarray
    method: str
    test: str
    level: float

    _title = "Batch of meta-analyses"

    _COLUMNS = (
        "k", "estimate", "se", "statistic", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high",
        "tau2", "tau2_ci_low", "tau2_ci_high", "tau", "i2", "i2_ci_low", "i2_ci_high", "h2",
        "h2_ci_low", "h2_ci_high", "q", "q_df", "q_pvalue", "df", "se_tau2", "loglik", "converged",
    )  # fmt: skip

    def __len__(self) -> int:
        return int(np.shape(self.estimate)[0])

    def summary(self) -> pd.DataFrame:
        """DataFrame with one row per meta-analysis and the columns of ``_COLUMNS``."""
        return pd.DataFrame({name: getattr(self, name) for name in self._COLUMNS})


_RATIO = ("OR", "RR", "PETO")


@dataclass(frozen=True, eq=False, repr=False)
class BinaryResult(StudyRowsMixin, ResultMixin):
    """A Mantel-Haenszel or Peto common-effect result (metafor's ``rma.mh``/``rma.peto`` record).

    Attributes (metafor's names in brackets): ``k`` [k, all tables]; ``estimate`` [b; log OR,
    log RR or RD, log OR for Peto], ``se``, ``statistic`` [zval], ``pvalue`` [pval],
    ``ci_low``/``ci_high`` [ci.lb/ci.ub]; ``q``, ``q_df`` (k.yi - 1), ``q_pvalue`` [QE, QEp],
    ``i2`` (percent), ``h2`` [I2, H2]; ``measure`` ("OR", "RR", "RD" or "PETO"), ``method``
    ("MH" or "PETO"), ``level`` (percent); ``labels``; ``yi``/``vi``: the per-study effects used
    for Q, aligned with ``labels`` (NaN for tables left out of Q); ``excluded``: ``(label,
    reason)`` of the tables left out of Q; for the MH odds ratio ``cmh``/``cmh_pvalue`` [MH,
    MHp], ``tarone``/``tarone_pvalue`` [TA, TAp], ``breslow_day``/``breslow_day_pvalue`` [BD,
    BDp] and ``k_pos`` [k.pos] (None otherwise; ``k_pos`` also for Peto); the options ``add``,
    ``to``, ``drop00`` and ``correct``. ``exp_estimate``, ``exp_ci_low``, ``exp_ci_high``
    back-transform the ratio measures (None for RD). ``weights``: each table's share of the
    pooled estimate in percent [weights()]: the MH weights (OR: b c / n; RR: c (a + b) / n;
    RD: (a + b)(c + d) / n) or Peto's hypergeometric variances, from the raw counts; ``data``:
    the counts as ``events1, n1, events2, n2`` (with the caller's other columns) for plots.
    ``tau2`` (0), ``pi_low``/``pi_high`` (the CI) and ``test`` ("z") read as for a common-effect
    `MetaResult`, so forest plots draw both alike.
    """

    k: int
    estimate: float
    se: float
    statistic: float
    pvalue: float
    ci_low: float
    ci_high: float
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    measure: str
    method: str
    level: float
    labels: tuple[str, ...]
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    excluded: tuple[tuple[str, str], ...] = ()
    cmh: float | None = None
    cmh_pvalue: float | None = None
    tarone: float | None = None
    tarone_pvalue: float | None = None
    breslow_day: float | None = None
    breslow_day_pvalue: float | None = None
    k_pos: int | None = None
    add: float = 0.5
    to: str = "only0"
    drop00: bool = True
    correct: bool | None = None
    weights: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)

    tau2 = 0.0
    test = "z"

    @property
    def pi_low(self) -> float:
        """Common-effect model: no prediction interval beyond the CI (as metafor)."""
        return self.ci_low

    @property
    def pi_high(self) -> float:
        """Common-effect model: the CI's upper bound."""
        return self.ci_high

    @property
    def _title(self) -> str:  # type: ignore[override]
        name = "Mantel-Haenszel" if self.method == "MH" else "Peto"
        return f"{name} common-effect model ({self.measure}, k = {self.k})"

    def _exp(self, value: float) -> float | None:
        return float(np.exp(value)) if self.measure in _RATIO else None

    @property
    def exp_estimate(self) -> float | None:
        """``exp(estimate)`` for OR, RR and Peto's OR; None for RD."""
        return self._exp(self.estimate)

    @property
    def exp_ci_low(self) -> float | None:
        """``exp(ci_low)`` for ratio measures; None for RD."""
        return self._exp(self.ci_low)

    @property
    def exp_ci_high(self) -> float | None:
        """``exp(ci_high)`` for ratio measures; None for RD."""
        return self._exp(self.ci_high)

    def summary(self, transform: str | None = None) -> pd.DataFrame:
        """One row: the pooled estimate, its test, Q/I²/H² and the OR tests.

        ``scale`` says how ``estimate`` is expressed ("log" for OR, RR and Peto, "identity" for
        RD); ratio measures add ``exp_estimate``, ``exp_ci_low``, ``exp_ci_high``. With
        ``transform="exp"`` (ratio measures) the log-scale ``estimate``/``ci_*`` columns give
        way to the ``exp_*`` ones, ``se`` is renamed ``se_log`` and ``scale`` reads "exp".
        """
        row: dict[str, Any] = {
            "method": self.method,
            "measure": self.measure,
            "scale": "log" if self.measure in _RATIO else "identity",
            "k": self.k,
            "estimate": self.estimate,
            "se": self.se,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }
        if self.measure in _RATIO:
            row.update(
                exp_estimate=self.exp_estimate,
                exp_ci_low=self.exp_ci_low,
                exp_ci_high=self.exp_ci_high,
            )
        row.update(q=self.q, q_df=self.q_df, q_pvalue=self.q_pvalue, i2=self.i2, h2=self.h2)
        if self.cmh is not None:
            row.update(
                cmh=self.cmh,
                cmh_pvalue=self.cmh_pvalue,
                tarone=self.tarone,
                tarone_pvalue=self.tarone_pvalue,
            )
        table = pd.DataFrame([row], index=["estimate"])
        return printing.apply_transform(table, self.measure, transform)
