"""From curated records (``studies.csv`` rows) to effect sizes, one path per kind of report.

Trials report their results in different forms. `record_effects` turns each record into
``yi``/``vi`` on the requested measure by the first path its numbers allow, and says which path
it took in the ``effect_path`` column, so every effect size can be traced:

``arms``
    per-arm n, mean and SD (``escalc``). An SE reported instead of an SD becomes
    ``SD = SE * sqrt(n)`` (path ``arms_sd_from_se``).
``reported_smd``
    a reported standardized difference (``SMD_d``/``SMD_g``) with its SE or CI (generic inverse
    variance); Cohen's d is used as reported (not converted to g) and flagged.
``smd_from_contrast``
    (``measure="SMD"`` only, ``allow_sd_from_contrast=True``) a reported mean difference or
    LS-mean difference with its SE or CI and both arm sizes: the pooled SD is recovered as
    ``SD = SE / sqrt(1/n1 + 1/n2)`` (Cochrane Handbook 6.4, section 6.5.2.3), then Hedges' g
    follows from ``escalc("SMD")``. For covariate-adjusted contrasts this SD is the residual
    SD of the model, so the g is approximate; the path is flagged for sensitivity analysis.
``reported_md``
    (``measure="MD"``) a reported mean difference or LS-mean difference with SE or CI.
``smd_from_t``
    (``measure="SMD"``) a two-group t statistic with both arm sizes and no other contrast:
    ``d = t * sqrt(1/n1 + 1/n2)``, then Hedges' g and its variance (Cochrane Handbook 6.5.2.3).
``prepost``
    single-arm records: ``SMCR`` from baseline and follow-up means, the baseline SD and the
    pre-post correlation, which must be reported or given explicitly as ``assumed_r``.

Crossover trials (Cochrane Handbook 23.2) follow the ``crossover_data`` column, and no
participant is counted twice: ``first_period`` data are a parallel comparison (paths above);
a ``paired`` within-person contrast (MD with SE/CI, or a reported d with its CI) enters as
reported (``crossover_paired``), and a raw paired MD cannot be standardised without the
between-person SD (MD analyses only); ``both_periods`` arm means and SDs over the same
participants (n1 = n2 = n) are analysed as paired with an assumed within-person correlation
``crossover_r`` (``crossover_both_periods_r=...``): ``MD = m1 - m2`` with
``var = (sd1² + sd2² - 2 r sd1 sd2) / n``; for the SMD, ``d = MD / sqrt((sd1² + sd2²)/2)``,
Hedges' exact correction with ``n - 1`` df and ``var = 2 (1 - r) / n + g² / (2 n)``. ``r = 0`` (the
default) gives the conservative parallel-group variance while counting each participant once.

Every effect carries ``score_type``: ``change`` (change from baseline), ``endpoint``
(post-treatment scores) or ``contrast`` (a reported, usually baseline-adjusted, contrast), so a
standardised analysis can be rerun without the endpoint records (Cochrane Handbook 10.5.2).

Signs: for continuous outcomes every effect reads **negative favours ketamine**; records on a
``higher_is_better`` scale are negated (``sign_flipped`` column). Records that no path fits are
returned in ``excluded`` with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from ketameta.synthesis.effects import escalc

Measure = Literal["SMD", "MD"]

CONTINUOUS_OUTCOMES = ("endpoint", "change", "effect_estimate")
ARM_COLUMNS = ("n1", "mean1", "n2", "mean2")


def _num(row: pd.Series, column: str) -> float:
    value = row.get(column, np.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _se_from_row(row: pd.Series) -> float:
    """SE of a reported contrast: given, or from its CI (normal quantile at ``ci_level``)."""
    se = _num(row, "effect_se")
    if np.isfinite(se):
        return se
    low, high = _num(row, "effect_ci_low"), _num(row, "effect_ci_high")
    level = _num(row, "ci_level")
    level = 95.0 if not np.isfinite(level) else level
    if np.isfinite(low) and np.isfinite(high):
        return (high - low) / (2.0 * stats.norm.ppf(0.5 + level / 200.0))
    return float("nan")


def _hedges_j(df: float) -> float:
    """Hedges' exact small-sample correction (as metafor's ``escalc``)."""
    return float(
        np.exp(special.gammaln(df / 2) - 0.5 * np.log(df / 2) - special.gammaln((df - 1) / 2))
    )


def _both_periods_effect(
    row: pd.Series, measure: Measure, r: float
) -> tuple[float, float, str] | str:
    """Crossover arm data over both periods (the same n participants in each arm)."""
    n = _num(row, "n1")
    m1, m2, sd1, sd2 = (_num(row, c) for c in ("mean1", "mean2", "sd1", "sd2"))
    if not all(np.isfinite([n, m1, m2, sd1, sd2])):
        return "crossover over both periods without arm means, SDs and n: not usable"
    path = f"crossover_both_periods_r={r:g}"
    md = m1 - m2
    if measure == "MD":
        return md, (sd1**2 + sd2**2 - 2.0 * r * sd1 * sd2) / n, path
    d = md / np.sqrt((sd1**2 + sd2**2) / 2.0)
    g = d * _hedges_j(n - 1.0)
    return float(g), float(2.0 * (1.0 - r) / n + g**2 / (2.0 * n)), path


def _crossover_effect(
    row: pd.Series, measure: Measure, crossover_r: float
) -> tuple[float, float, str] | str | None:
    """Crossover paths (None: first-period data, which are handled as a parallel trial)."""
    kind = str(row.get("crossover_data", "") or "")
    if kind in ("", "nan", "first_period"):
        return None
    if kind == "both_periods":
        return _both_periods_effect(row, measure, crossover_r)
    effect, se, etype = _num(row, "effect"), _se_from_row(row), str(row.get("effect_type", ""))
    if not (np.isfinite(effect) and np.isfinite(se)):
        return "paired crossover contrast without an SE or CI"
    if etype in ("SMD_d", "SMD_g"):
        if measure != "SMD":
            return f"reported {etype} cannot be expressed as {measure}"
        return effect, se**2, "crossover_paired"
    if measure == "MD":
        return effect, se**2, "crossover_paired"
    return (
        "paired crossover mean difference: the between-person SD is not reported, so it "
        "cannot be standardised (MD analyses only)"
    )


def _controlled_effect(
    row: pd.Series, measure: Measure, allow_sd_from_contrast: bool, crossover_r: float = 0.0
) -> tuple[float, float, str] | str:
    """Return ``(yi, vi, path)`` for a two-arm record, or the reason it cannot be used."""
    crossover = _crossover_effect(row, measure, crossover_r)
    if crossover is not None:
        return crossover
    n1, n2 = _num(row, "n1"), _num(row, "n2")
    sd1, sd2 = _num(row, "sd1"), _num(row, "sd2")
    path = "arms"
    if not np.isfinite(sd1) and np.isfinite(_num(row, "se1")) and np.isfinite(n1):
        sd1, path = _num(row, "se1") * np.sqrt(n1), "arms_sd_from_se"
    if not np.isfinite(sd2) and np.isfinite(_num(row, "se2")) and np.isfinite(n2):
        sd2, path = _num(row, "se2") * np.sqrt(n2), "arms_sd_from_se"
    arms = [n1, _num(row, "mean1"), sd1, n2, _num(row, "mean2"), sd2]
    if all(np.isfinite(arms)):
        out = escalc(measure, m1=[arms[1]], sd1=[sd1], n1=[n1], m2=[arms[4]], sd2=[sd2], n2=[n2])
        return float(out["yi"].iloc[0]), float(out["vi"].iloc[0]), path
    kind = str(row.get("effect_type", "") or "")
    effect, se = _num(row, "effect"), _se_from_row(row)
    t = _num(row, "t_stat")
    if not (np.isfinite(effect) and np.isfinite(se)) and np.isfinite(t):
        if measure != "SMD":
            return "a t statistic alone gives no mean difference (SMD analyses only)"
        if not (np.isfinite(n1) and np.isfinite(n2)):
            return "t statistic without both arm sizes: cannot standardise"
        d = t * np.sqrt(1.0 / n1 + 1.0 / n2)
        out = escalc("SMD", m1=[d], sd1=[1.0], n1=[n1], m2=[0.0], sd2=[1.0], n2=[n2])
        return float(out["yi"].iloc[0]), float(out["vi"].iloc[0]), "smd_from_t"
    if not (np.isfinite(effect) and np.isfinite(se)):
        return "neither arm-level mean/SD/n nor a reported contrast with SE or CI"
    if kind in ("SMD_d", "SMD_g"):
        if measure != "SMD":
            return f"reported {kind} cannot be expressed as {measure}"
        return effect, se**2, "reported_smd"
    if kind in ("MD", "LSMD"):
        if measure == "MD":
            return effect, se**2, "reported_md"
        if not allow_sd_from_contrast:
            return f"reported {kind} without SD (allow_sd_from_contrast=False)"
        if not (np.isfinite(n1) and np.isfinite(n2)):
            return f"reported {kind} with SE but arm sizes n1/n2 missing: cannot standardise"
        sd_pooled = se / np.sqrt(1.0 / n1 + 1.0 / n2)
        out = escalc(
            "SMD", m1=[effect], sd1=[sd_pooled], n1=[n1], m2=[0.0], sd2=[sd_pooled], n2=[n2]
        )
        return float(out["yi"].iloc[0]), float(out["vi"].iloc[0]), "smd_from_contrast"
    return f"effect_type {kind or '(empty)'} is not a continuous contrast"


def _prepost_effect(row: pd.Series, assumed_r: float | None) -> tuple[float, float, str] | str:
    kind = str(row.get("effect_type", "") or "")
    n = _num(row, "n1")
    pre, post, sd_pre = _num(row, "baseline_mean1"), _num(row, "mean1"), _num(row, "baseline_sd1")
    r = _num(row, "prepost_r")
    path = "prepost"
    if not np.isfinite(r) and assumed_r is not None:
        r, path = float(assumed_r), f"prepost_assumed_r={assumed_r:g}"
    if all(np.isfinite([n, pre, post, sd_pre, r])):
        out = escalc("SMCR", m_pre=[pre], m_post=[post], sd_pre=[sd_pre], n=[n], r=[r])
        return float(out["yi"].iloc[0]), float(out["vi"].iloc[0]), path
    effect, se = _num(row, "effect"), _se_from_row(row)
    if kind in ("SMD_d", "SMD_g") and np.isfinite(effect) and np.isfinite(se):
        # a reported pre-post d is a reduction; on a lower-is-better scale improvement is < 0
        return effect, se**2, "reported_prepost_smd"
    if all(np.isfinite([n, pre, post, sd_pre])):
        return "pre-post correlation not reported (set assumed_r to include, as a sensitivity)"
    return "single-arm record without baseline mean/SD, follow-up mean and n, or a reported d"


def _score_type(row: pd.Series, path: str) -> str:
    """``change``, ``endpoint`` or ``contrast`` (a reported between-arm contrast)."""
    if path.startswith(("arms", "crossover_both", "prepost")):
        kind = str(row.get("outcome_type", ""))
        return kind if kind in ("change", "endpoint") else "change"
    return "contrast"


def record_effects(
    records: pd.DataFrame,
    *,
    measure: Measure = "SMD",
    allow_sd_from_contrast: bool = True,
    assumed_r: float | None = None,
    crossover_r: float = 0.0,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Compute ``yi``/``vi`` for every record by the first path its numbers allow.

    Parameters
    ----------
    records : pandas.DataFrame
        Rows of ``studies.csv`` (continuous outcomes).
    measure : {"SMD", "MD"}
        Hedges' g (all scales) or the raw mean difference (one scale only).
    allow_sd_from_contrast : bool
        Standardise reported (LS-)mean differences through the SD recovered from their SE.
    assumed_r : float, optional
        Pre-post correlation for single-arm records that do not report one. ``None`` (the
        default) excludes such records and says so.
    crossover_r : float
        Within-person correlation assumed for crossover arm data over both periods (0: the
        conservative parallel-group variance, each participant counted once).

    Returns
    -------
    (effects, excluded)
        ``effects`` holds the input columns plus ``yi``, ``vi``, ``effect_path``,
        ``sign_flipped`` and ``label``; ``excluded`` lists ``(record_id, reason)``.
        For continuous measures negative values favour ketamine.
    """
    if measure not in ("SMD", "MD"):
        raise ValueError(f"measure must be 'SMD' or 'MD', got {measure!r}")
    rows: list[pd.Series] = []
    excluded: list[tuple[str, str]] = []
    if measure == "MD" and records["scale"].nunique() > 1:
        scales = ", ".join(sorted(records["scale"].astype(str).unique()))
        raise ValueError(f"measure='MD' needs one scale, the records have several: {scales}")
    for _, row in records.iterrows():
        single = str(row.get("design", "")) == "single_arm" or pd.isna(row.get("n2"))
        single = single and str(row.get("comparator", "")) in ("none", "", "nan")
        if single:
            outcome = _prepost_effect(row, assumed_r) if measure == "SMD" else "MD needs two arms"
        else:
            outcome = _controlled_effect(row, measure, allow_sd_from_contrast, crossover_r)
        if isinstance(outcome, str):
            excluded.append((str(row["record_id"]), outcome))
            continue
        yi, vi, path = outcome
        flipped = str(row.get("direction", "")) == "higher_is_better"
        new = row.copy()
        new["yi"], new["vi"], new["effect_path"] = (-yi if flipped else yi), vi, path
        new["sign_flipped"] = flipped
        new["single_arm"] = single
        new["score_type"] = _score_type(row, path)
        rows.append(new)
    return finish_effects(rows, records, measure, "negative", excluded), excluded


