"""gosh(..., executor=) on a dask.distributed LocalCluster gives the in-process numbers.

The cluster runs two workers in threads (``processes=False``): worker processes are not needed
to check that fanning the chunks out and gathering them back changes nothing (order, values,
membership columns), and threads start reliably on CI machines.
"""

import numpy as np
import pandas as pd
import pytest

from ketameta import meta
from ketameta.synthesis.sensitivity import gosh

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def client():
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
