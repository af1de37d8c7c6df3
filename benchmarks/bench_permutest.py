"""Timing of metareg().permutest() (run: python benchmarks/bench_permutest.py).

Workloads: 1,000 random permutations of a k = 20 REML meta-regression with three moderator
columns (synthetic, seeded), and the four exact permutation tests of the reference case
``permutest_exact_bcg`` (metafor 3.8.1 took 71.04 s for those, ``elapsed_seconds_all_permutests``
in its expected.json). Best of 5 wall-clock runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ketameta.synthesis.regression import metareg

CASE = Path(__file__).resolve().parents[1] / "tests" / "reference" / "permutest_exact_bcg"


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    k = 20
    synthetic = pd.DataFrame(
        {
            "yi": rng.normal(0.3, 0.3, k),
            "vi": rng.uniform(0.01, 0.1, k),
            "x": rng.normal(size=k),
            "g": rng.choice(list("abc"), k),
        }
    )
    model = metareg(synthetic, "~ x + C(g)", method="REML")
    t_random = best_of(lambda: model.permutest(n_perm=1000, seed=1))
    data = pd.read_csv(CASE / "input.csv")
    random_alloc = data[data["alloc"] == "random"]
    fits = [
        metareg(data, "~ 1", method="REML"),
        metareg(data, "~ 1", method="REML", test="knha"),
        metareg(random_alloc, "~ ablat", method="REML"),
        metareg(random_alloc, "~ ablat", method="DL"),
    ]
    t_exact = best_of(lambda: [f.permutest(exact=True) for f in fits], repeat=3)
    metafor = json.loads((CASE / "expected.json").read_text())["elapsed_seconds_all_permutests"]
    print(f"1000 random permutations, k=20 REML, p=4: {t_random:.3f} s")
    print(f"exact permutests of permutest_exact_bcg (26,464 fits): {t_exact:.3f} s")
    print(f"  metafor 3.8.1 on the same: {metafor:.2f} s ({metafor / t_exact:.0f}x)")


if __name__ == "__main__":
    main()
