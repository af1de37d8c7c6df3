"""The Bayesian forest plot draws what ``BayesResult.records()`` and the result's fields hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _reference import load_case
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

import ketameta as km
from ketameta import escalc


@pytest.fixture(scope="module")
def bcg():
    data, _ = load_case("escalc_rr_bcg")
    data["n1"], data["n2"] = data["tpos"] + data["tneg"], data["cpos"] + data["cneg"]
    eff = escalc("RR", data=data, events1="tpos", n1="n1", events2="cpos", n2="n2")
    eff["label"] = data["author"] + " " + data["year"].astype(str)
    return km.meta_bayes("yi", "vi", data=eff, labels="label", level=90.0)


def gid(ax, name):
    return [line for line in ax.lines if line.get_gid() == name]


def test_records_against_independent_computation(bcg):
    rec = bcg.records()
    assert len(rec) == bcg.k == 13
    assert rec["label"].tolist() == list(bcg.labels)
    yi, vi = np.asarray(bcg.data["yi"]), np.asarray(bcg.data["vi"])
    np.testing.assert_array_equal(rec["yi"], yi)
    low, high = stats.norm.interval(0.90, loc=yi, scale=np.sqrt(vi))
    np.testing.assert_allclose(rec["ci_low"], low, rtol=1e-13)
    np.testing.assert_allclose(rec["ci_high"], high, rtol=1e-13)
    sh = bcg.fit.shrinkage
    np.testing.assert_array_equal(rec["shrink_median"], sh.median)
    np.testing.assert_array_equal(rec["shrink_low"], sh.lower)
    np.testing.assert_array_equal(rec["shrink_high"], sh.upper)
    # the shrinkage median is the 50% point of the posterior of theta_i
    for i in (0, 7):
        p = bcg.fit.posterior.cdf(rec["shrink_median"][i], of=i)
        assert float(p) == pytest.approx(0.5, abs=1e-10)
        p = bcg.fit.posterior.cdf(np.array([rec["shrink_low"][i], rec["shrink_high"][i]]), of=i)
        np.testing.assert_allclose(p, [0.05, 0.95], atol=1e-10)


def test_segments_are_the_records_intervals(bcg):
    rec = bcg.records()
    fig = bcg.plot_forest()
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    observed, shrink = gid(ax, "observed"), gid(ax, "shrinkage")
    assert len(observed) == len(shrink) == 2 * bcg.k  # a whisker and a marker per study
    obs_bars, sh_bars = observed[0::2], shrink[0::2]
    obs_dots, sh_dots = observed[1::2], shrink[1::2]
    np.testing.assert_allclose(
        [b.get_xdata() for b in obs_bars], np.exp(rec[["ci_low", "ci_high"]].to_numpy()), rtol=1e-13
    )
    np.testing.assert_allclose(
        [b.get_xdata() for b in sh_bars],
        np.exp(rec[["shrink_low", "shrink_high"]].to_numpy()),
        rtol=1e-13,
    )
    np.testing.assert_allclose([d.get_xdata()[0] for d in obs_dots], np.exp(rec["yi"]), rtol=1e-13)
    np.testing.assert_allclose(
        [d.get_xdata()[0] for d in sh_dots], np.exp(rec["shrink_median"]), rtol=1e-13
    )
    # one row per study, top to bottom, each row's y shared by its two intervals
    ys = [b.get_ydata()[0] for b in obs_bars]
    assert len(set(ys)) == bcg.k and ys == sorted(ys, reverse=True)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[: bcg.k] == rec["label"].tolist()
    (diamond,) = [p for p in ax.patches if p.get_gid() == "diamond-posterior"]
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(math.exp(bcg.ci_low), rel=1e-13)
    assert xs.max() == pytest.approx(math.exp(bcg.ci_high), rel=1e-13)
    (pred,) = gid(ax, "predictive")
    np.testing.assert_allclose(pred.get_xdata(), np.exp([bcg.pi_low, bcg.pi_high]), rtol=1e-13)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert "Posterior median [90% interval]" in texts
    first = rec.iloc[0]
    assert (
        f"{math.exp(first.shrink_median):.2f} [{math.exp(first.shrink_low):.2f}, "
        f"{math.exp(first.shrink_high):.2f}]"
    ) in texts


def test_unlabelled_differences_plot_on_the_raw_scale():
    res = km.meta_bayes([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03])
    rec = res.records()
    assert rec["label"].tolist() == ["Study 1", "Study 2", "Study 3"]
    fig = res.plot_forest()
    ax = fig.axes[0]
    bars = gid(ax, "observed")[0::2]
    np.testing.assert_allclose(
        [b.get_xdata() for b in bars], rec[["ci_low", "ci_high"]].to_numpy(), rtol=1e-13
    )
    np.testing.assert_allclose(
        rec["ci_high"] - rec["yi"], 1.959963984540054 * np.sqrt([0.04, 0.05, 0.03]), rtol=1e-13
    )
    assert ax.get_xscale() == "linear"
