"""gosh(), meta_batch() and permutest() with ``executor=`` give the in-process numbers.

The dask cluster runs two workers in threads (``processes=False``): worker processes are not
needed to check that fanning the chunks out and gathering them back changes nothing (order,
values, membership columns), and threads start reliably on CI machines. Worker processes are
checked with a ``ProcessPoolExecutor`` (spawned, so nothing of this process is inherited), and
a ``ThreadPoolExecutor`` shows that any ``concurrent.futures`` executor does.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from test_streaming import assert_batch_equal

from ketameta import meta
from ketameta.synthesis.pooling import meta_batch
from ketameta.synthesis.regression import metareg, permutest
from ketameta.synthesis.sensitivity import gosh


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _data(k, seed):
    # the benchmarks' generator: vi ~ U(0.01, 0.2), yi ~ N(0.3, 0.1 + vi)
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, k)
    return rng.normal(0.3, np.sqrt(0.1 + vi)), vi


@pytest.mark.parametrize("method", ["DL", "REML"])
def test_all_subsets_on_dask_equal_in_process(client, method):
    yi, vi = _data(9, seed=11)
    res = meta(yi, vi, method=method)
    # 511 subsets in chunks of 100: six uneven chunks travel to the workers and back
    local = gosh(res, chunk=100)
    fanned = gosh(res, chunk=100, executor=client.get_executor())
    assert len(fanned) == 2**9 - 1
    pd.testing.assert_frame_equal(fanned, local, check_exact=True)
    # and the gathered rows are the right fits, not merely the same wrong ones
    full = fanned[fanned["k"] == 9].iloc[0]
    assert full["estimate"] == pytest.approx(res.estimate, rel=1e-12)
    assert full["tau2"] == pytest.approx(res.tau2, rel=1e-10, abs=1e-14)


def test_random_subsets_on_dask_equal_in_process(client):
    yi, vi = _data(24, seed=12)  # 2^24 - 1 subsets > max_subsets: seeded random draw
    res = meta(yi, vi, method="REML")
    local = gosh(res, max_subsets=3000, seed=5, chunk=700)
    fanned = gosh(res, max_subsets=3000, seed=5, chunk=700, executor=client.get_executor())
    pd.testing.assert_frame_equal(fanned, local, check_exact=True)
    row = fanned.iloc[1234]
    members = row[list(res.labels)].to_numpy(bool)
    single = meta(yi[members], vi[members], method="REML")
    assert row["estimate"] == pytest.approx(single.estimate, rel=1e-10)


# --- meta_batch() and permutest() ------------------------------------------------------------


def _batch(n, k, seed):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, (n, k))
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    short = rng.integers(2, k + 1, n)  # ragged: row i keeps its first short[i] studies
    pad = np.arange(k) >= short[:, None]
    yi[pad], vi[pad] = np.nan, np.nan
    return yi, vi


def assert_perm_equal(got, want):
    pd.testing.assert_series_equal(got.pvalue, want.pvalue, check_exact=True)
    assert (got.qm_pvalue, got.n_permutations, got.exact) == (
        want.qm_pvalue,
        want.n_permutations,
        want.exact,
    )


def _regression():
    rng = np.random.default_rng(21)
    k = 14
    vi = rng.uniform(0.01, 0.1, k)
    df = pd.DataFrame(
        {"yi": rng.normal(0.3, np.sqrt(vi + 0.05)), "vi": vi, "x": rng.normal(size=k)}
    )
    return df


@pytest.mark.parametrize(("method", "ci"), [("REML", True), ("DL", False)])
def test_meta_batch_on_dask_equal_in_process(client, method, ci):
    yi, vi = _batch(3000, 12, seed=31)
    local = meta_batch(yi, vi, method=method, ci=ci)
    # seven uneven chunks travel to the two workers and come back in order
    fanned = meta_batch(yi, vi, method=method, ci=ci, chunk=450, executor=client)
    assert_batch_equal(fanned, local)
    assert_batch_equal(meta_batch(yi, vi, method=method, ci=ci, executor=client), local)


def test_meta_batch_takes_the_clients_executor_too(client):
    yi, vi = _batch(500, 6, seed=32)
    local = meta_batch(yi, vi, chunk=100)
    assert_batch_equal(meta_batch(yi, vi, chunk=100, executor=client.get_executor()), local)


def test_permutest_on_dask_equal_in_process(client):
    fit = metareg(_regression(), "~ x", method="REML")
    # 9000 random orders: three chunks of (at most) 4096 permuted fits
    local = permutest(fit, 9000, seed=4)
    assert_perm_equal(permutest(fit, 9000, seed=4, executor=client), local)
    assert local.n_permutations == 9000 and not local.exact


def test_exact_permutest_on_dask_equal_in_process(client):
    df = _regression().iloc[:8]  # 8! = 40,320 distinct orders, enumerated then split
    fit = metareg(df, "~ x", method="DL")
    local = fit.permutest(exact=True)
    assert_perm_equal(fit.permutest(exact=True, executor=client), local)
    assert local.exact and local.n_permutations == 40320
    one = metareg(df, "~ 1", method="REML")  # sign flips: 2^8 patterns, exact
    assert_perm_equal(permutest(one, exact=True, executor=client), permutest(one, exact=True))


def test_random_sign_flips_on_dask_equal_in_process(client):
    one = metareg(_regression(), "~ 1", method="REML")  # 2^14 patterns > n_perm: random
    local = permutest(one, 5000, seed=9)
    assert_perm_equal(permutest(one, 5000, seed=9, executor=client), local)
    assert not local.exact


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_concurrent_futures_executors_equal_in_process(kind):
    yi, vi = _batch(2000, 10, seed=33)
    fit = metareg(_regression(), "~ x", method="REML")
    local_batch = meta_batch(yi, vi, method="REML")
    local_perm = permutest(fit, 6000, seed=2)
    pool = (
        ThreadPoolExecutor(max_workers=2)
        if kind == "threads"
        else ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    )
    with pool:
        assert_batch_equal(meta_batch(yi, vi, method="REML", chunk=300, executor=pool), local_batch)
        assert_perm_equal(permutest(fit, 6000, seed=2, executor=pool), local_perm)


def test_an_object_that_cannot_run_chunks_is_refused():
    yi, vi = _batch(10, 4, seed=34)
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        meta_batch(yi, vi, executor=object())
