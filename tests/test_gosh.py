"""GOSH: every subset fitted on the batched core; the same numbers in-process and fanned out."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from ketameta import meta
from ketameta.synthesis.sensitivity import gosh


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
