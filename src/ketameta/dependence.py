"""Dependence inside a study: which records enter an analysis, and multi-arm trials.

Two rules keep one study from being counted twice:

* **Record selection** (`select_records`): a study reports several records (timepoints, scales,
  doses). For one analysis exactly one record per comparison is taken, by an explicit rule: the
  study's primary record (``timepoint="primary"``) or the record closest to the centre of a
  timepoint window in days. Every record not taken is listed with the reason.
* **Multi-arm trials** (`resolve_shared_controls`): several ketamine arms compared with one
  control arm carry the same ``shared_control_group`` tag. Following the Cochrane Handbook
  (version 6.4, section 23.3.4), the default ``"combine"`` merges the ketamine arms into one arm
  before the effect size is computed (Table 6.5.a formulas); ``"split"`` divides the shared
  control arm's sample size (and events) among the comparisons. Where only a reported contrast
  is available (no arm-level numbers), neither is possible: one comparison is kept (the record
  flagged primary, else the first) and the others are listed as excluded.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ketameta._core.dependence import (
    combine_binary_arms,
    combine_continuous_arms,
    split_shared_control,
)

Timepoint = Literal["primary"] | tuple[float, float]
MultiArm = Literal["combine", "split"]

ARM1_CONTINUOUS = ("n1", "mean1", "sd1")
ARM1_BINARY = ("events1", "n1")


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


def _has_all(row: pd.Series, columns: tuple[str, ...]) -> bool:
    return all(pd.notna(row.get(c)) and str(row.get(c)).strip() != "" for c in columns)


def resolve_shared_controls(
    records: pd.DataFrame, *, strategy: MultiArm = "combine"
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Make sure no control arm is counted twice.

    Parameters
    ----------
    records : pandas.DataFrame
        Selected records (one per comparison), with the ``shared_control_group`` column.
    strategy : {"combine", "split"}
        ``"combine"`` merges the ketamine arms sharing a control into one arm (continuous:
        Cochrane Table 6.5.a; binary: events and n add up); ``"split"`` divides the control
        arm's n (and events) among the comparisons.

    Returns
    -------
    (records, excluded)
        Rows after the adjustment (a ``multiarm`` column says what was done to each) and
        ``(record_id, reason)`` pairs for the records that had to be left out.
    """
    if strategy not in ("combine", "split"):
        raise ValueError(f"strategy must be 'combine' or 'split', got {strategy!r}")
    out = records.copy()
    out["multiarm"] = ""
    excluded: list[tuple[str, str]] = []
    if "shared_control_group" not in out.columns:
        return out, excluded
    tags = out["shared_control_group"].fillna("").astype(str).str.strip()
    drop: list[object] = []
    for tag, group in out[tags != ""].groupby(tags[tags != ""], sort=False):
        if len(group) < 2:
            continue
        continuous = all(_has_all(r, ARM1_CONTINUOUS) for _, r in group.iterrows())
        binary = all(_has_all(r, ARM1_BINARY) for _, r in group.iterrows()) and not continuous
        first = group.index[0]
        ids = ", ".join(group["record_id"])
        if (continuous or binary) and strategy == "combine":
            if continuous:
                n, mean, sd = combine_continuous_arms(
                    group["n1"].astype(float),
                    group["mean1"].astype(float),
                    group["sd1"].astype(float),
                )
                out.loc[first, ["n1", "mean1", "sd1"]] = [n, mean, sd]
                out.loc[first, "se1"] = np.nan
            else:
                events, n = combine_binary_arms(group["events1"].astype(float), group["n1"])
                out.loc[first, ["events1", "n1"]] = [events, n]
            out.loc[first, "arm1_label"] = " + ".join(group["arm1_label"].astype(str))
            out.loc[first, "multiarm"] = f"arms combined ({ids}; Cochrane Handbook 23.3.4)"
            for rid in group["record_id"].iloc[1:]:
                excluded.append(
                    (rid, f"arm combined into {out.at[first, 'record_id']} (shared control {tag})")
                )
            drop.extend(group.index[1:])
        elif (continuous or binary) and strategy == "split":
            sizes = split_shared_control(float(group["n2"].iloc[0]), len(group))
            for idx, size in zip(group.index, sizes, strict=True):
                share = size / float(group["n2"].iloc[0])
                if binary and pd.notna(out.at[idx, "events2"]):
                    out.at[idx, "events2"] = float(np.round(float(out.at[idx, "events2"]) * share))
                out.at[idx, "n2"] = size
                out.at[idx, "multiarm"] = (
                    f"shared control n split {len(group)} ways ({tag}; Cochrane Handbook 23.3.4)"
                )
        else:
            primary = group[group["primary"].map(_is_true)]
            kept = primary.index[0] if len(primary) == 1 else first
            out.loc[kept, "multiarm"] = (
                f"one comparison kept of {len(group)} sharing control {tag}: "
                "arm-level numbers not reported, so arms cannot be combined or split"
            )
            for idx, rid in zip(group.index, group["record_id"], strict=True):
                if idx != kept:
                    excluded.append(
                        (
                            rid,
                            f"shares the control arm {tag} with "
                            f"{out.at[kept, 'record_id']}; arm-level numbers "
                            "not reported, so it cannot be combined",
                        )
                    )
                    drop.append(idx)
    return out.drop(index=drop), excluded
