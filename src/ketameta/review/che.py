"""The correlated-and-hierarchical-effects (CHE) analysis of the review.

The main analyses keep one record per comparison (the primary timepoint; multi-arm trials'
arms combined). The CHE model (Pustejovsky & Tipton 2022) keeps every dose arm and every
timepoint inside a window instead, and handles their dependence explicitly:

* sampling errors of records of the same study are correlated with a working correlation
  ``rho`` (`ketameta.vcalc`, ``obs`` = record), the CHE working model;
* between-study and within-study (between-record) heterogeneity are two variance components
  (`ketameta.meta_mv`, ``random = "~ 1 | study_id/record_id"``);
* inference is cluster-robust by study (`ketameta.robust`, CR2 with Satterthwaite degrees of
  freedom), so it stays valid if ``rho`` is wrong.

The same model on the same effects is fitted by metafor + clubSandwich in
``tests/reference/_scripts/12_che_review.R``, and the test suite compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ketameta.review.evidence import CONTINUOUS_OUTCOMES, record_effects
from ketameta.review.questions import Settings
from ketameta.review.records import out_of_scope

CHE_RHO = 0.6  # working correlation of records within a study (Pustejovsky & Tipton's default)
CHE_WINDOW = (0.0, 42.0)  # days: acute-phase records (every timepoint up to six weeks)


@dataclass(frozen=True)
class CHEAnalysis:
    """The CHE model, its robust inference and the records it used."""

    effects: pd.DataFrame
    excluded: tuple[tuple[str, str], ...]
    model: Any
    robust: Any
    rho: float
    window: tuple[float, float]

    @property
    def k(self) -> int:
        return len(self.effects)

    @property
    def studies(self) -> int:
        return int(self.effects["study_id"].nunique())


def che_effects(
    studies: pd.DataFrame,
    settings: Settings | None = None,
    *,
    window: tuple[float, float] = CHE_WINDOW,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Every controlled depression record inside ``window`` (days), each dose arm and timepoint
    its own effect (SMD); records no analysis pools are listed with the reason."""
    settings = settings or Settings()
    scope = studies[
        (studies["outcome_construct"] == settings.outcome_construct)
        & (studies["outcome_type"].isin(CONTINUOUS_OUTCOMES))
        & (studies["contrast"] == "ketamine_vs_control")
    ]
    scope, excluded = out_of_scope(scope)
    days = pd.to_numeric(scope["timepoint_days"], errors="coerce")
    inside = days.between(*window)
    excluded += [
        (rid, f"outside the CHE window {window[0]:g}-{window[1]:g} days")
        for rid in scope.loc[~inside, "record_id"]
    ]
    effects, dropped = record_effects(
        scope[inside],
        measure="SMD",
        allow_sd_from_contrast=settings.allow_sd_from_contrast,
        assumed_r=settings.assumed_r,
        crossover_r=settings.crossover_r,
    )
    return effects, excluded + list(dropped)


def che(
    studies: pd.DataFrame | None = None,
    settings: Settings | None = None,
    *,
    rho: float = CHE_RHO,
    window: tuple[float, float] = CHE_WINDOW,
) -> CHEAnalysis:
    """Fit the CHE model with robust (CR2) inference on the curated studies.

    Examples
    --------
    >>> result = che()  # doctest: +SKIP
    >>> result.robust.coef  # doctest: +SKIP
    """
    from ketameta.synthesis.multilevel import meta_mv, vcalc
    from ketameta.synthesis.robust import robust

    if studies is None:
        from ketameta.review.studies import load_studies

        studies = load_studies()
    settings = replace(settings or Settings(), measure="SMD")
    effects, excluded = che_effects(studies, settings, window=window)
    V = vcalc(effects["vi"].to_numpy(), effects["study_id"].to_numpy(),
              obs=effects["record_id"].to_numpy(), rho=rho)  # fmt: skip
    model = meta_mv(
        effects["yi"].to_numpy(),
        V,
        data=effects,
        random="~ 1 | study_id/record_id",
        method="REML",
    )
    robust_result = robust(model, cluster=effects["study_id"].to_numpy(), adjust="CR2")
    return CHEAnalysis(effects, tuple(excluded), model, robust_result, rho, window)


def leave_one_study_out(result: CHEAnalysis) -> pd.DataFrame:
    """The CHE model refitted without each study in turn (robust CR2 estimate and interval)."""
    from ketameta.synthesis.multilevel import meta_mv, vcalc
    from ketameta.synthesis.robust import robust

    rows = []
    effects = result.effects
    for study in dict.fromkeys(effects["study_id"]):
        rest = effects[effects["study_id"] != study].reset_index(drop=True)
        if rest["study_id"].nunique() < 3:
            continue
        V = vcalc(rest["vi"].to_numpy(), rest["study_id"].to_numpy(),
                  obs=rest["record_id"].to_numpy(), rho=result.rho)  # fmt: skip
        model = meta_mv(rest["yi"].to_numpy(), V, data=rest, random="~ 1 | study_id/record_id")
        rob = robust(model, cluster=rest["study_id"].to_numpy(), adjust="CR2")
        coef = rob.coef.iloc[0]
        label = str(effects.loc[effects["study_id"] == study, "study_label"].iloc[0])
        rows.append(
            {
                "omitted": label,
                "estimate": float(coef["estimate"]),
                "ci_low": float(coef["ci_low"]),
                "ci_high": float(coef["ci_high"]),
                "df": float(rob.df[0]),
            }
        )
    return pd.DataFrame(rows)
