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
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ketameta.exceptions import ExcludedStudyWarning, KetametaWarning
from ketameta.review.analysis import ReviewAnalysis, Settings
from ketameta.review.exclusions import (
    EXCLUSION_GROUPS,
    OTHER_GROUP,
    SELECTION_RULES,
    exclusion_group,
    exclusion_summary,
)
from ketameta.review.question_effects import prepare_effects
from ketameta.synthesis.pooling import meta
from ketameta.synthesis.subgroup import subgroup

__all__ = [
    "EXCLUSION_GROUPS",
    "OTHER_GROUP",
    "QUESTIONS",
    "SELECTION_RULES",
    "ReviewAnalysis",
    "Settings",
    "comparator",
    "condition",
    "drug",
    "exclusion_group",
    "exclusion_summary",
    "overall",
    "prepare_effects",
    "psychotherapy",
    "route",
    "run",
    "run_all",
]

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


def _default_studies() -> pd.DataFrame:
    from ketameta.review.studies import load_studies

    return load_studies()


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
