"""Numeric core of rma.mv (``ketameta._core.multilevel``): metafor reference cases and brute
force (dense-matrix likelihood, dense optimisation) on small random problems."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from _reference import load_case
from scipy import optimize

from ketameta._core.multilevel import (
    InnerOuter,
    Intercept,
    blup,
    fit_mv,
    i2_multilevel,
    mv_loglik,
    predict_mv,
    profile_ci,
    profile_loglik,
)
from ketameta._core.multilevel_struct import (
    STRUCTS,
    block_labels,
    corr_to_vine,
    make_gterm,
    vine_to_corr,
)


def _codes(*cols) -> np.ndarray:
    """Integer codes of the combinations of ``cols`` (sorted, as R's factor levels)."""
    return np.unique(np.column_stack(cols), axis=0, return_inverse=True)[1].ravel()


def _rel(a, b, atol: float = 0.0) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(
        np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
        if atol == 0
        else np.max(np.maximum(np.abs(a - b) - atol, 0.0) / np.maximum(np.abs(b), 1e-300))
    )


def _check(fit, e: dict, rtol: float = 1e-6, vc: str = "sigma2", atol_vc: float = 0.0) -> None:
    """Compare a fit with one metafor ``rma.mv`` summary block."""
    assert fit.converged
    for ours, key in [
        (fit.beta, "b"),
        (fit.se, "se"),
        (fit.vb, "vcov"),
        (fit.zval, "zval"),
        (fit.ci_low, "ci.lb"),
        (fit.ci_high, "ci.ub"),
    ]:
        assert _rel(ours, e[key]) < rtol, key
    # a p-value's relative error is about z^2 times that of z (tiny p-values amplify it)
    np.testing.assert_allclose(fit.pval, e["pval"], rtol=rtol * max(1.0, np.max(fit.zval**2)))
    comps = {"sigma2": [fit.sigma2], "G": [fit.tau2, fit.rho]}[vc]
    theirs = [e["sigma2"]] if vc == "sigma2" else [e["tau2"], e["rho"]]
    for ours, ref in zip(comps, theirs, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol_vc)
    assert _rel([fit.qe, fit.qm], [e["QE"], e["QM"]]) < rtol
    assert fit.qm_df == e["QMdf"][0]
    np.testing.assert_allclose(fit.qm_pvalue, e["QMp"], rtol=rtol * max(1.0, fit.qm))
    stats = [fit.loglik, fit.deviance, fit.aic, fit.bic, fit.aicc]
    np.testing.assert_allclose(stats, e["fitstats"]["values"], rtol=1e-9, atol=1e-8)


def _not_worse(fit, y, V, X, comps, e: dict, method: str = "REML") -> None:
    """Our optimum is at least as high as the log-likelihood at metafor's estimates (so the
    remaining differences are metafor's stopping, not a different optimum)."""
    ref = e["sigma2"] if "sigma2" in e else [*e["tau2"], *e["rho"]]
    ll_ref, _ = mv_loglik(y, V, X, comps, np.asarray(ref, dtype=float), method)
    assert ll_ref == pytest.approx(e["fitstats"]["values"][0], abs=1e-9)
    assert fit.loglik >= ll_ref - 1e-13 * abs(ll_ref)


# ---- dat.konstantopoulos2011 -------------------------------------------------------------------


def _konst(name: str = "multilevel_konstantopoulos2011", mods: bool = False):
    df, exp = load_case(name)
    X = np.ones((len(df), 1))
    if mods:
        X = np.column_stack([X, df.year - df.year.mean()])
    comps = [Intercept(df.district.to_numpy()), Intercept(_codes(df.district, df.school))]
    return df.yi.to_numpy(), df.vi.to_numpy(), X, comps, exp


@pytest.mark.parametrize(
    "method,key,mods",
    [("REML", "REML", False), ("ML", "ML", False), ("REML", "REML_mod_year_c", True)],
)
def test_konstantopoulos_default_tolerance_case(method, key, mods):
    # This case ran rma.mv at metafor's default control (nlminb, finite-difference gradients);
    # its variance components sit ~3e-8 (relative) from the exact optimum, which is what limits
    # the agreement here (see test_konstantopoulos_optimum_is_exact).
    y, v, X, comps, exp = _konst(mods=mods)
    fit = fit_mv(y, v, X, comps, method=method)
    _check(fit, exp[key], rtol=1e-6)
    np.testing.assert_allclose(fit.sigma2, exp[key]["sigma2"], rtol=1e-7)
    _not_worse(fit, y, v, X, comps, exp[key], method)
    assert fit.s_nlevels == exp[key]["s.nlevels"]


def test_konstantopoulos_optimum_is_exact():
    y, v, X, comps, exp = _konst()
    fit = fit_mv(y, v, X, comps)
    ll, grad = mv_loglik(y, v, X, comps, fit.theta)
    ll_ref, grad_ref = mv_loglik(y, v, X, comps, exp["REML"]["sigma2"])
    assert ll == pytest.approx(exp["REML"]["fitstats"]["values"][0], rel=1e-12)
    assert ll >= ll_ref - 1e-14
    assert np.max(np.abs(grad)) < 1e-6 * np.max(np.abs(grad_ref)) + 1e-9


def test_konstantopoulos_predict_and_profile_ci():
    y, v, X, comps, exp = _konst()
    fit = fit_mv(y, v, X, comps)
    pr, ref = predict_mv(fit), exp["REML"]["predict"]
    for a, b in [
        ("pred", "pred"),
        ("se", "se"),
        ("ci_low", "ci.lb"),
        ("ci_high", "ci.ub"),
        ("pi_low", "pi.lb"),
        ("pi_high", "pi.ub"),
    ]:
        np.testing.assert_allclose(pr[a], ref[b], rtol=1e-6)
    for j, ci in enumerate(exp["REML"]["confint_profile"]):
        est, lo, hi = profile_ci(fit, j)
        np.testing.assert_allclose([lo, hi], [ci["ci.lb"][0], ci["ci.ub"][0]], rtol=1e-7)


@pytest.mark.parametrize(
    "key,method,mods",
    [
        ("REML", "REML", False),
        ("ML", "ML", False),
        ("REML_mod_year", "REML", True),
        ("ML_mod_year", "ML", True),
    ],
)
def test_mv_konstantopoulos_tight(key, method, mods):
    y, v, X, comps, exp = _konst("mv_konstantopoulos2011", mods=mods)
    e = exp[key]
    fit = fit_mv(y, v, X, comps, method=method)
    _check(fit, e, rtol=1e-6)
    _not_worse(fit, y, v, X, comps, e, method)
    assert fit.qe_df == e["QEdf"]
    np.testing.assert_allclose(fit.qe_pvalue, e["QEp"], rtol=1e-8)
    if "confint_profile" in e:
        for j, ci in enumerate(e["confint_profile"]["components"]):
            _, lo, hi = profile_ci(fit, j)
            np.testing.assert_allclose([lo, hi], [ci["ci.lb"][0], ci["ci.ub"][0]], rtol=1e-6)
    if "ranef" in e:
        for bl, name in zip(blup(fit), ["district", "district/school"], strict=True):
            r = e["ranef"][name]
            np.testing.assert_allclose(bl["pred"], r["intrcpt"], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(bl["se"], r["se"], rtol=1e-6)
            np.testing.assert_allclose(bl["pi_low"], r["pi.lb"], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(bl["pi_high"], r["pi.ub"], rtol=1e-6, atol=1e-9)


# ---- dat.assink2016, dat.berkey1998, dat.ishak2007 ----------------------------------------------


@pytest.mark.parametrize("key", ["REML", "REML_mod_deltype"])
def test_mv_assink(key):
    df, exp = load_case("mv_assink2016")
    X = np.ones((len(df), 1))
    if key != "REML":
        dummies = [(df.deltype == lv).to_numpy(float) for lv in ("covert", "overt")]
        X = np.column_stack([X, *dummies])
    comps = [Intercept(df.study.to_numpy()), Intercept(_codes(df.study, df.esid))]
    fit = fit_mv(df.yi.to_numpy(), df.vi.to_numpy(), X, comps)
    _check(fit, exp[key])
    _not_worse(fit, df.yi.to_numpy(), df.vi.to_numpy(), X, comps, exp[key])
    if "confint_profile" in exp[key]:
        for j, ci in enumerate(exp[key]["confint_profile"]["components"]):
            _, lo, hi = profile_ci(fit, j)
            np.testing.assert_allclose([lo, hi], [ci["ci.lb"][0], ci["ci.ub"][0]], rtol=1e-6)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_mv_berkey_un(method):
    df, exp = load_case("mv_berkey1998")
    e = exp[method]
    V = np.asarray(exp["V"], dtype=float)
    X = np.column_stack([(df.outcome == lv).to_numpy(float) for lv in ("AL", "PD")])
    comps = [InnerOuter(df.outcome.to_numpy(), df.trial.to_numpy(), "UN")]
    fit = fit_mv(df.yi.to_numpy(), V, X, comps, method=method)
    _check(fit, e, vc="G")
    _not_worse(fit, df.yi.to_numpy(), V, X, comps, e, method)
    assert fit.theta_names == ["tau2.1", "tau2.2", "rho.1.2"]
    G = fit.problem.gterms[0].gmatrix(fit.q)[0]
    np.testing.assert_allclose(G, e["G"], rtol=1e-6)
    c = np.array([1.0, -1.0])  # anova(res, X=c(1, -1))
    a = e["anova_X_c1_m1"]
    est, se = c @ fit.beta, np.sqrt(c @ fit.vb @ c)
    np.testing.assert_allclose(
        [est, se, est / se], [a["Xb"][0], a["se"][0], a["zval"][0]], rtol=1e-6
    )
    for j, ci in enumerate(e["confint_profile"]["components"]):
        _, lo, hi = profile_ci(fit, j)
        np.testing.assert_allclose([lo, hi], [ci["ci.lb"][0], ci["ci.ub"][0]], rtol=1e-6)


@pytest.mark.parametrize("struct", ["HAR", "AR", "CS"])
@pytest.mark.parametrize("phi", [False, True])
def test_mv_ishak(struct, phi):
    df, exp = load_case("mv_ishak2007")
    key = f"REML_{struct}" + ("_V_phi097" if phi else "")
    e = exp[key]
    V = np.asarray(exp["V_phi097"], dtype=float) if phi else df.vi.to_numpy()
    X = np.column_stack([(df.time == t).to_numpy(float) for t in (1, 2, 3, 4)])
    comps = [InnerOuter(df.time.to_numpy(), df.study.to_numpy(), struct)]
    fit = fit_mv(df.yi.to_numpy(), V, X, comps)
    _not_worse(fit, df.yi.to_numpy(), V, X, comps, e)
    G = fit.problem.gterms[0].gmatrix(fit.q)[0]  # the implied 4 x 4 G of the time points
    np.testing.assert_allclose(G, e["G"], rtol=1e-6, atol=1e-6 * np.max(np.abs(G)))
    if phi or struct == "CS":
        _check(fit, e, vc="G")
    else:
        # rho runs to its bound 1 (metafor stops at 1 - 7e-10 / 4e-9, we at 1 - 8e-11): compare
        # rho absolutely and the rest at 1e-6, the precision that difference leaves
        _check(fit, e, vc="G", rtol=1e-6, atol_vc=1e-6)
        assert fit.rho[0] > 1 - 1e-8


# ---- brute force ---------------------------------------------------------------------------


def _dense_term(term: InnerOuter, tau2, rho) -> np.ndarray:
    """The k x k covariance of one ``inner | outer`` term, from the definitions of metafor's
    structures (element by element over the inner levels, then broadcast over rows)."""
    levels = np.unique(term.inner)
    g = levels.size
    tau2 = np.broadcast_to(np.atleast_1d(np.asarray(tau2, dtype=float)), (g,))
    G = np.empty((g, g))
    pairs = [(x, y) for y in range(g) for x in range(y)]  # UN: (0,1), (0,2), (1,2), (0,3), ...
    for a in range(g):
        for b in range(g):
            if term.struct in ("ID", "DIAG"):
                r = float(a == b)
            elif a == b:
                r = 1.0
            elif term.struct in ("CS", "HCS"):
                r = rho[0]
            elif term.struct in ("AR", "HAR"):
                r = rho[0] ** abs(a - b)
            elif term.struct == "CAR":
                r = rho[0] ** abs(float(levels[a]) - float(levels[b]))
            else:
                r = rho[pairs.index((min(a, b), max(a, b)))]
            G[a, b] = np.sqrt(tau2[a] * tau2[b]) * r
    idx = np.searchsorted(levels, term.inner)
    return G[idx[:, None], idx[None, :]] * (term.outer[:, None] == term.outer[None, :])


def _dense_loglik(y, V, X, comps, sig2, gpars, method):
    k, p = X.shape
    M = np.diag(V) if V.ndim == 1 else V.copy()
    for s2, c in zip(sig2, [c for c in comps if isinstance(c, Intercept)], strict=True):
        M = M + s2 * (c.codes[:, None] == c.codes[None, :])
    for (tau2, rho), t in zip(gpars, [c for c in comps if isinstance(c, InnerOuter)], strict=True):
        M = M + _dense_term(t, tau2, rho)
    W = np.linalg.inv(M)
    H = X.T @ W @ X
    b = np.linalg.solve(H, X.T @ W @ y)
    r = y - X @ b
    ld = np.linalg.slogdet(M)[1]
    if method == "ML":
        return -0.5 * (k * np.log(2 * np.pi) + ld + r @ W @ r)
    return -0.5 * (
        (k - p) * np.log(2 * np.pi)
        - np.linalg.slogdet(X.T @ X)[1]
        + ld
        + np.linalg.slogdet(H)[1]
        + r @ W @ r
    )


def _random_problem(rng, struct: str | None, dense_v: bool = False, n_cl: int = 6):
    """Clusters of 2-5 effects; inner levels 1-3 drawn with replacement (so every structure,
    ID included, is identified next to the effect-level intercept); y from a CS-like truth."""
    sizes = rng.integers(2, 6, n_cl)
    cl = np.repeat(np.arange(n_cl), sizes)
    k = cl.size
    inner = rng.integers(1, 4, k)
    v = rng.uniform(0.02, 0.2, k)
    V = v
    if dense_v:  # correlated sampling errors within clusters
        V = 0.5 * np.sqrt(np.outer(v, v)) * (cl[:, None] == cl[None, :])
        V[np.diag_indices(k)] = v
    X = np.column_stack([np.ones(k), rng.normal(size=k)])
    u, w = rng.normal(0, 0.4, n_cl), rng.normal(0, 0.3, (n_cl, 3))
    y = X @ [0.3, 0.1] + u[cl] + w[cl, inner - 1] + rng.normal(0, np.sqrt(v + 0.04))
    comps = (
        [Intercept(cl), Intercept(np.arange(k))]
        if struct is None
        else [InnerOuter(inner, cl, struct), Intercept(np.arange(k))]
    )
    return y, V, X, comps


def _split(fit_or_theta, comps, names):
    """(sigma2, [(tau2, rho)]) from a theta vector laid out as the fit's theta_names."""
    th = np.asarray(fit_or_theta)
    sig = th[[n.startswith("sigma2") for n in names]]
    tau = th[[n.startswith("tau2") for n in names]]
    rho = th[[n.startswith("rho") for n in names]]
    return sig, ([(tau, rho)] if any(isinstance(c, InnerOuter) for c in comps) else [])


@pytest.mark.parametrize("struct", [None, *STRUCTS])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_loglik_and_gradient_match_dense(struct, method):
    # the same problem in every process (hash() of a str changes with PYTHONHASHSEED)
    rng = np.random.default_rng(zlib.crc32(repr((struct, method)).encode()))
    y, V, X, comps = _random_problem(rng, struct, dense_v=struct in (None, "UN", "CS"))
    fit = fit_mv(y, V, X, comps, method=method)
    names = fit.theta_names
    for trial in range(3):
        th = fit.theta.copy()
        if trial:  # random interior point
            var = np.array([not n.startswith("rho") for n in names])
            th[var] = rng.uniform(0.01, 0.3, var.sum())
            nr = (~var).sum()
            th[~var] = (
                vine_to_corr(rng.normal(0, 0.5, nr), 3)
                if struct == "UN"
                else rng.uniform(0.1, 0.8, nr)
            )
        ll, g = mv_loglik(y, V, X, comps, th, method)
        sig, gp = _split(th, comps, names)
        assert ll == pytest.approx(_dense_loglik(y, V, X, comps, sig, gp, method), abs=1e-10)
        is_rho = np.array([n.startswith("rho") for n in names])
        if np.any(np.abs(th[is_rho]) > 0.99):
            continue  # a fit on the edge of the correlation domain: the probes would leave it
        for i in range(th.size):
            if not is_rho[i] and th[i] <= 1e-3:
                continue  # a variance at or near 0: the central difference straddles the edge
            h = 1e-5 * max(abs(th[i]), 1e-2)
            tp, tm = th.copy(), th.copy()
            tp[i] += h
            tm[i] -= h
            fd = (
                mv_loglik(y, V, X, comps, tp, method)[0] - mv_loglik(y, V, X, comps, tm, method)[0]
            ) / (2 * h)
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize(
    "struct,method",
    [(s, "REML") for s in [None, *STRUCTS]] + [(s, "ML") for s in [None, "CS", "UN", "HAR"]],
)
def test_optimum_matches_dense_optimisation(struct, method):
    # seeds whose optimum is interior in the correlations (the dense optimiser is bounded)
    seed = {None: 3, "AR": 20}.get(struct, 7 + STRUCTS.index(struct) if struct else 0)
    rng = np.random.default_rng(seed)
    y, V, X, comps = _random_problem(rng, struct, n_cl=15)
    fit = fit_mv(y, V, X, comps, method=method)
    names = fit.theta_names
    var = np.array([not n.startswith("rho") for n in names])
    lo = np.where(var, 0.0, 0.0 if struct == "CAR" else -0.999)
    hi = np.where(var, 10.0, 0.999)

    def neg(th):
        sig, gp = _split(th, comps, names)
        if struct == "UN":  # G must be a covariance matrix: R positive semi-definite
            R = np.eye(3)
            R[0, 1] = R[1, 0] = gp[0][1][0]
            R[0, 2] = R[2, 0] = gp[0][1][1]
            R[1, 2] = R[2, 1] = gp[0][1][2]
            if np.linalg.eigvalsh(R)[0] < 0:
                return 1e10
        try:
            return -_dense_loglik(y, V, X, comps, sig, gp, method)
        except np.linalg.LinAlgError:
            return 1e10

    best = None
    for start in [np.where(var, 0.1, 0.3), np.where(var, 0.02, -0.2), fit.theta]:
        bounds = list(zip(lo, hi, strict=True))
        r = optimize.minimize(
            neg,
            np.clip(start, lo, hi),
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-10, "maxfun": 100000},
        )
        r = optimize.minimize(
            neg,
            r.x,
            method="Powell",
            bounds=bounds,
            options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 200000},
        )
        if best is None or r.fun < best.fun:
            best = r
    assert fit.loglik >= -best.fun - 1e-9  # never worse than the dense optimiser
    assert fit.loglik == pytest.approx(-best.fun, abs=1e-6)
    assert fit.loglik == pytest.approx(-neg(fit.theta), abs=1e-10)
    np.testing.assert_allclose(fit.theta, best.x, atol=2e-3)  # the dense optimiser is cruder
    # a restart from the optimum stays there
    again = fit_mv(y, V, X, comps, method=method, start=fit.theta)
    np.testing.assert_allclose(again.theta, fit.theta, rtol=1e-6, atol=1e-9)


def test_boundary_zero_variance():
    rng = np.random.default_rng(11)
    k = 40
    cl = np.repeat(np.arange(10), 4)
    v = rng.uniform(0.05, 0.2, k)
    y = rng.normal(0, np.sqrt(v))  # no heterogeneity at all
    X = np.ones((k, 1))
    comps = [Intercept(cl), Intercept(np.arange(k))]
    fit = fit_mv(y, v, X, comps)
    assert fit.converged and np.any(fit.sigma2 == 0.0)
    _, g = mv_loglik(y, v, X, comps, fit.theta)
    assert np.all(g[fit.sigma2 == 0.0] <= 1e-8)  # the score points out of the parameter space
    for j in np.flatnonzero(fit.sigma2 == 0.0):
        _, lo, _ = profile_ci(fit, j)
        assert lo == 0.0
    # the dense bounded optimum agrees
    r = optimize.minimize(
        lambda t: -_dense_loglik(y, v, X, comps, t, [], "REML"),
        [0.05, 0.05],
        method="L-BFGS-B",
        bounds=[(0, None)] * 2,
        options={"ftol": 1e-15},
    )
    assert fit.loglik >= -r.fun - 1e-10


def test_blocks_from_dense_v_and_fixed_parameters():
    rng = np.random.default_rng(5)
    y, V, X, comps = _random_problem(rng, None, dense_v=True)
    V = V.copy()
    V[0, -1] = V[-1, 0] = 0.001  # links the first and last cluster
    fit = fit_mv(y, V, X, comps)
    ll = _dense_loglik(y, V, X, comps, fit.sigma2, [], "REML")
    assert fit.loglik == pytest.approx(ll, abs=1e-10)
    fixed = fit_mv(y, V, X, comps, fixed=[0.1, np.nan])
    assert fixed.sigma2[0] == 0.1 and fixed.n_params == X.shape[1] + 1
    assert fixed.loglik == pytest.approx(profile_loglik(fit, 0, 0.1), abs=1e-9)


def test_blup_matches_dense_formula():
    rng = np.random.default_rng(2)
    y, V, X, comps = _random_problem(rng, None)
    fit = fit_mv(y, V, X, comps)
    M = np.diag(V) + sum(
        s * (c.codes[:, None] == c.codes[None, :]) for s, c in zip(fit.sigma2, comps, strict=True)
    )
    W = np.linalg.inv(M)
    P = W - W @ X @ np.linalg.solve(X.T @ W @ X, X.T @ W)
    for bl, s2, c in zip(blup(fit), fit.sigma2, comps, strict=True):
        Z = (c.codes[:, None] == np.unique(c.codes)[None, :]).astype(float)
        np.testing.assert_allclose(bl["pred"], s2 * Z.T @ P @ y, rtol=1e-9, atol=1e-12)
        se = np.sqrt(s2 - s2**2 * np.diag(Z.T @ P @ Z))
        np.testing.assert_allclose(bl["se"], se, rtol=1e-9)


def test_i2_multilevel_reduces_to_rma_uni():
    df, exp = load_case("multilevel_konstantopoulos2011")
    e = exp["two_level_rma_uni_REML"]
    i2, total = i2_multilevel(df.vi.to_numpy(), [e["tau2"]])
    assert total == pytest.approx(e["I2"], rel=1e-12)
    i2, total = i2_multilevel(df.vi.to_numpy(), [0.1, 0.3])
    assert i2[1] == pytest.approx(3 * i2[0]) and total == pytest.approx(i2.sum())


def test_2000_effects_in_500_clusters_of_unequal_size_converge():
    # the time of this fit is measured in benchmarks/ (rma.mv k=2000 row), not asserted here
    rng = np.random.default_rng(1)
    sizes = np.full(500, 4)
    sizes[:250] = rng.integers(1, 8, 250)
    sizes[250:] = 8 - sizes[:250]
    cl = np.repeat(np.arange(500), sizes)
    k = cl.size
    v = rng.uniform(0.01, 0.1, k)
    y = 0.3 + rng.normal(0, 0.3, 500)[cl] + rng.normal(0, 0.2, k) + rng.normal(0, np.sqrt(v))
    X = np.column_stack([np.ones(k), rng.normal(size=k)])
    fit = fit_mv(y, v, X, [Intercept(cl), Intercept(np.arange(k))])
    assert fit.converged and k == 2000
    assert np.all(np.asarray(fit.theta) > 0) and np.isfinite(fit.loglik)


def test_profile_of_un_correlation_with_three_levels():
    rng = np.random.default_rng(7 + STRUCTS.index("UN"))
    y, V, X, comps = _random_problem(rng, "UN", n_cl=15)
    fit = fit_mv(y, V, X, comps)
    j = fit.theta_names.index("rho.1.3")
    assert profile_loglik(fit, j, fit.theta[j]) == pytest.approx(fit.loglik, abs=1e-9)
    est, lo, hi = profile_ci(fit, j, xtol=1e-10)
    assert lo < est < hi
    crit = 3.841458820694124
    for b in (lo, hi):
        if abs(b) < 1:
            assert 2 * (fit.loglik - profile_loglik(fit, j, b)) == pytest.approx(crit, abs=1e-6)
    # fixing one correlation: the fit and the profile agree, and the fixed value is kept
    fixed = np.full(fit.theta.size, np.nan)
    fixed[j] = 0.2
    f2 = fit_mv(y, V, X, comps, fixed=fixed)
    assert f2.theta[j] == 0.2 and f2.loglik == pytest.approx(profile_loglik(fit, j, 0.2), abs=1e-9)


def test_car_times_and_vine_roundtrip():
    rng = np.random.default_rng(4)
    y, V, X, comps = _random_problem(rng, "CAR", n_cl=10)
    inner, outer = comps[0].inner, comps[0].outer
    scaled = [InnerOuter(inner, outer, "CAR", times=0.5 * inner), comps[1]]
    ll_scaled = mv_loglik(y, V, X, scaled, [0.05, 0.2, 0.6])[0]
    assert ll_scaled == pytest.approx(mv_loglik(y, V, X, comps, [0.05, 0.2, 0.6**0.5])[0])
    z = rng.normal(size=6)
    for first in range(4):
        rho = vine_to_corr(z, 4, first)
        np.testing.assert_allclose(corr_to_vine(rho, 4, first), z, atol=1e-10)


def test_block_labels():
    k = 8
    a = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    b = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    labels = block_labels(k, np.ones(k), [a, b], [])
    assert len(np.unique(labels)) == 4
    crossed = np.array([0, 1, 0, 1, 2, 2, 3, 3])  # links blocks 0 and 1
    assert len(np.unique(block_labels(k, np.ones(k), [a, crossed], []))) == 3
    # ID/DIAG link only rows sharing the inner level within an outer level
    gt = make_gterm(InnerOuter(np.array([1, 2, 1, 2, 1, 2, 1, 2]), a, "ID"))
    assert len(np.unique(block_labels(k, np.ones(k), [], [gt]))) == 8
    gt = make_gterm(InnerOuter(np.array([1, 1, 1, 2, 1, 2, 1, 2]), a, "CS"))
    assert len(np.unique(block_labels(k, np.ones(k), [], [gt]))) == 4
    V = np.eye(k)
    V[0, 7] = V[7, 0] = 0.1
    assert len(np.unique(block_labels(k, V, [a], []))) == 3
