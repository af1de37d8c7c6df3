"""Dependence inside a study: which records enter an analysis, and multi-arm trials.

Two rules keep one study from being counted twice:

* **Record selection** (`select_records`): a study reports several records (timepoints, scales,
  doses). For one analysis exactly one record per comparison is taken, by an explicit rule: the
  study's primary record (``timepoint="primary"``) or the record closest to the centre of a
  timepoint window in days. Every record not taken is listed with the reason.
* **Multi-arm trials**: several ketamine arms compared with one control arm carry the same
  ``shared_control_group`` tag; the library's `ketameta.synthesis.multiarm.resolve_shared_controls`
  combines the arms (default) or splits the control (Cochrane Handbook 23.3.4), and is
  re-exported here for the review's pipeline.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from ketameta.synthesis.multiarm import MultiArm, resolve_shared_controls

__all__ = [
    "MultiArm",
    "out_of_scope",
    "resolve_shared_controls",
    "select_binary_records",
    "select_records",
]

Timepoint = Literal["primary"] | tuple[float, float]


def _is_true(value: object) -> bool:
    return str(value).strip().lower() in {"true", "1", "yes"}


def comparison_key(row: pd.Series) -> str:
    """Identify one comparison of one study (one ketamine arm against one control arm)."""
    return f"{row['study_id']}|{row.get('arm1_label', '')}|{row.get('arm2_label', '')}"


def select_records(
    records: pd.DataFrame, *, timepoint: Timepoint = "primary"
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Keep one record per comparison by an explicit timepoint rule.

    Parameters
    ----------
    records : pandas.DataFrame
        Rows of ``studies.csv`` already restricted to one outcome construct and outcome kind.
    timepoint : "primary" or (low, high)
        ``"primary"`` keeps each comparison's record flagged ``primary``; a comparison without
        one is excluded with that reason. A window ``(low, high)`` in days keeps, per comparison,
        the record inside the window closest to its centre (ties: the primary record, then file
        order); comparisons with no record inside the window are excluded.

    Returns
    -------
    (selected, excluded)
        The selected rows (original index kept) and ``(record_id, reason)`` pairs for the rest.

    Examples
    --------
    >>> df = pd.DataFrame({"study_id": ["a", "a"], "record_id": ["a_d1", "a_d7"],
    ...                    "arm1_label": "K", "arm2_label": "P",
    ...                    "timepoint_days": [1.0, 7.0], "primary": ["true", "false"]})
    >>> kept, dropped = select_records(df, timepoint=(0.5, 2))
    >>> kept["record_id"].tolist(), dropped
    (['a_d1'], [('a_d7', 'outside the timepoint window 0.5-2 days')])
    """
    excluded: list[tuple[str, str]] = []
    keep: list[object] = []
    if records.empty:
        return records.copy(), excluded
    keys = records.apply(comparison_key, axis=1)
    for _, group in records.groupby(keys, sort=False):
        if timepoint == "primary":
            primary = group[group["primary"].map(_is_true)]
            if primary.empty:
                for rid in group["record_id"]:
                    excluded.append((rid, "no record of this comparison is flagged primary"))
                continue
            chosen = primary.index[0]
            for idx, rid in zip(group.index, group["record_id"], strict=True):
                if idx != chosen:
                    excluded.append(
                        (rid, f"not the primary record ({records.at[chosen, 'record_id']})")
                    )
        else:
            low, high = timepoint
            days = pd.to_numeric(group["timepoint_days"], errors="coerce")
            inside = group[(days >= low) & (days <= high)]
            for rid in group.loc[~group.index.isin(inside.index), "record_id"]:
                excluded.append((rid, f"outside the timepoint window {low:g}-{high:g} days"))
            if inside.empty:
                continue
            centre = (low + high) / 2.0
            distance = (pd.to_numeric(inside["timepoint_days"]) - centre).abs()
            order = pd.DataFrame(
                {"d": distance, "p": ~inside["primary"].map(_is_true), "i": range(len(inside))}
            ).sort_values(["d", "p", "i"])
            chosen = order.index[0]
            for idx, rid in zip(inside.index, inside["record_id"], strict=True):
                if idx != chosen:
                    excluded.append(
                        (
                            rid,
                            f"another record of this comparison is nearer the window centre "
                            f"({records.at[chosen, 'record_id']})",
                        )
                    )
        keep.append(chosen)
    return records.loc[keep].copy(), excluded


