"""GOSH: every subset fitted on the batched core; the same numbers in-process and fanned out."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

from ketameta import meta
from ketameta._core import gosh as gosh_core
from ketameta._core.batch import fit_batch
from ketameta.synthesis.sensitivity import _gosh_chunk, gosh


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(7)
    vi = rng.uniform(0.01, 0.2, 8)
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    return meta(yi, vi, method="REML")


def test_all_subsets_and_each_equals_a_single_fit(result):
    table = gosh(result)
    assert len(table) == 2**8 - 1
    assert sorted(table["k"].value_counts().to_dict().items())[-1] == (8, 1)
    for row in (3, 100, 254):
        members = table.loc[row, list(result.labels)].to_numpy(bool)
        single = meta(result.yi[members], result.vi[members], method="REML")
        assert table.loc[row, "estimate"] == pytest.approx(single.estimate, rel=1e-10)
        if members.sum() > 1:
            assert table.loc[row, "tau2"] == pytest.approx(single.tau2, rel=1e-8, abs=1e-12)


def test_random_subsets_are_seeded(result):
    a = gosh(result, max_subsets=50, seed=3)
    b = gosh(result, max_subsets=50, seed=3)
    assert len(a) == 50 and a.equals(b)


def test_executor_gives_the_same_numbers(result):
    local = gosh(result, chunk=64)
    with ProcessPoolExecutor(max_workers=2) as pool:
        fanned = gosh(result, chunk=64, executor=pool)
    np.testing.assert_array_equal(local.to_numpy(), fanned.to_numpy())


def test_dask_executor_gives_the_same_numbers(result):
    distributed = pytest.importorskip("dask.distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        fanned = gosh(result, chunk=64, executor=client.get_executor())
    np.testing.assert_array_equal(gosh(result, chunk=64).to_numpy(), fanned.to_numpy())


# --- the DL / common-effect fast path (ketameta._core.gosh) against the batch engine ---------

BCG_YI = np.array(
    [-0.8893, -1.5854, -1.3481, -1.4416, -0.2175, -0.7861, -1.6209, 0.0120, -0.4694, -1.3713,
     -0.3394, 0.4459, -0.0173]
)  # fmt: skip
BCG_VI = np.array(
    [0.3256, 0.1946, 0.4154, 0.0200, 0.0512, 0.0069, 0.2230, 0.0040, 0.0564, 0.0730, 0.0124,
     0.5325, 0.0714]
)  # fmt: skip
COLUMNS = ["k", "estimate", "tau2", "i2", "q"]


def _all_masks(k):
    codes = np.arange(1, 2**k, dtype=np.int64)
    return ((codes[:, None] >> np.arange(k)) & 1).astype(bool)


def _engine(yi, vi, masks, method):
    """The former ``_gosh_chunk``: every subset through the generic masked batch engine."""
    n = masks.shape[0]
    fit = fit_batch(
        np.broadcast_to(yi, (n, yi.size)),
        np.broadcast_to(vi, (n, vi.size)),
        mask=masks,
        method=method,
        ci_tau2=False,
        stats=False,
    )
    return {"k": masks.sum(axis=1), **{c: fit[c] for c in COLUMNS[1:]}}


def _condition(yi, vi, masks):
    """Amplification of rounding in DL's tau² = (Q - (k-1)) / (sum w - sum w² / sum w)."""
    m = masks.astype(float)
    w = 1.0 / vi
    sw, sww, ks = m @ w, m @ (w * w), m.sum(axis=1)
    q = _engine(yi, vi, masks, "DL")["q"]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = sw / (sw - sww / sw) + q / np.abs(q - (ks - 1.0))
    return np.where(ks > 1, np.nan_to_num(kappa, nan=1.0, posinf=1e300), 1.0)


def _assert_matches_engine(yi, vi, masks, method="DL", kappa=None):
    """1e-12 relative; tau² absolute 1e-14 (yi² units of the data) near 0; with ``kappa``,
    tau² and I² also within a few ulps times the condition of the DL formula."""
    assert gosh_core.fast_gosh_supported(yi, vi, method)
    old = _engine(yi, vi, masks, method)
    new = gosh_core.gosh_fits(yi, vi, masks, method)
    np.testing.assert_array_equal(new["k"], old["k"])
    assert new["k"].dtype == np.int64
    spread = max(np.ptp(yi), np.sqrt(vi.max()))
    rtol = 1e-12 if kappa is None else 1e-12 + 4e-15 * kappa
    atol = {"estimate": 1e-14 * spread, "tau2": 1e-14 * spread**2, "i2": 1e-12, "q": 1e-12}
    for c in COLUMNS[1:]:
        r = rtol if c in ("tau2", "i2") else 1e-12
        off = np.abs(new[c] - old[c]) > atol[c] + r * np.abs(old[c])
        assert not off.any(), f"{c}: {off.sum()} rows off, e.g. {new[c][off][:3]} {old[c][off][:3]}"
    assert (new["tau2"] >= 0).all() and np.isfinite(new["estimate"]).all()


@pytest.mark.parametrize("method", ["DL", "FE", "EE"])
def test_fast_path_equals_engine_on_bcg(method):
    _assert_matches_engine(BCG_YI, BCG_VI, _all_masks(13), method)


