"""Funnel plots: points, regions and axis read from the result."""

import math

import numpy as np
import pytest
from _reference import load_case
from scipy import stats

from ketameta import escalc, meta, trim_and_fill
from ketameta.plots import funnel, save


@pytest.fixture(scope="module")
def bcg_result():
    data, _ = load_case("escalc_rr_bcg")
    effects = escalc(
        "RR",
        data=data,
        events1=data["tpos"],
        n1=data["tpos"] + data["tneg"],
        events2=data["cpos"],
        n2=data["cpos"] + data["cneg"],
    )
    return meta(data=effects)


def by_gid(ax, name):
    return [c for c in [*ax.collections, *ax.lines] if c.get_gid() == name]


def region_edges(collection):
    """x at the widest point (largest se) of a fill_betweenx region."""
    xy = collection.get_paths()[0].vertices
    widest = xy[:, 1].max()
    xs = xy[np.isclose(xy[:, 1], widest), 0]
    return xs.min(), xs.max(), widest


def test_points_pseudo_ci_and_log_axis(bcg_result):
    res = bcg_result
    fig = funnel(res)
    ax = fig.axes[0]
    (studies,) = by_gid(ax, "studies")
    offsets = np.asarray(studies.get_offsets())
    assert offsets[:, 0] == pytest.approx(np.exp(res.yi))
    assert offsets[:, 1] == pytest.approx(np.sqrt(res.vi))
    assert ax.yaxis_inverted() and ax.get_ylim()[1] == 0.0
    assert ax.get_xscale() == "log"
    assert {"0.25", "0.5", "1", "2"} <= {t.get_text() for t in ax.get_xticklabels()}
    (region,) = by_gid(ax, "pseudo-ci")
    low, high, se = region_edges(region)
    z = stats.norm.ppf(0.975)
    assert low == pytest.approx(math.exp(res.estimate - z * se))
    assert high == pytest.approx(math.exp(res.estimate + z * se))


def test_contours_are_centred_on_the_null(bcg_result):
    fig = funnel(bcg_result, contours=True)
    ax = fig.axes[0]
    for p in (0.10, 0.05, 0.01):
        (region,) = by_gid(ax, f"contour-{p:g}")
        low, high, se = region_edges(region)
        z = stats.norm.ppf(1 - p / 2)
        assert low == pytest.approx(math.exp(-z * se)) and high == pytest.approx(math.exp(z * se))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:4] == ["p > 0.10", "0.05 < p ≤ 0.10", "0.01 < p ≤ 0.05", "p ≤ 0.01"]
    # every study lies inside the x range
    lo, hi = ax.get_xlim()
    assert (np.exp(bcg_result.yi) > lo).all() and (np.exp(bcg_result.yi) < hi).all()


def test_filled_studies_from_arrays_and_from_trim_and_fill(bcg_result):
    fig = funnel(bcg_result, filled=(np.array([0.1]), np.array([0.2])))
    (filled,) = by_gid(fig.axes[0], "filled")
    assert filled.get_offsets()[0].tolist() == pytest.approx([math.exp(0.1), math.sqrt(0.2)])
    tf = trim_and_fill(bcg_result)
    fig = funnel(bcg_result, filled=tf)
    (filled,) = by_gid(fig.axes[0], "filled")
    assert len(filled.get_offsets()) == tf.k0 == len(tf.filled_yi)
    assert "adjusted (trim-and-fill)" in [
        t.get_text() for t in fig.axes[0].get_legend().get_texts()
    ]


def test_bad_filled_is_a_clear_error(bcg_result):
    with pytest.raises(ValueError, match="filled: yi and vi differ"):
        funnel(bcg_result, filled=([0.1, 0.2], [0.1]))
    with pytest.raises(ValueError, match=r"filled: entries \[1\]"):
        funnel(bcg_result, filled=([0.1, 0.2], [0.1, -1.0]))
    with pytest.raises(ValueError, match="filled must be"):
        funnel(bcg_result, filled=3)


def test_difference_measure_linear_axis():
    res = meta([-0.5, -0.2, -0.4, 0.1], [0.04, 0.05, 0.03, 0.09])
    ax = funnel(res, contours=True).axes[0]
    assert ax.get_xscale() == "linear"
    (region,) = by_gid(ax, "contour-0.05")
    low, high, se = region_edges(region)
    assert high == pytest.approx(stats.norm.ppf(0.975) * se) and low == pytest.approx(-high)


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_funnel_saves_reproducibly(tmp_path, bcg_result, suffix):
    a = save(funnel(bcg_result, contours=True), tmp_path / f"a{suffix}").read_bytes()
    b = save(funnel(bcg_result, contours=True), tmp_path / f"b{suffix}").read_bytes()
    assert a == b
