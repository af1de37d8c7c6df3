"""Benchmarks: ketameta against statsmodels, PyMARE, pimeta, PyMetaAnalysis and metafor.

Run from the repository root after ``pip install -e ".[dev,bench]"`` (metafor: ``apt-get install
r-base-core r-cran-metafor``; skipped with a message when ``Rscript`` is missing)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py   # ~15 minutes
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


def mv_data(n_studies: int, per: int, seed: int) -> pd.DataFrame:
    """Three-level data: ``per`` effects in each of ``n_studies`` studies; study effects
    ``u ~ N(0, 0.05)``, ``vi ~ U(0.01, 0.2)``, ``yi ~ N(0.3 + u, 0.03 + vi)`` (variances)."""
    rng = np.random.default_rng(seed)
    study = np.repeat(np.arange(1, n_studies + 1), per)
    vi = rng.uniform(0.01, 0.2, study.size)
    u = rng.normal(0.0, np.sqrt(0.05), n_studies)[study - 1]
    yi = rng.normal(0.3 + u, np.sqrt(0.03 + vi))
    return pd.DataFrame({"study": study, "es": np.arange(1, study.size + 1), "yi": yi, "vi": vi})


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


def interleaved(fns: dict, budget: float, max_repeats: int = 30) -> dict:
    """``{label: (median seconds per call, repeats)}``, the implementations timed back to back.

    One warm-up call each, calls per repeat chosen per implementation (a repeat lasts >= 5 ms),
    then rounds: every implementation runs one repeat per round, so a drift of the machine's
    speed (this VM drifts by up to 2x within minutes) moves all of them alike. The order turns
    by one place each round, so no implementation always runs first, just after a slow call of
    another one has evicted its data from the caches.
    Slow implementations (one call > budget / 3) get one repeat; the others as many rounds as
    their own budget allows (at least 3, at most ``max_repeats``): an implementation of a few
    tenths of a second drops out after a few rounds and the fast ones go on alternating, so
    they are not held to a handful of repeats, each right after the slow call.
    """
    number, per_call, slow, cap = {}, {label: [] for label in fns}, set(), {}

    def run(fn, n):  # seconds for n calls (a self-timed fn, e.g. metafor's, reports its own)
        if hasattr(fn, "timed_calls"):
            return fn.timed_calls(n)
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - start

    for label, fn in fns.items():
        run(fn, 1)  # warm-up
        first = run(fn, 1)  # the call after it sets the calls per repeat
        number[label] = max(1, int(0.005 / max(first, 1e-7)))
        if first > budget / 3:
            slow.add(label)  # one timed repeat is enough (and all the budget allows)
        else:
            cap[label] = min(max_repeats, max(3, int(budget / max(first * number[label], 1e-9))))
    labels = list(fns)
    for r in range(max(cap.values(), default=1)):
        for label in labels[r % len(labels):] + labels[: r % len(labels)]:
            fn = fns[label]
            if (label in slow and per_call[label]) or (label in cap and r >= cap[label]):
                continue
            per_call[label].append(run(fn, number[label]) / number[label])
    return {label: (float(np.median(t)), len(t)) for label, t in per_call.items()}


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
    yi, vi = data(500, seed=6)
    mods = np.random.default_rng(7).normal(size=(500, 3))
    sets["metareg"] = {"yi": yi, "vi": vi, "x1": mods[:, 0], "x2": mods[:, 1], "x3": mods[:, 2]}
    reg_frame = pd.DataFrame(
        {"yi": yi, "vi": vi, "x1": mods[:, 0], "x2": mods[:, 1], "x3": mods[:, 2]}
    )

    def ours_reg():
        reg = metareg(reg_frame, "~ x1 + x2 + x3", method="REML")
        return reg.coef["estimate"].to_numpy(), reg.tau2

    reg_peers = {}
    if peers.version("pymare"):
        from pymare import estimators

        X1 = np.column_stack([np.ones(500), mods])

        def pymare_reg(yi=yi, vi=vi):
            est = estimators.VarianceBasedLikelihoodEstimator(method="REML")
            est.fit(y=yi[:, None], v=vi[:, None], X=X1)
            s = est.summary()
            return np.ravel(s.fe_params), float(np.ravel(s.tau2)[0])

        reg_peers["PyMARE"] = pymare_reg
    out.append(
        ("metareg REML, 3 moderators, k=500", ours_reg, reg_peers, "metareg", ("coef", "tau2"))
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
    # three-level model (random = ~ 1 | study/es), REML: metafor's rma.mv (metafor_server.R)
    for n_studies, seed in ((50, 8), (500, 9)):
        frame_mv = mv_data(n_studies, 4, seed)
        k = len(frame_mv)
        sets[f"mv_k{k}"] = {c: frame_mv[c].to_numpy() for c in frame_mv.columns}

        def ours_mv(frame_mv=frame_mv):
            r = km.meta_mv("yi", "vi", data=frame_mv, random="~ 1 | study/es")
            return r.coef["estimate"].to_numpy(), np.asarray(r.sigma2)

        name = f"rma.mv 3-level REML, k={k} ({n_studies} studies)"
        out.append((name, ours_mv, {}, f"mv_k{k}", ("estimate", "sigma2")))
        if k == 200:
            fit_mv = km.meta_mv("yi", "vi", data=frame_mv, random="~ 1 | study/es")

            def ours_cr2(fit_mv=fit_mv):
                rb = km.robust(fit_mv, "study", adjust="CR2")
                return rb.coef["se"].to_numpy(), rb.coef["df"].to_numpy()

            out.append(("robust CR2, 3-level k=200", ours_cr2, {}, "cr2", ("se", "df")))
    # Bayesian random effects, half-normal(0.5) prior on tau (R's bayesmeta when installed)
    yi, vi = data(10, seed=10)
    sets["bayes_k10"] = {"yi": yi, "vi": vi}

    def ours_bayes(yi=yi, vi=vi):
        r = km.meta_bayes(yi, vi, tau_prior="half-normal", tau_scale=0.5)
        return np.array([r.estimate]), np.array([r.tau])

    out.append(("meta_bayes half-normal(0.5), k=10", ours_bayes, {}, "bayes", ("mu", "tau")))
    return sets, out


# Workloads timed in metafor_server.R whose numbers are checked there, before timing:
# {workload: {row label: server key}}; they must agree with ketameta's to MV_RTOL.
MV_RTOL = 1e-5
SERVER_CHECKED = {
    "rma.mv 3-level REML, k=200 (50 studies)": {
        "metafor": "rma.mv 3-level REML, k=200 (50 studies)",
        "metafor (sparse=TRUE)": "rma.mv 3-level REML, k=200 (50 studies)|sparse",
    },
    "rma.mv 3-level REML, k=2000 (500 studies)": {
        # metafor's default (dense) takes minutes here: timed once by metafor_bench.R
        "metafor (sparse=TRUE)": "rma.mv 3-level REML, k=2000 (500 studies)|sparse",
    },
    "robust CR2, 3-level k=200": {"clubSandwich coef_test": "robust CR2, 3-level k=200"},
}


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
    if "rma.mv" in workload:
        return "metafor's defaults (nlminb); required to agree to 1e-5 before timing"
    if "CR2" in workload:
        return "coef_test(vcov = 'CR2') on metafor's fit: SE and Satterthwaite df"
    if "perm" in workload:
        return NOTES.get((peer, "perm"), "")
    reml = "REML" in workload or "influence" in workload or "leave" in workload
    if reml and not tight:
        return NOTES.get((peer, "REML"), "")
    return "R re-fit with control threshold 1e-12 (timed with defaults)" if reml else ""


class MetaforServer:
    """One ``Rscript metafor_server.R`` process: metafor timed in run.py's interleaved rounds."""

    def __init__(self, workdir: Path):
        self.proc = None
        if shutil.which("Rscript") is None:
            return
        self.proc = subprocess.Popen(
            ["Rscript", str(HERE / "metafor_server.R"), str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        if self.proc.stdout.readline().strip() != "ready":
            self.proc = None

    def timer(self, workload: str):
        """A self-timed fn (``timed_calls(n)``: R's elapsed seconds for n calls), or None."""
        if self.proc is None:
            return None
        proc = self.proc

        class Timed:
            def __call__(self):
                return self.timed_calls(1)

            @staticmethod
            def timed_calls(n):
                proc.stdin.write(f"{workload}\t{n}\n")
                proc.stdin.flush()
                return float(proc.stdout.readline())

        return Timed()

    def values(self, workload: str) -> np.ndarray | None:
        """The numbers the server computes for ``workload`` (None without R or the workload)."""
        if self.proc is None:
            return None
        self.proc.stdin.write(f"values\t{workload}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        return None if line in ([], ["NA"]) else np.array([float(v) for v in line])

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


SERVED = ("DL fit, k=20", "REML fit, k=20", "DL fit, k=2000", "REML fit, k=2000",
          "metareg REML, 3 moderators, k=500")  # fmt: skip


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


def r_has(package: str) -> bool:
    """Whether R has ``package`` installed."""
    if shutil.which("Rscript") is None:
        return False
    out = subprocess.run(
        ["Rscript", "-e", f'cat(requireNamespace("{package}", quietly = TRUE))'],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() == "TRUE"


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
    parser.add_argument("--only", default="", help="only workloads whose name contains this")
    parser.add_argument("--no-memory", action="store_true", help="skip bench_memory.py")
    parser.add_argument(
        "--results", default=str(HERE / "RESULTS.md"), help="markdown written ('' for none)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    budget = 0.5 if args.quick else 2.0
    import ketameta as km
    from ketameta._core.batch import fit_batch

    print(f"BLAS: {blas()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set (slows numpy; unset it for benchmarks)")
    sets, workloads = build_workloads(args.quick)
    workloads = [w for w in workloads if args.only in w[0]]
    checks, rows, memory = [], [], {}
    tmpdir = tempfile.TemporaryDirectory()
    workdir = Path(tmpdir.name)
    for set_name, cols in sets.items():
        write(workdir / f"{set_name}.csv", **cols)
    server = MetaforServer(workdir)
    for name, ours, peer_fns, _, _labels in workloads:
        print(f"checking and timing: {name}", flush=True)
        ref = ours()
        memory[name] = peak_mib(ours)
        fns = {"ketameta": ours}
        if "fit, k=" in name:
            yi, vi = sets[f"single_k{name.split('k=')[1]}"].values()
            method = name.split()[0]
            fns["ketameta core, no CIs (info)"] = lambda yi=yi, vi=vi, m=method: fit_batch(
                yi, vi, method=m, ci_tau2=False
            )
        if name.startswith("1,000 REML fits"):
            Y, V = data(20, seed=1, n=1000)
            fns["ketameta meta_batch(ci=False)"] = lambda Y=Y, V=V: km.meta_batch(
                Y, V, method="REML", ci=False
            )

            def numpy_engine(Y=Y, V=V):  # the same call with the numba kernels bypassed
                from ketameta._core import jit

                with jit.enabled(False):
                    return km.meta_batch(Y, V, method="REML")

            fns["ketameta, numpy engine (info)"] = numpy_engine
        slow = {}
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
            if first > 1:
                slow[peer] = first  # the checked call (one repeat, no warm-up)
            else:
                fns[peer] = fn
        if name in SERVED and server.timer(name) is not None:
            fns["metafor"] = server.timer(name)
        for label, key in SERVER_CHECKED.get(name, {}).items():
            got_flat = server.values(key)
            if got_flat is None:
                print(f"  {label}: not available (R, metafor or clubSandwich missing)")
                continue
            sizes = np.cumsum([np.size(r) for r in ref])[:-1]
            got = np.split(got_flat, sizes)
            diffs = [rel(g, r) for g, r in zip(got, ref, strict=True)]
            checks.append((name, label, *diffs[:2], n_off(got, ref), note(label, name, True)))
            if max(diffs) > MV_RTOL:
                print(
                    f"  {label}: differs from ketameta by {max(diffs):.2g} > {MV_RTOL}; not timed"
                )
                continue
            fns[label] = server.timer(key)
        if name.startswith("meta_bayes") and not r_has("bayesmeta"):
            print(
                "  bayesmeta (R) is not installed (no r-cran-bayesmeta in Debian): "
                "ketameta timed alone"
            )
        for label, (med, reps) in interleaved(fns, budget).items():
            rows.append((name, label, med, reps))
        rows.extend((name, peer, first, 1) for peer, first in slow.items())
    server.close()
    print("running metafor (Rscript) ...", flush=True)
    r_times, r_values, r_rss = run_metafor(sets, args.quick, args.full, workdir)
    tmpdir.cleanup()
    for name, ours, _, key, labels in workloads:
        if key in r_values:
            ref = ours()
            for suffix, tight in (("", True), ("_default", False)):
                if key + suffix not in r_values:
                    continue
                got = [
                    r_values[key + suffix][c].to_numpy()[: np.size(r)]
                    for c, r in zip(labels, ref, strict=True)
                ]
                diffs = [rel(g, r) for g, r in zip(got, ref, strict=True)]
                diffs += [np.nan] * (2 - len(diffs))
                peer = "metafor" if tight else "metafor (defaults)"
                off = n_off(got, ref)
                checks.append((name, peer, *diffs[:2], off, note("metafor", name, tight)))
        if name in r_times and not any(r[0] == name and r[1] == "metafor" for r in rows):
            rows.append((name, "metafor", *r_times[name]))  # the slow ones: one R run

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
    imports = import_time()
    print(f"import ketameta: {imports['wall_ms']:.0f} ms (median of 5 fresh processes)")
    mem = []
    if not args.no_memory:
        import bench_memory

        mem = bench_memory.run(bench_memory.CASES[:4] if args.quick else bench_memory.CASES)
        print(pd.DataFrame(mem).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.results:
        machine = {
            "started": started,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "cpus": os.cpu_count(),
            "blas": blas(),
            "r": r_version(),
            "versions": versions,
            "rss": rss,
            "r_rss": r_rss,
            "command": " ".join(sys.argv),
        }
        write_results(Path(args.results), check, table, mem, imports, machine)
        print(f"wrote {args.results}")


def import_time() -> dict:
    """Wall time of ``import ketameta`` in fresh processes and the heaviest modules of
    ``python -X importtime``."""
    code = "import time; t = time.perf_counter(); import ketameta; print(time.perf_counter() - t)"
    walls, first_use = [], []
    use = code.replace("import ketameta;", "import ketameta; ketameta.meta;")
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        walls.append(float(out.stdout.strip() or "nan"))
        out = subprocess.run([sys.executable, "-c", use], capture_output=True, text=True)
        first_use.append(float(out.stdout.strip() or "nan"))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ketameta"],
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # 0: ketameta itself
        rows.append((name.strip(), int(self_us), int(cum_us), depth))
    top = [r[:3] for r in sorted((r for r in rows if r[3] <= 2), key=lambda r: -r[2])]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ketameta; ketameta.meta"],
        capture_output=True,
        text=True,
    )
    heavy = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            self_us, cum_us, name = line.split(":", 1)[1].split("|")
            if len(name) - len(name.lstrip()) == 1:  # imported by ketameta's modules directly
                heavy.append((name.strip(), int(self_us), int(cum_us)))
    heavy.sort(key=lambda r: -r[2])
    return {
        "wall_ms": 1e3 * float(np.median(walls)),
        "first_use_ms": 1e3 * float(np.median(first_use)),
        "top": top[:12],
        "first_use_top": heavy[:10],
    }


#: Why a ketameta row is slower than the fastest peer (shown in RESULTS.md when it is).
WHY_SLOWER = {
    "DL fit, k=20": "meta() validates its input, builds a frozen MetaResult (labels, read-only "
    "copies of yi/vi/weights) and checks metafor's Q-profile search limit; statsmodels and "
    "PyMARE return bare numbers. The numeric core alone is in the 'core' rows.",
    "DL fit, k=2000": "as for k = 20: input checks and the result object; the lean path's "
    "arithmetic is a few passes over 2,000 numbers.",
    "REML fit, k=2000": "ketameta also scans the likelihood for a second local maximum "
    "(metafor's path can miss one) and checks tau2 = 0, which PyMARE does not.",
}


def write_results(path, check, table, mem, imports, machine) -> None:
    """RESULTS.md from one run: machine and load, the interleaved times with ratios, the rows
    slower than the fastest peer (and why), the same-numbers check, memory, import time."""
    lb, la = machine["load_before"], machine["load_after"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{machine['command']}` (one run, started {machine['started']}). "
        f"{machine['cpus']} CPUs; load average (1/5/15 min) before {lb[0]:.2f}/{lb[1]:.2f}/"
        f"{lb[2]:.2f}, after {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} (other jobs on this VM move "
        "absolute times; the implementations of a workload are timed in interleaved rounds, "
        "so their ratios are what to read).",
        "",
        f"BLAS: {machine['blas']}. {machine['r']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
        + ".",
        "",
        "**Timing.** For each workload every implementation (ketameta, statsmodels, PyMARE, "
        "pimeta, PyMetaAnalysis, and metafor, which runs in one persistent `Rscript "
        "benchmarks/metafor_server.R` process and times its own calls) gets one warm-up call "
        "and then repeats in rounds, one repeat of each implementation per round, the order "
        "turned by one place each round, each implementation for as many rounds as its own "
        "2 s budget allows (at most 30; `interleaved()` in run.py). metafor's slow "
        "workloads (seconds per call, from `metafor_bench.R`) and peers slower than 1 s per "
        "call are timed once. Ratio = "
        "implementation time / ketameta time (> 1: ketameta is faster).",
        "",
        "## Times",
        "",
        "```",
        table.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""),
        "```",
        "",
        "## Against the fastest peer",
        "",
        "| workload | ketameta (s) | fastest peer | its time (s) | ketameta faster by |",
        "|---|---|---|---|---|",
    ]
    slower = []
    for name, group in table.groupby("workload", sort=False):
        ours = group[group["implementation"] == "ketameta"]["median_s"]
        others = group[~group["implementation"].str.startswith("ketameta")]
        if ours.empty or others.empty:
            continue
        best = others.loc[others["median_s"].idxmin()]
        factor = best["median_s"] / float(ours.iloc[0])
        lines.append(
            f"| {name} | {float(ours.iloc[0]):.3g} | {best['implementation']} | "
            f"{best['median_s']:.3g} | {factor:.2f}x |"
        )
        if factor < 1:
            slower.append((name, best["implementation"], factor))
    lines += ["", "### Rows slower than the fastest peer", ""]
    if not slower:
        lines.append("None in this run.")
    for name, peer, factor in slower:
        why = WHY_SLOWER.get(name, "not analysed yet.")
        lines.append(f"* **{name}**: {peer} takes {factor:.2f}x ketameta's time. {why}")
    lines += [
        "",
        "## Same numbers?",
        "",
        "Max relative difference against ketameta (quantities 1 and 2: estimate and tau2; "
        "permutation: coefficient and QM; influence: tau2_del and Cook's d; metareg: "
        "coefficients and tau2); n_off = elements differing by > 1e-6 relative / failed fits "
        "(nan) / elements.",
        "",
        "```",
        check.to_string(index=False, float_format=lambda v: f"{v:.2g}"),
        "```",
        "",
        "## Memory",
        "",
        f"Peak RSS of the timing process {machine['rss']:.0f} MiB; R children "
        + ("n/a" if machine["r_rss"] is None else f"{machine['r_rss']:.0f} MiB")
        + ". `ketameta_peak_MiB` above: tracemalloc peak of one ketameta call.",
        "",
    ]
    if mem:
        lines += [
            "Large k (`benchmarks/bench_memory.py`, one fresh process per case; the refits run "
            "in chunks of rows within `ketameta._core.influence.MEMORY_BUDGET` = 256 MB, so "
            "memory grows linearly in k; `traced_peak_MiB`: Python-side allocations of the "
            "call, `peak_rss_MiB`: the whole process, interpreter and libraries included):",
            "",
            "```",
            pd.DataFrame(mem).to_string(index=False, float_format=lambda v: f"{v:.3g}"),
            "```",
            "",
        ]
    lines += [
        "## Import time",
        "",
        f"`import ketameta`: {imports['wall_ms']:.0f} ms (median of 5 fresh processes). "
        "Heaviest top-level imports by cumulative time (`python -X importtime -c "
        "'import ketameta'`, microseconds):",
        "",
        "| module | self | cumulative |",
        "|---|---|---|",
        *(f"| {n.strip()} | {a:,} | {b:,} |" for n, a, b in imports["top"]),
        "",
        f"`import ketameta; ketameta.meta` (the first use, which loads the numeric stack): "
        f"{imports['first_use_ms']:.0f} ms. Its heaviest imports (top level):",
        "",
        "| module | self | cumulative |",
        "|---|---|---|",
        *(f"| {n} | {a:,} | {b:,} |" for n, a, b in imports["first_use_top"]),
        "",
    ]
    # keep the hand-written analysis below the generated part (from its "---" line on)
    previous = path.read_text() if path.exists() else ""
    notes = previous[previous.index("\n---\n") :] if "\n---\n" in previous else ""
    path.write_text("\n".join(lines) + notes)


if __name__ == "__main__":
    main()
