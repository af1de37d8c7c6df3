"""The review's questions, as named analyses over the curated evidence.

Each analysis takes the studies table (the bundled ``data/studies.csv`` by default), keeps the
records that answer its question, computes effect sizes by an explicit path
(`evidence.record_effects`), resolves multi-arm trials (`records`) and
pools with `ketameta.synthesis.subgroup` (or `ketameta.meta` where the question has no subgroups).
Every choice is a field of `Settings`; every record left out is listed with its reason.

Three kinds of evidence answer different questions and are **never pooled together**; each
`ReviewAnalysis` keeps them apart (the ``contrast`` column of ``studies.csv``):

``controlled``  ketamine vs a control arm without ketamine (``ketamine_vs_control``);
``direct``      both arms get ketamine and differ by the psychotherapy
                (``therapy_added_to_ketamine``): the direct answer to the psychotherapy question;
``single_arm``  single-arm pre-post change (``prepost``).

Questions
---------
``overall``        all controlled comparisons on a depression scale
``psychotherapy``  ketamine alone vs ketamine with a structured psychotherapy
``route``          intravenous vs intranasal (and other routes present)
``drug``           racemic ketamine vs esketamine (vs arketamine)
``comparator``     saline placebo vs midazolam vs other controls (the blinding question)
``condition``      TRD, MDD, bipolar depression, PTSD, ...
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from ketameta.exceptions import ExcludedStudyWarning, KetametaWarning
from ketameta.review.evidence import CONTINUOUS_OUTCOMES, record_effects
from ketameta.review.evidence_binary import BINARY_OUTCOMES, record_binary_effects
from ketameta.review.records import (
    out_of_scope,
    resolve_shared_controls,
    select_binary_records,
    select_records,
)
from ketameta.synthesis.pooling import meta
from ketameta.synthesis.results import ResultMixin
from ketameta.synthesis.subgroup import subgroup

QUESTIONS: dict[str, tuple[str | None, str]] = {
    "overall": (None, "How large is the effect of ketamine on depression against control?"),
    "psychotherapy": (
        "psychotherapy_group",
        "Does ketamine work better with a structured psychotherapy than alone?",
    ),
    "route": ("route", "Does intravenous ketamine differ from intranasal (es)ketamine?"),
    "drug": ("drug", "Does racemic ketamine differ from esketamine?"),
    "comparator": (
        "comparator",
        "Does the effect depend on the control (saline vs the active placebo midazolam)?",
    ),
    "condition": ("condition", "Does the effect differ by condition?"),
}


# exclusions that are the record-selection rule at work (listed, not warned about)
SELECTION_RULES = (
    "not the primary record",
    "outside the timepoint",
    "not at the primary timepoint",
    "another record of this comparison is nearer",
)

# how the one summary warning of a named analysis groups the records it did not use: the
# first entry whose text starts a reason names its group; anything else is an effect size
# that the reported numbers do not give (`ketameta.review.evidence`)
EXCLUSION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("by the timepoint rule", SELECTION_RULES),
    (
        "with no primary record or timepoint",
        (
            "no record of this comparison is flagged primary",
            "no primary timepoint known",
            "no record of this outcome at the primary timepoint",
        ),
    ),
    ("arms combined", ("arm combined into",)),
    ("sharing a control arm", ("shares the control arm",)),
    ("same participants as another study", ("same participants as",)),
    ("head-to-head", ("head-to-head",)),
    ("active comparator", ("active antidepressant comparator",)),
    ("single-arm (no control arm)", ("single-arm record",)),
    ("crossover counts", ("crossover counts",)),
)
OTHER_GROUP = "effect size not computable"


def exclusion_group(reason: str) -> str:
    """The group of an exclusion reason in the summary warning (see `EXCLUSION_GROUPS`)."""
    for group, starts in EXCLUSION_GROUPS:
        if reason.startswith(starts):
            return group
    return OTHER_GROUP


def exclusion_summary(name: str, excluded: Sequence[tuple[str, str]]) -> str:
    """One line on the records an analysis did not use, e.g. ``"route: 24 records not used
    (9 by the timepoint rule, 4 arms combined, ...; see result.excluded_table())"``; a single
    record is named with its reason.

    Examples
    --------
    >>> print(exclusion_summary("overall", [("a_d7", "not the primary record (a_d1)"),
    ...                                     ("b_84", "arm combined into b_28 (shared control p)")]))
    overall: 2 records not used (1 by the timepoint rule, 1 arms combined;
    see result.excluded_table())
    >>> print(exclusion_summary("overall", [("bad", "no arm-level mean/SD/n")]))
    overall: record bad excluded: no arm-level mean/SD/n (see result.excluded_table())
    """
    see = "see result.excluded_table()"
    if len(excluded) == 1:
        record_id, reason = excluded[0]
        return f"{name}: record {record_id} excluded: {reason} ({see})"
    counts = Counter(exclusion_group(reason) for _, reason in excluded)
    order = [group for group, _ in EXCLUSION_GROUPS] + [OTHER_GROUP]
    parts = ", ".join(f"{counts[group]} {group}" for group in order if counts[group])
    return f"{name}: {len(excluded)} records not used ({parts}; {see})"


@dataclass(frozen=True)
class Settings:
    """Analysis choices of the review; every field is a documented parameter.

    Attributes
    ----------
    measure : "SMD" or "MD"
        Hedges' g (default: scales differ across trials) or raw mean difference (one scale).
    method : str
        tau² estimator, as in `ketameta.meta` (default REML).
    test : "z" or "knha"
        Default ``"knha"`` (Hartung-Knapp): few, heterogeneous trials.
    level : float
        Confidence level in percent.
    timepoint : "primary" or (low, high)
        Record-selection rule (`ketameta.review.records.select_records`).
    multiarm : "combine" or "split"
        Multi-arm handling (`ketameta.review.records.resolve_shared_controls`).
    tau2_subgroups : "separate" or "common"
        Subgroup pooling with a tau² per subgroup or one common tau².
    outcome_construct : str
        Which outcome construct the questions use (default ``"depression"``).
    allow_sd_from_contrast : bool
        Standardise reported (LS-)mean differences through the SD recovered from their SE.
    assumed_r : float or None
        Pre-post correlation assumed for single-arm records that do not report one.
    crossover_r : float
        Within-person correlation assumed for crossover arm data reported over both periods
        (`ketameta.review.evidence`; 0, the default, is the conservative parallel-group
        variance with each participant counted once).
    outcome : "continuous", "response", "remission" or "relapse"
        Which records answer the questions: continuous depression scores (default; measure
        SMD or MD) or a binary outcome (measure RR, OR or RD, from the arm counts; timepoint
        ``"primary"`` then means the comparison's primary timepoint, see
        `ketameta.review.records.select_binary_records`).
    """

    measure: Literal["SMD", "MD", "RR", "OR", "RD"] = "SMD"
    method: str = "REML"
    test: Literal["z", "t", "knha", "adhoc"] = "knha"
    level: float = 95.0
    timepoint: Any = "primary"
    multiarm: Literal["combine", "split"] = "combine"
    tau2_subgroups: Literal["separate", "common"] = "separate"
    outcome_construct: str = "depression"
    allow_sd_from_contrast: bool = True
    assumed_r: float | None = None
    crossover_r: float = 0.0
    outcome: Literal["continuous", "response", "remission", "relapse"] = "continuous"

    def __post_init__(self) -> None:
        if self.outcome not in ("continuous", *BINARY_OUTCOMES):
            raise ValueError(
                f"Settings.outcome must be 'continuous', 'response', 'remission' or 'relapse', "
                f"got {self.outcome!r}"
            )
        allowed = ("SMD", "MD") if self.outcome == "continuous" else ("RR", "OR", "RD")
        if self.measure not in allowed:
            raise ValueError(
                f"Settings.measure {self.measure!r} does not fit Settings.outcome "
                f"{self.outcome!r}: use one of {', '.join(allowed)}"
            )

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for the report's methods section)."""
        return asdict(self)


