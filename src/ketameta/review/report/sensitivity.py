"""The report's sensitivity section: does each conclusion survive leaving studies out, dropping
high risk-of-bias studies, and (with 10 or more studies) what do small-study tests say."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ketameta.review.findings import study_count
from ketameta.review.report.bias_section import bias_paragraph
from ketameta.review.report.html import details, esc, table
from ketameta.review.report.words import interval, num, pvalue, word

SMALL_STUDY_MIN_K = 10  # below this, small-study tests have too little power to be read


def _excludes_null(low: float, high: float) -> bool:
    return bool(high < 0 or low > 0)


def pool_sensitivity(label: str, pooled: Any, tables: dict[str, pd.DataFrame]) -> str:
    from ketameta.synthesis.bias import egger_test, trim_and_fill
    from ketameta.synthesis.pooling import meta
    from ketameta.synthesis.sensitivity import influence, leave_one_out

    key = label.lower().replace(": ", "_").replace(" ", "_")
    n = study_count(pooled)
    parts = [f"<h4>{esc(label)} ({n} studies, {pooled.k} comparisons)</h4>"]
    loo = leave_one_out(pooled)
    infl = influence(pooled)
    tables[f"sensitivity_{key}_leave_one_out"] = loo.reset_index()
    base = _excludes_null(pooled.ci_low, pooled.ci_high)
    flips = [
        str(name)
        for name, row in loo.iterrows()
        if _excludes_null(row["ci_low"], row["ci_high"]) != base
    ]
    verdict = (
        "holds whichever study is left out"
        if not flips
        else "changes when one of these is left out: " + ", ".join(flips)
    )
    influential = ", ".join(str(s) for s in infl.index[infl["influential"].to_numpy()]) or "none"
    parts.append(
        f"<p>Leave-one-out: the conclusion (CI {'excluding' if base else 'including'} no effect) "
        f"{esc(verdict)}. Influential studies (metafor's rule): {esc(influential)}.</p>"
    )
    rows = [
        {
            "omitted": str(name),
            "est": f"{num(r['estimate'])} {interval(r['ci_low'], r['ci_high'])}",
            "i2": num(r["i2"], 1) + "%",
            "infl": "yes" if bool(infl.loc[name, "influential"]) else "",
        }
        for name, r in loo.iterrows()
    ]
    parts.append(
        details(
            "Leave-one-out table",
            table(
                rows,
                (
                    ("omitted", "Study left out"),
                    ("est", "Estimate [95% CI]"),
                    ("i2", "I²"),
                    ("infl", "Influential"),
                ),
            ),
        )
    )
    data = pooled.data
    if data is not None and "risk_of_bias" in data.columns:
        keep = (data["risk_of_bias"].astype(str) != "high").to_numpy()
        if 2 <= keep.sum() < pooled.k:
            low = meta(pooled.yi[keep], pooled.vi[keep], method=pooled.method, test=pooled.test)
            dropped = ", ".join(dict.fromkeys(data.loc[~keep, "label"].astype(str)))
            parts.append(
                f"<p>Without the studies at high risk of bias ({esc(dropped)}): "
                f"{num(low.estimate)} {interval(low.ci_low, low.ci_high)} (k = {low.k}).</p>"
            )
        elif keep.all():
            parts.append("<p>No study in this pool is at high risk of bias.</p>")
    if n >= SMALL_STUDY_MIN_K:
        from ketameta.plots.funnel import funnel
        from ketameta.review.report.html import figure

        egger = egger_test(pooled)
        tf = trim_and_fill(pooled)
        parts.append(
            figure(
                funnel(pooled, contours=True, filled=tf, title=f"{label}: contour-enhanced funnel"),
                f"funnel plot: {label}",
            )
        )
        parts.append(
            f"<p>Small-study effects: Egger's test p {esc(pvalue(egger.pvalue))}; trim-and-fill "
            f"adds {tf.k0} studies on the {esc(tf.side)} side, giving "
            f"{num(tf.result.estimate)} {interval(tf.result.ci_low, tf.result.ci_high)}. "
            "Asymmetry can have causes other than publication bias (small trials of a different "
            "kind, e.g. crossover or early IV trials).</p>"
        )
        parts.append(bias_paragraph(pooled))
    else:
        parts.append(f"<p>Small-study tests not run: fewer than {SMALL_STUDY_MIN_K} studies.</p>")
    return "\n".join(parts)


def sensitivity_section(results: dict[str, Any], tables: dict[str, pd.DataFrame]) -> str:
    parts = ["<h3>Sensitivity analyses</h3>"]
    overall = results["overall"].controlled
    if overall is not None and study_count(overall) >= 3:
        parts.append(pool_sensitivity("Overall", overall, tables))
    route = results["route"].controlled
    for level, res in getattr(route, "results", {}).items():
        if study_count(res) >= 3:
            parts.append(pool_sensitivity(f"Route: {word(level)}", res, tables))
    return "\n".join(parts)
