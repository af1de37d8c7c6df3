"""Verdicts in words: can a question be answered with the current evidence, and what is the answer.

The rule (documented in the report's methods):

* a subgroup question needs at least `MIN_STUDIES_PER_LEVEL` (2) **studies** (not comparisons)
  in every level it compares; otherwise it "cannot be answered with the current evidence" and
  the report says which level is short and names its studies, instead of printing a test;
* a question whose records split exactly as another question's do (every intravenous trial used
  racemic ketamine and every intranasal one esketamine) is stated once and referred to;
* where it can be answered, the verdict reads the test for subgroup differences (the
  mixed-effects QM test with a common tau²) and says that subgroup comparisons are between
  studies, i.e. observational: a difference may come from anything else that differs between
  the trials (population, comparator, timepoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

MIN_STUDIES_PER_LEVEL = 2  # one study cannot estimate a subgroup's between-study variation


@dataclass(frozen=True)
class Verdict:
    """Whether a question can be answered, and the sentence that says so."""

    answerable: bool
    text: str
    levels: tuple[tuple[str, int], ...] = ()


def _studies(data: pd.DataFrame | None) -> list[str]:
    if data is None or data.empty:
        return []
    column = "study_id" if "study_id" in data.columns else None
    if column is None:
        return [str(i) for i in range(len(data))]
    return list(dict.fromkeys(data[column].astype(str)))


def _names(data: pd.DataFrame | None) -> str:
    if data is None or data.empty or "label" not in data.columns:
        return ""
    return ", ".join(dict.fromkeys(data["label"].astype(str)))


def subgroup_verdict(
    result: Any,
    *,
    by: str,
    by_words: str,
    level_words: dict[str, str] | None = None,
    min_studies: int = MIN_STUDIES_PER_LEVEL,
) -> Verdict:
    """The verdict on a subgroup question from its pooled result.

    Parameters
    ----------
    result : SubgroupResult, MetaResult or None
        The controlled comparisons of the question: a `SubgroupResult` when the records fall in
        two or more levels, a `MetaResult` when they fall in one, ``None`` when there are none.
    by : str
        The column the levels come from (e.g. ``"route"``).
    by_words : str
        What the levels are, in words (e.g. ``"route"``).
    level_words : dict, optional
        Level value -> words (``{"iv": "intravenous"}``).
    min_studies : int
        Studies needed in every compared level.

    Examples
    --------
    >>> from ketameta import subgroup
    >>> import pandas as pd
    >>> df = pd.DataFrame({"yi": [-0.5, -0.3, -0.4], "vi": [0.04, 0.05, 0.03],
    ...                    "route": ["iv", "intranasal", "intranasal"],
    ...                    "study_id": ["a", "b", "c"], "label": ["A 2001", "B 2002", "C 2003"]})
    >>> subgroup_verdict(subgroup(df, "route"), by="route", by_words="route").text
    'Cannot be answered with the current evidence: iv has 1 study (A 2001).'
    """
    words = level_words or {}
    if result is None:
        return Verdict(False, "Cannot be answered: no controlled comparison answers it.")
    if not hasattr(result, "levels"):
        data = getattr(result, "data", None)
        level = ""
        if data is not None and not data.empty and by in data.columns:
            level = str(data[by].iloc[0])
        n = len(_studies(data))
        where = f" are {words.get(level, level)}" if level else " fall in one level"
        return Verdict(
            False,
            f"Cannot be answered with the current evidence: all {n} studies{where}, so there "
            f"is nothing to compare them with.",
        )
    counts = []
    short = []
    for level in result.levels:
        data = result.results[level].data
        n = len(_studies(data))
        counts.append((str(level), n))
        if n < min_studies:
            names = _names(data)
            noun = "study" if n == 1 else "studies"
            short.append(
                f"{words.get(level, level)} has {n} {noun}" + (f" ({names})" if names else "")
            )
    if short:
        return Verdict(
            False,
            "Cannot be answered with the current evidence: " + "; ".join(short) + ".",
            tuple(counts),
        )
    test = result.test_common or result.test_separate
    if test is None:
        return Verdict(
            False, "Cannot be answered: no test for subgroup differences.", tuple(counts)
        )
    p = float(test.pvalue)
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    if p < 0.05:
        finding = f"the pooled effects differ between the {by_words} subgroups ({p_text})"
    else:
        finding = f"no clear difference between the {by_words} subgroups ({p_text})"
    return Verdict(
        True,
        f"Answerable, with caution: {finding}. This compares different trials, not "
        "randomised groups, so other differences between the trials may explain it.",
        tuple(counts),
    )


def same_split(a: pd.DataFrame, column_a: str, b: pd.DataFrame, column_b: str) -> bool:
    """True when two questions put the same records into the same groups (up to names).

    Examples
    --------
    >>> x = pd.DataFrame({"record_id": ["r1", "r2", "r3"], "route": ["iv", "in", "in"]})
    >>> y = pd.DataFrame({"record_id": ["r1", "r2", "r3"], "drug": ["rac", "esk", "esk"]})
    >>> same_split(x, "route", y, "drug")
    True
    """
    if a.empty or b.empty or set(a["record_id"]) != set(b["record_id"]):
        return False
    left = a.set_index("record_id")[column_a].astype(str)
    right = b.set_index("record_id")[column_b].astype(str).reindex(left.index)
    pairs = set(zip(left, right, strict=True))
    return len(pairs) == left.nunique() == right.nunique()
