"""Run the review's analyses and put the report together, in the order a systematic review reads.

Order: summary of findings, key findings, methods, results (flow, included studies, risk of bias,
syntheses with verdicts, response and remission, sensitivity), published meta-analyses,
limitations, appendix (warnings grouped, reproducibility).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ketameta.review import questions
from ketameta.review.config import ReportConfig
from ketameta.review.findings import (
    Finding,
    binary_finding,
    continuous_finding,
    not_answerable,
    study_count,
)
from ketameta.review.report import front, syntheses
from ketameta.review.report.html import CSS, details, esc, table
from ketameta.review.report.published_section import published_section
from ketameta.review.report.sensitivity import sensitivity_section
from ketameta.review.report.words import ENUM_WORDS, word
from ketameta.review.secondary import BINARY_NOTE, binary_analyses, madrs_md
from ketameta.review.verdicts import Verdict, same_split, subgroup_verdict

SUBGROUP_QUESTIONS = ("route", "psychotherapy", "drug", "comparator", "condition")


def _verdicts(results: dict[str, Any]) -> dict[str, Verdict]:
    out = {}
    for name in SUBGROUP_QUESTIONS:
        by = results[name].by or name
        out[name] = subgroup_verdict(
            results[name].controlled,
            by=by,
            by_words=syntheses.BY_WORDS.get(by, by),
            level_words=syntheses.LEVEL_WORDS,
        )
    return out


def _same_as(results: dict[str, Any]) -> dict[str, str]:
    """Questions whose records split exactly as an earlier question's."""
    out = {}
    names = [n for n in SUBGROUP_QUESTIONS if results[n].controlled is not None]
    for i, name in enumerate(names):
        for earlier in names[:i]:
            a, b = results[earlier], results[name]
            if earlier in out or name in out:
                continue
            if same_split(a.effects, a.by, b.effects, b.by):
                pairs = sorted(set(zip(a.effects[a.by], b.effects[b.by], strict=True)))
                how = "; ".join(f"every {word(x)} comparison is {word(y)}" for x, y in pairs)
                out[name] = (
                    f"In these data the {syntheses.BY_WORDS.get(b.by, b.by)} split is the same as "
                    f"the {syntheses.BY_WORDS.get(a.by, a.by)} split ({how}), so the two cannot be "
                    f"told apart: see '{syntheses.TITLES[earlier]}'."
                )
    return out


def _findings(results, md, binary, verdicts, cfg: ReportConfig) -> list[Finding]:
    def opts(question: str, outcome: str) -> dict[str, Any]:
        o: dict[str, Any] = {"overrides": cfg.grade_overrides(f"{question}: {outcome}")}
        return o

    rows: list[Finding] = []
    overall = results["overall"].controlled
    if overall is not None:
        q, o = "Overall", "depression score"
        rows.append(
            continuous_finding(q, o, overall, grade_options={**opts(q, o), "mid": cfg.mid_smd})
        )
    if md is not None and md.controlled is not None:
        q, o = "Overall", "depression score, MADRS points"
        rows.append(continuous_finding(q, o, md.controlled, grade_options=opts(q, o)))
    route = results["route"].controlled
    for level, res in getattr(route, "results", {}).items():
        q, o = f"Route: {word(level)}", "depression score"
        if res.k >= 1:
            rows.append(
                continuous_finding(q, o, res, grade_options={**opts(q, o), "mid": cfg.mid_smd})
            )
    psy = results["psychotherapy"]
    if not verdicts["psychotherapy"].answerable:
        rows.append(
            not_answerable(
                "Psychotherapy: ketamine with vs without psychotherapy",
                "depression score",
                verdicts["psychotherapy"].text,
            )
        )
    if psy.direct is not None:
        q, o = "Psychotherapy added to ketamine (direct)", "depression score"
        rows.append(continuous_finding(q, o, psy.direct, grade_options=opts(q, o)))
    for analysis in binary:
        if analysis.name.endswith("_overall") and analysis.controlled is not None:
            outcome = analysis.name.split("_")[0]
            q = "Overall"
            rows.append(
                binary_finding(q, outcome, analysis.controlled, grade_options=opts(q, outcome))
            )
    return rows


