"""ketameta._core.vcalc against metafor 3.8.1 ``vcalc()`` and hand-derived small cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _reference import load_case

from ketameta._core.vcalc import CorrMatrix, vcalc, vcalc_blocks

RTOL = 1e-10


def _close(got, want) -> None:
    want = np.asarray(want, dtype=float)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.max(np.abs(want)))


# ---- reference cases --------------------------------------------------------------------


def test_rho_obs_assink():
    df, ex = load_case("vcalc_rho")
    _close(vcalc(df["vi"], df["study"], obs=df["esid"], rho=0.6), ex["V_obs_rho06"])


def test_rho_type_and_obs_assink():
    df, ex = load_case("vcalc_rho")
    V = vcalc(df["vi"], df["study"], type=df["deltype"], obs=df["esid"], rho=(0.7, 0.5))
    _close(V, ex["V_type_obs_rho07_05"])


@pytest.mark.parametrize(
    ("name", "time", "phi"),
    [("V_time1_phi09", "time", 0.9), ("V_time1_phi097", "time", 0.97),
     ("V_time1_months_phi09", "months", 0.9)],
)
def test_timepoints_ishak(name, time, phi):
    df, ex = load_case("vcalc_timepoints")
    _close(vcalc(df["vi"], df["study"], time1=df[time], phi=phi), ex[name])


def test_obs_as_time_codes_ishak():
    df, ex = load_case("vcalc_timepoints")
    _close(vcalc(df["vi"], df["study"], obs=df["time"], rho=0.6), ex["V_obs_rho06"])


def test_ishak_v_used_by_the_rma_mv_case():
    df, ex = load_case("mv_ishak2007")
    _close(vcalc(df["vi"], df["study"], time1=df["time"], phi=0.97), ex["V_phi097"])


def test_rvars_berkey():
    df, ex = load_case("mv_berkey1998")
    V = vcalc(1.0, df["author"], rvars=df[["v1i", "v2i"]].to_numpy())
    _close(V, ex["V"])


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("V_grp_w", lambda d: {"w1": d["n_sz"], "w2": d["n_hc"]}),
        ("V_grp_unweighted", lambda d: {}),
    ],
)
def test_shared_control_knapp(name, kw):
    # rows sharing both groups (and no obs) correlate 1: metafor's not-PD warnings, same clusters
    df, ex = load_case("vcalc_shared_control")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        V = vcalc(df["vi"], df["study"], grp1=df["group1"], grp2=df["group2"], **kw(df))
    _close(V, ex[name])
    assert [str(w.message) for w in caught] == ex["vcalc_warnings"][name]


def test_shared_control_with_obs_matrix_knapp():
    df, ex = load_case("vcalc_shared_control")
    R = CorrMatrix(ex["R_obs"], ex["R_obs_names"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        V = vcalc(df["vi"], df["study"], grp1=df["group1"], grp2=df["group2"], w1=df["n_sz"],
                  w2=df["n_hc"], obs=df["task.diff"].astype(str), rho=R)
    _close(V, ex["V_grp_w_obs_rhoR"])
    assert ex["vcalc_warnings"]["V_grp_w_obs_rhoR"] == []


# ---- hand-derived cases -------------------------------------------------------------------


def _corr(V: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.diag(V))
    return V / np.outer(s, s)


def test_shared_control_correlation_from_group_sizes():
    # two treatments (n 20, 30) against one control (n 40): r = sqrt(n1i n1j / ((n1i+n2)(n1j+n2)))
    V = vcalc([0.1, 0.2], [1, 1], grp1=["A", "B"], grp2=["C", "C"], w1=[20, 30], w2=[40, 40])
    r = np.sqrt(20 * 30 / ((20 + 40) * (30 + 40)))
    assert _corr(V)[0, 1] == pytest.approx(r, rel=1e-14)
    assert V[0, 1] == pytest.approx(r * np.sqrt(0.1 * 0.2), rel=1e-14)
    # equal group sizes (the default weights): 0.5
    V = vcalc([0.1, 0.2], [1, 1], grp1=[1, 2], grp2=[3, 3])
    assert _corr(V)[0, 1] == pytest.approx(0.5, rel=1e-14)


def test_shared_group_in_opposite_roles_is_negative():
    # A - C and C - B share C once as second and once as first condition
    V = vcalc([1.0, 1.0], [1, 1], grp1=["A", "C"], grp2=["C", "B"])
    assert _corr(V)[0, 1] == pytest.approx(-0.5, rel=1e-14)


def test_ar1_and_rho_multiply():
    t = np.array([0.0, 1.0, 3.0])
    V = vcalc([1.0, 2.0, 3.0], [7, 7, 7], time1=t, phi=0.8)
    _close(_corr(V), 0.8 ** np.abs(t[:, None] - t[None, :]))
    V = vcalc(1.0, [1, 1, 1, 1], obs=["a", "b", "a", "b"], time1=[1, 1, 2, 2], phi=0.5, rho=0.3)
    want = np.array([[1, 0.3, 0.5, 0.15], [0.3, 1, 0.15, 0.5],
                     [0.5, 0.15, 1, 0.3], [0.15, 0.5, 0.3, 1]])
    _close(V, want)


def test_within_subject_contrasts():
    # one group, contrasts time2 - time1 and time3 - time1, means correlate phi^|s-t|
    phi = 0.6
    V = vcalc(1.0, [1, 1], grp1=[1, 1], grp2=[1, 1], time1=[2, 3], time2=[1, 1], phi=phi)
    r = (1 - phi**2) / np.sqrt((2 - 2 * phi) * (2 - 2 * phi**2))
    assert V[0, 1] == pytest.approx(r, rel=1e-14)


def test_type_obs_matrices_and_labels():
    rho_t = CorrMatrix([[1.0, 0.2], [0.2, 1.0]], ["dep", "anx"])
    V = vcalc(1.0, [1, 1, 1], type=["dep", "dep", "anx"], obs=[1, 2, 1], rho=(0.9, rho_t))
    _close(V, [[1, 0.9, 0.2], [0.9, 1, 0.2], [0.2, 0.2, 1]])
    # a plain matrix is over the sorted codes ("anx" < "dep")
    V2 = vcalc(1.0, [1, 1, 1], type=["dep", "dep", "anx"], obs=[1, 2, 1],
               rho=[0.9, np.array([[1.0, 0.2], [0.2, 1.0]])])
    _close(V2, V)
    V3 = vcalc(1.0, [1, 1], type=["x", "y"], rho=0.4)
    assert V3[0, 1] == pytest.approx(0.4)


def test_clusters_and_subgroups_are_independent():
    V = vcalc(1.0, [1, 1, 2, 2], subgroup=[1, 2, 1, 1], obs=[1, 2, 1, 2], rho=0.5)
    _close(V, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0.5, 1]])


def test_blocks_match_dense_and_first_appearance_order():
    cl = np.array([3, 1, 3, 2, 1])
    blocks = vcalc_blocks(np.arange(1.0, 6.0), cl, obs=[1, 1, 2, 1, 2], rho=0.4)
    assert [list(i) for i, _ in blocks] == [[0, 2], [1, 4], [3]]
    V = vcalc(np.arange(1.0, 6.0), cl, obs=[1, 1, 2, 1, 2], rho=0.4)
    for idx, b in blocks:
        _close(V[np.ix_(idx, idx)], b)
    assert V[0, 1] == 0.0


def test_not_positive_definite_warns():
    with pytest.warns(UserWarning, match="not positive definite in cluster 5"):
        V = vcalc(1.0, [5, 5, 6])
    _close(V[:2, :2], np.ones((2, 2)))


@pytest.mark.parametrize(
    "kw",
    [
        {"obs": [1, 2]},
        {"time1": [1, 2]},
        {"grp2": [1, 2]},
        {"grp1": [1, 2], "time2": [1, 2], "time1": [1, 1], "phi": 0.5},
        {"time1": [1, 2], "phi": 1.5},
        {"obs": [1, 2], "type": [1, 1], "rho": 0.5},
        {"obs": [1, 2], "rho": [0.5, 0.4]},
        {"obs": [1, 2], "rho": CorrMatrix([[1.0]], ["z"])},
        {"obs": [1, 2], "rho": 1.5},
        {"rvars": [[1.0], [0.5]]},
    ],
)
def test_argument_errors(kw):
    with pytest.raises(ValueError):
        vcalc(1.0, [1, 1], **kw)
