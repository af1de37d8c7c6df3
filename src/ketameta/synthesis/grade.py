"""GRADE certainty of a body of evidence, rated by documented rules (Cochrane Handbook ch. 14).

``grade()`` rates the five GRADE domains that can lower certainty (risk of bias, inconsistency,
indirectness, imprecision, publication bias) from a fitted result (``MetaResult`` or
``BinaryResult``) and per-study information the caller supplies. Each rule is a named
threshold below; GRADE remains a judgement, so ``overrides`` replace a domain's rating while the
assessment keeps the rule's rating, the override and the reason. ``plain_language()`` turns a
result and its certainty into a Cochrane-style sentence. The null is 0 on the analysis scale
(differences, and log ratios for RR/OR/ROM/PETO).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

LEVELS = ("high", "moderate", "low", "very low")
DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")
RATIO_MEASURES = ("RR", "OR", "ROM", "PETO", "HR")

#: Risk of bias (GRADE Handbook 5.2.1: rate down when studies at risk carry much of the weight).
#: > 25% of the weight at high risk is a large enough share to move the estimate -> 1 level.
ROB_HIGH_SERIOUS = 25.0
#: > 50% of the weight at high risk or with some concerns: most of the evidence is doubtful -> 1.
ROB_ANY_SERIOUS = 50.0
#: > 50% of the weight at high risk: the estimate rests mainly on flawed studies -> 2 levels.
ROB_HIGH_VERY_SERIOUS = 50.0
#: Inconsistency: I² of 50% and 75% are "substantial" and "considerable" (Handbook 10.10.2).
I2_SERIOUS = 50.0
I2_VERY_SERIOUS = 75.0
#: Indirectness: indirect studies carrying more than half the weight dominate the estimate.
INDIRECT_SHARE = 50.0
#: Publication bias: small-study tests have too little power with fewer than 10 studies
#: (Handbook 13.3.5.4); p < 0.10 is the conventional threshold for Egger's test.
PUB_BIAS_MIN_K = 10
PUB_BIAS_P = 0.10
#: Optimal information size rules of thumb (GRADE Handbook 5.2.4.1): participants for
#: continuous outcomes, events for binary outcomes.
OIS_CONTINUOUS = 400
OIS_BINARY = 300

_ROB_WORDS = {
    "low": "low",
    "some_concerns": "some_concerns",
    "some concerns": "some_concerns",
    "some-concerns": "some_concerns",
    "unclear": "some_concerns",
    "moderate": "some_concerns",
    "high": "high",
    "serious": "high",
    "critical": "high",
}
_NUMBER = {0: "no", 1: "one level", 2: "two levels"}


@dataclass(frozen=True)
class DomainRating:
    """One GRADE domain: the rule's downgrade, the final downgrade and why.

    ``downgrade`` is what counts (the override if one was given, else ``rule_downgrade``);
    ``assessed`` is False where the domain could not be judged (e.g. a single study).
    """

    domain: str
    downgrade: int
    rule_downgrade: int
    reason: str
    overridden: bool = False
    override_reason: str | None = None
    assessed: bool = True

    def footnote(self) -> str | None:
        """The clinician-facing sentence for this domain, or None when nothing needs saying."""
        name = self.domain.replace("_", " ").capitalize()
        if self.overridden:
            return (
                f"{name}: the rule gave {_NUMBER[self.rule_downgrade]} downgrade "
                f"({self.reason}); overridden to {_NUMBER[self.downgrade]} downgrade "
                f"because {self.override_reason}."
            )
        if self.downgrade:
            return f"{name}: downgraded {_NUMBER[self.downgrade]}: {self.reason}."
        if not self.assessed:
            return f"{name}: {self.reason}."
        return None


@dataclass(frozen=True)
class GradeAssessment:
    """A GRADE rating: ``certainty`` ("high" ... "very low"), the ``domains`` and the ``start``.

    Examples
    --------
    >>> from ketameta.synthesis.pooling import meta
    >>> res = meta([-0.5, -0.3, -0.4], [0.01, 0.02, 0.015], labels=["A", "B", "C"])
    >>> g = grade(res, risk_of_bias=["high", "low", "low"], information=900)
    >>> g.certainty
    'moderate'
    >>> g.summary()["downgrade"].tolist()
    [1, 0, 0, 0, 0]
    """

    certainty: str
    domains: tuple[DomainRating, ...]
    start: str = "high"

    @property
    def total_downgrade(self) -> int:
        """Sum of the final downgrades over the domains."""
        return sum(d.downgrade for d in self.domains)

    def domain(self, name: str) -> DomainRating:
        """The rating of one domain by name (e.g. ``"imprecision"``)."""
        return next(d for d in self.domains if d.domain == name)

    def footnotes(self) -> list[str]:
        """One sentence per downgrade, override or domain that could not be assessed."""
        return [note for d in self.domains if (note := d.footnote()) is not None]

    def summary(self) -> pd.DataFrame:
        """One row per domain: ``rule_downgrade, downgrade, overridden, override_reason, reason,
        assessed``; ``attrs["certainty"]`` and ``attrs["start"]`` hold the overall rating."""
        rows = [
            {
                "domain": d.domain,
                "rule_downgrade": d.rule_downgrade,
                "downgrade": d.downgrade,
                "overridden": d.overridden,
                "override_reason": d.override_reason,
                "reason": d.reason,
                "assessed": d.assessed,
            }
            for d in self.domains
        ]
        table = pd.DataFrame(rows).set_index("domain")
        table.attrs.update(certainty=self.certainty, start=self.start)
        return table

    def __str__(self) -> str:
        head = (
            f"GRADE certainty: {self.certainty} (start {self.start}, "
            f"{self.total_downgrade} level(s) down)"
        )
        lines = [head]
        for d in self.domains:
            flag = " [override]" if d.overridden else ""
            lines.append(f"  {d.domain:<17} {-d.downgrade:>2}{flag}  {d.reason}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.summary().to_html(border=0)
        title = html.escape(f"GRADE certainty: {self.certainty} (start {self.start})")
        return f"<div><strong>{title}</strong>{table}</div>"


def _per_study(values: Any, labels: Sequence[str], name: str, default: Any) -> list[Any]:
    """Align a sequence (one entry per study) or a mapping label -> value with ``labels``."""
    if isinstance(values, Mapping):
        if default is None:
            missing = [lab for lab in labels if lab not in values]
            if missing:
                raise ValueError(f"grade(): {name} has no entry for {missing}")
        return [values.get(lab, default) for lab in labels]
    values = list(values)
    if len(values) != len(labels):
        raise ValueError(f"grade(): {name} has {len(values)} entries for {len(labels)} studies")
    return values


def _risk_of_bias(result: Any, judgements: Any) -> DomainRating:
    if judgements is None and result.data is not None and "risk_of_bias" in result.data:
        judgements = result.data["risk_of_bias"].tolist()
    if judgements is None:
        return DomainRating(
            "risk_of_bias",
            0,
            0,
            "not assessed: no risk-of-bias judgements supplied",
            assessed=False,
        )
    raw = _per_study(judgements, result.labels, "risk_of_bias", None)
    bad = [j for j in raw if str(j).strip().lower() not in _ROB_WORDS]
    if bad:
        raise ValueError(f"grade(): risk_of_bias must be low/some_concerns/high, got {bad}")
    rob = np.array([_ROB_WORDS[str(j).strip().lower()] for j in raw])
    w = np.asarray(result.weights, dtype=float)
    w = 100.0 * w / w.sum()
    high, some = float(w[rob == "high"].sum()), float(w[rob == "some_concerns"].sum())
    shares = (
        f"{high:.0f}% of the weight from studies at high risk of bias, {high + some:.0f}% "
        "at high risk or with some concerns"
    )
    if high > ROB_HIGH_VERY_SERIOUS:
        return DomainRating(
            "risk_of_bias", 2, 2, f"{shares} (high risk > {ROB_HIGH_VERY_SERIOUS:.0f}%)"
        )
    if high > ROB_HIGH_SERIOUS or high + some > ROB_ANY_SERIOUS:
        return DomainRating(
            "risk_of_bias",
            1,
            1,
            f"{shares} (limits {ROB_HIGH_SERIOUS:.0f}% and {ROB_ANY_SERIOUS:.0f}%)",
        )
    return DomainRating("risk_of_bias", 0, 0, shares)


def _inconsistency(result: Any) -> DomainRating:
    if result.k < 2:
        return DomainRating(
            "inconsistency", 0, 0, "single study: inconsistency cannot be assessed", assessed=False
        )
    i2, lo, hi = float(result.i2), float(result.pi_low), float(result.pi_high)
    crosses = lo <= 0.0 <= hi
    yi = np.asarray(result.yi, dtype=float)
    both_sides = bool(np.any(yi < 0) and np.any(yi > 0))
    pi = (
        "the prediction interval includes no effect"
        if crosses
        else ("the prediction interval excludes no effect")
    )
    text = f"I² = {i2:.0f}%, {pi}"
    if i2 >= I2_VERY_SERIOUS and crosses and both_sides:
        return DomainRating(
            "inconsistency", 2, 2, f"{text} and study estimates lie on both sides of no effect"
        )
    if i2 >= I2_SERIOUS and crosses:
        return DomainRating("inconsistency", 1, 1, text)
    return DomainRating("inconsistency", 0, 0, text)


def _indirectness(result: Any, indirect: Any) -> DomainRating:
    if indirect is None:
        return DomainRating("indirectness", 0, 0, "no indirectness reported")
    reasons = [
        r if isinstance(r, str) and r.strip() else None
        for r in _per_study(indirect, result.labels, "indirect", "")
    ]
    w = np.asarray(result.weights, dtype=float)
    w = 100.0 * w / w.sum()
    share = float(sum(wi for wi, r in zip(w, reasons, strict=True) if r))
    grouped: dict[str, list[str]] = {}
    for lab, r in zip(result.labels, reasons, strict=True):
        if r:
            grouped.setdefault(r.strip(), []).append(lab)
    listed = "; ".join(f"{r} ({', '.join(labs)})" for r, labs in grouped.items())
    text = f"{share:.0f}% of the weight from indirect studies" + (f": {listed}" if listed else "")
    return DomainRating(
        "indirectness", int(share > INDIRECT_SHARE), int(share > INDIRECT_SHARE), text
    )


def _information(result: Any, outcome: str) -> float | None:
    data = result.data
    cols = ("events1", "events2") if outcome == "binary" else ("n1", "n2")
    if data is None or not all(c in data.columns for c in cols):
        return None
    values = data[list(cols)].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return None
    return float(np.nansum(values))  # rows without counts add nothing (a lower bound)


def _mid_scale(mid: float | None, measure: str | None) -> float | None:
    """The MID on the analysis scale: ``|log(mid)|`` for ratio measures, ``|mid|`` otherwise."""
    if mid is None:
        return None
    if measure in RATIO_MEASURES:
        if mid <= 0 or mid == 1:
            raise ValueError("mid for a ratio measure is a ratio > 0 other than 1 (e.g. 1.25)")
        return abs(math.log(mid))
    if mid == 0:
        raise ValueError("mid must be non-zero")
    return abs(float(mid))


def _imprecision(
    result: Any, outcome: str, mid: float | None, ois: float | None, information: float | None
) -> DomainRating:
    lo, hi, est = float(result.ci_low), float(result.ci_high), float(result.estimate)
    m = _mid_scale(mid, result.measure)
    null = lo <= 0.0 <= hi
    target = ois if ois is not None else (OIS_BINARY if outcome == "binary" else OIS_CONTINUOUS)
    unit = "events" if outcome == "binary" else "participants"
    info = information if information is not None else _information(result, outcome)
    short = info is not None and info < target
    parts = ["the CI includes no effect" if null else "the CI excludes no effect"]
    if m is not None:
        both_mid = lo <= -m and hi >= m
        side_mid = lo <= math.copysign(m, est) <= hi
        parts.append(
            "and both the benefit and harm thresholds (±MID)"
            if both_mid
            else ("and the MID" if side_mid else "and not the MID")
        )
    else:
        both_mid = side_mid = False
    if info is None:
        parts.append(f"({unit} unknown: OIS not checked)")
    else:
        parts.append(f"({info:.0f} {unit}, OIS {target:.0f})")
    text = " ".join(parts)
    if both_mid or (null and short) or (null and result.k == 1):
        rule = 2
    elif null or side_mid or short:
        rule = 1
    else:
        rule = 0
    if result.k == 1:
        text = "single study: " + text
    return DomainRating("imprecision", rule, rule, text)


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
