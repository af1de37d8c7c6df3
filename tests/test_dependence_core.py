"""Multi-arm arithmetic (Cochrane Handbook 6.4, section 23.3.4 and Table 6.5.a)."""

import math

import numpy as np
import pytest

from ketameta._core.multiarm import (
    combine_binary_arms,
    combine_continuous_arms,
    split_shared_control,
)


def handbook_two_arm_sd(n1, m1, s1, n2, m2, s2):
    """The Handbook's two-group formula, written out as printed."""
    total = n1 + n2
    return math.sqrt(
        ((n1 - 1) * s1**2 + (n2 - 1) * s2**2 + n1 * n2 / total * (m1**2 + m2**2 - 2 * m1 * m2))
        / (total - 1)
    )


def test_two_arms_match_the_handbook_formula():
    n, mean, sd = combine_continuous_arms([23, 31], [-14.2, -9.5], [8.1, 10.3])
    assert n == 54
    assert mean == pytest.approx((23 * -14.2 + 31 * -9.5) / 54, rel=1e-14)
    assert sd == pytest.approx(handbook_two_arm_sd(23, -14.2, 8.1, 31, -9.5, 10.3), rel=1e-14)


def test_three_arms_equal_pairwise_application():
    n12, m12, s12 = combine_continuous_arms([11, 12], [20.0, 18.5], [6.0, 7.5])
    pairwise = handbook_two_arm_sd(n12, m12, s12, 14, 15.0, 5.5)
    _, _, all_at_once = combine_continuous_arms([11, 12, 14], [20.0, 18.5, 15.0], [6.0, 7.5, 5.5])
    assert all_at_once == pytest.approx(pairwise, rel=1e-13)


def test_combined_sd_equals_sd_of_pooled_raw_data():
    rng = np.random.default_rng(1)
    arms = [rng.normal(loc, 3.0, size) for loc, size in [(0.0, 9), (2.0, 13), (5.0, 7)]]
    n, mean, sd = combine_continuous_arms(
        [len(a) for a in arms], [a.mean() for a in arms], [a.std(ddof=1) for a in arms]
    )
    pooled = np.concatenate(arms)
    assert (n, mean, sd) == pytest.approx((len(pooled), pooled.mean(), pooled.std(ddof=1)))


def test_binary_arms_add_up():
    assert combine_binary_arms([3, 5, 0], [10, 12, 9]) == (8.0, 31.0)


def test_split_shared_control_keeps_the_total():
    sizes = split_shared_control(33, 3)
    assert sizes.sum() == 33
    assert sizes.tolist() == [11.0, 11.0, 11.0]
    assert split_shared_control(34, 3).tolist() == [12.0, 11.0, 11.0]
    with pytest.raises(ValueError, match="n_comparisons"):
        split_shared_control(10, 0)
