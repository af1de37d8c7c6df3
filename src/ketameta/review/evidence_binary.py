"""Binary records (response, remission, relapse) to log risk ratios, odds ratios or RDs.

The twin of `ketameta.review.evidence.record_effects` for events: each two-arm record with
``events1, n1, events2, n2`` becomes ``yi``/``vi`` by ``escalc`` (path ``arms_events``; zero
cells get metafor's 1/2 correction as ``escalc`` applies it). Reported ratios without counts
(an RR/OR/HR with a CI) are not pooled here: a hazard ratio is not a risk ratio, and mixing them
would change the question silently; such records are excluded with that reason.

Signs: ratio measures stay on the log scale. For response and remission (``higher_is_better``)
a positive log RR favours ketamine; for relapse (``lower_is_better``) a negative one does;
``effects.attrs["favours_group1"]`` says which, and the forest plot labels follow it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ketameta.review.evidence import _num, finish_effects
from ketameta.synthesis.effects import escalc

BinaryMeasure = Literal["RR", "OR", "RD"]
BINARY_OUTCOMES = ("response", "remission", "relapse")


def _binary_effect(row: pd.Series, measure: str) -> tuple[float, float] | str:
    counts = [_num(row, c) for c in ("events1", "n1", "events2", "n2")]
    if not all(np.isfinite(counts)):
        kind = str(row.get("effect_type", "") or "")
        if kind:
            return f"reported {kind} without arm counts: not combined with {measure}s from counts"
        return "events1/n1/events2/n2 not all reported"
    e1, n1, e2, n2 = counts
    if e1 > n1 or e2 > n2 or min(counts) < 0 or n1 < 1 or n2 < 1:
        return f"impossible counts ({e1:g}/{n1:g} vs {e2:g}/{n2:g})"
    out = escalc(measure, events1=[e1], n1=[n1], events2=[e2], n2=[n2])
    yi, vi = float(out["yi"].iloc[0]), float(out["vi"].iloc[0])
    if not (np.isfinite(yi) and np.isfinite(vi)):
        return f"{measure} not computable from {e1:g}/{n1:g} vs {e2:g}/{n2:g}"
    return yi, vi


def record_binary_effects(
    records: pd.DataFrame, *, measure: BinaryMeasure = "RR"
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Compute ``yi``/``vi`` (log RR, log OR or RD) for two-arm binary records.

    Parameters
    ----------
    records : pandas.DataFrame
        Rows of ``studies.csv`` of one binary outcome type (one direction).
    measure : {"RR", "OR", "RD"}
        Risk ratio and odds ratio on the log scale, or the risk difference.

    Returns
    -------
    (effects, excluded)
        ``effects`` holds the input columns plus ``yi``, ``vi``, ``effect_path`` and
        ``label``; ``excluded`` lists ``(record_id, reason)``.

    Examples
    --------
    >>> rows = pd.DataFrame({"study_id": ["a"], "record_id": ["a_resp"], "first_author": ["A"],
    ...                      "year": ["2020"], "arm1_label": ["K"], "direction":
    ...                      ["higher_is_better"], "events1": ["12"], "n1": ["20"],
    ...                      "events2": ["10"], "n2": ["20"]})
    >>> effects, excluded = record_binary_effects(rows)
    >>> round(float(np.exp(effects["yi"].iloc[0])), 3), effects.attrs["favours_group1"]
    (1.2, 'positive')
    """
    if measure not in ("RR", "OR", "RD"):
        raise ValueError(f"measure must be 'RR', 'OR' or 'RD' for binary outcomes, got {measure!r}")
    directions = set(records.get("direction", pd.Series(dtype=str)).astype(str))
    if len(directions) > 1:
        raise ValueError(
            "binary records of one analysis must share a direction, got "
            + ", ".join(sorted(directions))
        )
    rows: list[pd.Series] = []
    excluded: list[tuple[str, str]] = []
    for _, row in records.iterrows():
        outcome = _binary_effect(row, measure)
        if isinstance(outcome, str):
            excluded.append((str(row["record_id"]), outcome))
            continue
        new = row.astype(object)  # a copy that can hold numbers beside text
        new["yi"], new["vi"], new["effect_path"] = outcome[0], outcome[1], "arms_events"
        new["sign_flipped"] = False
        new["single_arm"] = False
        rows.append(new)
    favours = "negative" if directions == {"lower_is_better"} else "positive"
    return finish_effects(rows, records, measure, favours, excluded), excluded
