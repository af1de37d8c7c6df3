"""The settings and the result of a named analysis of the review.

`Settings` holds every analysis choice (a documented field each); `ReviewAnalysis` is one named
question answered on the curated evidence, with the controlled, direct and single-arm evidence
kept apart (`ketameta.review.questions`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from ketameta.review.evidence_binary import BINARY_OUTCOMES
from ketameta.synthesis.results import ResultMixin


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
