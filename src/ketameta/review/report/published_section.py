"""The report's "Published meta-analyses" section: their pooled results beside ours.

Only reads: the published results (`ketameta.review.published.load_published`) and the review's
already-fitted overall analysis. Nothing is pooled across the two; the reviews differ in
trials, timepoints and measures, which the table keeps visible.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from ketameta.review.published import load_published
from ketameta.review.report.words import interval, num

NOTE = (
    "Pooled results reported by published meta-analyses, copied from their abstracts or "
    "summary-of-findings tables (<code>data/published_meta_analyses.csv</code>, each with its "
    "quote). Signs are as each review reports them; the last column says which side favours "
    "ketamine. They are not pooled with this review's results: the reviews include different "
    "trials, timepoints and measures."
)


MEASURE_WORDS = {
    "SMD_d": "SMD (Cohen's d)",
    "SMD_g": "SMD (Hedges' g)",
    "MD": "mean difference",
    "MD_decrease": "mean difference (decrease)",
    "SMD_decrease": "SMD (decrease)",
    "RR": "risk ratio",
    "OR": "odds ratio",
}
FAVOURS_WORDS = {
    "negative": "below 0",
    "positive": "above 0",
    "RR > 1": "above 1",
    "OR > 1": "above 1",
}
COLUMNS = (
    ("review", "Review"),
    ("comparison", "Comparison"),
    ("outcome", "Outcome"),
    ("timepoint", "Timepoint"),
    ("measure", "Measure"),
    ("estimate [95% CI]", "Estimate [95% CI]"),
    ("k", "Studies"),
    ("n", "Participants"),
    ("favours ketamine", "Favours ketamine when"),
)


def published_table(published: pd.DataFrame) -> pd.DataFrame:
    """One display row per published result: who, what, the estimate with its CI, k and n.

    ``published`` holds the file's cells as text, so numbers show as the source prints them.
    """

    def interval(row: pd.Series) -> str:
        return f"{row['estimate']} [{row['ci_low']}, {row['ci_high']}]"

    return pd.DataFrame(
        {
            "review": published["first_author"] + " " + published["year"],
            "comparison": published["comparison"],
            "outcome": published["outcome"],
            "timepoint": published["timepoint"],
            "measure": published["measure"].map(lambda m: MEASURE_WORDS.get(m, m)),
            "estimate [95% CI]": published.apply(interval, axis=1),
            "k": published["k_studies"],
            "n": published["n_participants"],
            "favours ketamine": published["favours_ketamine"].map(
                lambda f: FAVOURS_WORDS.get(f, f)
            ),
        }
    )


def ours_line(overall: Any) -> str:
    """This review's overall controlled estimate, in one sentence (or why there is none)."""
    result = getattr(overall, "controlled", None)
    if result is None:
        return "<p>This review has no controlled comparison to set beside them.</p>"
    summary = result.summary().iloc[0]
    measure = getattr(result, "measure", None) or "SMD"
    values = [summary["estimate"], summary["ci_low"], summary["ci_high"]]
    if measure in ("RR", "OR"):
        values = [math.exp(v) for v in values]
        what = f"{measure}, above 1 favours ketamine"
    elif measure == "SMD":
        what = "Hedges' g, negative favours ketamine"
    else:
        what = f"{measure}, negative favours ketamine"
    data = getattr(result, "data", None)
    studies = int(data["study_id"].nunique()) if data is not None and "study_id" in data else None
    size = (
        f"{studies} studies, {int(summary['k'])} comparisons"
        if studies
        else f"k = {int(summary['k'])}"
    )
    return (
        "<p><strong>This review</strong> (controlled comparisons, "
        f"{html.escape(what)}): {num(values[0])} {interval(values[1], values[2])}, {size}.</p>"
    )


def published_section(overall: Any, tables: dict[str, pd.DataFrame], render) -> str:
    """HTML of the section; adds ``published_meta_analyses`` to ``tables``.

    ``render(rows, columns)`` turns display rows and ``(key, header)`` pairs into HTML.
    """
    table = published_table(load_published(as_text=True))
    tables["published_meta_analyses"] = table
    return (
        "<h2>Published meta-analyses, for comparison</h2>"
        f"<p class='note'>{NOTE}</p>{ours_line(overall)}"
        f"{render(table.to_dict('records'), COLUMNS)}"
        f"<p class='note'>{html.escape('Sources: see data/published_meta_analyses.csv.')}</p>"
    )
