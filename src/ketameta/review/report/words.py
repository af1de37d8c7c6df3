"""Words for the report: enums and column names in plain language, numbers as a reader sees
them (no ``-0.00``, blanks where a statistic is not defined, ratio measures on the ratio scale).

Everything the report prints goes through these helpers, so a snake_case value, a Python literal
(``True``, ``None``, ``nan``) or a negative zero never reaches the page.
"""

from __future__ import annotations

import math
from typing import Any

ENUM_WORDS: dict[str, str] = {
    # comparators
    "saline_placebo": "saline placebo",
    "midazolam": "midazolam (active placebo)",
    "placebo_spray_plus_oral_ad": "placebo spray + oral antidepressant",
    "psychotherapy_alone": "psychotherapy alone",
    "usual_care": "usual care",
    "other_active": "active antidepressant",
    "none": "none",
    # routes and drugs
    "iv": "intravenous",
    "intranasal": "intranasal",
    "oral": "oral",
    "im": "intramuscular",
    "sc": "subcutaneous",
    "sublingual": "sublingual",
    "racemic_ketamine": "racemic ketamine",
    "esketamine": "esketamine",
    "arketamine": "arketamine",
    # conditions
    "trd": "treatment-resistant depression",
    "mdd": "major depressive disorder",
    "bipolar_depression": "bipolar depression",
    "mixed_depression": "mixed depression samples",
    "ptsd": "PTSD",
    "suicidal_ideation": "depression with suicidal ideation",
    "substance_use": "substance use disorder",
    "chronic_pain_depression": "chronic pain with depression",
    "eating_disorder": "eating disorder",
    "other": "other",
    # designs and contrasts
    "parallel_rct": "parallel-group RCT",
    "crossover_rct": "crossover RCT",
    "factorial_rct": "factorial RCT",
    "single_arm": "single-arm study",
    "nonrandomised_controlled": "non-randomised controlled study",
    "observational": "observational study",
    "ketamine_vs_control": "ketamine vs control",
    "therapy_added_to_ketamine": "psychotherapy added to ketamine",
    "head_to_head": "head-to-head",
    "prepost": "pre-post (single arm)",
    # risk of bias
    "low": "low",
    "some_concerns": "some concerns",
    "high": "high",
    # decisions
    "included": "included",
    "excluded": "excluded",
    "awaiting_numbers": "awaiting numbers",
    # score types
    "change": "change score",
    "endpoint": "endpoint score",
    "contrast": "reported contrast",
}

COLUMN_WORDS: dict[str, str] = {
    "subgroup": "Subgroup",
    "k": "Comparisons",
    "studies": "Studies",
    "participants": "Participants",
    "estimate": "Estimate",
    "ci": "95% CI",
    "pi": "95% prediction interval",
    "tau2": "tau²",
    "i2": "I²",
    "q": "Q",
    "q_pvalue": "p (heterogeneity)",
    "pvalue": "p",
    "study": "Study",
    "design": "Design",
    "condition": "Population",
    "drug": "Drug",
    "route": "Route",
    "psychotherapy": "Psychotherapy",
    "comparator": "Comparator",
    "risk_of_bias": "Risk of bias",
    "risk_of_bias_reason": "Reason",
    "decision": "Decision",
    "reason": "Reason",
    "record_id": "Record",
}


def word(value: Any) -> str:
    """An enum value in words; other text unchanged; missing values blank.

    Examples
    --------
    >>> word("placebo_spray_plus_oral_ad"), word(None), word("MADRS")
    ('placebo spray + oral antidepressant', '', 'MADRS')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value)
    if text.lower() in ("nan", "none"):
        return "" if text.lower() == "nan" else ENUM_WORDS.get(text, text)
    return ENUM_WORDS.get(text, text)


def num(x: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; blank if missing; never ``-0.00``.

    Examples
    --------
    >>> num(-0.001), num(1.23456), num(float("nan")), num(None)
    ('0.00', '1.23', '', '')
    """
    if x is None:
        return ""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(value):
        return "" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    text = f"{value:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return text.replace("-", "−")


