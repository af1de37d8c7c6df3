"""The report's section on dependent effects: the CHE model (every dose arm and timepoint) beside
the one-record-per-comparison analysis, with a multilevel forest and leave-one-study-out."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ketameta.review.report.html import details, esc, figure, table
from ketameta.review.report.words import interval, num


def _record_label(row: pd.Series) -> str:
    """What distinguishes a record within its study: its timepoint, then its arm."""
    label, study = str(row.get("label", "")), str(row.get("study_label", ""))
    arm = label[len(study) :].strip() if label.startswith(study) else ""
    if arm.startswith("(") and arm.endswith(")"):
        arm = arm[1:-1]
    when = str(row.get("timepoint_label", "") or "")
    return ", ".join(x for x in (when, arm) if x and x != "nan") or str(row["record_id"])


def che_section(result: Any, overall: Any, tables: dict[str, pd.DataFrame]) -> str:
    from ketameta.plots.multilevel import forest_mv
    from ketameta.review.che import leave_one_study_out

    rob = result.robust.coef.iloc[0]
    model = result.model
    df = float(result.robust.df[0])
    effects = result.effects
    rows = model.records()
    fig = forest_mv(
        rows["yi"],
        rows["ci_low"],
        rows["ci_high"],
        list(effects["study_label"].astype(str)),
        [_record_label(r) for _, r in effects.iterrows()],
        estimate=float(rob["estimate"]),
        ci=(float(rob["ci_low"]), float(rob["ci_high"])),
        pooled_label="CHE model (robust CR2 interval)",
        title="Every dose arm and timepoint (0-42 days), by study",
    )
    loo = leave_one_study_out(result)
    tables["che_leave_one_study_out"] = loo
    flips = loo[(loo["ci_high"] >= 0) & (loo["ci_low"] <= 0)]
    sigma = model.sigma2
    one = overall.controlled
    rows = [
        {
            "analysis": "One record per comparison (primary timepoint, arms combined)",
            "k": f"{one.data['study_id'].nunique()} studies, {one.k} comparisons",
            "est": f"{num(one.estimate)} {interval(one.ci_low, one.ci_high)}",
        },
        {
            "analysis": f"CHE: every record in 0-42 days, rho = {result.rho:g}, robust CR2 "
            f"(df {df:.1f})",
            "k": f"{result.studies} studies, {result.k} records",
            "est": f"{num(rob['estimate'])} {interval(rob['ci_low'], rob['ci_high'])}",
        },
    ]
    loo_rows = [
        {
            "omitted": r["omitted"],
            "est": f"{num(r['estimate'])} {interval(r['ci_low'], r['ci_high'])}",
        }
        for _, r in loo.iterrows()
    ]
    verdict = (
        "holds whichever study is left out"
        if flips.empty
        else "changes when one of these is left out: " + ", ".join(flips["omitted"])
    )
    return (
        "<h3>Dependent effects: every dose arm and timepoint (CHE model)</h3>"
        "<p>The analyses above keep one record per comparison. This model keeps every dose arm "
        "and every timepoint up to six weeks, with sampling errors of a study's records "
        f"correlated (working correlation {result.rho:g}), between-study and within-study "
        "variance components, and cluster-robust (CR2) inference by study, which stays valid "
        "if the working correlation is wrong (Pustejovsky &amp; Tipton 2022). Between-study "
        f"tau² {num(sigma[0], 3)}, within-study {num(sigma[1], 3)}.</p>"
        + table(rows, (("analysis", "Analysis"), ("k", "Evidence"), ("est", "SMD [95% CI]")))
        + figure(fig, "multilevel forest plot: studies with their records")
        + f"<p>Leave one study out: the conclusion {esc(verdict)}.</p>"
        + details(
            "Leave-one-study-out table",
            table(loo_rows, (("omitted", "Study left out"), ("est", "SMD [95% CI]"))),
        )
    )
