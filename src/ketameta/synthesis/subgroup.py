"""Subgroup analysis: ``subgroup()``, with the test for subgroup differences both ways.

* ``test_common``: the omnibus QM test of a mixed-effects model with one common tau²,
  ``rma(yi, vi, mods = ~ factor(group))`` (an F test under ``test="knha"``).
* ``test_separate``: the Wald-type test on the separately pooled subgroup estimates,
  ``rma(b_g, sei = se_g, method = "FE")``: ``Q_between = sum w_g (b_g - b_FE)^2`` on G - 1 df,
  the statistic the Cochrane Handbook (section 10.11.3.1) and RevMan report.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta.exceptions import ExcludedStudyWarning, KetametaWarning
from ketameta.synthesis import printing
from ketameta.synthesis._inputs import subgroup_levels
from ketameta.synthesis.pooling import meta
from ketameta.synthesis.regression import metareg
from ketameta.synthesis.results import MetaResult, ResultMixin

T_TESTS = ("t", "knha", "adhoc")  # tests with t / F reference distributions (metafor)


@dataclass(frozen=True)
class SubgroupTest:
    """A test for subgroup differences."""

    statistic: float
    df: Any
    pvalue: float
    test: str


@dataclass(frozen=True, repr=False)
class SubgroupResult(ResultMixin):
    """Per-level pooled results and the tests for subgroup differences.

    ``print(res)`` shows the per-level model results (for ratio measures also their exp()),
    the heterogeneity per level and both tests (`ketameta.synthesis.printing.format_subgroup`).
    """

    by: str
    levels: tuple[str, ...]
    results: dict[str, MetaResult]
    test_common: SubgroupTest | None
    test_separate: SubgroupTest | None
    method: str
    test: str
    tau2: str
    level: float
    flagged: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    overall: MetaResult | None = None
    empty_levels: tuple[str, ...] = ()
    data: pd.DataFrame | None = field(default=None, repr=False)
    _title = "Subgroup analysis"

    def summary(self, transform: str | None = None) -> pd.DataFrame:
        """One row per level (k, estimate, CI, PI, tau², I², Q), then the overall row.

        ``transform="exp"`` (ratio measures): ``estimate`` and the CI/PI bounds become
        ``exp_estimate``, ``exp_ci_low``, ... and ``se`` becomes ``se_log``.
        """
        rows = []
        for name in self.levels:
            res = self.results[name]
            rows.append(
                {
                    "subgroup": name,
                    "k": res.k,
                    "estimate": res.estimate,
                    "se": res.se,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "pi_low": res.pi_low,
                    "pi_high": res.pi_high,
                    "tau2": res.tau2,
                    "i2": res.i2,
                    "q": res.q,
                    "q_pvalue": res.q_pvalue,
                    "flag": "k = 1: shown, not pooled" if name in self.flagged else "",
                }
            )
        if self.overall is not None:
            o = self.overall
            rows.append(
                {
                    "subgroup": "Overall",
                    "k": o.k,
                    "estimate": o.estimate,
                    "se": o.se,
                    "ci_low": o.ci_low,
                    "ci_high": o.ci_high,
                    "pi_low": o.pi_low,
                    "pi_high": o.pi_high,
                    "tau2": o.tau2,
                    "i2": o.i2,
                    "q": o.q,
                    "q_pvalue": o.q_pvalue,
                    "flag": "",
                }
            )
        table = pd.DataFrame(rows)
        for name, t in (("test_common", self.test_common), ("test_separate", self.test_separate)):
            if t is not None:
                table.attrs[name] = {"statistic": t.statistic, "df": t.df, "pvalue": t.pvalue}
        measure = next(iter(self.results.values())).measure
        return printing.apply_transform(table, measure, transform)

    def tests(self) -> pd.DataFrame:
        """The two tests for subgroup differences as a table."""
        rows = []
        for label, t in (
            ("common tau2 (mixed-effects model, QM)", self.test_common),
            ("separate tau2 (Wald test on subgroup estimates)", self.test_separate),
        ):
            if t is not None:
                rows.append(
                    {
                        "test": label,
                        "statistic": t.statistic,
                        "df": t.df,
                        "pvalue": t.pvalue,
                        "distribution": t.test,
                    }
                )
        return pd.DataFrame(rows)

    def plot_forest(self, **options: Any):
        """Forest plot with a block per subgroup (see `ketameta.plots.forest`)."""
        from ketameta.plots.forest import forest

        return forest(self, **options)


def subgroup(
    data: pd.DataFrame,
    by: str,
    *,
    method: str = "REML",
    test: Literal["z", "t", "knha", "adhoc"] = "z",
    tau2: Literal["separate", "common"] = "separate",
    level: float = 95.0,
    yi: str = "yi",
    vi: str = "vi",
    labels: str | None = None,
) -> SubgroupResult:
    """Pool each level of ``by`` and test whether the levels differ.

    Parameters
    ----------
    data : DataFrame
        ``yi``, ``vi`` and the moderator column ``by`` (``data.attrs`` from `escalc` are kept).
    by : str
        The moderator column.
    method, test, level
        As in `ketameta.meta`.
    tau2 : {"separate", "common"}
        ``"separate"``: each level pooled on its own (its own tau²); ``"common"``: level
        estimates from the cell-means model ``rma(yi, vi, mods = ~ 0 + factor(group))``.

    Returns
    -------
    SubgroupResult
        ``results`` (level -> `MetaResult`), ``test_common`` and ``test_separate`` (each with
        ``statistic``, ``df``, ``pvalue``), ``summary()``. Levels with one study are shown but
        flagged, not pooled, and left out of ``test_separate``; declared categories with no
        study are warned about (`KetametaWarning`) and listed in ``empty_levels``; rows with no
        value of ``by`` are listed in ``excluded`` (`ExcludedStudyWarning`). ``test_common`` is
        None (with a warning) when there are no more studies than levels.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"yi": [-0.5, -0.7, -0.2, -0.1, -0.3],
    ...                    "vi": [0.04, 0.05, 0.03, 0.06, 0.05],
    ...                    "route": ["iv", "iv", "intranasal", "intranasal", "intranasal"]})
    >>> res = subgroup(df, "route", method="DL")
    >>> res.levels, round(res.test_separate.df)
    (('intranasal', 'iv'), 1)
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError("data must be a pandas DataFrame with yi, vi and the moderator column")
    if by not in data.columns:
        raise ValueError(f"moderator column {by!r} is not in data")
    if tau2 not in ("separate", "common"):
        raise ValueError(f"tau2 must be 'separate' or 'common', got {tau2!r}")
    name_labels = None
    if isinstance(labels, str) and labels in data.columns:
        name_labels = [str(x) for x in data[labels]]
    elif labels is None and "label" in data.columns:
        name_labels = [str(x) for x in data["label"]]
    read = subgroup_levels(data[by], by, name_labels)  # by position: a duplicate index is safe
    excluded: list[tuple[str, str]] = list(read.excluded)
    if excluded:
        rows = ", ".join(f"{who} ({why})" for who, why in excluded)
        warnings.warn(
            f"subgroup(): rows without a usable value of {by!r} were excluded: {rows}",
            ExcludedStudyWarning,
            stacklevel=2,
        )
        data = data.iloc[np.flatnonzero(read.keep)]
    empty: tuple[str, ...] = ()
    if isinstance(data[by].dtype, pd.CategoricalDtype):
        present = set(data[by].dropna())
        empty = tuple(str(c) for c in data[by].cat.categories if c not in present)
        if empty:
            warnings.warn(
                f"subgroup(): moderator {by!r} has level(s) {', '.join(empty)} with no studies; "
                "they are listed in `empty_levels` and not analysed",
                KetametaWarning,
                stacklevel=2,
            )
    groups = pd.Series(read.groups, index=data.index)
    levels = read.levels
    if len(levels) < 2:
        raise ValueError(
            f"moderator {by!r} has only one level ({', '.join(levels)}): "
            "there are no subgroups to compare"
        )
    label_col = labels or ("label" if "label" in data.columns else None)
    opts = dict(method=method, test=test, level=level)
    results: dict[str, MetaResult] = {}
    flagged = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only one study")
        for name in levels:
            part = data[(groups == name).to_numpy()]
            part.attrs = dict(data.attrs)
            results[name] = meta(data=part, yi=yi, vi=vi, labels=label_col, **opts)
            if len(part) == 1:
                flagged.append(name)
    if tau2 == "common" and len(data) <= len(levels):
        raise ValueError(
            f"tau2='common' needs more studies than levels of {by!r} "
            f"({len(data)} studies, {len(levels)} levels); use tau2='separate'"
        )
    coded = data.assign(**{by: groups})
    factor = f"C(Q({by!r}))"
    test_common = None
    if len(data) > len(levels):
        common_model = metareg(
            coded, f"~ {factor}", method=method, test=test, level=level, yi=yi, vi=vi
        )
        test_common = SubgroupTest(
            float(common_model.qm),
            (common_model.qm_df, common_model.k - common_model.p)
            if test in T_TESTS
            else common_model.qm_df,
            float(common_model.qm_pvalue),
            "F" if test in T_TESTS else "chi2",
        )
    else:
        warnings.warn(
            f"subgroup(): {len(data)} studies in {len(levels)} levels of {by!r}: the "
            "mixed-effects model needs more studies than levels, so there is no common-tau² test",
            KetametaWarning,
            stacklevel=2,
        )
    if tau2 == "common":
        cells = metareg(
            coded, f"~ 0 + {factor}", method=method, test=test, level=level, yi=yi, vi=vi
        )
        results = {name: _cell_result(results[name], cells, i) for i, name in enumerate(levels)}
    pooled = [n for n in levels if n not in flagged]
    test_separate = None
    if len(pooled) >= 2:
        est = np.array([results[n].estimate for n in pooled])
        weights = 1.0 / np.array([results[n].se for n in pooled]) ** 2
        centre = np.sum(weights * est) / np.sum(weights)
        q_between = float(np.sum(weights * (est - centre) ** 2))
        test_separate = SubgroupTest(
            q_between, len(pooled) - 1, float(stats.chi2.sf(q_between, len(pooled) - 1)), "chi2"
        )
    overall = meta(data=data, yi=yi, vi=vi, labels=label_col, **opts)
    return SubgroupResult(
        by=by,
        levels=levels,
        results=results,
        test_common=test_common,
        test_separate=test_separate,
        method=method,
        test=test,
        tau2=tau2,
        level=level,
        flagged=tuple(flagged),
        excluded=tuple(excluded),
        overall=overall,
        empty_levels=empty,
        data=data,
    )


def _cell_result(separate: MetaResult, cells, index: int) -> MetaResult:
    """A level's estimate from the common-tau² cell-means model, in a MetaResult."""
    from dataclasses import replace

    row = cells.coef.iloc[index]
    crit = float(cells._fit["crit"])
    half_pi = crit * np.sqrt(row["se"] ** 2 + cells.tau2)
    return replace(
        separate,
        estimate=float(row["estimate"]),
        se=float(row["se"]),
        statistic=float(row["statistic"]),
        pvalue=float(row["pvalue"]),
        ci_low=float(row["ci_low"]),
        ci_high=float(row["ci_high"]),
        pi_low=float(row["estimate"] - half_pi),
        pi_high=float(row["estimate"] + half_pi),
        tau2=float(cells.tau2),
        tau=float(np.sqrt(cells.tau2)),
    )