@dataclass(frozen=True)
class ReviewAnalysis(ResultMixin):
    """One named question answered on the curated evidence."""

    name: str
    question: str
    settings: dict[str, Any]
    effects: pd.DataFrame
    excluded: tuple[tuple[str, str], ...]
    controlled: Any = None
    single_arm: Any = None
    direct: Any = None
    by: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # record_id -> study label of every excluded record (for `excluded_table`)
    excluded_studies: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def _title(self) -> str:  # type: ignore[override]
        return f"{self.name}: {self.question}"

    def excluded_table(self) -> pd.DataFrame:
        """Every record this analysis did not use, one row each: ``record_id``, ``study`` (the
        study label) and ``reason`` (the same list as ``excluded``, in its order).

        The analysis warns once with a count per kind of reason; this table is the detail, e.g.
        ``result.excluded_table().groupby("reason").size()``.
        """
        rows = [
            (record_id, self.excluded_studies.get(record_id, ""), reason)
            for record_id, reason in self.excluded
        ]
        return pd.DataFrame(rows, columns=["record_id", "study", "reason"])

    def plot_forest(self, which: str = "controlled", **options: Any):
        """Forest plot of the controlled comparisons (``which="direct"`` or ``"single_arm"`` for
        the other kinds of evidence); options as `ketameta.plots.forest`."""
        from ketameta.plots.forest import forest

        if which not in ("controlled", "direct", "single_arm"):
            raise ValueError(f"which must be 'controlled', 'direct' or 'single_arm', got {which!r}")
        result = getattr(self, which)
        if result is None:
            raise ValueError(f"{self.name}: no {which.replace('_', '-')} evidence to plot")
        options.setdefault("title", f"{self.name}: {which.replace('_', '-')}")
        return forest(result, **options)

    def tests(self) -> pd.DataFrame:
        """The tests for subgroup differences of the controlled comparisons (an empty table when
        they fall in one level, so there is nothing to compare)."""
        result = self.controlled
        return result.tests() if hasattr(result, "tests") else pd.DataFrame()

    def summary(self) -> pd.DataFrame:
        """One row per pooled group (controlled and single-arm studies kept apart)."""
        frames = []
        kinds = (
            ("controlled", self.controlled),
            ("direct: therapy added to ketamine", self.direct),
            ("single-arm", self.single_arm),
        )
        for design, result in kinds:
            if result is None:
                continue
            table = result.summary().copy()
            table.insert(0, "design", design)
            frames.append(table)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _default_studies() -> pd.DataFrame:
    from ketameta.review.studies import load_studies

    return load_studies()


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