def interval(low: Any, high: Any, digits: int = 2, *, upper_limit: float | None = None) -> str:
    """``[low, high]`` (blank if either end is missing); a bound at a search limit as ``> limit``.

    Examples
    --------
    >>> interval(-0.5, 0.25), interval(0.0, 100.0, upper_limit=100.0), interval(None, 1)
    ('[−0.50, 0.25]', '[0.00, > 100]', '')
    """
    a, b = num(low, digits), num(high, digits)
    if not a or not b:
        return ""
    if upper_limit is not None and high is not None and float(high) >= upper_limit * (1 - 1e-9):
        b = f"> {upper_limit:g}"
    return f"[{a}, {b}]"


def pvalue(p: Any) -> str:
    """``< 0.001`` or three decimals; blank if not defined."""
    if p is None:
        return ""
    value = float(p)
    if math.isnan(value):
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def percent(x: Any) -> str:
    """One decimal and ``%``; blank if missing."""
    text = num(x, 1)
    return f"{text}%" if text else ""


def count(x: Any) -> str:
    """A whole number; blank if missing."""
    if x is None:
        return ""
    value = float(x)
    return "" if math.isnan(value) else f"{value:.0f}"


def ratio(log_value: Any, digits: int = 2) -> str:
    """A log ratio back on the ratio scale."""
    if log_value is None or math.isnan(float(log_value)):
        return ""
    return num(math.exp(float(log_value)), digits)


def ratio_interval(log_low: Any, log_high: Any, digits: int = 2) -> str:
    """A CI of a log ratio on the ratio scale; ends beyond 1000 shown as ``> 1000``."""
    if log_low is None or log_high is None:
        return ""
    low, high = float(log_low), float(log_high)
    if math.isnan(low) or math.isnan(high):
        return ""
    hi = "> 1000" if high > math.log(1000) else num(math.exp(high), digits)
    lo = "< 0.001" if low < math.log(0.001) else num(math.exp(low), digits)
    return f"[{lo}, {hi}]"


_DESIGN_WORDS = {
    "controlled": "Controlled comparisons",
    "direct": "Direct comparison",
    "single_arm": "Single-arm studies",
}
_NOTE_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"meta\(\): the upper Q-profile bound of tau2 lies beyond metafor's search limit "
        r"tau2\.max = (?P<limit>[0-9.e+]+)",
        "the upper confidence limit of the between-study variance (tau²) lies beyond "
        "{limit}, so with these few studies the amount of heterogeneity is essentially unknown.",
    ),
    (
        r"Only one study \('(?P<study>[^']+)'\)",
        "only one study ({study}): its own result and 95% CI are shown; nothing is pooled.",
    ),
    (
        r"subgroup\(\): (?P<n>\d+) studies in (?P<levels>\d+) levels of '(?P<by>[^']+)'",
        "with {n} studies in {levels} groups of {by}, the groups cannot be compared by a test "
        "(a test needs more studies than groups).",
    ),
)


def plain_note(text: str) -> str:
    """A library warning caught during an analysis, in words a clinician reads.

    The analysis notes are ``"<design>: <library message>"``; known messages are rephrased
    (their numbers kept), others are shown as they are, after the design in words.

    Examples
    --------
    >>> text = plain_note("direct: Only one study ('Wilkinson 2021'): it is returned as ...")
    >>> text.startswith("Direct comparison: only one study (Wilkinson 2021): its own result")
    True
    """
    import re

    design, sep, message = text.partition(": ")
    if not sep or design not in _DESIGN_WORDS:
        design, message = "", text
    for pattern, words in _NOTE_PATTERNS:
        found = re.search(pattern, message)
        if found:
            message = words.format(**{k: word(v) for k, v in found.groupdict().items()})
            break
    return f"{_DESIGN_WORDS[design]}: {message}" if design else message
