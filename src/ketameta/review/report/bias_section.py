"""The report's publication-bias paragraph beyond Egger and trim-and-fill, for pools of 10 or
more studies: a three-parameter selection model, the Henmi-Copas interval and the test of
excess significance, each in words, with what it can and cannot show."""

from __future__ import annotations

import math
from typing import Any

from ketameta.review.report.html import esc
from ketameta.review.report.words import interval, num, pvalue

SELECTION_CUT = 0.025  # one-sided p-value cut of the step function (two-sided 0.05)


def benefit_side(pooled: Any) -> str:
    """The sidedness of the p-values that a selection on 'significant benefit' acts on: effects
    below 0 favour ketamine in this review (lower depression score), so one-sided p-values are
    taken for negative effects (``"less"``) when the pooled effect is negative."""
    return "less" if pooled.estimate < 0 else "greater"


def _selection_sentence(pooled: Any) -> str:
    from ketameta.synthesis.selection import selection_model

    side = benefit_side(pooled)
    try:
        sel = selection_model(pooled, "stepfun", steps=(SELECTION_CUT,), alternative=side)
    except (ValueError, ArithmeticError) as err:  # e.g. too few studies for the model
        return f"A selection model could not be fitted ({esc(str(err))})."
    counts = [int(c) for c in sel.ptable] if len(sel.ptable) else []
    what = (
        "Selection model (Vevea-Hedges step function: studies with a one-sided p-value above "
        f"{SELECTION_CUT} in the direction of benefit may be published less often)"
    )
    if counts and min(counts) == 0:
        return (
            f"{what}: not estimable here, since no comparison has a p-value in one of the two "
            f"intervals ({counts[0]} below and {counts[-1]} above the cut)."
        )
    if bool(sel.delta_at_bound.any()) or not sel.converged or not math.isfinite(sel.estimate):
        return (
            f"{what}: the selection weight ran to its limit, so the fit is no optimum and its "
            "estimate is not reported."
        )
    weight = float(sel.delta[-1])
    return (
        f"{what}: adjusted estimate {num(sel.estimate)} {interval(sel.ci_low, sel.ci_high)}; "
        f"studies above the cut are estimated to appear {num(weight)} times as often as those "
        f"below it (likelihood-ratio test of no selection p {pvalue(sel.lrt_pvalue)}; "
        f"{counts[0]} and {counts[-1]} comparisons in the two intervals)."
    )


def bias_paragraph(pooled: Any) -> str:
    """One HTML paragraph: selection model, Henmi-Copas and excess significance for ``pooled``."""
    from ketameta.synthesis.smallstudy import excess_significance, henmi_copas

    parts = [_selection_sentence(pooled)]
    try:
        hc = henmi_copas(pooled)
        parts.append(
            "Henmi-Copas interval (the DerSimonian-Laird estimate with an interval that allows "
            f"for publication bias): {num(hc.estimate)} {interval(hc.ci_low, hc.ci_high)}."
        )
    except (ValueError, ArithmeticError) as err:
        parts.append(f"The Henmi-Copas interval could not be computed ({esc(str(err))}).")
    try:
        tes = excess_significance(pooled)
        parts.append(
            f"Test of excess significance: {tes.observed} of {tes.k} comparisons are significant "
            f"against {num(tes.expected, 1)} expected from their power at the pooled effect "
            f"(p {pvalue(tes.pvalue)})."
        )
    except (ValueError, ArithmeticError) as err:
        parts.append(f"The test of excess significance could not be computed ({esc(str(err))}).")
    parts.append(
        "These methods need many studies; with this few, a result that does not show bias does "
        "not show its absence."
    )
    return "<p>" + " ".join(parts) + "</p>"
