"""The review's questions on other scales: response and remission (risk ratios from arm
counts), and the overall question as a MADRS mean difference.

The continuous analyses (`questions`) answer each question on depression scores; here
the same questions are asked of responders and remitters, with the settings of the report
(estimator, test, multi-arm rule) and ``measure="RR"``. Each result is a
`ketameta.review.questions.ReviewAnalysis` named ``"<outcome>_<question>"``.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ketameta.review.questions import ReviewAnalysis, Settings, run

BINARY_NOTE = (
    "Risk ratios of responders and of remitters (ketamine over control, from the arm counts; "
    "log scale in the tables, RR in the plots; RR > 1 favours ketamine), at each comparison's "
    "primary timepoint. Response and remission follow each trial's own definition (usually a "
    "50% fall in MADRS; remission MADRS <= 10 or 12). Records with only a reported ratio are "
    "listed, not pooled."
)


def binary_analyses(
    studies: pd.DataFrame,
    settings: Settings,
    questions: tuple[str, ...] = ("overall", "route"),
    outcomes: tuple[str, ...] = ("response", "remission"),
) -> list[ReviewAnalysis]:
    """Run ``questions`` on each binary outcome; names say which outcome.

    Examples
    --------
    >>> from ketameta.review.studies import load_studies
    >>> results = binary_analyses(load_studies(), Settings(), ("overall",), ("response",))
    >>> results[0].name, results[0].settings["measure"]
    ('response_overall', 'RR')
    """
    out = []
    for outcome in outcomes:
        binary_settings = replace(settings, outcome=outcome, measure="RR")
        for name in questions:
            result = run(name, studies, binary_settings)
            out.append(replace(result, name=f"{outcome}_{name}"))
    return out


def madrs_md(studies: pd.DataFrame, settings: Settings) -> ReviewAnalysis:
    """The overall question as a raw MADRS mean difference (``measure="MD"``).

    It uses the trials that report only an LS-mean difference with its SE and no arm sizes
    (which cannot be standardised), so it complements the SMD analysis.

    Examples
    --------
    >>> from ketameta.review.studies import load_studies
    >>> madrs_md(load_studies(), Settings()).settings["measure"]
    'MD'
    """
    result = run("overall", studies, replace(settings, measure="MD"))
    question = "How large is the effect on the MADRS, in points (mean difference)?"
    return replace(result, name="overall_MADRS_mean_difference", question=question)
