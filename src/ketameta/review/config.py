"""Report configuration: a small TOML file (``ketameta.toml``) holding the analysis settings.

Every key is a field of `ketameta.review.questions.Settings` (under ``[analysis]``) or of the report
(under ``[report]``); unknown keys are an error, so a typo cannot silently fall back to a default.
Every value is checked for its type and range (`ANALYSIS_KEYS`): a wrong one raises
:class:`~ketameta.exceptions.DataValidationError` (a ``ValueError``) naming the file, the key,
the value given and the values allowed (``csv_guard = 'no'``: "must be true or false";
``timepoint = 'primry'``: "must be 'primary' or [low, high] ... did you mean 'primary'?").

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

import difflib
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ketameta.exceptions import DataValidationError
from ketameta.review.questions import Settings
from ketameta.review.studies import ENUMS
from ketameta.synthesis._inputs import METHODS


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
        raise DataValidationError(
            f"{path}: unknown [grade] keys {sorted(unknown)}; allowed: mid_smd, override"
        )
    out: dict[str, Any] = {}
    if "mid_smd" in raw:
        mid = raw["mid_smd"]
        if isinstance(mid, bool) or not isinstance(mid, int | float) or not mid > 0:
            raise DataValidationError(
                f"{path}: [grade] mid_smd must be a positive number, got {mid!r}"
            )
        out["mid_smd"] = float(mid)
    overrides = []
    for i, item in enumerate(raw.get("override", []), start=1):
        where = f"{path}: [[grade.override]] number {i}"
        if not isinstance(item, dict) or set(item) != {"outcome", "domain", "downgrade", "reason"}:
            raise DataValidationError(f"{where} needs exactly: outcome, domain, downgrade, reason")
        if item["domain"] not in GRADE_DOMAINS:
            raise DataValidationError(f"{where}: domain must be one of {', '.join(GRADE_DOMAINS)}")
        n = item["downgrade"]
        if isinstance(n, bool) or n not in (0, 1, 2):
            raise DataValidationError(f"{where}: downgrade must be 0, 1 or 2")
        if not isinstance(item["reason"], str) or not item["reason"].strip():
            raise DataValidationError(f"{where}: a reason is required")
        overrides.append((str(item["outcome"]), item["domain"], int(n), item["reason"].strip()))
    out["overrides"] = tuple(overrides)
    return out


def _bad(path: object, section: str, key: str, value: Any, allowed: str) -> DataValidationError:
    message = f"{path}: [{section}] {key} = {value!r} is not allowed: {allowed}"
    return DataValidationError(
        message, problems=[{"key": f"{section}.{key}", "value": repr(value), "problem": allowed}]
    )


def _hint(value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        return ""
    lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(value.strip().lower(), list(lower), n=1, cutoff=0.6)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""


def _choice(choices: tuple[str, ...]) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if isinstance(value, str) and value in choices:
            return value, None
        return value, f"must be one of {', '.join(map(repr, choices))}" + _hint(value, choices)

    return check


def _flag(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool):
        return value, None
    return value, "must be true or false (TOML booleans, unquoted)"


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _level(value: Any) -> tuple[Any, str | None]:
    if _real(value) and 0 < value < 100:
        return float(value), None
    return value, "must be a number in (0, 100) (a percentage, e.g. 95)"


def _correlation(value: Any) -> tuple[Any, str | None]:
    if _real(value) and -1 < value < 1:
        return float(value), None
    return value, "must be a correlation strictly between -1 and 1 (e.g. 0.5)"


def _timepoint(value: Any) -> tuple[Any, str | None]:
    if value == "primary":
        return value, None
    rule = "must be 'primary' or [low, high], a window in days with 0 <= low < high"
    if isinstance(value, list):
        if len(value) == 2 and all(_real(x) for x in value):
            low, high = float(value[0]), float(value[1])
            if low > high:
                return value, f"{rule} (the window is reversed: write [{high:g}, {low:g}])"
            if 0 <= low < high:
                return (low, high), None
        return value, rule
    return value, rule + _hint(value, ("primary",))


ANALYSIS_KEYS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "measure": _choice(("SMD", "MD", "RR", "OR", "RD")),
    "method": _choice(tuple(METHODS)),
    "test": _choice(("z", "t", "knha", "adhoc")),
    "level": _level,
    "timepoint": _timepoint,
    "multiarm": _choice(("combine", "split")),
    "tau2_subgroups": _choice(("separate", "common")),
    "outcome_construct": _choice(ENUMS["outcome_construct"]),
    "allow_sd_from_contrast": _flag,
    "assumed_r": _correlation,
    "crossover_r": _correlation,
    "outcome": _choice(("continuous", "response", "remission", "relapse")),
}


def _title(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str) and value.strip():
        return value.strip(), None
    return value, "must be a non-empty text (in quotes)"


REPORT_KEYS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "title": _title,
    "csv_guard": _flag,
}


def _checked(path: object, section: str, given: dict[str, Any], rules: dict) -> dict[str, Any]:
    out = {}
    for key, value in given.items():
        value, problem = rules[key](value)
        if problem:
            raise _bad(path, section, key, given[key], problem)
        out[key] = value
    return out


def _table(path: object, raw: dict[str, Any], section: str) -> dict[str, Any]:
    value = raw.get(section, {})
    if not isinstance(value, dict):
        raise DataValidationError(
            f"{path}: {section!r} must be a [{section}] table, got {value!r}",
            problems=[{"key": section, "value": repr(value), "problem": "not a table"}],
        )
    return dict(value)


def load_config(path: str | Path | None) -> ReportConfig:
    """Read a ``ketameta.toml``; ``None`` gives the documented defaults."""
    if path is None:
        return ReportConfig()
    with open(path, "rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise DataValidationError(f"{path}: not a valid TOML file ({exc})") from None
        except UnicodeDecodeError as exc:
            raise DataValidationError(
                f"{path}: not a UTF-8 text file (byte at position {exc.start})"
            ) from None
    unknown_sections = set(raw) - {"analysis", "report", "grade"}
    if unknown_sections:
        raise DataValidationError(f"{path}: unknown sections {sorted(unknown_sections)}")
    analysis_keys = {f.name for f in fields(Settings)}
    given: dict[str, Any] = _table(path, raw, "analysis")
    unknown = set(given) - analysis_keys
    if unknown:
        raise DataValidationError(
            f"{path}: unknown [analysis] keys {sorted(unknown)}; allowed: {sorted(analysis_keys)}"
        )
    given = _checked(path, "analysis", given, ANALYSIS_KEYS)
    report = _table(path, raw, "report")
    unknown = set(report) - set(REPORT_KEYS)
    if unknown:
        raise DataValidationError(
            f"{path}: unknown [report] keys {sorted(unknown)}; allowed: {sorted(REPORT_KEYS)}"
        )
    report = _checked(path, "report", report, REPORT_KEYS)
    grade = _grade_section(path, _table(path, raw, "grade"))
    try:
        analysis = replace(Settings(), **given)
    except ValueError as exc:  # measure and outcome that do not fit together
        raise DataValidationError(f"{path}: [analysis] {exc}") from None
    return ReportConfig(analysis=analysis, **report, **grade)
