"""Multi-arm trials: combine the arms that share a control, or split the control.

Following the Cochrane Handbook (version 6.4, section 23.3.4), a control arm that several
comparisons share must not be counted more than once. `resolve_shared_controls` works on a long
table of two-arm comparisons (one row each, arm-level columns named as in `escalc`'s
``n1, mean1, sd1, n2, ...`` / ``events1, events2``) in which the rows sharing a control carry the
same tag in a ``group`` column. The default ``"combine"`` merges the experimental arms into one
arm before the effect size is computed (Table 6.5.a); ``"split"`` divides the shared control
arm's sample size (and events) among the comparisons. Where only a reported contrast is available
(no arm-level numbers), neither is possible: one comparison is kept (the row flagged ``primary``,
else the first) and the others are listed as excluded. The arithmetic itself is in
`ketameta._core.multiarm` (`combine_continuous_arms`, `combine_binary_arms`,
`split_shared_control`), re-exported here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ketameta._core.multiarm import (
    combine_binary_arms,
    combine_continuous_arms,
    split_shared_control,
)

MultiArm = Literal["combine", "split"]

ARM1_CONTINUOUS = ("n1", "mean1", "sd1")
ARM1_BINARY = ("events1", "n1")

__all__ = [
    "MultiArm",
    "combine_binary_arms",
    "combine_continuous_arms",
    "resolve_shared_controls",
    "split_shared_control",
]


def _is_true(value: object) -> bool:
    return str(value).strip().lower() in {"true", "1", "yes"}


def _has_all(row: pd.Series, columns: tuple[str, ...]) -> bool:
    return all(pd.notna(row.get(c)) and str(row.get(c)).strip() != "" for c in columns)


def resolve_shared_controls(
    records: pd.DataFrame,
    *,
    strategy: MultiArm = "combine",
    group: str = "shared_control_group",
    id_column: str = "record_id",
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Make sure no control arm is counted twice.

    Parameters
    ----------
    records : pandas.DataFrame
        One row per two-arm comparison, with arm-level columns ``n1, mean1, sd1, n2`` (continuous)
        or ``events1, n1, events2, n2`` (binary), a label column ``arm1_label`` (optional) and
        the ``group`` column.
    strategy : {"combine", "split"}
        ``"combine"`` merges the experimental arms sharing a control into one arm (continuous:
        Cochrane Table 6.5.a; binary: events and n add up); ``"split"`` divides the control
        arm's n (and events) among the comparisons.
    group : str
        Column whose non-empty value tags the rows that share one control arm.
    id_column : str
        Column naming each row in the exclusion reasons (the index is used if it is absent).

    Returns
    -------
    (records, excluded)
        Rows after the adjustment (a ``multiarm`` column says what was done to each) and
        ``(row id, reason)`` pairs for the rows that had to be left out.

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"record_id": ["d28", "d56"], "shared_control_group": ["p", "p"],
    ...                      "n1": [10, 20], "mean1": [-5.0, -8.0], "sd1": [2.0, 3.0],
    ...                      "n2": [15, 15], "mean2": [-2.0, -2.0], "sd2": [3.0, 3.0]})
    >>> combined, excluded = resolve_shared_controls(arms)
    >>> combined[["n1", "mean1"]].values.tolist(), excluded[0][0]
    ([[30.0, -7.0]], 'd56')
    """
    if strategy not in ("combine", "split"):
        raise ValueError(f"strategy must be 'combine' or 'split', got {strategy!r}")
    out = records.copy()
    out["multiarm"] = ""
    excluded: list[tuple[str, str]] = []
    if group not in out.columns:
        return out, excluded
    if id_column not in out.columns:
        out[id_column] = out.index.astype(str)
    tags = out[group].fillna("").astype(str).str.strip()
    drop: list[object] = []
    for tag, rows in out[tags != ""].groupby(tags[tags != ""], sort=False):
        if len(rows) < 2:
            continue
        continuous = all(_has_all(r, ARM1_CONTINUOUS) for _, r in rows.iterrows())
        binary = all(_has_all(r, ARM1_BINARY) for _, r in rows.iterrows()) and not continuous
        first = rows.index[0]
        ids = ", ".join(rows[id_column])
        if (continuous or binary) and strategy == "combine":
            if continuous:
                n, mean, sd = combine_continuous_arms(
                    rows["n1"].astype(float),
                    rows["mean1"].astype(float),
                    rows["sd1"].astype(float),
                )
                out.loc[first, ["n1", "mean1", "sd1"]] = [n, mean, sd]
                out.loc[first, "se1"] = np.nan
            else:
                events, n = combine_binary_arms(rows["events1"].astype(float), rows["n1"])
                out.loc[first, ["events1", "n1"]] = [events, n]
            if "arm1_label" in out.columns:
                out.loc[first, "arm1_label"] = " + ".join(rows["arm1_label"].astype(str))
            out.loc[first, "multiarm"] = f"arms combined ({ids}; Cochrane Handbook 23.3.4)"
            for rid in rows[id_column].iloc[1:]:
                excluded.append(
                    (rid, f"arm combined into {out.at[first, id_column]} (shared control {tag})")
                )
            drop.extend(rows.index[1:])
        elif (continuous or binary) and strategy == "split":
            sizes = split_shared_control(float(rows["n2"].iloc[0]), len(rows))
            for idx, size in zip(rows.index, sizes, strict=True):
                share = size / float(rows["n2"].iloc[0])
                if binary and pd.notna(out.at[idx, "events2"]):
                    out.at[idx, "events2"] = float(np.round(float(out.at[idx, "events2"]) * share))
                out.at[idx, "n2"] = size
                out.at[idx, "multiarm"] = (
                    f"shared control n split {len(rows)} ways ({tag}; Cochrane Handbook 23.3.4)"
                )
        else:
            flagged = rows["primary"] if "primary" in rows.columns else pd.Series(False, rows.index)
            primary = rows[flagged.map(_is_true)]
            kept = primary.index[0] if len(primary) == 1 else first
            out.loc[kept, "multiarm"] = (
                f"one comparison kept of {len(rows)} sharing control {tag}: "
                "arm-level numbers not reported, so arms cannot be combined or split"
            )
            for idx, rid in zip(rows.index, rows[id_column], strict=True):
                if idx != kept:
                    excluded.append(
                        (
                            rid,
                            f"shares the control arm {tag} with "
                            f"{out.at[kept, id_column]}; arm-level numbers "
                            "not reported, so it cannot be combined",
                        )
                    )
                    drop.append(idx)
    return out.drop(index=drop), excluded
