"""GRADE certainty of a body of evidence, rated by documented rules (Cochrane Handbook ch. 14).

``grade()`` rates the five GRADE domains that can lower certainty (risk of bias, inconsistency,
indirectness, imprecision, publication bias) from a fitted result (``MetaResult`` or
``BinaryResult``) and per-study information the caller supplies. Each rule is a named
threshold (in `ketameta.synthesis.grade_rules`, re-exported here; the result types are in
`ketameta.synthesis.grade_results`); GRADE remains a judgement, so ``overrides`` replace a
domain's rating while the assessment keeps the rule's rating, the override and the reason.
``plain_language()`` turns a result and its certainty into a Cochrane-style sentence. The null
is 0 on the analysis scale (differences, and log ratios for RR/OR/ROM/PETO).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ketameta.synthesis.grade_results import DomainRating, GradeAssessment
from ketameta.synthesis.grade_rules import (
    DOMAINS,
    I2_SERIOUS,
    I2_VERY_SERIOUS,
    INDIRECT_SHARE,
    LEVELS,
    OIS_BINARY,
    OIS_CONTINUOUS,
    PUB_BIAS_MIN_K,
    PUB_BIAS_P,
    RATIO_MEASURES,
    ROB_ANY_SERIOUS,
    ROB_HIGH_SERIOUS,
    ROB_HIGH_VERY_SERIOUS,
    _imprecision,
    _inconsistency,
    _indirectness,
    _mid_scale,
    _risk_of_bias,
)

__all__ = [
    "DOMAINS",
    "I2_SERIOUS",
    "I2_VERY_SERIOUS",
    "INDIRECT_SHARE",
    "LEVELS",
    "OIS_BINARY",
    "OIS_CONTINUOUS",
    "PUB_BIAS_MIN_K",
    "PUB_BIAS_P",
    "RATIO_MEASURES",
    "ROB_ANY_SERIOUS",
    "ROB_HIGH_SERIOUS",
    "ROB_HIGH_VERY_SERIOUS",
    "DomainRating",
    "GradeAssessment",
    "grade",
    "plain_language",
]


def _publication_bias(result: Any, p: float | None) -> DomainRating:
    if result.k < PUB_BIAS_MIN_K:
        return DomainRating(
            "publication_bias",
            0,
            0,
            f"not assessed (fewer than {PUB_BIAS_MIN_K} studies)",
            assessed=False,
        )
    source = "small-study test"
    if p is None:
        from ketameta.synthesis.bias import egger_test

        p, source = egger_test(result).pvalue, "Egger's test"
    rule = int(p < PUB_BIAS_P)
    return DomainRating(
        "publication_bias", rule, rule, f"{source} p = {p:.3f} (threshold {PUB_BIAS_P:.2f})"
    )


def grade(
    result: Any,
    *,
    risk_of_bias: Any = None,
    indirect: Any = None,
    outcome: str = "continuous",
    mid: float | None = None,
    ois: float | None = None,
    small_study_p: float | None = None,
    overrides: Mapping[str, tuple[int, str]] | None = None,
    start: str = "high",
    information: float | None = None,
) -> GradeAssessment:
    """Rate the GRADE certainty of a pooled result by explicit, testable rules.

    Parameters
    ----------
    result : MetaResult or BinaryResult
        The fitted meta-analysis (``weights`` in percent, ``labels``, intervals, ``i2``).
    risk_of_bias : sequence or mapping, optional
        Per-study judgement "low", "some_concerns" ("unclear"/"moderate") or "high"
        ("serious"/"critical"), aligned with ``result.labels`` or keyed by label. Default: the
        ``risk_of_bias`` column of ``result.data`` if any, else not assessed.
        Rule: 2 levels if > 50% of the weight is at high risk; 1 if > 25% is at high risk or
        > 50% at high risk or some concerns; else 0.
    indirect : sequence or mapping, optional
        Per-study reason for indirectness ("" or None = direct). 1 level if indirect studies
        carry > 50% of the weight.
    outcome : {"continuous", "binary"}
        Chooses the default optimal information size and what ``result.data`` is summed over
        (``n1 + n2`` participants, or ``events1 + events2`` events).
    mid : float, optional
        Minimal important difference on the analysis scale (a ratio such as 1.25 for ratio
        measures, used as ±log(mid)).
    ois : float, optional
        Optimal information size (default 400 participants, or 300 events for binary).
    small_study_p : float, optional
        p-value of a small-study test; with k >= 10 and None, Egger's test is computed.
        1 level if p < 0.10; with k < 10 not assessed.
    overrides : mapping, optional
        ``domain -> (downgrade, reason)``: replaces the rule's downgrade (0-2); both are kept.
    start : {"high", "moderate", "low", "very low"}
        "high" for randomised evidence, "low" for observational or single-arm evidence.
    information : float, optional
        Total participants (continuous) or events (binary), overriding ``result.data``.

    Returns
    -------
    GradeAssessment
        ``certainty`` = ``start`` lowered by the sum of the downgrades, floored at "very low".

    Notes
    -----
    Inconsistency (k >= 2): 1 level if I² >= 50% and the prediction interval includes the null;
    2 if I² >= 75%, the prediction interval includes the null and study estimates lie on both
    sides of it. A single study cannot be assessed (no downgrade). Imprecision: 2 levels if the
    CI includes both -MID and +MID, or includes the null while the information is below the
    OIS, or includes the null from a single study; 1 if the CI includes the null, or includes
    the MID on the side of the estimate, or the information is below the OIS; else 0.

    Examples
    --------
    >>> from ketameta.synthesis.pooling import meta
    >>> res = meta([-0.2, 0.1, -0.1], [0.02, 0.03, 0.02])
    >>> g = grade(res, information=120)
    >>> g.certainty, g.domain("imprecision").downgrade
    ('low', 2)
    """
    if start not in LEVELS:
        raise ValueError(f"grade(): start must be one of {LEVELS}, got {start!r}")
    if outcome not in ("continuous", "binary"):
        raise ValueError(f"grade(): outcome must be 'continuous' or 'binary', got {outcome!r}")
    ratings = [
        _risk_of_bias(result, risk_of_bias),
        _inconsistency(result),
        _indirectness(result, indirect),
        _imprecision(result, outcome, mid, ois, information),
        _publication_bias(result, small_study_p),
    ]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(DOMAINS))
    if unknown:
        raise ValueError(f"grade(): unknown override domain(s) {unknown}; use {DOMAINS}")
    final = []
    for r in ratings:
        if r.domain in overrides:
            value, why = overrides[r.domain]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2:
                raise ValueError(f"grade(): override for {r.domain} must be 0, 1 or 2")
            if not isinstance(why, str) or not why.strip():
                raise ValueError(f"grade(): override for {r.domain} needs a reason")
            r = DomainRating(
                r.domain, value, r.rule_downgrade, r.reason, True, why.strip(), r.assessed
            )
        final.append(r)
    total = sum(r.downgrade for r in final)
    certainty = LEVELS[min(len(LEVELS) - 1, LEVELS.index(start) + total)]
    return GradeAssessment(certainty, tuple(final), start)


def plain_language(
    result: Any,
    certainty: str | GradeAssessment,
    *,
    outcome_name: str,
    favours: str = "ketamine",
    comparator: str = "control",
    mid: float | None = None,
) -> str:
    """One Cochrane-style sentence on the effect and its certainty.

    The verb follows the certainty (high "reduces", moderate "probably reduces", low "may
    reduce", very low "we are very uncertain whether ... reduces"); "increases" when the
    estimate is above the null. When the CI includes the null the sentence says the
    intervention "makes / probably makes / may make little or no difference". With ``mid``
    (same scale as in :func:`grade`): "slightly" if |estimate| < MID, "substantially" if
    |estimate| >= 2 MID, no size word between.

    Examples
    --------
    >>> from ketameta.synthesis.pooling import meta
    >>> res = meta([-0.3, -0.25, -0.35], [0.01, 0.01, 0.01])
    >>> plain_language(res, "moderate", outcome_name="depression scores", mid=0.5)
    'Ketamine probably reduces depression scores slightly compared with control \
(moderate-certainty evidence).'
    """
    level = certainty.certainty if isinstance(certainty, GradeAssessment) else certainty
    if level not in LEVELS:
        raise ValueError(f"plain_language(): certainty must be one of {LEVELS}, got {level!r}")
    est, lo, hi = float(result.estimate), float(result.ci_low), float(result.ci_high)
    tag = f"({level}-certainty evidence)"
    subject = favours[:1].upper() + favours[1:]
    if lo <= 0.0 <= hi:
        if level == "very low":
            return (
                f"We are very uncertain whether {favours} makes any difference to "
                f"{outcome_name} compared with {comparator} {tag}."
            )
        verb = {"high": "makes", "moderate": "probably makes", "low": "may make"}[level]
        return (
            f"{subject} {verb} little or no difference to {outcome_name} compared with "
            f"{comparator} {tag}."
        )
    third, base = ("reduces", "reduce") if est < 0 else ("increases", "increase")
    m = _mid_scale(mid, result.measure)
    size = ""
    if m is not None:
        size = " slightly" if abs(est) < m else (" substantially" if abs(est) >= 2 * m else "")
    body = f"{outcome_name}{size} compared with {comparator} {tag}."
    if level == "very low":
        return f"We are very uncertain whether {favours} {third} {body}"
    verb = {"high": third, "moderate": f"probably {third}", "low": f"may {base}"}[level]
    return f"{subject} {verb} {body}"
