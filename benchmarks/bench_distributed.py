"""meta_batch() and permutest() in process vs on a dask LocalCluster of two worker processes.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--n 1000000] [--perm 50000]``.

Workloads (synthetic, seeded; the benchmarks' generator vi ~ U(0.01, 0.2), yi ~ N(0.3, 0.1 + vi)):
``meta_batch`` of ``n`` x 20 REML with ``ci=False`` and ``ci=True`` (default chunk: 21,845 rows),
and a permutation test of a k = 20 REML meta-regression with three moderator columns. Each
workload runs once in process and once on ``LocalCluster(n_workers=2, threads_per_worker=1)``
(after a warm-up call, so worker start-up and imports are not timed); the results must be
exactly equal. Then the streamed in-process run is repeated under tracemalloc for its peak.
Times are wall clock; the ratio is in-process / cluster (above 1: the cluster is faster).

dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (its default
``distributed.nanny.pre-spawn-environ``): glibc then stops adapting its mmap threshold, every
multi-MB temporary of a batch fit is mmap'ed, zero-filled and unmapped again, and the fits run
about half as fast (measured: 200,000 x 20 REML in 3.5 s in a plain process, 6.2 s with that
variable). The benchmark unsets it for its workers unless ``--keep-malloc-trim`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from dataclasses import fields
from datetime import date

import numpy as np
import pandas as pd

from ketameta.synthesis.pooling import meta_batch
from ketameta.synthesis.regression import metareg, permutest


def data(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, (n, k))
    return rng.normal(0.3, np.sqrt(0.1 + vi)), vi


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def same_batch(a, b) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name, strict=True)


def same_perm(a, b) -> None:
    pd.testing.assert_series_equal(a.pvalue, b.pvalue, check_exact=True)
    assert (a.qm_pvalue, a.n_permutations) == (b.qm_pvalue, b.n_permutations)


def line(name: str, local: float, cluster: float) -> None:
    print(f"{name:<44} {local:8.2f} s {cluster:8.2f} s {local / cluster:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="meta-analyses (rows)")
    parser.add_argument("--perm", type=int, default=50_000, help="random permutations")
    parser.add_argument(
        "--keep-malloc-trim",
        action="store_true",
        help="keep dask's MALLOC_TRIM_THRESHOLD_=65536 for the workers (slow, see the docstring)",
    )
    args = parser.parse_args()
    import dask
    from dask.distributed import Client, LocalCluster

    n, k = args.n, 20
    yi, vi = data(n, k, seed=0)
    rng = np.random.default_rng(1)
    reg = pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.3, k),
            "vi": rng.uniform(0.01, 0.1, k),
            "x": rng.normal(size=k),
            "g": rng.choice(list("abc"), k),
        }
    )
    model = metareg(reg, "~ x + C(g)", method="REML")
    print(
        f"bench_distributed, {date.today().isoformat()}: Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"dask {dask.__version__}"
    )
    if not args.keep_malloc_trim:
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    trim = dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_")
    print(f"worker MALLOC_TRIM_THRESHOLD_: {trim if trim is not None else 'unset'}")
    print(f"{'workload':<44} {'in process':>10} {'cluster':>10} {'ratio':>7}")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        meta_batch(yi[:100], vi[:100], executor=client)  # warm-up: workers import ketameta
        permutest(model, 100, seed=1, executor=client)
        for ci in (False, True):
            local, t_local = timed(lambda ci=ci: meta_batch(yi, vi, method="REML", ci=ci))
            fanned, t_cluster = timed(
                lambda ci=ci: meta_batch(yi, vi, method="REML", ci=ci, executor=client)
            )
            same_batch(fanned, local)
            line(f"meta_batch {n:,} x {k} REML, ci={ci}", t_local, t_cluster)
            del local, fanned
        local, t_local = timed(lambda: permutest(model, args.perm, seed=3))
        fanned, t_cluster = timed(lambda: permutest(model, args.perm, seed=3, executor=client))
        same_perm(fanned, local)
        line(f"permutest {args.perm:,} perms, k={k} REML, p=4", t_local, t_cluster)
    print("results: exactly equal (every array of every result)")
    tracemalloc.start()
    res = meta_batch(yi, vi, method="REML", ci=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    output = sum(a.nbytes for a in vars(res).values() if isinstance(a, np.ndarray))
    print(
        f"streamed meta_batch {n:,} x {k} REML, ci=True, default chunk, in process: "
        f"tracemalloc peak {peak / 2**20:.0f} MiB; the result's arrays {output / 2**20:.0f} MiB "
        f"(input yi + vi: {(yi.nbytes + vi.nbytes) / 2**20:.0f} MiB, not counted)"
    )


if __name__ == "__main__":
    main()
