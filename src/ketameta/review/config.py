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


def load_config(path: str | Path | None) -> ReportConfig:
    """Read a ``ketameta.toml``; ``None`` gives the documented defaults."""
    if path is None:
        return ReportConfig()
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    unknown_sections = set(raw) - {"analysis", "report"}
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
    return ReportConfig(analysis=replace(Settings(), **given), **report)