@pytest.mark.parametrize("k", range(2, 15))
def test_fast_path_equals_engine_on_random_data(k):
    rng = np.random.default_rng(100 + k)
    vi = rng.uniform(0.01, 0.2, k)
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    _assert_matches_engine(yi, vi, _all_masks(k))
    _assert_matches_engine(yi, vi, _all_masks(k), "FE")


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_equals_engine_on_hard_scales(seed):
    # offset 1e6, vi over 16 decades: sum w - sum w² / sum w cancels when one weight
    # dominates (both paths alike), so tau² and I² are compared relative to that condition
    rng = np.random.default_rng(seed)
    k = 12
    vi = 10.0 ** rng.uniform(-8.0, 8.0, k)
    for yi in (1e6 + rng.normal(0.0, np.sqrt(vi + 1.0)), 1e6 + rng.normal(0.0, 1.0, k)):
        masks = _all_masks(k)
        _assert_matches_engine(yi, vi, masks, kappa=_condition(yi, vi, masks))
    tiny = rng.uniform(1e-8, 1e-7, k)  # all tiny, tiny spread: no cancellation, plain 1e-12
    _assert_matches_engine(1e6 + rng.normal(0.0, 1e-4, k), tiny, _all_masks(k))
    huge = rng.uniform(1e7, 1e8, k)
    _assert_matches_engine(-3e6 + rng.normal(0.0, 1e4, k), huge, _all_masks(k))


def test_fast_path_equals_engine_on_ties():
    rng = np.random.default_rng(5)
    yi = np.round(rng.normal(0.0, 1.0, 11), 1)
    yi[:4] = yi[0]
    vi = np.where(np.arange(11) < 5, 0.05, 0.1)
    _assert_matches_engine(yi, vi, _all_masks(11))
    _assert_matches_engine(np.full(11, 0.3), vi, _all_masks(11))  # Q = 0 for every subset


def test_fast_path_equals_engine_on_random_subsets():
    rng = np.random.default_rng(9)
    vi = rng.uniform(0.01, 0.2, 20)
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    res = meta(yi, vi, method="DL")
    table = gosh(res, max_subsets=5000, seed=4, chunk=1500)
    masks = table[list(res.labels)].to_numpy(bool)
    old = _engine(yi, vi, masks, "DL")
    for c in COLUMNS:
        np.testing.assert_allclose(table[c], old[c], rtol=1e-12, atol=1e-14, err_msg=c)
    assert table.equals(gosh(res, max_subsets=5000, seed=4, chunk=1500))


def test_degenerate_dl_denominator_is_nan_as_in_the_engine():
    # weights 2^62 apart: sum w - sum w² / sum w rounds to 0 for the pair (0, 1)
    yi, vi = np.array([0.0, 4.0, 3.0]), np.array([2.0**-62, 1.0, 0.5])
    masks = _all_masks(3)
    old, new = _engine(yi, vi, masks, "DL"), gosh_core.gosh_fits(yi, vi, masks, "DL")
    for c in COLUMNS[1:]:
        same = (np.isnan(old[c]) == np.isnan(new[c])).all()
        assert same and np.allclose(new[c], old[c], rtol=1e-6, atol=1e-6, equal_nan=True), c


def test_single_study_subsets_are_the_study():
    res = meta(BCG_YI, BCG_VI, method="DL")
    table = gosh(res)
    one = table[table["k"] == 1]
    assert len(one) == 13
    assert (one[["tau2", "i2", "q"]].to_numpy() == 0.0).all()
    where = one[list(res.labels)].to_numpy(bool).argmax(axis=1)
    np.testing.assert_array_equal(one["estimate"], BCG_YI[where])


@pytest.mark.parametrize("method", ["DL", "FE", "EE", "REML", "PM"])
def test_table_layout_is_unchanged(method):
    # the former assembly: a float block, k cast to int, membership columns concatenated
    res = meta(BCG_YI[:9], BCG_VI[:9], method=method, labels=[*"abcdefgha"])  # a label repeats
    table = gosh(res, chunk=100)
    masks = _all_masks(9)
    old = _engine(res.yi, res.vi, masks, method)
    expected = pd.DataFrame(np.column_stack([old[c] for c in COLUMNS]), columns=COLUMNS)
    expected["k"] = expected["k"].astype(int)
    expected = pd.concat([expected, pd.DataFrame(masks, columns=list(res.labels))], axis=1)
    exact = method not in gosh_core.FAST_METHODS  # the generic path: the very same numbers
    pd.testing.assert_frame_equal(table, expected, check_exact=exact, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["DL", "FE", "EE"])
def test_full_set_equals_meta(method):
    res = meta(BCG_YI, BCG_VI, method=method)
    full = gosh(res).iloc[-1]
    assert full["k"] == 13
    assert full["estimate"] == pytest.approx(res.estimate, rel=1e-12)
    assert full["tau2"] == pytest.approx(res.tau2, rel=1e-12, abs=1e-14)
    assert full["i2"] == pytest.approx(res.i2, rel=1e-12, abs=1e-12)
    assert full["q"] == pytest.approx(res.q, rel=1e-12)


def test_unsupported_inputs_go_to_the_engine():
    yi, vi = BCG_YI[:6], BCG_VI[:6].copy()
    assert not gosh_core.fast_gosh_supported(yi, vi, "REML")
    vi[0] = 1e-310  # its weight would overflow on the common scale
    assert not gosh_core.fast_gosh_supported(yi, vi, "DL")
    assert not gosh_core.fast_gosh_supported(BCG_YI[:6] * 1e120, BCG_VI[:6] * 1e240, "DL")
    masks = _all_masks(6)
    table = _gosh_chunk(masks, yi, vi, "DL")
    old = _engine(yi, vi, masks, "DL")
    for c in COLUMNS:
        np.testing.assert_array_equal(table[c], old[c], err_msg=c)
