"""Report configuration: a small TOML file (``ketameta.toml``) holding the analysis settings.

Every key is a field of `ketameta.review.questions.Settings` (under ``[analysis]``) or of the report
(under ``[report]``); unknown keys are an error, so a typo cannot silently fall back to a default.

Example ``ketameta.toml``::

    [analysis]
    measure = "SMD"          # Hedges' g; "MD" for raw MADRS points
    method = "REML"          # tau2 estimator
    test = "knha"            # Hartung-Knapp
    timepoint = "primary"    # or [0.5, 2.0] for a window in days
    multiarm = "combine"     # or "split"

    [report]
    title = "Ketamine and esketamine for depression: a living meta-analysis"
    csv_guard = true         # prefix cells starting with = + - @ in CSV exports

    [grade]
    mid_smd = 0.2            # optional minimal important difference (SMD units)
    [[grade.override]]       # GRADE is a judgement: a rule's rating can be overridden
    outcome = "Overall: depression score"
    domain = "indirectness"
    downgrade = 0
    reason = "the secondary-source numbers agree with the primary abstracts"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ketameta.review.questions import Settings


@dataclass(frozen=True)
class ReportConfig:
    """Settings of the report: the analysis choices plus presentation options."""

    analysis: Settings = field(default_factory=Settings)
    title: str = "Ketamine and esketamine for depression: meta-analysis report"
    csv_guard: bool = True
    mid_smd: float | None = None
    overrides: tuple[tuple[str, str, int, str], ...] = ()

    def grade_overrides(self, outcome: str) -> dict[str, tuple[int, str]]:
        """``domain -> (downgrade, reason)`` for one summary-of-findings row."""
        return {d: (n, why) for o, d, n, why in self.overrides if o == outcome}


GRADE_DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")


def _grade_section(path: object, raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - {"mid_smd", "override"}
    if unknown:
        raise ValueError(
            f"{path}: unknown [grade] keys {sorted(unknown)}; allowed: mid_smd, override"
        )
    out: dict[str, Any] = {}
    if "mid_smd" in raw:
        mid = raw["mid_smd"]
        if isinstance(mid, bool) or not isinstance(mid, int | float) or not mid > 0:
            raise ValueError(f"{path}: [grade] mid_smd must be a positive number, got {mid!r}")
        out["mid_smd"] = float(mid)
    overrides = []
    for i, item in enumerate(raw.get("override", []), start=1):
        where = f"{path}: [[grade.override]] number {i}"
        if not isinstance(item, dict) or set(item) != {"outcome", "domain", "downgrade", "reason"}:
            raise ValueError(f"{where} needs exactly: outcome, domain, downgrade, reason")
        if item["domain"] not in GRADE_DOMAINS:
            raise ValueError(f"{where}: domain must be one of {', '.join(GRADE_DOMAINS)}")
        n = item["downgrade"]
        if isinstance(n, bool) or n not in (0, 1, 2):
            raise ValueError(f"{where}: downgrade must be 0, 1 or 2")
        if not isinstance(item["reason"], str) or not item["reason"].strip():
            raise ValueError(f"{where}: a reason is required")
        overrides.append((str(item["outcome"]), item["domain"], int(n), item["reason"].strip()))
    out["overrides"] = tuple(overrides)
    return out


def load_config(path: str | Path | None) -> ReportConfig:
    """Read a ``ketameta.toml``; ``None`` gives the documented defaults."""
    if path is None:
        return ReportConfig()
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    unknown_sections = set(raw) - {"analysis", "report", "grade"}
    if unknown_sections:
        raise ValueError(f"{path}: unknown sections {sorted(unknown_sections)}")
    analysis_keys = {f.name for f in fields(Settings)}
    given: dict[str, Any] = dict(raw.get("analysis", {}))
    unknown = set(given) - analysis_keys
    if unknown:
        raise ValueError(
            f"{path}: unknown [analysis] keys {sorted(unknown)}; allowed: {sorted(analysis_keys)}"
        )
    if isinstance(given.get("timepoint"), list):
        given["timepoint"] = tuple(float(x) for x in given["timepoint"])
    report = dict(raw.get("report", {}))
    unknown = set(report) - {"title", "csv_guard"}
    if unknown:
        raise ValueError(f"{path}: unknown [report] keys {sorted(unknown)}")
    grade = _grade_section(path, dict(raw.get("grade", {})))
    return ReportConfig(analysis=replace(Settings(), **given), **report, **grade)
