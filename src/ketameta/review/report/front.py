"""The report's front matter and framing: summary of findings, key findings, methods, study flow,
included studies, risk of bias and limitations. Everything is written from the data and the
fitted results; nothing here is typed in by hand for these particular trials.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ketameta.review.findings import BAYES_MAX_STUDIES, SMALL_K, Finding
from ketameta.review.report.html import details, esc, figure, table
from ketameta.review.report.words import count, word
from ketameta.review.verdicts import MIN_STUDIES_PER_LEVEL

CERTAINTY_MARKS = {"high": "⊕⊕⊕⊕", "moderate": "⊕⊕⊕◯", "low": "⊕⊕◯◯", "very low": "⊕◯◯◯"}


def sof_section(findings: list[Finding]) -> str:
    """The summary-of-findings table with numbered footnotes."""
    notes: list[str] = []
    rows = []
    for f in findings:
        marks = []
        for text in (*f.footnotes, *([f.small_k] if f.small_k else [])):
            if text not in notes:
                notes.append(text)
            marks.append(str(notes.index(text) + 1))
        cert = f"{CERTAINTY_MARKS.get(f.certainty, '')} {f.certainty}".strip()
        rows.append(
            {
                "outcome": f"{f.question}: {f.outcome}",
                "n": _evidence(f),
                "relative": f.relative,
                "absolute": f.absolute,
                "certainty": (cert + (f" ({', '.join(marks)})" if marks else ""))
                if f.certainty
                else "",
                "statement": f.statement,
            }
        )
    head = (
        "<h2>Summary of findings</h2><p class='note'>Ketamine or esketamine compared with control "
        "for depression (randomised controlled comparisons). SMD: standardised mean difference "
        "(Hedges' g; negative favours ketamine); RR: risk ratio (above 1 favours ketamine); "
        "CI: 95% confidence interval (Hartung-Knapp). Certainty: GRADE, rated by the rules in "
        "the methods; numbers in brackets point to the footnotes.</p>"
    )
    body = table(
        rows,
        (
            ("outcome", "Question: outcome"),
            ("n", "Evidence"),
            ("relative", "Relative effect [95% CI]"),
            ("absolute", "Absolute effect"),
            ("certainty", "Certainty"),
            ("statement", "What it means"),
        ),
    )
    foot = "<ol class='fn'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ol>"
    return head + body + foot


def _evidence(f: Finding) -> str:
    if not f.studies:
        return ""
    studies = "1 study" if f.studies == 1 else f"{f.studies} studies"
    comparisons = "1 comparison" if f.comparisons == 1 else f"{f.comparisons} comparisons"
    return f"{studies} ({comparisons}); {f.participants}"


def key_findings(findings: list[Finding], verdicts: dict[str, Any]) -> str:
    items = []
    for f in findings:
        if f.studies and f.outcome.startswith("depression"):
            items.append(f"{f.question}: {f.statement} ({f.relative}; {f.studies} studies).")
    for name, verdict in verdicts.items():
        items.append(f"{name}: {verdict.text}")
    return "<h2>Key findings</h2><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def methods_section(settings: dict[str, Any], grade_text: str, reproducibility: str) -> str:
    test = (
        "Hartung-Knapp adjustment with t(k-1) quantiles"
        if settings["test"] == "knha"
        else "Wald-type z tests"
    )
    tp = settings["timepoint"]
    timepoint = (
        "each comparison's record at the trial's primary outcome and timepoint"
        if tp == "primary"
        else f"the record closest to the centre of {tp[0]:g}-{tp[1]:g} days"
    )
    sd_rule = (
        "Reported (LS-)mean differences with an SE or CI and both arm sizes are standardised "
        "with the SD recovered from the SE (approximate; flagged)."
        if settings["allow_sd_from_contrast"]
        else "Reported mean differences without SDs are used in the MADRS analysis only."
    )
    return f"""<h2>Methods</h2>