def _pool(effects: pd.DataFrame, by: str | None, settings: Settings, notes: list[str]) -> Any:
    if effects.empty:
        return None
    opts = {"method": settings.method, "test": settings.test, "level": settings.level}
    levels = effects[by].nunique() if by else 1
    if by is None or levels < 2:
        if by is not None:
            only = effects[by].iloc[0]
            notes.append(f"only one level of {by} ({only}) in these records: no comparison")
        return meta(data=effects, yi="yi", vi="vi", labels=effects["label"], **opts)
    return subgroup(effects, by, tau2=settings.tau2_subgroups, **opts)


def run(name: str, studies: pd.DataFrame | None = None, settings: Settings | None = None):
    """Run one named analysis (see the module docstring for the names).

    Examples
    --------
    >>> result = run("route")  # doctest: +SKIP
    >>> result.summary()  # doctest: +SKIP
    """
    if name not in QUESTIONS:
        raise ValueError(f"unknown analysis {name!r}; choose from {', '.join(QUESTIONS)}")
    settings = settings or Settings()
    studies = _default_studies() if studies is None else studies
    by, question = QUESTIONS[name]
    effects, excluded = prepare_effects(studies, settings)
    notes: list[str] = []
    kind = effects["contrast"] if not effects.empty else pd.Series(dtype=str)
    single = effects[kind == "prepost"]
    controlled = effects[kind == "ketamine_vs_control"]
    direct = effects[kind == "therapy_added_to_ketamine"]
    # the pooling's own warnings (e.g. one study in a group) become notes of the result, named
    # by design, and part of the one summary warning below; others pass through unchanged
    ours: list[tuple[str, Any]] = []
    pooled = {}
    for design, rows, group_by in (
        ("controlled", controlled, by),
        ("single-arm", single, by),
        ("direct", direct if name == "psychotherapy" else None, None),
    ):
        if rows is None:
            pooled[design] = None
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pooled[design] = _pool(rows.reset_index(drop=True), group_by, settings, notes)
        for w in caught:
            if issubclass(w.category, KetametaWarning):
                ours.append((f"{design}: {w.message}", w.category))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    notes += list(dict.fromkeys(text for text, _ in ours))
    _warn_once(name, excluded, ours)
    labels = dict(zip(studies["record_id"].astype(str), _study_labels(studies), strict=True))
    return ReviewAnalysis(
        name=name,
        question=question,
        settings=settings.as_dict(),
        effects=effects,
        excluded=tuple(excluded),
        controlled=pooled["controlled"],
        single_arm=pooled["single-arm"],
        direct=pooled["direct"],
        by=by,
        notes=tuple(notes),
        excluded_studies={rid: labels.get(str(rid), "") for rid, _ in excluded},
    )