def _limitations(studies, screening, results, md, verdicts) -> list[str]:
    items = []
    controlled = studies[
        (studies["contrast"] == "ketamine_vs_control")
        & (studies["outcome_construct"] == "depression")
    ]
    for route in sorted(set(studies["route"])):
        for therapy, words in ((False, "without"), (True, "with")):
            cell = controlled[controlled["route"] == route]
            has = cell["psychotherapy"].astype(str).str.lower() != "none"
            n = cell[has == therapy]["study_id"].nunique()
            if n == 0 and route in ("iv", "intranasal"):
                items.append(
                    f"No controlled trial of {word(route)} ketamine {words} psychotherapy has "
                    "usable numbers in the sources read."
                )
    for name, verdict in verdicts.items():
        if not verdict.answerable:
            items.append(f"{syntheses.TITLES[name]}: {verdict.text}")
    effects = results["overall"].effects
    if not effects.empty:
        used = effects[effects["contrast"] == "ketamine_vs_control"]
        approx = used[
            used["effect_path"].isin(["arms_sd_from_se", "smd_from_contrast", "smd_from_t"])
        ]
        if len(approx):
            items.append(
                f"{len(approx)} of {len(used)} comparisons were standardised through an SD "
                "recovered from an SE or a t statistic (approximate): "
                + ", ".join(dict.fromkeys(approx["label"].astype(str)))
                + "."
            )
        secondary = used[used.get("source_type", pd.Series("", index=used.index)) == "secondary"]
        if len(secondary):
            items.append(
                "Numbers from a secondary source (a review's table): "
                + ", ".join(dict.fromkeys(secondary["label"].astype(str)))
                + "."
            )
        posthoc = used[used["notes"].astype(str).str.lower().str.contains("post hoc")]
        if len(posthoc):
            items.append(
                "Post hoc subgroup reports stand in for whole trials: "
                + ", ".join(dict.fromkeys(posthoc["label"].astype(str)))
                + "."
            )
        days = pd.to_numeric(used["timepoint_days"], errors="coerce").dropna()
        if len(days):
            items.append(
                f"Primary timepoints differ between trials (from {_duration(days.min())} to "
                f"{_duration(days.max())}), so the pooled effect mixes short- and longer-term "
                "effects."
            )
        endpoint = used[used["score_type"] == "endpoint"]
        if len(endpoint):
            items.append(
                "Endpoint scores (not change from baseline) are mixed with change scores for "
                + ", ".join(dict.fromkeys(endpoint["label"].astype(str)))
                + " (the overall analysis is repeated without them)."
            )
    waiting = int((screening["decision"] == "awaiting_numbers").sum())
    if waiting:
        items.append(
            f"{waiting} studies are awaiting numbers (their results could not be read in the "
            "sources available); adding them could change every estimate."
        )
    items.append(
        "Blinding is fragile: ketamine's dissociative effects can reveal the allocation, most "
        "of all against saline; the comparator section shows the results by control."
    )
    return items


def _duration(days: float) -> str:
    """``0.0278`` -> ``40 minutes``, ``0.1667`` -> ``4 hours``, ``28`` -> ``28 days``."""
    if days < 1 / 24:
        return f"{days * 24 * 60:.0f} minutes"
    if days < 1:
        return f"{days * 24:.0f} hours"
    return "1 day" if round(days) == 1 else f"{days:.0f} days"


def _warnings_appendix(caught: list[Any]) -> str:
    groups: dict[str, Counter] = {}
    for w in caught:
        groups.setdefault(w.category.__name__, Counter())[str(w.message)] += 1
    if not groups:
        return "<p>None.</p>"
    parts = []
    for category, messages in sorted(groups.items()):
        rows = [{"message": m, "n": str(n)} for m, n in sorted(messages.items())]
        parts.append(
            details(
                f"{category} ({len(rows)} distinct)",
                table(rows, (("message", "Message"), ("n", "Times"))),
            )
        )
    return "".join(parts)


def _grade_text() -> str:
    from ketameta.synthesis import grade as g

    return (
        "<p>Certainty starts high for randomised evidence and is rated down by rules from the data "
        "and the fits (<code>ketameta.synthesis.grade</code>): <b>risk of bias</b>, two levels if "
        f"more than {g.ROB_HIGH_VERY_SERIOUS:g}% of the weight is at high risk, one if more than "
        f"{g.ROB_HIGH_SERIOUS:g}% is at high risk or more than {g.ROB_ANY_SERIOUS:g}% at high risk "
        "or some concerns; <b>inconsistency</b>, one level if I² ≥ 50% and the prediction interval "
        "includes no effect, two if I² ≥ 75% and the studies lie on both sides of no effect; "
        "<b>indirectness</b>, one level if studies carrying more than "
        f"{g.INDIRECT_SHARE:g}% of the weight are indirect (secondary-source numbers, post hoc "
        "subgroup reports, other populations); <b>imprecision</b>, one level if the CI includes no "
        f"effect or the information is below the optimal information size ({g.OIS_CONTINUOUS} "
        f"participants; {g.OIS_BINARY} events), two if both, or for a single study; "
        f"<b>publication bias</b>, only with {g.PUB_BIAS_MIN_K} or more studies, one level if "
        f"Egger's p < {g.PUB_BIAS_P:g}. A rating can be overridden in <code>ketameta.toml</code> "
        "([[grade.override]] with a reason); the footnote then shows the rule, the override and "
        "the reason.</p>"
    )