def finish_effects(
    rows: list[pd.Series],
    records: pd.DataFrame,
    measure: str,
    favours_group1: str,
    excluded: list[tuple[str, str]],
) -> pd.DataFrame:
    """The effects table from its rows: labels, and the measure, sign convention and
    exclusions in ``attrs`` (an empty table keeps the input's columns)."""
    effects = pd.DataFrame(rows)
    if effects.empty:
        effects = records.iloc[0:0].assign(yi=[], vi=[], effect_path=[], sign_flipped=[])
    effects["label"] = _labels(effects)
    effects.attrs["measure"] = measure
    effects.attrs["favours_group1"] = favours_group1
    effects.attrs["excluded"] = list(excluded)
    return effects.reset_index(drop=True)


def _labels(effects: pd.DataFrame) -> list[str]:
    """``Author year``; the study id is added where two studies share it, and the part of the
    ketamine arm's name that differs where a study has several records."""
    if effects.empty:
        return []
    if "study_label" in effects.columns:  # one label per trial (load_studies adds it)
        base = effects["study_label"].astype(str)
    else:
        base = (
            effects["first_author"].astype(str)
            + " "
            + effects["year"].astype(float).map("{:.0f}".format)
        )
    shared = base.map(effects.groupby(base)["study_id"].nunique()) > 1
    base = base.where(~shared, base + " " + effects["study_id"].astype(str))
    arms = effects.get("arm1_label", pd.Series("", index=effects.index)).fillna("").astype(str)
    labels = []
    for i in effects.index:
        same = arms[effects["study_id"] == effects.at[i, "study_id"]]
        if len(same) == 1:
            labels.append(base[i])
            continue
        prefix = os.path.commonprefix(same.tolist())
        if prefix and not prefix[-1].isspace() and prefix != arms[i]:
            prefix = prefix[: prefix.rfind(" ") + 1]  # cut at a word boundary
        suffix = arms[i][len(prefix) :].strip()
        if suffix.startswith("(") and suffix.endswith(")") and suffix.count("(") == 1:
            suffix = suffix[1:-1]
        suffix = suffix.strip() or arms[i]
        labels.append(f"{base[i]} ({suffix})")
    return labels
