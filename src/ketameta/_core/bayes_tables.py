"""Parameter tables of the empirical heterogeneity priors (`ketameta._core.bayes_priors`).

Turner et al. (2015, Table IV; log-normal for tau², log odds ratios) and Rhodes et al. (2015,
Tables 3, A.3.1, A.3.2; log-t5 for tau², SMDs), copied from R's bayesmeta
(``TurnerEtAlParameters`` / ``RhodesEtAlParameters`` in ``R/bayesmeta.R``).
"""

from __future__ import annotations

import io

import numpy as np


def _match(value: str, choices: tuple[str, ...], what: str) -> str:
    """R-style ``match.arg``: exact match, else a unique prefix."""
    if value in choices:
        return value
    hits = [c for c in choices if c.startswith(value)]
    if len(hits) != 1:
        raise ValueError(f"{what} {value!r} matches {len(hits)} of {choices}")
    return hits[0]


_COMPARATORS = ("pharmacological", "non-pharmacological", "placebo / control")

# --- Turner et al. (2015), Table IV (log-normal for tau², log odds ratios) -------------------
_TURNER_OUTCOMES = (
    "all-cause mortality",
    "obstetric outcomes",
    "cause-specific mortality / major morbidity event / composite (mortality or morbidity)",
    "resource use / hospital stay / process",
    "surgical / device related success / failure",
    "withdrawals / drop-outs",
    "internal / structure-related outcomes",
    "general physical health indicators",
    "adverse events",
    "infection / onset of new disease",
    "signs / symptoms reflecting continuation / end of condition",
    "pain",
    "quality of life / functioning (dichotomized)",
    "mental health indicators",
    "biological markers (dichotomized)",
    "subjective outcomes (various)",
)
_TURNER_COMPARISONS = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological vs. placebo / control",
    "non-pharmacological vs. pharmacological",
    "non-pharmacological vs. non-pharmacological",
)
# one row per comparison type (above order), one column per outcome type (above order);
# the mean row values are negated, as printed in bayesmeta's source.
_TURNER_MU = -np.loadtxt(
    io.StringIO("""
3.95 3.52 3.71 2.34 2.14 2.99 2.71 2.29 1.87 2.49 2.06 1.83 2.54 2.12 1.77 2.70
4.18 3.75 3.95 2.58 2.37 3.23 2.94 2.53 2.10 2.73 2.29 2.06 2.78 2.35 2.00 2.93
4.17 3.74 3.93 2.56 2.36 3.21 2.93 2.51 2.10 2.71 2.28 2.05 2.77 2.34 1.99 2.92
2.92 2.49 2.68 1.31 1.11 1.96 1.67 1.26 0.84 1.46 1.03 0.80 1.51 1.09 0.74 1.67
3.50 3.08 3.27 1.90 1.69 2.55 2.26 1.85 1.43 2.05 1.61 1.38 2.10 1.67 1.33 2.26
""")
)
_TURNER_SIGMA = np.loadtxt(
    io.StringIO("""
1.34 1.74 1.74 1.74 1.74 1.74 1.74 1.53 1.52 1.52 1.51 1.52 1.54 1.53 1.52 1.52
1.41 1.79 1.79 1.79 1.79 1.79 1.79 1.58 1.58 1.58 1.58 1.58 1.60 1.60 1.58 1.58
1.55 1.91 1.91 1.91 1.91 1.91 1.92 1.72 1.71 1.71 1.71 1.71 1.73 1.72 1.71 1.71
1.02 1.50 1.51 1.50 1.50 1.51 1.51 1.25 1.24 1.24 1.24 1.25 1.27 1.27 1.24 1.25
1.26 1.68 1.68 1.68 1.68 1.68 1.68 1.46 1.45 1.45 1.45 1.45 1.47 1.47 1.45 1.45
""")
)
# comparison-type index for an unordered pair of comparators
_TURNER_PAIRS = {
    frozenset({"pharmacological", "placebo / control"}): 0,
    frozenset({"pharmacological"}): 1,
    frozenset({"non-pharmacological", "placebo / control"}): 2,
    frozenset({"non-pharmacological", "pharmacological"}): 3,
    frozenset({"non-pharmacological"}): 4,
}


# --- Rhodes et al. (2015), Tables 3, A.3.1, A.3.2 (log-t5 for tau², SMDs) --------------------
_RHODES_OUTCOMES = (
    "obstetric outcome",
    "resource use and hospital stay / process",
    "internal and external structure-related outcome",
    "general physical health and adverse event and pain and quality of life / functioning",
    "signs / symptoms reflecting continuation / end of condition and infection / onset of new "
    "acute / chronic disease",
    "mental health outcome",
    "biological marker",
    "various subjectively measured outcomes",
)
_RHODES_COMPARISONS = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological (any)",
)
# rows: comparison types (above order); columns: outcome types (above order); negated as in
# bayesmeta's source. Note: bayesmeta prints 3.85 for mental health / non-pharmacological in
# Table 3 ("other"), where every other column of that row is 0.14 below the first row; it is
# kept as printed.
# fmt: off
_RHODES_LOCATION = {
    "other": -np.array([
        [4.13, 2.55, 2.43, 3.16, 3.00, 2.99, 3.41, 2.76],
        [4.40, 2.83, 2.70, 3.44, 3.27, 3.27, 3.68, 3.03],
        [3.99, 2.41, 2.29, 3.02, 2.86, 3.85, 3.27, 2.62],
    ]),
    "respiratory": -np.array([
        [6.03, 4.46, 4.33, 5.07, 4.90, 4.90, 5.31, 4.66],
        [6.31, 4.73, 4.61, 5.34, 5.18, 5.17, 5.59, 4.94],
        [5.89, 4.32, 4.19, 4.93, 4.76, 4.76, 5.17, 4.52],
    ]),
    "cancer": -np.array([
        [1.57, -0.01, 0.13, 0.60, 0.44, 0.43, 0.85, 0.20],
        [1.85, 0.27, 0.14, 0.88, 0.71, 0.71, 1.13, 0.48],
        [1.43, -0.15, -0.27, 0.46, 0.30, 0.29, 0.71, 0.06],
    ]),
}
_RHODES_SCALE = {
    "other": np.array([
        [2.34, 2.73, 2.50, 2.50, 2.50, 2.16, 2.83, 2.58],
        [2.31, 2.70, 2.46, 2.44, 2.47, 2.14, 2.78, 2.59],
        [2.11, 2.57, 2.32, 2.27, 2.33, 1.93, 2.66, 2.41],
    ]),
    "respiratory": np.array([
        [2.36, 2.74, 2.51, 2.51, 2.50, 2.17, 2.83, 2.59],
        [2.31, 2.70, 2.46, 2.45, 2.47, 2.14, 2.78, 2.59],
        [2.21, 2.57, 2.33, 2.28, 2.33, 1.94, 2.66, 2.41],
    ]),
    "cancer": np.array([
        [2.45, 2.83, 2.61, 2.61, 2.60, 2.28, 2.93, 2.68],
        [2.41, 2.79, 2.56, 2.55, 2.57, 2.25, 2.87, 2.68],
        [2.24, 2.68, 2.45, 2.40, 2.46, 2.08, 2.78, 2.53],
    ]),
}
# fmt: on
