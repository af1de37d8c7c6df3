"""The effect sizes a named analysis pools: records selected, de-duplicated and computed.

`prepare_effects` keeps the records of the outcome the `Settings` ask for, applies the
record-selection rule (`ketameta.review.records`), resolves multi-arm trials and computes the
effect sizes by an explicit path (`ketameta.review.evidence` for continuous scores,
`ketameta.review.evidence_binary` for binary outcomes), listing every record left out.
"""

from __future__ import annotations

import pandas as pd

from ketameta.review.analysis import Settings
from ketameta.review.evidence import CONTINUOUS_OUTCOMES, record_effects
from ketameta.review.evidence_binary import record_binary_effects
from ketameta.review.records import (
    out_of_scope,
    resolve_shared_controls,
    select_binary_records,
    select_records,
)


def prepare_effects(
    studies: pd.DataFrame, settings: Settings
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Select, de-duplicate and compute effect sizes for the records the settings ask for."""
    if settings.outcome != "continuous":
        return _prepare_binary(studies, settings)
    scope = studies[
        (studies["outcome_construct"] == settings.outcome_construct)
        & (studies["outcome_type"].isin(CONTINUOUS_OUTCOMES))
    ]
    if settings.measure == "MD":
        scope = scope[scope["scale"] == "MADRS"]
    scope, excluded = out_of_scope(scope)
    selected, dropped = select_records(scope, timepoint=settings.timepoint)
    excluded += dropped
    resolved, dropped = resolve_shared_controls(selected, strategy=settings.multiarm)
    excluded += dropped
    effects, dropped = record_effects(
        resolved,
        measure=settings.measure,
        allow_sd_from_contrast=settings.allow_sd_from_contrast,
        assumed_r=settings.assumed_r,
        crossover_r=settings.crossover_r,
    )
    excluded += dropped
    return _with_therapy_group(effects), excluded


def _with_therapy_group(effects: pd.DataFrame) -> pd.DataFrame:
    if not effects.empty:
        has_therapy = effects["psychotherapy"].fillna("none").astype(str).str.lower() != "none"
        effects["psychotherapy_group"] = has_therapy.map(
            {True: "with psychotherapy", False: "ketamine alone"}
        )
    return effects


def _prepare_binary(
    studies: pd.DataFrame, settings: Settings
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Binary records of ``settings.outcome``: select, resolve multi-arm, compute RR/OR/RD."""
    construct = studies["outcome_construct"] == settings.outcome_construct
    scope = studies[construct & (studies["outcome_type"] == settings.outcome)]
    single = scope["contrast"] == "prepost"
    excluded = [
        (rid, "single-arm record: no control arm for a between-arm ratio")
        for rid in scope.loc[single, "record_id"]
    ]
    crossover = scope.get("crossover_data", pd.Series("", index=scope.index)).isin(
        ["paired", "both_periods"]
    )
    excluded += [
        (rid, "crossover counts over both periods: the paired counts are not reported")
        for rid in scope.loc[crossover & ~single, "record_id"]
    ]
    scope, dropped = out_of_scope(scope[~single & ~crossover])
    excluded += dropped
    context = studies[construct & studies["study_id"].isin(scope["study_id"])]
    selected, dropped = select_binary_records(scope, context, timepoint=settings.timepoint)
    excluded += dropped
    resolved, dropped = resolve_shared_controls(selected, strategy=settings.multiarm)
    excluded += dropped
    effects, dropped = record_binary_effects(resolved, measure=settings.measure)  # type: ignore[arg-type]
    excluded += dropped
    return _with_therapy_group(effects), excluded
