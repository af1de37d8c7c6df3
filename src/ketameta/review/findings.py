"""The summary of findings: one row per question x outcome, with GRADE certainty.

Each row reads only fitted results and the curated data (nothing is refitted here, except the
z-test and Bayesian sensitivity fits of small pools, which the small-k rule asks for):

* **studies, comparisons, participants** from the rows each pool used; a crossover's
  participants are counted once, and comparisons without arm sizes are counted as unknown;
* **relative effect**: the pooled SMD (Hedges' g) or risk ratio with its CI;
* **absolute effect**: for an SMD, the same effect in MADRS points at the median arm SD of the
  pooled MADRS records (Cochrane Handbook 15.5.3.2, re-expressing an SMD); for a risk ratio,
  responders per 1,000 at the control arms' pooled risk and the difference with its CI, and the
  number needed to treat where the CI of the difference excludes 0;
* **certainty**: `ketameta.synthesis.grade.grade` with the per-study risk of bias, the reasons
  for indirectness found in the data (secondary sources, post hoc subgroup reports, populations
  other than depression), Egger's test where k >= 10, and the overrides of ``ketameta.toml``;
* **small-k rule**: with 2 to 4 studies the row says so and shows the z-test interval beside the
  Hartung-Knapp one (`SMALL_K`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ketameta.review.report.words import interval, num, ratio, ratio_interval

SMALL_K = (2, 4)  # studies: say so beside the result and show the z interval too
INDIRECT_POPULATIONS = {
    "substance_use": "population with a substance use disorder",
    "chronic_pain_depression": "population with chronic pain",
    "eating_disorder": "population with an eating disorder",
    "ptsd": "population with PTSD",
}


@dataclass(frozen=True)
class Finding:
    """One row of the summary of findings."""

    question: str
    outcome: str
    studies: int
    comparisons: int
    participants: str
    relative: str
    absolute: str
    certainty: str
    footnotes: tuple[str, ...]
    statement: str
    small_k: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def study_count(result: Any) -> int:
    data = getattr(result, "data", None)
    if data is None or data.empty or "study_id" not in data.columns:
        return int(getattr(result, "k", 0))
    return int(data["study_id"].nunique())


def participants(data: pd.DataFrame | None) -> tuple[int, int]:
    """(participants counted, comparisons whose arm sizes are not reported)."""
    if data is None or data.empty:
        return 0, 0
    total, unknown = 0, 0
    for _, row in data.iterrows():
        n1, n2 = float(row.get("n1", np.nan)), float(row.get("n2", np.nan))
        within = str(row.get("crossover_data", "")) in ("paired", "both_periods")
        if within and math.isfinite(n1):
            total += int(n1)
        elif math.isfinite(n1) and math.isfinite(n2):
            total += int(n1 + n2)
        else:
            unknown += 1
    return total, unknown


def _participants_text(data: pd.DataFrame | None) -> str:
    total, unknown = participants(data)
    if unknown and not total:
        return "participants not reported"
    if unknown:
        noun = "comparison" if unknown == 1 else "comparisons"
        return f"{total} participants, and {unknown} {noun} without arm sizes"
    return f"{total} participants"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def indirectness(data: pd.DataFrame | None) -> list[str]:
    """Per-row reasons for indirectness ('' = direct), aligned with the result's rows."""
    if data is None:
        return []
    reasons = []
    for _, row in data.iterrows():
        found = []
        if str(row.get("source_type", "")) == "secondary":
            found.append("numbers from a secondary source")
        if "post hoc" in str(row.get("notes", "")).lower():
            found.append("post hoc subgroup report")
        population = INDIRECT_POPULATIONS.get(str(row.get("condition", "")))
        if population:
            found.append(population)
        reasons.append("; ".join(found))
    return reasons


def typical_madrs_sd(data: pd.DataFrame | None) -> float:
    """Median arm SD of the MADRS records a pool used (NaN if none report one)."""
    if data is None or data.empty or "scale" not in data.columns:
        return float("nan")
    madrs = data[data["scale"].astype(str) == "MADRS"]
    sds = pd.concat(
        [madrs.get("sd1", pd.Series(dtype=float)), madrs.get("sd2", pd.Series(dtype=float))]
    )
    sds = pd.to_numeric(sds, errors="coerce").dropna()
    return float(sds.median()) if len(sds) else float("nan")


BAYES_MAX_STUDIES = 5  # pools this small also get a Bayesian result, with two other priors
BAYES_PRIORS = {
    # (name, scale) for SMD and for log risk ratios: the main prior, then two for sensitivity
    "SMD": (("half-normal", 0.5), ("half-cauchy", 0.5), ("half-normal", 1.0)),
    "RR": (("half-normal", 0.5), ("half-cauchy", 0.5), ("turner", None)),
}


def bayes_note(result: Any, n_studies: int) -> str:
    """For a pool of 2 to `BAYES_MAX_STUDIES` studies: the posterior median of mu with its 95%
    interval under the main prior, and under two other priors (a prior-sensitivity line)."""
    from ketameta.synthesis.bayes import meta_bayes

    if not 2 <= n_studies <= BAYES_MAX_STUDIES:
        return ""
    ratio = (result.measure or "") in ("RR", "OR")
    parts = []
    for name, scale in BAYES_PRIORS["RR" if ratio else "SMD"]:
        b = meta_bayes(result.yi, result.vi, tau_prior=name, tau_scale=scale or 0.5)
        if not math.isfinite(b.estimate):
            parts.append(f"not computable with a {b.prior} prior on tau")
            continue
        if ratio:
            text = f"{ratio_of(b.estimate)} {ratio_interval(b.ci_low, b.ci_high)}"
        else:
            text = f"{num(b.estimate)} {interval(b.ci_low, b.ci_high)}"
        parts.append(f"{text} with a {b.prior} prior on tau")
    main, *others = parts
    return f"Bayesian: {main} (other priors: {'; '.join(others)})"


