"""Benchmarks: ketameta against statsmodels, PyMARE, pimeta, PyMetaAnalysis and metafor.

Run from the repository root after ``pip install -e ".[dev,bench]"`` (metafor: ``apt-get install
r-base-core r-cran-metafor``; skipped with a message when ``Rscript`` is missing)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py   # ~4-5 minutes
    python benchmarks/run.py --quick     # fewer repeats
    python benchmarks/run.py --full      # adds metafor's GOSH REML k=16 (~6 more minutes)

Data (seeded, as metafor's performance examples): ``vi ~ U(0.01, 0.2)``,
``yi ~ N(0.3, 0.1 + vi)`` (variance), drawn by ``numpy.random.default_rng(seed)``; the same
arrays are written (``%.17g``) for the R side, so every implementation sees identical numbers.

Order of work: (1) every implementation computes each workload once and its estimate / tau2
are compared with ketameta's (relative difference; the table says where a peer differs by
design); (2) each implementation is timed: one warm-up call, then repeats (calls per repeat
chosen so a repeat lasts >= 5 ms, as ``timeit``), median per call, within a time budget per
implementation (slow peers get fewer repeats); (3) peak memory: Python-side peak allocation of
one call per workload (``tracemalloc``, which sees numpy buffers) and the peak RSS of the
process and of the R child (``getrusage``). Ratio = implementation time / ketameta time.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

HERE = Path(__file__).resolve().parent
RTOL = 1e-6  # the check: iterative quantities agree to 1e-6 relative (our tol is 1e-12)
# Denominators are floored here: a tau2 of 0 (boundary maximum) against 1e-13 is agreement,
# not a 1e-5 relative error; so values below FLOOR are in effect compared to 1e-12 absolute.
FLOOR = 1e-6
warnings.simplefilter("ignore")


def data(k: int, seed: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """vi ~ U(0.01, 0.2); yi ~ N(0.3, 0.1 + vi); shape (k,) or (n, k)."""
    rng = np.random.default_rng(seed)
    shape = (k,) if n is None else (n, k)
    vi = rng.uniform(0.01, 0.2, shape)
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    return yi, vi


def timed(fn, budget: float, max_repeats: int = 30) -> tuple[float, int]:
    """Median seconds per call and the number of repeats (after one warm-up call)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    number = max(1, int(0.005 / max(first, 1e-7)))
    repeats = int(min(max_repeats, max(1, budget / max(first * number, 1e-9))))
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter() - start) / number)
    return float(np.median(per_call)), repeats


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def rel(a, b) -> float:
    """Max relative difference (``nan`` entries, i.e. a peer's failed fits, are skipped)."""
    return float(np.nanmax(rel_all(a, b)))