<h3>Eligibility</h3><p>Randomised controlled trials (parallel, crossover and factorial) of
racemic ketamine, esketamine or arketamine, any route, against a control without ketamine
(saline, midazolam, placebo spray with an oral antidepressant, usual care), in adults with a
depressive disorder (major depression, treatment-resistant or bipolar depression, depression with
suicidal ideation) or a related condition with a depression outcome; trials of ketamine combined
with a psychotherapy in any design (therapy in both arms, therapy added to ketamine, factorial,
single-arm). Head-to-head comparisons (esketamine vs racemic ketamine) and active-antidepressant
comparators are listed but not pooled against control. Case reports, reviews and registrations
without results are screened out with the reason.</p>
<h3>Sources</h3><p>The included-studies tables of published meta-analyses (Bahji 2021,
the 2018 AJP meta-analysis, the 2021 Cochrane review, the 2023 eClinicalMedicine analysis, the
2021 esketamine meta-analysis, the 2022 patient-level analysis) were screened for trials; each
trial's numbers were then read in its own abstract, PubMed Central table pages, registry results
pages or conference posters (or, where only that could be read, a review's table, marked as a
secondary source). The pages read for each study are listed in <code>data/screening.csv</code>
(<i>sources_checked</i>).</p>
<h3>Data extraction</h3><p>Every number is copied from a source read during curation, with the
source, the table or sentence and the verbatim quote; derived values name their formula
(<code>data/README.md</code>). One record per comparison enters an analysis: {esc(timepoint)}.
Multi-arm trials: {
        "the experimental arms sharing a control are combined into one arm"
        if settings["multiarm"] == "combine"
        else "the shared control arm's participants are split between the comparisons"
    }, so no control participant counts twice (Cochrane Handbook 23.3.4).
