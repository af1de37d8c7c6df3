"""Benchmarks: ketameta against statsmodels, PyMARE, pimeta and (when R is installed) metafor.

Run from the repository root after ``pip install -e ".[dev,bench]"``::

    python benchmarks/run.py            # prints the tables; --quick for fewer repeats

Data generator (seeded, as metafor's perf data): vi ~ U(0.01, 0.2); yi ~ N(0.3, 0.1 + vi).
Before timing, each peer's tau² and estimate are compared with ketameta's (relative
difference printed), so a ratio is only reported for implementations that give the same
numbers. Times are medians over repeats (after one warm-up call), wall clock, in one process;
metafor's times are measured by ``benchmarks/metafor_bench.R`` in the same run via Rscript.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
warnings.simplefilter("ignore")


def data(k: int, seed: int = 1, n: int | None = None):
    rng = np.random.default_rng(seed)
    shape = (k,) if n is None else (n, k)
    vi = rng.uniform(0.01, 0.2, shape)
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    return yi, vi


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peers_single(yi, vi, method):
    """Callables returning (estimate, tau2) for each Python peer available."""
    out = {}
    try:
        from statsmodels.stats.meta_analysis import combine_effects

        sm_method = {"DL": "dl", "REML": None}[method]
        if sm_method:

            def sm():
                r = combine_effects(yi, vi, method_re=sm_method)
                return float(r.mean_effect_re), float(r.tau2)

            out["statsmodels"] = sm
    except ImportError:
        pass
    try:
        from pymare import estimators

        def pm():
            est = (
                estimators.DerSimonianLaird()
                if method == "DL"
                else estimators.VarianceBasedLikelihoodEstimator(method="REML")
            )
            est.fit(y=yi[:, None], v=vi[:, None], X=np.ones((yi.size, 1)))
            s = est.summary()
            return float(np.ravel(s.fe_params)[0]), float(np.ravel(s.tau2)[0])

        out["PyMARE"] = pm
    except ImportError:
        pass
    try:
        import pimeta

        def pi():
            r = pimeta.rma(yi, vi, method=method)
            return float(np.ravel(r.b)[0]), float(r.tau2)

        out["pimeta"] = pi
    except ImportError:
        pass
    return out


def run_metafor(quick: bool) -> dict:
    if shutil.which("Rscript") is None:
        print(
            "metafor: Rscript not found; metafor columns skipped (install r-base-core "
            "r-cran-metafor to include them)"
        )
        return {}
    env = dict(os.environ, KETAMETA_BENCH_QUICK="1" if quick else "0")
    proc = subprocess.run(
        ["Rscript", str(HERE / "metafor_bench.R")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if proc.returncode != 0:
        print("metafor: the R benchmark failed:\n" + proc.stderr[-2000:])
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 5 if args.quick else 30
    import ketameta as km
    from ketameta.regression import metareg
    from ketameta.sensitivity import gosh, influence, leave_one_out

    rows = []  # (workload, implementation, seconds)
    checks = []
    for k in (20, 2000):
        yi, vi = data(k)
        for method in ("DL", "REML"):
            ours = km.meta(yi, vi, method=method)
            name = f"{method} fit, k={k}"
            rows.append(
                (
                    name,
                    "ketameta meta()",
                    median_time(lambda yi=yi, vi=vi, m=method: km.meta(yi, vi, method=m), reps),
                )
            )
            from ketameta._core.batch import fit_batch

            rows.append(
                (
                    name,
                    "ketameta core (no CIs)",
                    median_time(
                        lambda yi=yi, vi=vi, m=method: fit_batch(yi, vi, method=m, ci_tau2=False),
                        reps,
                    ),
                )
            )
            for peer, fn in peers_single(yi, vi, method).items():
                est, tau2 = fn()
                checks.append(
                    (
                        name,
                        peer,
                        abs(est / ours.estimate - 1),
                        abs(tau2 / ours.tau2 - 1) if ours.tau2 else abs(tau2),
                    )
                )
                slow = k == 2000 and peer in ("pimeta", "statsmodels")
                rows.append((name, peer, median_time(fn, 2 if slow else reps)))
    Y, V = data(20, n=1000)
    rows.append(
        (
            "1,000 REML fits, k=20",
            "ketameta meta_batch()",
            median_time(lambda: km.meta_batch(Y, V, method="REML"), reps),
        )
    )
    try:
        from pymare import estimators

        def pymare_batch():
            est = estimators.VarianceBasedLikelihoodEstimator(method="REML")
            est.fit(y=Y.T, v=V.T, X=np.ones((Y.shape[1], 1)))
            return est

        rows.append(("1,000 REML fits, k=20", "PyMARE batched", median_time(pymare_batch, 3)))
        tau_p = np.ravel(pymare_batch().summary().tau2)
        tau_k = km.meta_batch(Y, V, method="REML").tau2
        checks.append(
            (
                "1,000 REML fits",
                "PyMARE",
                float("nan"),
                float(np.nanmax(np.abs(tau_p - tau_k) / np.maximum(tau_k, 1e-8))),
            )
        )
    except ImportError:
        pass
    yi, vi = data(20, seed=2)
    x = np.random.default_rng(3).normal(size=20)
    import pandas as pd

    frame = pd.DataFrame({"yi": yi, "vi": vi, "x": x})
    reg = metareg(frame, "~ x", method="REML")
    rows.append(
        (
            "permutation test, 1,000 perms, k=20",
            "ketameta permutest()",
            median_time(lambda: reg.permutest(n_perm=1000, seed=1), 1 if args.quick else 3),
        )
    )
    for k in (12, 16):
        yi, vi = data(k, seed=4)
        for method in ("DL", "REML"):
            res = km.meta(yi, vi, method=method)
            rows.append(
                (
                    f"GOSH all subsets, k={k}, {method}",
                    "ketameta gosh()",
                    median_time(lambda res=res: gosh(res), 3),
                )
            )
    yi, vi = data(200, seed=5)
    res = km.meta(yi, vi, method="REML")
    rows.append(
        (
            "leave-one-out, k=200",
            "ketameta leave_one_out()",
            median_time(lambda: leave_one_out(res), 5),
        )
    )
    rows.append(
        ("influence, k=200", "ketameta influence()", median_time(lambda: influence(res), 5))
    )
    metafor = run_metafor(args.quick)
    for name, seconds in metafor.items():
        rows.append((name, "metafor", seconds))
    table = pd.DataFrame(rows, columns=["workload", "implementation", "median_s"])
    ours = (
        table[
            table["implementation"].str.startswith("ketameta")
            & ~table["implementation"].str.contains("core")
        ]
        .groupby("workload")["median_s"]
        .min()
    )
    table["ratio_vs_ketameta"] = table["median_s"] / table["workload"].map(ours)
    pd.set_option("display.width", 160)
    print("\nSame numbers? relative differences against ketameta (estimate, tau2):")
    print(pd.DataFrame(checks, columns=["workload", "peer", "estimate_rel", "tau2_rel"]))
    print("\nMedian wall-clock seconds and ratio (peer time / ketameta time):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