def rel_all(a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.abs(a - b) / np.maximum(np.abs(b), FLOOR)


def n_off(got, ref) -> str:
    """'n differ / n failed (nan) / n' over all compared elements."""
    d = np.concatenate([np.ravel(rel_all(g, r)) for g, r in zip(got, ref, strict=True)])
    n = sum(np.size(r) for r in ref)
    return f"{int(np.sum(d > RTOL))}/{int(np.sum(np.isnan(d)))}/{n}"


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i['version']} {i.get('architecture')} ({i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def write(path: Path, **cols) -> None:
    pd.DataFrame(cols).to_csv(path, index=False, float_format="%.17g")


def build_workloads(quick: bool):
    """(name, ketameta fn, ketameta values fn, {peer: values fn}, budget) per workload."""
    import ketameta as km
    from ketameta.synthesis.regression import metareg
    from ketameta.synthesis.sensitivity import gosh, influence, leave_one_out

    sets = {}
    out = []
    for k in (20, 2000):
        yi, vi = data(k, seed=1)
        sets[f"single_k{k}"] = {"yi": yi, "vi": vi}
        for method in ("DL", "REML"):

            def ours(yi=yi, vi=vi, m=method):
                r = km.meta(yi, vi, method=m)
                return r.estimate, r.tau2

            fits = {
                p: (lambda f=f, yi=yi, vi=vi: f(yi, vi))
                for p, f in peers.single_fit(method).items()
            }
            out.append(
                (f"{method} fit, k={k}", ours, fits, f"single_{method}_k{k}", ("estimate", "tau2"))
            )
    Y, V = data(20, seed=1, n=1000)
    sets["batch"] = {
        **{f"y{j}": Y[:, j] for j in range(20)},
        **{f"v{j}": V[:, j] for j in range(20)},
    }
    out.append(
        (
            "1,000 REML fits, k=20",
            lambda: (km.meta_batch(Y, V, method="REML").tau2,),
            {p: (lambda f=f: (f(Y, V),)) for p, f in peers.batch_reml().items()},
            "batch",
            ("tau2",),
        )
    )
    yi, vi = data(20, seed=2)
    x = np.random.default_rng(3).normal(size=20)
    sets["perm"] = {"yi": yi, "vi": vi, "x": x}
    frame = pd.DataFrame({"yi": yi, "vi": vi, "x": x})

    def ours_perm():
        reg = metareg(frame, "~ x", method="REML")
        reg.permutest(n_perm=1000, seed=1)
        return float(reg.coef["estimate"].iloc[1]), reg.qm

    out.append(
        (
            "permutation test, 1,000 perms, k=20",
            ours_perm,
            {
                p: (lambda f=f, yi=yi, vi=vi, x=x: f(yi, vi, x, 1000))
                for p, f in peers.permutest().items()
            },
            "perm",
            ("coef", "qm"),
        )
    )
    for k in (12, 16):
        yi, vi = data(k, seed=4)
        sets[f"gosh_k{k}"] = {"yi": yi, "vi": vi}
        for method in ("DL", "REML"):
            res = km.meta(yi, vi, method=method)

            def ours_gosh(res=res):
                g = gosh(res)
                return g["estimate"].to_numpy(), g["tau2"].to_numpy()

            gp = {} if k == 16 else peers.gosh(method)
            out.append(
                (
                    f"GOSH all subsets, k={k}, {method}",
                    ours_gosh,
                    {p: (lambda f=f, yi=yi, vi=vi: f(yi, vi)) for p, f in gp.items()},
                    f"gosh_{method}_k{k}",
                    ("estimate", "tau2"),
                )
            )
    yi, vi = data(200, seed=5)
    sets["loo_k200"] = {"yi": yi, "vi": vi}
    res = km.meta(yi, vi, method="REML")

    def ours_loo():
        t = leave_one_out(res)
        return t["estimate"].to_numpy(), t["tau2"].to_numpy()

    def ours_inf():
        t = influence(res)
        return t["tau2_del"].to_numpy(), t["cooks_d"].to_numpy()

    out.append(
        (
            "leave-one-out, k=200",
            ours_loo,
            {p: (lambda f=f, yi=yi, vi=vi: f(yi, vi)) for p, f in peers.leave_one_out().items()},
            "loo",
            ("estimate", "tau2"),
        )
    )
    out.append(
        (
            "influence, k=200",
            ours_inf,
            {
                p: (lambda f=f, yi=yi, vi=vi: (f(yi, vi), None))
                for p, f in peers.influence().items()
            },
            "influence",
            ("tau2_del", "cooks_d"),
        )
    )
    return sets, out


# Where a peer differs from ketameta by design (printed beside the check).
NOTES = {
    ("PyMARE", "REML"): "REML by scipy.optimize.minimize, default tolerance (not a 1e-12 root)",
    ("pimeta", "REML"): "Fisher scoring stops at metafor's default threshold 1e-5 "
    "(where the REML maximum is tau2 = 0 it stops at tau2 ~ 1e-5)",
    ("PyMetaAnalysis", "REML"): "REML root by scipy with atol 1e-10",
    ("metafor", "REML"): "as timed: default threshold 1e-5 (tau2 ~ 1e-5 where the maximum "
    "is 0); nan = Fisher scoring failed (an error in metafor)",
    ("metafor", "perm"): "observed model compared; permutation p-values use each RNG",
    ("pimeta", "perm"): "observed model compared; permutation p-values use each RNG",
}


def note(peer: str, workload: str, tight: bool) -> str:
    if "perm" in workload:
        return NOTES.get((peer, "perm"), "")
    reml = "REML" in workload or "influence" in workload or "leave" in workload
    if reml and not tight:
        return NOTES.get((peer, "REML"), "")
    return "R re-fit with control threshold 1e-12 (timed with defaults)" if reml else ""


def run_metafor(sets: dict, quick: bool, full: bool, workdir: Path):
    """Times and values from metafor_bench.R, or ({}, {}, None) with a message."""
    if shutil.which("Rscript") is None:
        print(
            "metafor: Rscript not found; metafor skipped "
            "(apt-get install r-base-core r-cran-metafor)"
        )
        return {}, {}, None
    for name, cols in sets.items():
        write(workdir / f"{name}.csv", **cols)
    env = dict(os.environ, KETAMETA_BENCH_QUICK=str(int(quick)), KETAMETA_BENCH_FULL=str(int(full)))
    proc = subprocess.run(
        ["Rscript", str(HERE / "metafor_bench.R"), str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        print("metafor: the R benchmark failed; metafor skipped:\n" + proc.stderr[-2000:])
        return {}, {}, None
    times = pd.read_csv(workdir / "metafor_times.csv")
    values = {p.stem[len("metafor_") :]: pd.read_csv(p) for p in workdir.glob("metafor_*.csv")}
    return {r.workload: (r.seconds, int(r.repeats)) for r in times.itertuples()}, values, rss


def r_version() -> str:
    if shutil.which("Rscript") is None:
        return "R not installed"
    out = subprocess.run(
        ["Rscript", "-e", 'cat(R.version.string, "; metafor", format(packageVersion("metafor")))'],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or out.stderr.strip()[-200:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--full", action="store_true", help="also metafor GOSH REML k=16")
    args = parser.parse_args()
    budget = 0.5 if args.quick else 2.0
    import ketameta as km
    from ketameta._core.batch import fit_batch

    print(f"BLAS: {blas()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set (slows numpy; unset it for benchmarks)")
    sets, workloads = build_workloads(args.quick)
    checks, rows, memory = [], [], {}
    for name, ours, peer_fns, _, _labels in workloads:
        print(f"checking and timing: {name}", flush=True)
        ref = ours()
        memory[name] = peak_mib(ours)
        rows.append((name, "ketameta", *timed(ours, budget)))
        if "fit, k=" in name:
            yi, vi = sets[f"single_k{name.split('k=')[1]}"].values()
            method = name.split()[0]
            rows.append(
                (
                    name,
                    "ketameta core, no CIs (info)",
                    *timed(
                        lambda yi=yi, vi=vi, m=method: fit_batch(yi, vi, method=m, ci_tau2=False),
                        budget,
                    ),
                )
            )
        if name.startswith("1,000 REML fits"):
            Y, V = data(20, seed=1, n=1000)
            rows.append(
                (
                    name,
                    "ketameta meta_batch(ci=False)",
                    *timed(lambda Y=Y, V=V: km.meta_batch(Y, V, method="REML", ci=False), budget),
                )
            )
        for peer, fn in peer_fns.items():
            start = time.perf_counter()
            got = fn()
            first = time.perf_counter() - start
            pairs = [(g, r) for g, r in zip(got, ref, strict=True) if g is not None]
            diffs = [rel(g, r) if g is not None else np.nan for g, r in zip(got, ref, strict=True)]
            checks.append(
                (
                    name,
                    peer,
                    *diffs[:2],
                    *([np.nan] * (2 - len(diffs))),
                    n_off(*zip(*pairs, strict=True)),
                    note(peer, name, False),
                )
            )
            if first > 20:
                rows.append((name, peer, first, 1))  # the checked call (one repeat, no warm-up)
            else:
                rows.append((name, peer, *timed(fn, budget if first < 1 else 0)))
    with tempfile.TemporaryDirectory() as tmp:
        print("running metafor (Rscript) ...", flush=True)
        r_times, r_values, r_rss = run_metafor(sets, args.quick, args.full, Path(tmp))
    for name, ours, _, key, labels in workloads:
        if key in r_values:
            ref = ours()
            for suffix, tight in (("", True), ("_default", False)):
                if key + suffix not in r_values:
                    continue
                got = [r_values[key + suffix][c].to_numpy() for c in labels]
                diffs = [rel(g, r) for g, r in zip(got, ref, strict=True)]
                diffs += [np.nan] * (2 - len(diffs))
                peer = "metafor" if tight else "metafor (defaults)"
                off = n_off(got, ref)
                checks.append((name, peer, *diffs[:2], off, note("metafor", name, tight)))
        if name in r_times:
            rows.append((name, "metafor", *r_times[name]))

    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 80)
    check = pd.DataFrame(
        checks, columns=["workload", "peer", "rel_diff_1", "rel_diff_2", "n_off", "note"]
    )
    check["same (<=1e-6)"] = (check[["rel_diff_1", "rel_diff_2"]].max(axis=1) <= RTOL).map(
        {True: "yes", False: "no"}
    )
    print(
        "\nSame numbers? max relative difference against ketameta (quantities 1 and 2: "
        "estimate and tau2; permutation: coefficient and QM; influence: tau2_del and Cook's d);\n"
        "n_off = elements differing by > 1e-6 relative / failed fits (nan) / elements"
    )
    print(check.to_string(index=False, float_format=lambda v: f"{v:.2g}"))
    table = pd.DataFrame(rows, columns=["workload", "implementation", "median_s", "repeats"])
    ours_t = table[table["implementation"] == "ketameta"].set_index("workload")["median_s"]
    table["ratio"] = table["median_s"] / table["workload"].map(ours_t)
    table["ketameta_peak_MiB"] = (
        table["workload"].map(memory).where(table["implementation"] == "ketameta")
    )
    print(
        "\nMedian seconds per call; ratio = implementation time / ketameta time (> 1: ketameta "
        "faster); peak = tracemalloc peak of one ketameta call"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npeak RSS: this Python process {rss:.0f} MiB; R child "
        f"{'n/a' if r_rss is None else f'{r_rss:.0f} MiB'}"
    )
    import scipy

    import ketameta

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "ketameta": getattr(ketameta, "__version__", "?"),
        **{m: peers.version(m) for m in ("statsmodels", "pymare", "pimeta", "meta_analyze")},
    }
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    print(f"{r_version()}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