Crossover trials (Handbook 23.2): a paired contrast as reported;
otherwise first-period data; otherwise both periods as paired data with an assumed within-person
correlation of {settings["crossover_r"]:g}. Reports of participants counted in another included
study (post hoc pooled or by-subgroup papers) are listed and not pooled twice. Change scores are
preferred to endpoint scores; the overall analysis is repeated without endpoint-score records.
{esc(sd_rule)}</p>
<h3>Synthesis</h3><p>Effect measure: <b>{esc(settings["measure"])}</b> (Hedges' g with the exact
small-sample correction; negative favours ketamine); secondary: MADRS mean difference, and
response and remission as risk ratios from the arm counts. Random-effects model,
tau² by <b>{esc(settings["method"])}</b> iterated to the exact root; {test}; 95% prediction
intervals. Controlled comparisons, psychotherapy-added-to-ketamine comparisons and single-arm
studies are never pooled together. Subgroups: separate pools per level and the test for subgroup
differences (mixed-effects QM with common tau², and a Wald test on the separate estimates).</p>
<h3>Rules for small evidence</h3><p>A subgroup question needs at least {MIN_STUDIES_PER_LEVEL}
studies in every level it compares; otherwise the report says it cannot be answered and prints no
test. A single study is shown, never pooled (no diamond, no weight). With {SMALL_K[0]} to
{SMALL_K[1]} studies the result says so and shows the z-test interval beside the Hartung-Knapp
interval. Every pool of {SMALL_K[0]} to {BAYES_MAX_STUDIES} studies also gets a Bayesian
random-effects result (exact numerical integration, flat prior on the mean) under a
half-normal(0.5) prior on tau, with two other priors beside it so the reader sees how much the
prior matters. Small-study tests, the selection model, the Henmi-Copas interval, the test of
excess significance (and the publication-bias rating) are used only with 10 or more
studies.</p>
<h3>Certainty of evidence (GRADE)</h3>{grade_text}
<h3>Reproducibility</h3>{reproducibility}"""


def flow_section(screening: pd.DataFrame, per_analysis: dict[str, int], n_records: int) -> str:
    from ketameta.plots.flow import prisma_flow

    decision = screening["decision"]
    excluded = screening[decision == "excluded"]
    reasons: dict[str, int] = {}
    for reason in excluded["reason"].astype(str):
        key = exclusion_category(reason)
        reasons[key] = reasons.get(key, 0) + 1
    counts = {
        "screened": len(screening),
        "excluded": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "awaiting": int((decision == "awaiting_numbers").sum()),
        "included_studies": int((decision == "included").sum()),
        "included_records": n_records,
        "per_analysis": per_analysis,
    }
    fig = prisma_flow(
        counts,
        title="PRISMA 2020 flow of studies",
        labels={
            "screened": "Studies screened",
            "excluded": "Studies excluded",
            "awaiting": "Studies awaiting numbers (none readable in the sources)",
            "included_studies": "Studies included",
            "included_records": "Records (comparison x outcome x timepoint)",
        },
    )
    rows = [
        {"study": r.study_id, "decision": word(r.decision), "reason": r.reason}
        for r in screening[decision != "included"]
        .sort_values(["decision", "study_id"])
        .itertuples()
    ]
    listing = table(rows, (("study", "Study"), ("decision", "Decision"), ("reason", "Reason")))
    return (
        "<h3>Study flow</h3>"
        + figure(fig, "PRISMA 2020 flow diagram")
        + details(f"Studies not included, with the reason ({len(rows)})", listing)
    )


EXCLUSION_CATEGORIES = (
    (("pooled individual", "pooled analysis"), "pooled analysis of included trials"),
    (("review", "perspective"), "review or commentary, not a trial"),
    (("case report", "single-patient"), "case report (n = 1)"),
    (("withdrawn",), "trial withdrawn, no participants"),
    (("both arms receive",), "no ketamine-vs-control or therapy contrast"),
)


def exclusion_category(reason: str) -> str:
    """The group a screening reason belongs to, for the flow diagram (by keywords, in order)."""
    text = reason.lower()
    for words, category in EXCLUSION_CATEGORIES:
        if any(w in text for w in words):
            return category
    return "other reason (see the list)"


def included_section(studies: pd.DataFrame) -> str:
    first = studies.drop_duplicates("study_id").sort_values("study_label")
    rows = []
    for _, r in first.iterrows():
        sizes = studies[studies["study_id"] == r["study_id"]][["n1", "n2"]].max()
        rows.append(
            {
                "study": r["study_label"],
                "design": word(r["design"]),
                "population": word(r["condition"]),
                "drug": f"{word(r['drug'])}, {word(r['route'])}",
                "therapy": word(r["psychotherapy"]),
                "comparator": word(r["comparator"]),
                "n": " / ".join(x for x in (count(sizes["n1"]), count(sizes["n2"])) if x),
                "rob": word(r["risk_of_bias"]),
            }
        )
    return "<h3>Included studies</h3>" + table(
        rows,
        (
            ("study", "Study"),
            ("design", "Design"),
            ("population", "Population"),
            ("drug", "Drug, route"),
            ("therapy", "Psychotherapy"),
            ("comparator", "Control"),
            ("n", "n (ketamine / control, largest record)"),
            ("rob", "Risk of bias"),
        ),
    )


def rob_section(studies: pd.DataFrame) -> str:
    from ketameta.plots.rob import rob_summary_bar

    first = studies.drop_duplicates("study_id").sort_values("study_label")
    frame = pd.DataFrame({"study": first["study_label"], "overall": first["risk_of_bias"]})
    fig = rob_summary_bar(frame, overall="overall", labels="study")
    rows = [
        {"study": r["study_label"], "rob": word(r["risk_of_bias"]), "why": r["risk_of_bias_reason"]}
        for _, r in first.iterrows()
    ]
    reasons = table(rows, (("study", "Study"), ("rob", "Overall risk of bias"), ("why", "Reason")))
    return (
        "<h3>Risk of bias</h3><p>The curators' RoB 2 overall judgement per study, with its reason "
        "(the data do not carry the five domain judgements, so there is one column).</p>"
        + figure(fig, "share of studies by overall risk of bias")
        + reasons
    )


def limitations_section(items: list[str]) -> str:
    return "<h2>Limitations</h2><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"
