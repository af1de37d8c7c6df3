"""How a named analysis groups the records it did not use, for its one summary warning.

`SELECTION_RULES` are the exclusions that are the record-selection rule at work (listed, not
warned about); `EXCLUSION_GROUPS` name the kinds of reason; `exclusion_summary` is the one line
of the warning (`ketameta.review.questions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

# exclusions that are the record-selection rule at work (listed, not warned about)
SELECTION_RULES = (
    "not the primary record",
    "outside the timepoint",
    "not at the primary timepoint",
    "another record of this comparison is nearer",
)

# how the one summary warning of a named analysis groups the records it did not use: the
# first entry whose text starts a reason names its group; anything else is an effect size
# that the reported numbers do not give (`ketameta.review.evidence`)
EXCLUSION_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("by the timepoint rule", SELECTION_RULES),
    (
        "with no primary record or timepoint",
        (
            "no record of this comparison is flagged primary",
            "no primary timepoint known",
            "no record of this outcome at the primary timepoint",
        ),
    ),
    ("arms combined", ("arm combined into",)),
    ("sharing a control arm", ("shares the control arm",)),
    ("same participants as another study", ("same participants as",)),
    ("head-to-head", ("head-to-head",)),
    ("active comparator", ("active antidepressant comparator",)),
    ("single-arm (no control arm)", ("single-arm record",)),
    ("crossover counts", ("crossover counts",)),
)
OTHER_GROUP = "effect size not computable"


def exclusion_group(reason: str) -> str:
    """The group of an exclusion reason in the summary warning (see `EXCLUSION_GROUPS`)."""
    for group, starts in EXCLUSION_GROUPS:
        if reason.startswith(starts):
            return group
    return OTHER_GROUP


def exclusion_summary(name: str, excluded: Sequence[tuple[str, str]]) -> str:
    """One line on the records an analysis did not use, e.g. ``"route: 24 records not used
    (9 by the timepoint rule, 4 arms combined, ...; see result.excluded_table())"``; a single
    record is named with its reason.

    Examples
    --------
    >>> print(exclusion_summary("overall", [("a_d7", "not the primary record (a_d1)"),
    ...                                     ("b_84", "arm combined into b_28 (shared control p)")]))
    overall: 2 records not used (1 by the timepoint rule, 1 arms combined;
    see result.excluded_table())
    >>> print(exclusion_summary("overall", [("bad", "no arm-level mean/SD/n")]))
    overall: record bad excluded: no arm-level mean/SD/n (see result.excluded_table())
    """
    see = "see result.excluded_table()"
    if len(excluded) == 1:
        record_id, reason = excluded[0]
        return f"{name}: record {record_id} excluded: {reason} ({see})"
    counts = Counter(exclusion_group(reason) for _, reason in excluded)
    order = [group for group, _ in EXCLUSION_GROUPS] + [OTHER_GROUP]
    parts = ", ".join(f"{counts[group]} {group}" for group in order if counts[group])
    return f"{name}: {len(excluded)} records not used ({parts}; {see})"
