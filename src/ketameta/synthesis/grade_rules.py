"""The GRADE rules: the named thresholds and the rating of four domains from a fitted result.

Risk of bias, inconsistency, indirectness and imprecision are each rated by a documented rule
(Cochrane Handbook ch. 14, GRADE Handbook 5.2) into a `DomainRating`; publication bias and the
overall certainty are rated in `ketameta.synthesis.grade`, which re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketameta.synthesis.grade_results import DomainRating

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
