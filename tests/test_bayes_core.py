"""Tests of ketameta._core.bayes against an independent brute-force 2-D integration.

The brute force integrates the joint posterior p(mu, tau | y) on a tensor grid of
Gauss-Legendre panels in (mu, tau) (no closed-form mu integration), with the likelihood
evaluated from per-tau sufficient sums. Reference values printed in bayesmeta's vignette
(Rubin 1981 "eight schools") are compared at their print precision where bayesmeta is exact
(tau, which it integrates numerically) and more loosely for mu / theta, which bayesmeta
approximates by a discrete normal mixture (its ``delta``/``epsilon`` accuracy arguments).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss
from scipy import optimize, stats

from ketameta._core import bayes_priors as bp
from ketameta._core.bayes import fit_bayes

RUBIN_Y = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
RUBIN_V = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6]) ** 2
# CrinsEtAl2014 log odds ratios as printed in bayesmeta's vignette (escalc, 4 decimals)
CRINS_Y = np.array([-2.3097, -0.4595, -2.3026, -1.7579, -1.2585, -2.4179])
CRINS_V = np.array([0.3594, 0.3096, 0.7750, 0.2078, 0.4122, 2.3373])


def _panels(lo: float, hi: float, n: int, order: int = 10) -> tuple[np.ndarray, np.ndarray]:
    x, w = leggauss(order)
    e = np.linspace(lo, hi, n + 1)
    mid, h = (e[1:] + e[:-1]) / 2, (e[1:] - e[:-1]) / 2
    return (mid[:, None] + h[:, None] * x).ravel(), (h[:, None] * w).ravel()


def _edges(lo, hi, n):
    e = np.linspace(lo, hi, n + 1)
    return list(zip(e[:-1], e[1:], strict=True))


class Brute:
    """Dense 2-D quadrature of the joint posterior over (mu, tau)."""

    def __init__(self, y, v, prior, mu_prior, t_lin, t_max, mu_lo, mu_hi, n_mu=300):
        self.y, self.v, self.prior, self.mu_prior = y, v, prior, mu_prior
        # panels: log-spaced on [1e-60, t_lin / 300] (priors such as log-t spike at tau = 0),
        # linear up to t_lin, log-spaced up to t_max; (lo, hi, is_log) in the panel variable
        self.tpan = [(a, b, True) for a, b in _edges(np.log(1e-60), np.log(t_lin / 300), 150)]
        self.tpan += [(a, b, False) for a, b in _edges(t_lin / 300, t_lin, 150)]
        self.tpan += [(a, b, True) for a, b in _edges(np.log(t_lin), np.log(t_max), 80)]
        nodes = [self._tnodes(a, b, lg, 10) for a, b, lg in self.tpan]
        self.t = np.concatenate([n[0] for n in nodes])
        self.wt = np.concatenate([n[1] for n in nodes])
        self.mu_edges = np.linspace(mu_lo, mu_hi, n_mu + 1)
        self.m, self.wm = _panels(mu_lo, mu_hi, n_mu)
        lj = self.logjoint(self.t, self.m)
        self.shift = lj.max()
        j = np.exp(lj - self.shift) * self.wt[:, None] * self.wm[None, :]
        self.zrel = j.sum()
        self.log_evidence = np.log(self.zrel) + self.shift
        self.j = j / self.zrel
        self.p_tau, self.p_mu = self.j.sum(1), self.j.sum(0)
        self.mu_pdf_nodes = self.mu_pdf(self.m)
        panel_int = (self.mu_pdf_nodes * self.wm).reshape(n_mu, -1).sum(1)
        self.mu_cum = np.concatenate([[0.0], np.cumsum(panel_int)])
        self.t_cum = np.concatenate(
            [[0.0], np.cumsum(self.p_tau.reshape(len(self.tpan), -1).sum(1))]
        )
        self.t_hi = np.array([np.exp(b) if lg else b for _, b, lg in self.tpan])

    @staticmethod
    def _tnodes(a, b, is_log, order):
        s, w = _panels(a, b, 1, order)
        return (np.exp(s), w * np.exp(s)) if is_log else (s, w)

    def logjoint(self, t, m):
        s2 = self.v[None, :] + t[:, None] ** 2
        w = 1 / s2
        a, b, c = (w * self.y**2).sum(1), (w * self.y).sum(1), w.sum(1)
        const = -0.5 * np.log(2 * np.pi * s2).sum(1) + self.prior.logpdf(t)
        ll = const[:, None] - 0.5 * (
            a[:, None] - 2 * m[None, :] * b[:, None] + m[None, :] ** 2 * c[:, None]
        )
        if self.mu_prior is not None:
            ll = ll + stats.norm.logpdf(m, *self.mu_prior)[None, :]
        return ll

    def mu_pdf(self, x):
        x = np.atleast_1d(x)
        return (np.exp(self.logjoint(self.t, x) - self.shift) * self.wt[:, None]).sum(0) / self.zrel

    def tau_pdf(self, t):
        t = np.atleast_1d(t)
        return (np.exp(self.logjoint(t, self.m) - self.shift) * self.wm[None, :]).sum(1) / self.zrel

    def mu_cdf(self, x):
        i = int(np.clip(np.searchsorted(self.mu_edges, x) - 1, 0, self.mu_edges.size - 2))
        xs, ws = _panels(self.mu_edges[i], x, 1, 20)
        return self.mu_cum[i] + self.mu_pdf(xs) @ ws

    def tau_cdf(self, t):
        i = int(np.searchsorted(self.t_hi, t))
        a, _, lg = self.tpan[i]
        ts, ws = self._tnodes(a, np.log(t) if lg else t, lg, 20)
        return self.t_cum[i] + self.tau_pdf(ts) @ ws

    def quantile(self, cdf, p, lo, hi):
        return optimize.brentq(lambda x: cdf(x) - p, lo, hi, xtol=1e-12)

    def moments(self, vals):
        mean = (self.j * vals).sum()
        return mean, np.sqrt((self.j * vals**2).sum() - mean**2)

    def theta(self, i):
        sh = (self.v[i] / (self.v[i] + self.t**2))[:, None]
        cm = (1 - sh) * self.y[i] + sh * self.m[None, :]
        cv = (1 - sh) * self.v[i]
        mean = (self.j * cm).sum()
        return mean, np.sqrt((self.j * (cv + cm**2)).sum() - mean**2)


CASES = {
    "rubin_cauchy_normal": (RUBIN_Y, RUBIN_V, bp.half_cauchy(25), (0.0, 50.0), 80, 5e3, -150, 170),
    "rubin_uniform_flat": (RUBIN_Y, RUBIN_V, bp.uniform(), None, 80, 5e4, -2500, 2500),
    "crins_turner_flat": (
        CRINS_Y,
        CRINS_V,
        bp.turner_prior("surgical", "pharma", "placebo"),
        None,
        4,
        200,
        -12,
        8,
    ),
    "crins_halfnormal_normal": (CRINS_Y, CRINS_V, bp.half_normal(0.5), (0.0, 4.0), 4, 10, -12, 8),
    "crins_rhodes": (CRINS_Y, CRINS_V, bp.rhodes_prior(), (-1.0, 2.0), 4, 300, -15, 12),
    "crins_halft_exp": (CRINS_Y, CRINS_V, bp.half_student_t(0.5, 3), None, 4, 300, -25, 22),
    "crins_exponential": (CRINS_Y, CRINS_V, bp.exponential(0.4), (0.0, 10.0), 4, 40, -12, 8),
    "crins_uniform_upper": (CRINS_Y, CRINS_V, bp.uniform(2.0), None, 2, 2.5, -12, 8),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    y, v, prior, mu_prior, t_lin, t_max, lo, hi = CASES[request.param]
    fit = fit_bayes(y, v, prior, mu_prior=mu_prior, level=95.0)
    return fit, Brute(y, v, prior, mu_prior, t_lin, t_max, lo, hi)


def _close(a, b, tol, scale=1.0):
    assert abs(a - b) <= tol * scale, (a, b, abs(a - b) / scale)


def test_moments_vs_brute(case):
    fit, br = case
    tm, tsd = br.moments(br.t[:, None])
    mm, msd = br.moments(br.m[None, :])
    _close(fit.tau.mean, tm, 1e-6, tsd)
    _close(fit.tau.sd, tsd, 1e-6, tsd)
    _close(fit.mu.mean, mm, 1e-6, msd)
    _close(fit.mu.sd, msd, 1e-6, msd)
    pm, psd = br.moments(br.m[None, :])
    _close(fit.pred.mean, pm, 1e-6, msd)
    pvar = msd**2 + (br.j * br.t[:, None] ** 2).sum()  # Var = Var(mu) + E tau²
    _close(fit.pred.sd, np.sqrt(pvar), 1e-6, msd)
    for i in range(fit.k):
        th_m, th_sd = br.theta(i)
        _close(fit.shrinkage.mean[i], th_m, 1e-6, th_sd)
        _close(fit.shrinkage.sd[i], th_sd, 1e-6, th_sd)


def test_densities_vs_brute(case):
    fit, br = case
    xs = fit.mu.median + fit.mu.sd * np.array([-2.5, -1, 0, 0.7, 2])
    np.testing.assert_allclose(fit.posterior.pdf(xs, "mu"), br.mu_pdf(xs), rtol=1e-6)
    ts = fit.tau.median * np.array([0.3, 1.0, 1.7]) + 1e-3 * fit.tau.sd
    np.testing.assert_allclose(fit.posterior.pdf(ts, "tau"), br.tau_pdf(ts), rtol=1e-6)
    np.testing.assert_allclose(fit.posterior.cdf(ts, "tau"), [br.tau_cdf(t) for t in ts], atol=1e-8)
    np.testing.assert_allclose(fit.posterior.cdf(xs, "mu"), [br.mu_cdf(x) for x in xs], atol=1e-8)
    # the plotting grid agrees with the density functions
    np.testing.assert_allclose(fit.mu_density, fit.posterior.pdf(fit.mu_grid, "mu"))


def test_quantiles_and_intervals_vs_brute(case):
    fit, br = case
    lo, hi = br.mu_edges[0] + 1e-9, br.mu_edges[-1] - 1e-9
    for p, val in ((0.5, fit.mu.median), (0.025, fit.mu.lower), (0.975, fit.mu.upper)):
        _close(val, br.quantile(br.mu_cdf, p, lo, hi), 1e-6, fit.mu.sd)
    for p, val in ((0.5, fit.tau.median), (0.025, fit.tau.lower), (0.975, fit.tau.upper)):
        _close(val, br.quantile(br.tau_cdf, p, 1e-12, br.t[-1]), 1e-6, fit.tau.median)
    # shortest intervals: coverage 95% and equal density at both ends (or a = 0 for tau)
    a, b = fit.mu.hpd_lower, fit.mu.hpd_upper
    _close(br.mu_cdf(b) - br.mu_cdf(a), 0.95, 1e-7)
    np.testing.assert_allclose(br.mu_pdf(a), br.mu_pdf(b), rtol=1e-5)
    assert b - a <= fit.mu.upper - fit.mu.lower + 1e-12
    a, b = fit.tau.hpd_lower, fit.tau.hpd_upper
    _close(br.tau_cdf(b) - (br.tau_cdf(a) if a > 0 else 0.0), 0.95, 1e-7)
    if a > 0:
        np.testing.assert_allclose(br.tau_pdf(a), br.tau_pdf(b), rtol=1e-5)
    else:
        assert br.tau_pdf(1e-9)[0] >= br.tau_pdf(b)[0]


def test_evidence_vs_brute(case):
    fit, br = case
    if fit.mu_prior is None:
        assert np.isnan(fit.marginal_likelihood) and np.isnan(fit.bf_mu0)
        return
    np.testing.assert_allclose(fit.log_marginal_likelihood, br.log_evidence, atol=1e-7)
    # BF01 for mu = 0 directly: p(y | mu = 0) / p(y), by 1-D integration over tau
    s2 = br.v[None, :] + br.t[:, None] ** 2
    ly0 = (-0.5 * (np.log(2 * np.pi * s2) + br.y**2 / s2)).sum(1) + br.prior.logpdf(br.t)
    bf = (np.exp(ly0 - br.log_evidence) * br.wt).sum()
    np.testing.assert_allclose(fit.bf_mu0, bf, rtol=1e-6)
    # BF01 for tau = 0: p(y | tau = 0) / p(y), integrating the common-effect likelihood in mu
    l0 = stats.norm.logpdf(br.y[None, :], br.m[:, None], np.sqrt(br.v)[None, :]).sum(1)
    l0 = l0 + stats.norm.logpdf(br.m, *br.mu_prior)
    bf0 = (np.exp(l0 - br.log_evidence) * br.wm).sum()
    np.testing.assert_allclose(fit.bf_tau0, bf0, rtol=1e-6)


def test_rubin_printed_bayesmeta_values():
    # bayesmeta vignette, schools.example.1: half-Cauchy(25) tau prior, N(0, 50²) mu prior.
    fit = fit_bayes(RUBIN_Y, RUBIN_V, bp.half_cauchy(25), mu_prior=(0, 50))
    t = fit.tau  # printed: mode 0, median 4.758539, mean 5.884511, sd 4.869904, HPD [0, 15.165894]
    np.testing.assert_allclose(
        [t.mode, t.median, t.mean, t.sd, t.hpd_lower, t.hpd_upper],
        [0, 4.758539, 5.884511, 4.869904, 0, 15.165894],
        atol=1.5e-6,
    )
    # printed central interval 0.2199559 18.0531718 (7 significant digits)
    np.testing.assert_allclose([t.lower, t.upper], [0.2199559, 18.0531718], atol=1e-7)
    # mu: bayesmeta's printed values come from its approximate normal mixture; they agree to
    # about 1e-4 (relative to sd 5) while ours match the brute force above to 1e-9.
    m = fit.mu  # printed: mode 7.929503, median 7.962961, mean 7.985729, sd 4.995762
    np.testing.assert_allclose(
        [m.mode, m.median, m.mean, m.sd, m.hpd_lower, m.hpd_upper],
        [7.929503, 7.962961, 7.985729, 4.995762, -1.823353, 17.824562],
        atol=3e-3,
    )
    np.testing.assert_allclose(1 - fit.posterior.cdf(0.0, "mu"), 0.9487521, atol=5e-5)
    np.testing.assert_allclose(fit.posterior.ppf(0.95, "tau"), 15.16589, atol=1e-5)
    # predictive (printed theta column) and shrinkage of school A, more loosely (mixture approx.)
    p = fit.pred
    np.testing.assert_allclose([p.median, p.mean, p.sd], [7.926819, 7.985729, 9.126767], atol=3e-3)
    np.testing.assert_allclose([p.hpd_lower, p.hpd_upper], [-10.623526, 26.827377], atol=0.05)
    s = fit.shrinkage
    np.testing.assert_allclose(
        [s.median[0], s.mean[0], s.sd[0]], [10.093581, 11.095255, 7.901084], atol=2e-2
    )
    # schools.example.2: uniform priors; tau is exact in bayesmeta, so compare at print precision
    t2 = fit_bayes(RUBIN_Y, RUBIN_V, bp.uniform()).tau
    np.testing.assert_allclose(
        [t2.mode, t2.median, t2.mean, t2.sd, t2.hpd_upper],
        [0, 5.227732, 6.585992, 5.685974, 17.265797],
        atol=1.5e-6,
    )


def test_common_effect_limit():
    w = 1 / CRINS_V
    fe, se = (w * CRINS_Y).sum() / w.sum(), 1 / np.sqrt(w.sum())
    fit = fit_bayes(CRINS_Y, CRINS_V, bp.half_normal(1e-7))
    _close(fit.mu.mean, fe, 1e-6, se)
    _close(fit.mu.sd, se, 1e-6, se)
    _close(fit.mu.lower, fe - 1.959963984540054 * se, 1e-6, se)
    _close(fit.pred.sd, se, 1e-6, se)
    np.testing.assert_allclose(fit.shrinkage.mean, fe, atol=1e-6 * se)


def test_large_k_near_reml():
    rng = np.random.default_rng(1)
    k = 400
    v = rng.uniform(0.02, 0.3, k)
    y = 0.3 + rng.normal(0, np.sqrt(v + 0.2**2))

    def nreml(t2):
        w = 1 / (v + t2)
        m = (w * y).sum() / w.sum()
        return 0.5 * (np.log(v + t2).sum() + np.log(w.sum()) + (w * (y - m) ** 2).sum())

    t2 = optimize.minimize_scalar(
        nreml, bounds=(0, 5), method="bounded", options={"xatol": 1e-12}
    ).x
    w = 1 / (v + t2)
    mu_reml, se_reml = (w * y).sum() / w.sum(), 1 / np.sqrt(w.sum())
    fit = fit_bayes(y, v, bp.uniform())
    assert abs(fit.mu.mean - mu_reml) < 0.02 * se_reml
    assert abs(fit.mu.sd / se_reml - 1) < 0.02
    assert abs(fit.tau.median - np.sqrt(t2)) < 0.1 * fit.tau.sd
    assert fit.tau.sd < 0.2 * fit.tau.median


def test_single_study_heavy_tails():
    # k = 1, flat mu: the data carry no information on tau, so the posterior is the prior
    fit = fit_bayes([0.5], [0.1], bp.half_cauchy(0.3))
    np.testing.assert_allclose(fit.tau.median, 0.3, rtol=1e-9)
    assert np.isinf(fit.tau.mean) and np.isinf(fit.tau.sd) and np.isinf(fit.pred.sd)
    assert np.isnan(fit.mu.mean)


@pytest.mark.parametrize("known_tail", [True, False])
def test_moment_existence_follows_the_tail_exponent(known_tail):
    # flat tau prior (a = 0) and flat mu: p(tau | y) ~ tau^-(k-1), so E tau < inf iff k > 3 and
    # E tau² < inf iff k > 4; the exponents sit exactly on the integers where a numerical
    # estimate of the tail is decided by rounding; a callable takes the numerical estimate
    prior = bp.uniform() if known_tail else (lambda t: np.ones_like(t))
    y, v = np.array([-0.5, -0.2, 0.1, 0.3, 0.0]), np.array([0.04, 0.09, 0.05, 0.02, 0.06])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f3, f4, f5 = (fit_bayes(y[:k], v[:k], prior) for k in (3, 4, 5))
    assert np.isinf(f3.tau.mean) and np.isinf(f3.tau.sd) and np.isinf(f3.mu.sd)
    assert np.isnan(f3.mu.mean) and np.isnan(f3.pred.mean)  # E|mu| = inf: no mean
    assert np.isfinite(f4.tau.mean) and np.isfinite(f4.mu.mean)
    assert np.isinf(f4.tau.sd) and np.isinf(f4.mu.sd) and np.isinf(f4.pred.sd)
    assert np.isfinite([f5.tau.sd, f5.mu.sd, f5.pred.sd]).all()
    for f in (f3, f4, f5):
        assert np.isfinite([f.tau.median, f.mu.lower, f.mu.upper, f.pred.median]).all()
        assert np.isfinite(f.shrinkage.sd).all()
    # a normal mu prior adds one power: half-Cauchy, k = 1 gives E tau < inf = E tau²
    f = fit_bayes([0.5], [0.1], bp.half_cauchy(0.3), mu_prior=(0, 1))
    assert np.isfinite([f.tau.mean, f.mu.mean, f.mu.sd, f.pred.mean]).all()
    assert np.isinf(f.tau.sd) and np.isinf(f.pred.sd)


def test_improper_posterior_raises():
    with pytest.raises(ValueError, match="improper"):
        fit_bayes([0.1, 0.4], [0.1, 0.2], bp.uniform())


def test_callable_prior_matches_tau_prior():
    def dens(t):
        return 2 / (np.pi * 25 * (1 + (t / 25) ** 2))

    a = fit_bayes(RUBIN_Y, RUBIN_V, dens, mu_prior=(0, 50))
    b = fit_bayes(RUBIN_Y, RUBIN_V, bp.half_cauchy(25), mu_prior=(0, 50))
    np.testing.assert_allclose(a.tau, b.tau, rtol=1e-10)
    np.testing.assert_allclose(a.marginal_likelihood, b.marginal_likelihood, rtol=1e-10)
    c = fit_bayes(RUBIN_Y, RUBIN_V, lambda t: 7 * dens(t), mu_prior=(0, 50))  # unnormalised
    np.testing.assert_allclose(c.mu.mean, b.mu.mean, rtol=1e-10)
    assert np.isnan(c.marginal_likelihood)


@pytest.mark.parametrize(
    "prior,ref",
    [
        (bp.half_normal(0.7), stats.halfnorm(scale=0.7)),
        (bp.half_cauchy(0.4), stats.halfcauchy(scale=0.4)),
        (bp.exponential(0.25), stats.expon(scale=0.25)),
        (bp.uniform(3.0), stats.uniform(0, 3.0)),
        (bp.turner_prior(), stats.lognorm(s=1.74 / 2, scale=np.exp(-2.56 / 2))),
    ],
)
def test_priors_match_scipy(prior, ref):
    t = np.array([0.05, 0.3, 1.1, 2.9])
    np.testing.assert_allclose(prior.pdf(t), ref.pdf(t), rtol=1e-12)
    np.testing.assert_allclose(prior.cdf(t), ref.cdf(t), rtol=1e-12)
    np.testing.assert_allclose(prior.ppf(np.array([0.1, 0.6])), ref.ppf([0.1, 0.6]), rtol=1e-12)


def test_half_t_and_log_t_integrate_to_one():
    from scipy import integrate

    for prior in (bp.half_student_t(0.5, 3), bp.rhodes_prior("mental", "pharma", "placebo")):
        dens = prior.pdf
        val = integrate.quad(
            lambda s, f=dens: f(np.exp(s)) * np.exp(s), -700, 700, points=[-50, -5, 0, 5], limit=400
        )[0]
        np.testing.assert_allclose(val, 1.0, atol=1e-8)
        np.testing.assert_allclose(prior.cdf(prior.ppf(np.array([0.2, 0.9]))), [0.2, 0.9])


def test_empirical_prior_tables():
    tp = bp.turner_prior("surgical", "pharma", "placebo / control")
    assert (tp.params["tau2_mu"], tp.params["tau2_sigma"]) == (-2.14, 1.74)
    assert tp.params["tau_mu"] == -1.07 and tp.params["tau_sigma"] == 0.87
    tp = bp.turner_prior("all-cause mortality", "non-pharmacological", "non-pharmacological")
    assert (tp.params["tau2_mu"], tp.params["tau2_sigma"]) == (-3.50, 1.26)
    tp = bp.turner_prior("subjective", "placebo", "non-pharma")  # order does not matter
    assert (tp.params["tau2_mu"], tp.params["tau2_sigma"]) == (-2.92, 1.71)
    rp = bp.rhodes_prior("obstetric", "pharma", "placebo")
    assert (rp.params["tau2_location"], rp.params["tau2_scale"]) == (-4.13, 2.34)
    rp = bp.rhodes_prior("resource use", "non-pharma", "non-pharma")
    assert (rp.params["tau2_location"], rp.params["tau2_scale"]) == (-2.41, 2.57)
    rp = bp.rhodes_prior("resource use", "pharma", "placebo", area="cancer")
    assert (rp.params["tau2_location"], rp.params["tau2_scale"]) == (0.01, 2.83)
    rp = bp.rhodes_prior()
    assert (rp.params["tau2_location"], rp.params["tau2_scale"]) == (-3.44, 2.59)
    with pytest.raises(ValueError):
        bp.turner_prior("pain", "placebo", "placebo")
    with pytest.raises(ValueError):
        bp.turner_prior("s")  # ambiguous prefix: surgical, signs, subjective


def test_normal_prior_on_mu_shrinks_towards_its_mean():
    # (the time of a k = 10 fit is measured in benchmarks/, the meta_bayes row, not here)
    rng = np.random.default_rng(3)
    v = rng.uniform(0.02, 0.2, 10)
    y = rng.normal(0.2, np.sqrt(v + 0.1))
    flat = fit_bayes(y, v, bp.half_normal(0.5))
    normal = fit_bayes(y, v, bp.half_normal(0.5), mu_prior=(0, 1))
    assert 0.0 < normal.mu.mean < flat.mu.mean  # pulled towards the prior mean 0
    assert normal.mu.sd < flat.mu.sd  # and more precise
