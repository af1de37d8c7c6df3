"""ketameta._core.sandwich against clubSandwich 0.5.8 / metafor 3.8.1 robust() reference values.

Each fit rebuilds the model's marginal covariance ``M`` from the reference's own variance
components (``M = V + sum sigma2 Z Z'`` or ``V + Z G Z'``) and recomputes the GLS estimate; the
robust quantities are then closed-form, so they are compared at 1e-6 relative (the observed
agreement is ~1e-13).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from _reference import load_case as _load_case

from ketameta._core.sandwich import (
    _sym_power,
    coef_test,
    prepare_robust,
    vcov_cr,
    wald_test,
)

RTOL = 1e-6
load_case = functools.lru_cache(maxsize=None)(_load_case)  # read-only use below
TYPES = ("CR0", "CR1", "CR1p", "CR2")


def _rel(got, want) -> float:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def _same(codes) -> np.ndarray:
    c = np.asarray(codes)
    return (c[:, None] == c[None, :]).astype(float)


def _nested(df, fit, outer):
    """Three-level model ~ 1 | outer/inner: M = diag(vi) + s1 [same outer] + s2 I."""
    s1, s2 = fit["sigma2"]
    return np.diag(df["vi"].to_numpy()) + s1 * _same(df[outer]) + s2 * np.eye(len(df))


def _inner_outer(V, inner, outer, G):
    """~ inner | outer with G over the inner levels: M = V + G[inner_i, inner_j] [same outer]."""
    G = np.asarray(G)
    return V + G[np.ix_(inner, inner)] * _same(outer)


def _konst(df, ex, key, year_key):
    fit = ex[key]
    X = np.ones((len(df), 1))
    if fit["p"] == 2:
        X = np.column_stack([X, df["year"] - ex[year_key]])
    return X, _nested(df, fit, "district"), df["district"]


def _build(case: str, key: str):
    """(X, y, M, cluster, fit dict, block holding the robust results) of one reference fit."""
    df, ex = load_case(case)
    y = df["yi"].to_numpy()
    if case == "multilevel_konstantopoulos2011":
        fit = ex[key]
        X = np.ones((len(df), 1))
        if fit["p"] == 2:
            X = np.column_stack([X, df["year"] - fit["year_mean_used_for_centering"]])
        return X, y, _nested(df, fit, "district"), df["district"], fit, ex
    if case == "mv_konstantopoulos2011":
        X, M, cl = _konst(df, ex, key, "year_mean")
        return X, y, M, cl, ex[key], ex[key]
    if case == "mv_assink2016":
        fit = ex[key]
        X = np.ones((len(df), 1))
        if fit["p"] == 3:
            X = np.column_stack([X, df["deltype"] == "covert", df["deltype"] == "overt"])
        return X.astype(float), y, _nested(df, fit, "study"), df["study"], fit, fit
    if case == "mv_berkey1998":
        fit = ex[key]
        inner = (df["outcome"] == "PD").to_numpy().astype(int)  # levels AL, PD
        X = np.column_stack([inner == 0, inner == 1]).astype(float)
        M = _inner_outer(np.asarray(ex["V"]), inner, df["trial"], fit["G"])
        return X, y, M, df["trial"], fit, fit
    if case == "mv_ishak2007":
        fit = ex[key]
        inner = df["time"].to_numpy().astype(int) - 1
        X = (inner[:, None] == np.arange(4)[None, :]).astype(float)
        V = np.asarray(ex["V_phi097"]) if key.endswith("V_phi097") else np.diag(df["vi"])
        return X, y, _inner_outer(V, inner, df["study"], fit["G"]), df["study"], fit, fit
    if case == "robust_uni_bcg":
        fit = ex["REML"]
        X = np.column_stack([np.ones(len(df)), df["ablat"]])
        M = np.diag(df["vi"].to_numpy() + fit["tau2"])
        return X, y, M, df[key.removeprefix("cluster_")], fit, ex[key]
    raise KeyError(case)


FITS = [
    ("multilevel_konstantopoulos2011", "REML"),
    ("multilevel_konstantopoulos2011", "REML_mod_year_c"),
    ("mv_konstantopoulos2011", "REML"),
    ("mv_konstantopoulos2011", "REML_mod_year"),
    ("mv_assink2016", "REML"),
    ("mv_assink2016", "REML_mod_deltype"),
    ("mv_berkey1998", "REML"),
    ("mv_berkey1998", "ML"),
    ("mv_ishak2007", "REML_HAR"),
    ("mv_ishak2007", "REML_AR"),
    ("mv_ishak2007", "REML_CS"),
    ("mv_ishak2007", "REML_HAR_V_phi097"),
    ("mv_ishak2007", "REML_AR_V_phi097"),
    ("mv_ishak2007", "REML_CS_V_phi097"),
    ("robust_uni_bcg", "cluster_trial"),
    ("robust_uni_bcg", "cluster_alloc"),
]
IDS = [f"{c}-{k}" for c, k in FITS]


@pytest.mark.parametrize(("case", "key"), FITS, ids=IDS)
def test_gls_estimate_matches(case, key):
    X, y, M, cl, fit, _ = _build(case, key)
    assert _rel(prepare_robust(X, y, M, cl).beta, fit["b"]) < RTOL


CLUB = [(c, k, t) for c, k in FITS if c != "multilevel_konstantopoulos2011"
        for t in TYPES if t in _build(c, k)[5]["clubSandwich"]]


@pytest.mark.parametrize(("case", "key", "type"), CLUB, ids=[f"{c}-{k}-{t}" for c, k, t in CLUB])
def test_clubsandwich_vcovcr_and_coef_test(case, key, type):
    X, y, M, cl, _, block = _build(case, key)
    club = block["clubSandwich"][type]
    res = coef_test(X, y, M, cl, type=type, test="Satterthwaite")
    np.testing.assert_allclose(res.vcov, club["vcovCR"], rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(res.se, club["SE"], rtol=RTOL)
    np.testing.assert_allclose(res.tstat, club["tstat"], rtol=RTOL)
    np.testing.assert_allclose(res.df, club["df_Satt"], rtol=RTOL)
    np.testing.assert_allclose(res.p_value, club["p_Satt"], rtol=RTOL)


def _metafor_blocks(case: str, key: str) -> dict[str, str]:
    if case == "multilevel_konstantopoulos2011":
        return {"CR0": f"{key}_robust_adjust_FALSE", "CR1p": f"{key}_robust_adjust_TRUE",
                "CR2": f"{key}_robust_clubSandwich"}
    return {"CR0": "robust_CR0_adjust_FALSE", "CR1p": "robust_CR1p_adjust_TRUE",
            "CR2": "robust_clubSandwich_CR2"}


METAFOR = [(c, k, t, name) for c, k in FITS for t, name in _metafor_blocks(c, k).items()
           if name in _build(c, k)[5]]


@pytest.mark.parametrize(("case", "key", "type", "name"), METAFOR,
                         ids=[f"{c}-{k}-{t}" for c, k, t, _ in METAFOR])
def test_metafor_robust(case, key, type, name):
    X, y, M, cl, fit, block = _build(case, key)
    rob = block[name]
    mod = prepare_robust(X, y, M, cl)
    test = "Satterthwaite" if type == "CR2" else "naive-tp"
    res = coef_test(mod, type=type, test=test)
    np.testing.assert_allclose(res.vcov, rob["vcov"], rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(res.se, rob["se"], rtol=RTOL)
    np.testing.assert_allclose(res.df, np.broadcast_to(rob["dfs"], res.df.shape), rtol=RTOL)
    np.testing.assert_allclose(res.p_value, rob["pval"], rtol=RTOL)
    # omnibus test of the moderators (every coefficient when the model has no intercept)
    p = X.shape[1]
    btt = np.arange(1, p) if p > 1 and np.allclose(X[:, 0], 1.0) else np.arange(p)
    C = np.eye(p)[btt]
    wt = wald_test(mod, constraints=C, type=type, test="HTZ" if type == "CR2" else "Naive-Fp")
    assert _rel(wt.F, rob["QM"]) < RTOL
    assert _rel(wt.df_denom, rob["QMdf"][1]) < RTOL
    assert _rel(wt.p_value, rob["QMp"]) < RTOL


def _wald_blocks() -> list[tuple[str, str, str]]:
    out = []
    for c, k in FITS:
        if c == "multilevel_konstantopoulos2011":
            continue
        block = _build(c, k)[5]
        out += [(c, k, name) for name in block if name.startswith("Wald_test")]
    return out


WALD = _wald_blocks()


def _constraints(name: str, p: int) -> np.ndarray:
    if name == "Wald_test_deltype_equal_CR2":  # constrain_equal(2:3)
        return np.array([[0.0, -1.0, 1.0]])
    if name == "Wald_test_equal_CR2":  # constrain_equal(1:p)
        return np.column_stack([-np.ones(p - 1), np.eye(p - 1)])
    if name == "Wald_test_zero_CR2":
        return np.eye(p)
    return np.eye(p)[1:]  # constrain_zero(2:p)


@pytest.mark.parametrize(("case", "key", "name"), WALD, ids=[f"{c}-{k}-{n}" for c, k, n in WALD])
def test_clubsandwich_wald_test(case, key, name):
    X, y, M, cl, _, block = _build(case, key)
    ref = block[name]
    mod = prepare_robust(X, y, M, cl)
    C = _constraints(name, X.shape[1])
    for i, test in enumerate(ref["test"]):
        res = wald_test(mod, constraints=C, type="CR2", test=test)
        assert _rel(res.F, ref["Fstat"][i]) < RTOL, test
        assert _rel(res.delta, ref["delta"][i]) < RTOL, test
        assert res.df_num == ref["df_num"][i]
        if np.isinf(ref["df_denom"][i]):
            assert np.isinf(res.df_denom)
        else:
            assert _rel(res.df_denom, ref["df_denom"][i]) < RTOL, test
        assert _rel(res.p_value, ref["p_val"][i]) < RTOL, test


# ---- properties that need no reference ---------------------------------------------------


def _toy(seed: int = 1, m: int = 6) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=m)
    cl = np.repeat(np.arange(m), sizes)
    k = cl.size
    X = np.column_stack([np.ones(k), rng.normal(size=k)])
    M = np.diag(rng.uniform(0.05, 0.3, size=k)) + 0.1 * _same(cl)
    y = X @ np.array([0.3, -0.2]) + rng.normal(size=k) * 0.4
    return X, y, M, cl


def test_blocks_input_equals_dense():
    X, y, M, cl = _toy()
    pairs = [(np.flatnonzero(cl == c), M[np.ix_(cl == c, cl == c)]) for c in np.unique(cl)]
    for t in TYPES:
        np.testing.assert_allclose(vcov_cr(X, y, pairs, cl, type=t), vcov_cr(X, y, M, cl, type=t),
                                   rtol=1e-12)


def test_cross_cluster_covariance_is_rejected():
    X, y, M, cl = _toy()
    M = M + 0.01
    with pytest.raises(ValueError, match="between clusters"):
        prepare_robust(X, y, M, cl)


def test_cr2_is_unbiased_under_the_working_model():
    # E[V_CR2] = (X'WX)^-1 when the working model is right: check by the exact expectation
    X, y, M, cl = _toy(3)
    mod = prepare_robust(X, y, M, cl)
    expected = mod.expected_vcov(np.eye(2), mod.adjustments("CR2"))
    np.testing.assert_allclose(expected, mod.bread, rtol=1e-10)


def test_cr1_scalings_and_df_invariance():
    X, y, M, cl = _toy(5)
    m, p = np.unique(cl).size, X.shape[1]
    v0 = vcov_cr(X, y, M, cl, type="CR0")
    np.testing.assert_allclose(vcov_cr(X, y, M, cl, type="CR1"), v0 * m / (m - 1))
    np.testing.assert_allclose(vcov_cr(X, y, M, cl, type="CR1p"), v0 * m / (m - p))
    d0 = coef_test(X, y, M, cl, type="CR0").df
    np.testing.assert_allclose(coef_test(X, y, M, cl, type="CR1").df, d0)


def test_single_constraint_htz_equals_squared_satterthwaite_t():
    X, y, M, cl = _toy(7)
    ct = coef_test(X, y, M, cl, type="CR2")
    wt = wald_test(X, y, M, cl, constraints=[[0.0, 1.0]], type="CR2", test="HTZ")
    assert wt.F == pytest.approx(ct.tstat[1] ** 2, rel=1e-12)
    assert wt.df_denom == pytest.approx(ct.df[1], rel=1e-12)
    assert wt.p_value == pytest.approx(ct.p_value[1], rel=1e-10)


def test_singular_adjustment_uses_generalised_inverse():
    # a cluster-specific dummy makes I - H singular for that cluster: CR2 still finite
    X, y, M, cl = _toy(11)
    X = np.column_stack([X, (cl == 0).astype(float)])
    v = vcov_cr(X, y, M, cl, type="CR2")
    assert np.all(np.isfinite(v))
    a = np.diag([4.0, 1e-20, 0.0])
    np.testing.assert_allclose(_sym_power(a, -0.5), np.diag([0.5, 0.0, 0.0]))


def test_model_argument_checks():
    X, y, M, cl = _toy()
    with pytest.raises(ValueError, match="give X"):
        vcov_cr(X)
    with pytest.raises(ValueError, match="unknown type"):
        vcov_cr(X, y, M, cl, type="CR9")
    with pytest.raises(ValueError, match="columns"):
        wald_test(X, y, M, cl, constraints=[[1.0, 0.0, 0.0]])


def test_low_rank_frobenius_equals_brute_force():
    from ketameta._core.sandwich import _frob

    X, y, M, cl = _toy(13, m=7)
    mod = prepare_robust(X, y, M, cl)
    d, R = mod.omega_parts(np.eye(2), mod.adjustments("CR2"))
    m = d.shape[2]
    om = -np.einsum("apj,pr,bri->abji", R, mod.bread, R)
    om[:, :, np.arange(m), np.arange(m)] += d
    brute = np.einsum("abij,ceij->abce", om, om)
    np.testing.assert_allclose(_frob(d, R, mod.bread), brute, rtol=1e-10, atol=1e-14)
