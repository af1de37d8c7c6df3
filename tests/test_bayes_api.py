"""meta_bayes(): the public Bayesian model over the exact-integration core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import ketameta as km
from ketameta._core import bayes_priors as priors
from ketameta._core.bayes import fit_bayes

YI = [-0.52, -0.89, -0.30, -0.75]
VI = [0.015, 0.020, 0.018, 0.040]


def test_meta_bayes_equals_the_core_with_the_named_prior():
    res = km.meta_bayes(YI, VI, tau_prior="half-cauchy", tau_scale=0.3)
    core = fit_bayes(np.array(YI), np.array(VI), priors.half_cauchy(0.3))
    assert res.estimate == pytest.approx(float(core.mu.median), rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx((core.mu.lower, core.mu.upper), rel=1e-12)
    assert (res.pi_low, res.pi_high) == pytest.approx((core.pred.lower, core.pred.upper), rel=1e-12)
    assert res.tau == pytest.approx(float(core.tau.median), rel=1e-12)
    assert res.prior == "half-Cauchy(scale=0.3)"


@pytest.mark.parametrize("name", ["half-normal", "half-student-t", "exponential", "uniform"])
def test_every_named_prior_fits(name):
    res = km.meta_bayes(YI, VI, tau_prior=name, tau_scale=1.0)
    assert np.isfinite(res.estimate) and res.ci_low < res.estimate < res.ci_high


def test_empirical_priors_and_callables():
    turner = km.meta_bayes(YI, VI, tau_prior="turner")
    assert "Turner" in turner.prior
    rhodes = km.meta_bayes(YI, VI, tau_prior="rhodes", prior_setting={"outcome": None})
    assert "Rhodes" in rhodes.prior
    dens = km.meta_bayes(YI, VI, tau_prior=lambda t: 2 * np.exp(-2 * t))
    expo = km.meta_bayes(YI, VI, tau_prior="exponential", tau_scale=0.5)
    assert dens.estimate == pytest.approx(expo.estimate, rel=1e-6)


def test_summaries_shrinkage_and_printout():
    data = pd.DataFrame({"yi": YI, "vi": VI, "study": ["A", "B", "C", "D"]})
    res = km.meta_bayes(data=data, labels="study")
    table = res.summary()
    assert list(table.index) == ["mu", "tau", "new study"]
    assert {"median", "mean", "sd", "ci_low", "ci_high", "hpd_low", "hpd_high"} <= set(table)
    shrink = res.shrinkage()
    assert shrink["study"].tolist() == ["A", "B", "C", "D"]
    # posterior study effects lie between the observed effect and mu
    for _, row in shrink.iterrows():
        lo, hi = sorted([row["yi"], res.estimate])
        assert lo - 1e-9 <= row["median"] <= hi + 1e-9
    text = str(res)
    assert "prior for tau: half-normal(scale=0.5)" in text and f"{res.estimate:.4f}" in text
    assert repr(res).startswith("<BayesResult k=4")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="tau_prior"):
        km.meta_bayes(YI, VI, tau_prior="gamma")
    with pytest.raises(ValueError, match="tau_scale"):
        km.meta_bayes(YI, VI, tau_scale=-1)


def test_forest_shows_observed_and_shrinkage_rows():
    res = km.meta_bayes(YI, VI, labels=["A", "B", "C", "D"])
    fig = res.plot_forest()
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    shrink = [line for line in ax.lines if line.get_gid() == "shrinkage"]
    observed = [line for line in ax.lines if line.get_gid() == "observed"]
    assert len(shrink) == 2 * 4 and len(observed) == 2 * 4  # a whisker and a marker each
    assert [t.get_text() for t in ax.get_yticklabels()][:4] == ["A", "B", "C", "D"]
    assert any(p.get_gid() == "diamond-posterior" for p in ax.patches)
