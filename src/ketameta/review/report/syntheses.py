"""The report's syntheses: one section per question, each with its verdict in words.

A section reads the fitted `ReviewAnalysis`; the only fits made here are sensitivity refits the
methods name (the overall analysis without endpoint-score records).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ketameta.plots import forest
from ketameta.review.findings import SMALL_K, small_k_note, study_count
from ketameta.review.report.html import details, esc, figure, table
from ketameta.review.report.words import (
    ENUM_WORDS,
    count,
    interval,
    num,
    percent,
    plain_note,
    ratio,
    ratio_interval,
    word,
)
from ketameta.review.verdicts import Verdict

TITLES = {
    "overall": "Ketamine vs control (all controlled comparisons)",
    "route": "Intravenous vs intranasal",
    "psychotherapy": "Ketamine alone vs ketamine with psychotherapy",
    "drug": "Racemic ketamine vs esketamine",
    "comparator": "By control condition",
    "condition": "By population",
    "overall_MADRS_mean_difference": "Ketamine vs control, in MADRS points",
    "response_overall": "Response: ketamine vs control",
    "response_route": "Response: intravenous vs intranasal",
    "remission_overall": "Remission: ketamine vs control",
    "remission_route": "Remission: intravenous vs intranasal",
}
BY_WORDS = {
    "route": "route",
    "psychotherapy_group": "psychotherapy",
    "drug": "drug",
    "comparator": "comparator",
    "condition": "population",
}
LEVEL_WORDS = {
    **ENUM_WORDS,
    "ketamine alone": "ketamine alone",
    "with psychotherapy": "ketamine with psychotherapy",
}


def pooled_rows(result: Any) -> list[dict[str, str]]:
    """Human rows of a pooled result (one per subgroup level, then overall)."""
    if result is None:
        return []
    pairs = (
        [(LEVEL_WORDS.get(lv, lv), result.results[lv]) for lv in result.levels]
        + ([("All", result.overall)] if result.overall is not None else [])
        if hasattr(result, "levels")
        else [("All", result)]
    )
    rows = []
    for name, res in pairs:
        n = study_count(res)
        one = res.k < 2
        note = "1 study: shown, not pooled" if one else ""
        if not one and SMALL_K[0] <= n <= SMALL_K[1]:
            note = small_k_note(res, n) or f"Only {n} studies"
        elif not one:
            note = small_k_note(res, n)
        rows.append(
            {
                "level": name,
                "studies": count(n),
                "k": count(res.k),
                "estimate": _estimate(res),
                "pi": "" if one else _interval(res, res.pi_low, res.pi_high),
                "i2": "" if one else percent(res.i2),
                "tau2": "" if one else num(res.tau2, 3),
                "note": note,
            }
        )
    return rows


def _ratio(res: Any) -> bool:
    return (getattr(res, "measure", None) or "") in ("RR", "OR")


def _interval(res: Any, low: float, high: float) -> str:
    return ratio_interval(low, high) if _ratio(res) else interval(low, high)


def _estimate(res: Any) -> str:
    value = ratio(res.estimate) if _ratio(res) else num(res.estimate)
    return f"{value} {_interval(res, res.ci_low, res.ci_high)}"


POOLED_COLUMNS = (
    ("level", "Subgroup"),
    ("studies", "Studies"),
    ("k", "Comparisons"),
    ("estimate", "SMD [95% CI]"),
    ("pi", "95% prediction interval"),
    ("i2", "I²"),
    ("tau2", "tau²"),
    ("note", "Note"),
)


def _columns_for(measure: str | None) -> tuple[tuple[str, str], ...]:
    name = {
        "MD": "MD (MADRS points) [95% CI]",
        "SMD": "SMD [95% CI]",
        "RR": "Risk ratio [95% CI]",
        "OR": "Odds ratio [95% CI]",
    }.get(measure or "SMD", "Estimate [95% CI]")
    return tuple((k, name if k == "estimate" else h) for k, h in POOLED_COLUMNS)


def excluded_table(excluded: tuple[tuple[str, str], ...], labels: dict[str, str]) -> str:
    if not excluded:
        return ""
    rows = [{"record": labels.get(rid, rid), "id": rid, "reason": why} for rid, why in excluded]
    inner = table(rows, (("record", "Study"), ("id", "Record"), ("reason", "Why not used")))
    return details(f"Records not used in this analysis, with the reason ({len(rows)})", inner)


def verdict_html(verdict: Verdict) -> str:
    cls = "verdict" if verdict.answerable else "verdict no"
    return f'<div class="{cls}"><b>Verdict.</b> {esc(verdict.text)}</div>'


def question_section(
    analysis: Any,
    verdict: Verdict | None,
    labels: dict[str, str],
    *,
    same_as: str | None = None,
    extra: str = "",
    confounded: str = "",
) -> str:
    """HTML of one question's section."""
    name = analysis.name
    question = analysis.question
    outcome = name.split("_")[0]
    if outcome in ("response", "remission"):
        question = question.replace("on depression", f"on {outcome}")
    parts = [f"<h3>{esc(TITLES.get(name, name))}</h3>", f"<p><i>{esc(question)}</i></p>"]
    if confounded:
        parts.append(f"<p class='note'>{esc(confounded)}</p>")
    if same_as:
        parts.append(f'<div class="verdict no"><b>Stated once.</b> {esc(same_as)}</div>')
        return "\n".join(parts)
    if verdict is not None:
        parts.append(verdict_html(verdict))
    res = analysis.controlled
    if res is not None:
        parts.append(table(pooled_rows(res), _columns_for(res_measure(res))))
        words = {lv: LEVEL_WORDS.get(lv, lv).capitalize() for lv in getattr(res, "levels", ())}
        data = res.overall.data if hasattr(res, "levels") else res.data
        score = data is not None and "score_type" in data.columns
        fig = forest(
            res,
            title=TITLES.get(name, name),
            level_labels=words,
            subgroup_tests=verdict is None or verdict.answerable,
            columns={"score_type": "Scores"} if score else (),
        )
        parts.append(figure(fig, f"forest plot: {TITLES.get(name, name)}"))
    parts.append(extra)
    if analysis.direct is not None:
        parts.append(direct_section(analysis.direct))
    if analysis.single_arm is not None:
        parts.append(single_arm_section(analysis.single_arm))
    for note in analysis.notes:
        parts.append(f"<p class='note'>{esc(plain_note(note))}</p>")
    parts.append(excluded_table(analysis.excluded, labels))
    return "\n".join(parts)


