"""meta_bayes(): the public Bayesian model over the exact-integration core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import integrate, special

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


# --- small k: finite where mathematically finite, inf where a moment is infinite -------------
#
# With a flat mu prior the mu-integrated likelihood behaves like tau^-(k-1) as tau -> inf, so a
# prior tail tau^-a (log tau)^-b gives a posterior tail tau^-(a+k-1) (log tau)^-b, and
# E[tau^r | y] is finite iff r < a + k - 2, or r = a + k - 2 and b > 1. Var(mu) and Var(new
# study) contain E[V(tau)] ~ E[tau²] / k, so they are finite iff E[tau²] is. Half-Cauchy: a = 2;
# Rhodes (log-t5 for tau²): a = 1, b = 6; the others have lighter tails.
SMALL = {2: ([-0.5, -0.2], [0.04, 0.09]), 3: ([-0.5, -0.2, -0.4], [0.04, 0.09, 0.03])}


def _cauchy_density(t):
    return 2 / (np.pi * 0.5 * (1 + (t / 0.5) ** 2))


SMALL_PRIORS = {
    "half-normal": ("half-normal", {2: True, 3: True}),
    "half-cauchy": ("half-cauchy", {2: False, 3: True}),  # sd finite?
    "half-student-t": ("half-student-t", {2: True, 3: True}),
    "exponential": ("exponential", {2: True, 3: True}),
    "uniform": ("uniform", {2: True, 3: True}),
    "turner": ("turner", {2: True, 3: True}),
    "rhodes": ("rhodes", {2: False, 3: True}),
    "callable-exp": (lambda t: 2 * np.exp(-2 * t), {2: True, 3: True}),
    "callable-cauchy": (_cauchy_density, {2: False, 3: True}),  # tail estimated numerically
}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name", sorted(SMALL_PRIORS))
def test_small_k_summaries_are_finite_where_the_moments_exist(name, k):
    prior, sd_finite = SMALL_PRIORS[name]
    res = km.meta_bayes(*SMALL[k], tau_prior=prior)
    table = res.summary()
    quantiles = table[["median", "ci_low", "ci_high", "hpd_low", "hpd_high"]].to_numpy()
    assert np.isfinite(quantiles).all()  # medians and intervals always exist
    assert np.isfinite(table["mean"]).all()  # every prior here gives E tau < inf
    assert np.isfinite(res.shrinkage()[["median", "mean", "sd"]].to_numpy()).all()
    if sd_finite[k]:
        assert np.isfinite(table["sd"]).all() and "note" not in table.attrs
        assert "inf" not in str(res)
    else:
        assert np.isinf(table["sd"]).all()
        text = str(res)
        assert text.count(" inf ") == 3 and "infinite posterior moment" in text
    assert not table.isna().any().any()


class QuadReference:
    """p(tau | y) ∝ p(tau) L(tau), L the closed-form flat-mu marginal, by scipy quad in log tau."""

    CUTS = (-700, -60, -20, -8, -4, -2, -1, 0, 1, 3, 8, 20, 60, 340)

    def __init__(self, y, v, prior):
        self.y, self.v, self.prior = np.asarray(y, float), np.asarray(v, float), prior
        self.z = self.integral(lambda t: 1.0)

    def cond(self, t):
        w = 1 / (self.v + t * t)
        m = (w * self.y).sum() / w.sum()
        q = (w * (self.y - m) ** 2).sum()
        loglik = 0.5 * (np.log(w / (2 * np.pi)).sum() - np.log(w.sum() / (2 * np.pi)) - q)
        return m, 1 / w.sum(), np.exp(loglik)

    def integral(self, g, upper=np.inf):
        def f(s):
            t = np.exp(s)
            return g(t) * float(self.prior.pdf(np.array([t]))[0]) * self.cond(t)[2] * t

        total = 0.0
        for a, b in zip(self.CUTS[:-1], self.CUTS[1:], strict=True):
            if min(b, upper) > a:
                total += integrate.quad(f, a, min(b, upper), epsabs=0, epsrel=1e-12, limit=400)[0]
        return total / getattr(self, "z", 1.0)

    def tau(self, t):  # CDF and density of tau
        pdf = float(self.prior.pdf(np.array([t]))[0]) * self.cond(t)[2] / self.z
        return self.integral(lambda _: 1.0, np.log(t)), pdf

    def mixture(self, x, extra):  # CDF and density of mu (extra = 0) or a new study (1)
        def part(t, fn):
            m, var, _ = self.cond(t)
            s = np.sqrt(var + extra * t * t)
            return fn((x - m) / s) / (1.0 if fn is special.ndtr else s)

        pdf = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
        return self.integral(lambda t: part(t, special.ndtr)), self.integral(lambda t: part(t, pdf))


@pytest.mark.parametrize("k", [2, 3])
def test_small_k_rhodes_against_quadrature(k):
    res = km.meta_bayes(*SMALL[k], tau_prior="rhodes")
    fit, ref = res.fit, QuadReference(*SMALL[k], res.fit.tau_prior)
    # quantile error = |F(q) - p| / f(q), by the reference CDF and density
    for summ, extra in ((fit.mu, 0), (fit.pred, 1)):
        for p, q in ((0.5, summ.median), (0.025, summ.lower), (0.975, summ.upper)):
            cdf, pdf = ref.mixture(q, extra)
            assert abs(cdf - p) / pdf < 1e-6, (p, q, cdf)
    for p, q in ((0.5, fit.tau.median), (0.025, fit.tau.lower), (0.975, fit.tau.upper)):
        cdf, pdf = ref.tau(q)
        assert abs(cdf - p) / pdf < 1e-6, (p, q, cdf)
    # E tau exists for k = 2 (tail tau^-2 (log tau)^-6) and matches; E tau² exists for k = 3
    e_tau = ref.integral(lambda t: t)
    assert fit.tau.mean == pytest.approx(e_tau, rel=1e-6)
    m1 = ref.integral(lambda t: ref.cond(t)[0])
    assert fit.mu.mean == pytest.approx(m1, rel=1e-6)
    if k == 2:
        assert np.isinf(fit.tau.sd) and np.isinf(fit.mu.sd) and np.isinf(fit.pred.sd)
        # in s = log tau the tau² integrand behaves like s^-6 e^s: no finite limit
        partial = [ref.integral(lambda t: t * t, s) for s in (20, 60, 200)]
        assert partial[0] < partial[1] < partial[2] and partial[2] > 1e50
    else:
        e_tau2 = ref.integral(lambda t: t * t)
        assert fit.tau.sd == pytest.approx(np.sqrt(e_tau2 - e_tau**2), rel=1e-6)
        m2 = ref.integral(lambda t: ref.cond(t)[0] ** 2 + ref.cond(t)[1])
        assert fit.mu.sd == pytest.approx(np.sqrt(m2 - m1**2), rel=1e-6)
        assert fit.pred.sd == pytest.approx(np.sqrt(m2 - m1**2 + e_tau2), rel=1e-6)
