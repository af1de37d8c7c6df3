"""Arm-level arithmetic for multi-arm trials (pure numpy).

Cochrane Handbook for Systematic Reviews of Interventions, version 6.4, section 23.3.4
("How to include multiple groups from one study"): either combine all relevant experimental
arms into a single arm before computing the effect size (recommended), or split the shared
control arm's sample size among the comparisons so that no participant is counted twice.
The combining formulas are those of the Handbook's Table 6.5.a.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def combine_continuous_arms(
    n: ArrayLike, mean: ArrayLike, sd: ArrayLike
) -> tuple[float, float, float]:
    """Combine several arms of a continuous outcome into one arm.

    Parameters
    ----------
    n, mean, sd : array_like
        Sample size, mean and standard deviation of each arm (one value per arm).

    Returns
    -------
    tuple of float
        ``(n, mean, sd)`` of the combined arm: the pooled sample size, the size-weighted mean and
        the standard deviation of all participants together (between-arm spread included).

    Notes
    -----
    Applied pairwise, the Handbook's formula for two arms is
    ``N = N1 + N2``, ``M = (N1 M1 + N2 M2) / N`` and
    ``SD² = ((N1-1) SD1² + (N2-1) SD2² + N1 N2 / N (M1 - M2)²) / (N - 1)``;
    applying it to all arms at once gives the same result, which is what this function does:
    the total sum of squares about the grand mean divided by ``N - 1``.

    Examples
    --------
    >>> combine_continuous_arms([10, 20], [5.0, 8.0], [2.0, 3.0])
    (30.0, 7.0, 3.034...)
    """
    n_arr = np.asarray(n, dtype=float)
    mean_arr = np.asarray(mean, dtype=float)
    sd_arr = np.asarray(sd, dtype=float)
    total = n_arr.sum()
    grand_mean = float((n_arr * mean_arr).sum() / total)
    within = ((n_arr - 1.0) * sd_arr**2).sum()
    between = (n_arr * (mean_arr - grand_mean) ** 2).sum()
    combined_sd = float(np.sqrt((within + between) / (total - 1.0)))
    return float(total), grand_mean, combined_sd


def combine_binary_arms(events: ArrayLike, n: ArrayLike) -> tuple[float, float]:
    """Combine several arms of a binary outcome: events and sample sizes add up.

    Examples
    --------
    >>> combine_binary_arms([3, 5], [10, 12])
    (8.0, 22.0)
    """
    return float(np.sum(np.asarray(events, dtype=float))), float(np.sum(np.asarray(n, dtype=float)))


def split_shared_control(n: float, n_comparisons: int) -> NDArray[np.float64]:
    """Split a shared control arm's sample size among ``n_comparisons`` comparisons.

    The sizes are whole numbers that add up to ``n`` (the remainder goes to the first
    comparisons), so that no control participant is counted twice.

    Examples
    --------
    >>> split_shared_control(10, 3).tolist()
    [4.0, 3.0, 3.0]
    """
    if n_comparisons < 1:
        raise ValueError(f"n_comparisons must be at least 1, got {n_comparisons}")
    base, remainder = divmod(int(round(n)), n_comparisons)
    sizes = np.full(n_comparisons, float(base))
    sizes[:remainder] += 1.0
    return sizes