def res_measure(res: Any) -> str | None:
    inner = res.results[res.levels[0]] if hasattr(res, "levels") else res
    return getattr(inner, "measure", None)


def direct_section(direct: Any) -> str:
    """Psychotherapy added to ketamine (both arms get ketamine)."""
    data = direct.data
    arm1 = (
        str(data["arm1_label"].iloc[0]) if data is not None and len(data) else "ketamine + therapy"
    )
    arm2 = str(data["arm2_label"].iloc[0]) if data is not None and len(data) else "ketamine alone"
    therapy = str(data["psychotherapy"].iloc[0]) if data is not None and len(data) else "therapy"
    n = study_count(direct)
    head = (
        "<h4>Direct evidence: psychotherapy added to ketamine</h4>"
        f"<p>Both arms received ketamine; the arms differ by the psychotherapy ({esc(therapy)}). "
        f"{esc(arm1)} vs {esc(arm2)}. "
    )
    if n < 2:
        head += (
            "One trial: it is shown, not pooled, and it cannot by itself settle the question.</p>"
        )
    else:
        head += f"{n} trials.</p>"
    fig = forest(
        direct,
        title="Psychotherapy added to ketamine",
        group_labels=(f"ketamine + {therapy}", "ketamine alone"),
        show_weights=n >= 2,
    )
    return head + figure(fig, "forest plot: psychotherapy added to ketamine")


def single_arm_section(single: Any) -> str:
    data = single.data
    rows = []
    if data is not None:
        studies = single.studies()
        for (_, row), (_, s) in zip(data.iterrows(), studies.iterrows(), strict=True):
            rows.append(
                {
                    "study": row.get("label", ""),
                    "therapy": word(row.get("psychotherapy")),
                    "route": word(row.get("route")),
                    "condition": word(row.get("condition")),
                    "n": count(row.get("n1")),
                    "change": f"{num(s['yi'])} {interval(s['ci_low'], s['ci_high'])}",
                }
            )
    inner = table(
        rows,
        (
            ("study", "Study"),
            ("therapy", "Psychotherapy"),
            ("route", "Route"),
            ("condition", "Population"),
            ("n", "n"),
            ("change", "Pre-post change (SMCR) [95% CI]"),
        ),
    )
    return (
        "<h4>Single-arm studies (no control arm)</h4><p>Change from baseline within the treated "
        "group. Without a control arm these cannot show what ketamine adds: they are an evidence "
        "map, not an effect estimate, and are never pooled with the controlled comparisons.</p>"
        + inner
    )


def endpoint_sensitivity(overall: Any) -> str:
    """The overall SMD without endpoint-score records (Cochrane Handbook 10.5.2)."""
    from ketameta.synthesis.pooling import meta

    res = overall.controlled
    data = getattr(res, "data", None)
    if res is None or data is None or "score_type" not in data.columns:
        return ""
    endpoint = (data["score_type"] == "endpoint").to_numpy()
    if not endpoint.any():
        return ""
    names = ", ".join(dict.fromkeys(data.loc[endpoint, "label"].astype(str)))
    keep = ~endpoint
    if keep.sum() < 2:
        return f"<p class='note'>Endpoint-score records: {esc(names)}.</p>"
    sub = meta(res.yi[keep], res.vi[keep], method=res.method, test=res.test, level=res.level)
    return (
        "<p><b>Change vs endpoint scores.</b> Standardised mean differences mix change scores, "
        f"reported (adjusted) contrasts and {int(endpoint.sum())} endpoint-score comparison(s) "
        f"({esc(names)}). Without them: SMD {num(sub.estimate)} "
        f"{interval(sub.ci_low, sub.ci_high)} (k = {sub.k}), against "
        f"{num(res.estimate)} {interval(res.ci_low, res.ci_high)} with them.</p>"
    )


def label_map(*frames: pd.DataFrame) -> dict[str, str]:
    """record_id -> study label, from every effects table and the studies table."""
    out: dict[str, str] = {}
    for frame in frames:
        if frame is None or frame.empty or "record_id" not in frame.columns:
            continue
        column = "label" if "label" in frame.columns else "study_label"
        if column in frame.columns:
            out.update(dict(zip(frame["record_id"], frame[column].astype(str), strict=True)))
    return out