def select_binary_records(
    records: pd.DataFrame, context: pd.DataFrame, *, timepoint: Timepoint = "primary"
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Keep one binary record (response, remission, ...) per comparison.

    Binary records are rarely a trial's primary outcome, so ``timepoint="primary"`` takes, per
    comparison, the binary record flagged primary if there is one; otherwise the one at the
    *primary timepoint* found in ``context`` (every record of the same studies, any outcome
    type): that of the same comparison's primary record, else the study's single primary
    timepoint. Comparisons without such a record are excluded with the reason. A window
    ``(low, high)`` works as in `select_records`.

    Examples
    --------
    >>> binary = pd.DataFrame({"study_id": "a", "record_id": ["a_r1", "a_r7"], "arm1_label": "K",
    ...                        "arm2_label": "P", "timepoint_days": [1.0, 7.0], "primary": "false"})
    >>> context = pd.DataFrame({"study_id": ["a"], "record_id": ["a_madrs7"], "arm1_label": "K",
    ...                         "arm2_label": "P", "timepoint_days": [7.0], "primary": ["true"]})
    >>> kept, dropped = select_binary_records(binary, context)
    >>> kept["record_id"].tolist(), dropped
    (['a_r7'], [('a_r1', 'not at the primary timepoint (7 days; a_r7 taken)')])
    """
    if timepoint != "primary":
        return select_records(records, timepoint=timepoint)
    excluded: list[tuple[str, str]] = []
    keep: list[object] = []
    if records.empty:
        return records.copy(), excluded
    flagged = context[context["primary"].map(_is_true)]
    days_of = pd.to_numeric(flagged["timepoint_days"], errors="coerce")
    by_comparison = dict(zip(flagged.apply(comparison_key, axis=1), days_of, strict=True))
    by_study = days_of.groupby(flagged["study_id"]).agg(lambda d: set(d.dropna()))
    for key, group in records.groupby(records.apply(comparison_key, axis=1), sort=False):
        primary = group[group["primary"].map(_is_true)]
        if not primary.empty:
            chosen = primary.index[0]
            why = f"not the primary record ({records.at[chosen, 'record_id']})"
        else:
            study = group["study_id"].iloc[0]
            day = by_comparison.get(key)
            if day is None and len(by_study.get(study, set())) == 1:
                day = next(iter(by_study[study]))
            if day is None or day != day:
                for rid in group["record_id"]:
                    excluded.append((rid, "no primary timepoint known for this comparison"))
                continue
            days = pd.to_numeric(group["timepoint_days"], errors="coerce")
            match = group[days == day]
            if match.empty:
                for rid in group["record_id"]:
                    excluded.append((rid, f"no record of this outcome at the primary timepoint "
                                          f"({day:g} days)"))  # fmt: skip
                continue
            chosen = match.index[0]
            taken = records.at[chosen, "record_id"]
            why = f"not at the primary timepoint ({day:g} days; {taken} taken)"
        excluded += [(rid, why) for idx, rid in group["record_id"].items() if idx != chosen]
        keep.append(chosen)
    return records.loc[keep].copy(), excluded


def out_of_scope(scope: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Leave out, with the reason, records that no question pools: reports of participants
    counted in another study of the table, head-to-head comparisons of two ketamine forms, and
    comparisons against an active antidepressant."""
    excluded: list[tuple[str, str]] = []
    keep = pd.Series(True, index=scope.index)
    for idx, row in scope.iterrows():
        other = str(row.get("duplicate_of", "") or "")
        if other and other != "nan":
            reason = f"same participants as {other} (duplicate_of): counted there, not twice"
        elif row.get("contrast") == "head_to_head":
            reason = "head-to-head comparison of two ketamine forms: not pooled against control"
        elif row.get("comparator") == "other_active":
            reason = "active antidepressant comparator: a different question, not pooled"
        else:
            continue
        keep[idx] = False
        excluded.append((str(row["record_id"]), reason))
    return scope[keep], excluded