def assemble(
    studies: pd.DataFrame,
    screening: pd.DataFrame,
    cfg: ReportConfig,
    tables: dict[str, pd.DataFrame],
    *,
    data_path: Path,
    config_path: Path | None,
    say: Callable[[str], None],
    caught: list[Any],
) -> str:
    from ketameta.review.report.build import sha256, versions

    settings = cfg.analysis
    results = {}
    for name in questions.QUESTIONS:
        say(f"analysis: {name}")
        results[name] = questions.run(name, studies, settings)
        tables[f"{name}_summary"] = results[name].summary()
        tables[f"{name}_excluded"] = pd.DataFrame(
            list(results[name].excluded), columns=["record_id", "reason"]
        )
    md = madrs_md(studies, settings) if settings.measure == "SMD" else None
    if md is not None:
        tables["overall_MADRS_mean_difference_summary"] = md.summary()
    binary = binary_analyses(studies, settings, ("overall", "route"))
    for analysis in binary:
        tables[f"{analysis.name}_summary"] = analysis.summary()
        tables[f"{analysis.name}_excluded"] = pd.DataFrame(
            list(analysis.excluded), columns=["record_id", "reason"]
        )
    verdicts = _verdicts(results)
    same = _same_as(results)
    say("summary of findings")
    findings = _findings(results, md, binary, verdicts, cfg)
    tables["summary_of_findings"] = pd.DataFrame(
        [{k: v for k, v in f.__dict__.items() if k != "extra"} for f in findings]
    )
    labels = syntheses.label_map(studies, results["overall"].effects)
    sections = [
        syntheses.question_section(
            results["overall"],
            None,
            labels,
            extra=syntheses.endpoint_sensitivity(results["overall"]),
        )
    ]
    if md is not None:
        sections.append(syntheses.question_section(md, None, labels))
    confounding = {}
    for name, text in same.items():
        for earlier in SUBGROUP_QUESTIONS:
            if f"'{syntheses.TITLES[earlier]}'" in text:
                how = text.split(" (", 1)[1].rsplit(")", 1)[0]
                confounding[earlier] = (
                    f"Read with care: {how}, so a difference by "
                    f"{syntheses.BY_WORDS.get(results[earlier].by, earlier)} is also a difference "
                    f"by {syntheses.BY_WORDS.get(results[name].by, name)}."
                )
    for name in SUBGROUP_QUESTIONS:
        sections.append(
            syntheses.question_section(
                results[name],
                verdicts[name],
                labels,
                same_as=same.get(name),
                confounded=confounding.get(name, ""),
            )
        )
    from ketameta.review.che import che
    from ketameta.review.report.che_section import che_section

    say("dependent effects (CHE model)")
    che_html = che_section(che(studies, settings), results["overall"], tables)
    binary_verdicts = {
        a.name: subgroup_verdict(
            a.controlled, by="route", by_words="route", level_words=syntheses.LEVEL_WORDS
        )
        for a in binary
        if a.name.endswith("_route")
    }
    binary_html = "".join(
        syntheses.question_section(a, binary_verdicts.get(a.name), labels) for a in binary
    )
    per_analysis = {
        "overall": study_count(results["overall"].controlled)
        if results["overall"].controlled
        else 0,
    }
    if md is not None and md.controlled is not None:
        per_analysis["MADRS points"] = study_count(md.controlled)
    for a in binary:
        if a.name.endswith("_overall") and a.controlled is not None:
            per_analysis[a.name.split("_")[0]] = study_count(a.controlled)
    first = studies.drop_duplicates("study_id")
    tables["included_studies"] = first[
        [
            "study_id",
            "study_label",
            "design",
            "condition",
            "drug",
            "route",
            "psychotherapy",
            "comparator",
            "risk_of_bias",
            "risk_of_bias_reason",
        ]
    ].reset_index(drop=True)
    reproducibility = (
        f"<p class='note'>Data: {esc(data_path.resolve())} (SHA-256 {sha256(data_path)}), "
        f"{len(studies)} records from {studies['study_id'].nunique()} studies; configuration: "
        + (
            f"{esc(config_path.resolve())} (SHA-256 {sha256(config_path)})"
            if config_path
            else "the documented defaults (no ketameta.toml given)"
        )
        + f". Software: {esc(versions())}.</p>"
    )
    published = published_section(results["overall"], tables, table)
    sensitivity = sensitivity_section(results, tables)
    limitations = _limitations(studies, screening, results, md, verdicts)
    key_verdicts = {syntheses.TITLES[k]: v for k, v in verdicts.items() if k not in same}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(cfg.title)}</title>
<style>{CSS}</style></head><body>
<h1>{esc(cfg.title)}</h1>
<p class="small">Built from {esc(data_path.resolve())} (SHA-256 {sha256(data_path)[:16]}…),
{len(studies)} records from {studies["study_id"].nunique()} studies.</p>
{front.sof_section(findings)}
{front.key_findings(findings, key_verdicts)}
{front.methods_section(settings.as_dict(), _grade_text(), reproducibility)}
<h2>Results</h2>
{front.flow_section(screening, per_analysis, len(studies))}
{front.included_section(studies)}
{front.rob_section(studies)}
<h3>Syntheses</h3>
{"".join(sections)}
{che_html}
<h3>Response and remission</h3><p class="note">{esc(BINARY_NOTE)}</p>
{binary_html}
{sensitivity}
{published}
{front.limitations_section(limitations)}
<h2>Appendix</h2>
<h3>Warnings raised while building</h3>{_warnings_appendix(caught)}
<h3>Reproducibility</h3>{reproducibility}
</body></html>
"""


__all__ = ["assemble", "ENUM_WORDS"]