def _study_labels(studies: pd.DataFrame) -> list[str]:
    if "study_label" in studies.columns:
        column = studies["study_label"]
    elif "study_id" in studies.columns:
        column = studies["study_id"]
    else:
        return [""] * len(studies)
    return [str(v) if pd.notna(v) else "" for v in column]


def _warn_once(
    name: str, excluded: Sequence[tuple[str, str]], pooling: list[tuple[str, Any]]
) -> None:
    """At most one warning per analysis: the records not used, summarised by kind (when any was
    left out for a reason other than the record-selection rule), and the pooling's notes."""
    parts = []
    if any(not reason.startswith(SELECTION_RULES) for _, reason in excluded):
        parts.append(exclusion_summary(name, excluded))
    if pooling:
        notes = "; ".join(dict.fromkeys(text for text, _ in pooling))
        parts.append(f"{'pooling' if parts else name} (see result.notes): {notes}")
    if parts:
        # a warning of the pooling (convergence, a single study) keeps its category
        category = pooling[0][1] if pooling else ExcludedStudyWarning
        warnings.warn("; ".join(parts), category, stacklevel=_outside_this_module())


def _outside_this_module() -> int:
    """The ``stacklevel`` (for a ``warnings.warn`` in the caller) of the first frame outside
    this module: the user's line that asked for the analysis, however it got here."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def overall(studies=None, settings=None) -> ReviewAnalysis:
    """All controlled comparisons on a depression scale, pooled."""
    return run("overall", studies, settings)


def psychotherapy(studies=None, settings=None) -> ReviewAnalysis:
    """Ketamine alone vs ketamine with a structured psychotherapy."""
    return run("psychotherapy", studies, settings)


def route(studies=None, settings=None) -> ReviewAnalysis:
    """Intravenous vs intranasal (and any other route present)."""
    return run("route", studies, settings)


def drug(studies=None, settings=None) -> ReviewAnalysis:
    """Racemic ketamine vs esketamine."""
    return run("drug", studies, settings)


def comparator(studies=None, settings=None) -> ReviewAnalysis:
    """Saline placebo vs midazolam vs other controls."""
    return run("comparator", studies, settings)


def condition(studies=None, settings=None) -> ReviewAnalysis:
    """By condition (TRD, MDD, bipolar depression, PTSD, ...)."""
    return run("condition", studies, settings)


def run_all(
    studies: pd.DataFrame | None = None, settings: Settings | None = None
) -> dict[str, ReviewAnalysis]:
    """Every named analysis, in the order of `QUESTIONS`."""
    studies = _default_studies() if studies is None else studies
    return {name: run(name, studies, settings) for name in QUESTIONS}