def ratio_of(log_value: float) -> str:
    return ratio(log_value)


def small_k_note(result: Any, n_studies: int) -> str:
    """What a reader of a pool of few studies needs beside it: for 2 to 4 studies with
    Hartung-Knapp intervals, that they are wide by design and the z interval; for 2 to
    `BAYES_MAX_STUDIES` studies, the Bayesian result with its prior-sensitivity line."""
    if not (SMALL_K[0] <= n_studies <= SMALL_K[1]) or result.test != "knha":
        return bayes_note(result, n_studies)
    from ketameta.synthesis.pooling import meta

    z = meta(result.yi, result.vi, method=result.method, test="z", level=result.level)
    measure = result.measure or ""
    if measure in ("RR", "OR"):
        z_ci = ratio_interval(z.ci_low, z.ci_high)
    else:
        z_ci = interval(z.ci_low, z.ci_high)
    bayes = bayes_note(result, n_studies)
    return (
        f"Only {n_studies} studies: the Hartung-Knapp interval is wide by design; "
        f"with a z test the 95% CI is {z_ci}" + (f"; {bayes}" if bayes else "")
    )


def continuous_finding(
    question: str, outcome: str, result: Any, *, grade_options: dict[str, Any]
) -> Finding:
    """A summary-of-findings row for a pooled SMD (or MD) result."""

    data = result.data
    md = (result.measure or "") == "MD"
    name = "MD" if md else "SMD"
    relative = f"{name} {num(result.estimate)} {interval(result.ci_low, result.ci_high)}"
    sd = typical_madrs_sd(data)
    if md:
        absolute = (
            f"{num(result.estimate, 1)} MADRS points {interval(result.ci_low, result.ci_high, 1)}"
        )
    elif math.isfinite(sd):
        absolute = (
            f"about {num(result.estimate * sd, 1)} MADRS points "
            f"{interval(result.ci_low * sd, result.ci_high * sd, 1)} "
            f"at a typical SD of {num(sd, 1)}"
        )
    else:
        absolute = ""
    spoken = "MADRS scores" if md else "depression scores"
    information = participants(data)[0] or None  # crossovers counted once
    return _finding(question, outcome, result, relative, absolute, spoken, "continuous",
                    grade_options, information)  # fmt: skip


def _finding(question, outcome, result, relative, absolute, spoken, kind, grade_options,
             information=None) -> Finding:  # fmt: skip
    """Rate the certainty (GRADE) and assemble the row (shared by continuous and binary)."""
    from ketameta.synthesis.grade import grade, plain_language

    data = result.data
    n_studies = study_count(result)
    assessment = grade(
        result,
        risk_of_bias=None if data is None else list(data["risk_of_bias"].astype(str)),
        indirect=indirectness(data),
        outcome=kind,
        information=information,
        **grade_options,
    )
    return Finding(
        question,
        outcome,
        n_studies,
        int(result.k),
        _participants_text(data),
        relative,
        absolute,
        assessment.certainty,
        tuple(assessment.footnotes()),
        plain_language(result, assessment.certainty, outcome_name=spoken),
        small_k_note(result, n_studies),
        {"assessment": assessment},
    )


def binary_finding(
    question: str, outcome: str, result: Any, *, grade_options: dict[str, Any]
) -> Finding:
    """A summary-of-findings row for a pooled risk ratio."""

    data = result.data
    relative = f"RR {ratio(result.estimate)} {ratio_interval(result.ci_low, result.ci_high)}"
    events2 = pd.to_numeric(data["events2"], errors="coerce").sum()
    n2 = pd.to_numeric(data["n2"], errors="coerce").sum()
    control = events2 / n2 if n2 else float("nan")
    absolute, nnt = "", ""
    if math.isfinite(control):
        low, high = math.exp(result.ci_low), math.exp(result.ci_high)
        risk = control * math.exp(result.estimate)
        diff = (risk - control) * 1000
        d_low, d_high = (control * low - control) * 1000, (control * high - control) * 1000
        absolute = (
            f"{control * 1000:.0f} per 1,000 with control, {risk * 1000:.0f} per 1,000 with "
            f"ketamine: {diff:+.0f} per 1,000 "
            f"[{d_low:+.0f}, {min(d_high, 1000 - control * 1000):+.0f}]"
        ).replace("-", "−")
        if d_low > 0:
            nnt = f"; NNT {1000 / diff:.0f} [{1000 / d_high:.0f}, {1000 / d_low:.0f}]"
        else:
            nnt = "; NNT not finite (the CI includes no difference)"
    spoken = f"the chance of {outcome}"
    finding = _finding(question, outcome, result, relative, absolute + nnt, spoken, "binary",
                       grade_options)  # fmt: skip
    return replace(finding, extra={**finding.extra, "control_risk": control})


def not_answerable(question: str, outcome: str, reason: str) -> Finding:
    """A row for a question the evidence cannot answer (no pooled numbers)."""
    return Finding(question, outcome, 0, 0, "", "", "", "", (reason,), reason)
