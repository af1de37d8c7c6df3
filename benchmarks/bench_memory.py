"""Peak memory of leave-one-out, influence and cumulative at large k (one process per case).

Run from the repository root: ``python benchmarks/bench_memory.py [--quick]``. Each case runs
in a fresh Python process (so its peak RSS is its own) and reports the wall time, the peak of
Python-side allocations (``tracemalloc``, which sees numpy buffers) and the peak RSS
(``VmHWM`` of /proc/self/status, else ``getrusage``) including the interpreter and the
imported libraries (~130 MiB).
The refits run in chunks of rows within ``ketameta._core.influence.MEMORY_BUDGET`` (256 MB),
so the peak grows linearly in k. Data as run.py: ``vi ~ U(0.01, 0.2)``,
``yi ~ N(0.3, 0.1 + vi)``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = (  # (function, method, k)
    ("leave_one_out", "DL", 10_000),
    ("leave_one_out", "REML", 10_000),
    ("influence", "DL", 10_000),
    ("cumulative", "DL", 10_000),
    ("leave_one_out", "DL", 100_000),
)

CHILD = r"""
import json, resource, sys, time, tracemalloc
def hwm():  # this process's peak RSS in MiB (VmHWM; ru_maxrss keeps the parent's across exec)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import numpy as np
import ketameta as km
from ketameta.synthesis import sensitivity
fn, method, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(5)
vi = rng.uniform(0.01, 0.2, k)
yi = rng.normal(0.3, np.sqrt(0.1 + vi))
res = km.meta(yi, vi, method=method)
base = hwm()
tracemalloc.start()
start = time.perf_counter()
table = getattr(sensitivity, fn)(res)
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
rss = hwm()
print(json.dumps({"function": fn, "method": method, "k": k, "seconds": seconds,
                  "traced_peak_MiB": peak, "peak_rss_MiB": rss, "rss_before_MiB": base,
                  "rows": len(table)}))
"""


def run(cases=CASES) -> list[dict]:
    out = []
    for fn, method, k in cases:
        print(f"memory: {fn} {method} k={k:,} ...", flush=True)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, fn, method, str(k)],
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            continue
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k = 10,000 cases only")
    args = parser.parse_args()
    cases = [c for c in CASES if not (args.quick and c[2] > 10_000)]
    for row in run(cases):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
