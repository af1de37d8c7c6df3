"""The permutation test of ``metareg()``: ``PermutationResult`` and the permutation machinery.

Helpers of `ketameta.synthesis.regression` (which re-exports them): the patterns (sign flips or
row orders) are drawn or enumerated here and fitted in chunks of 4096, in process or on an
executor.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ketameta._core.regression import distinct_permutation_count, distinct_permutations
from ketameta.exceptions import ConvergenceWarning
from ketameta.synthesis import _parallel
from ketameta.synthesis.results import ResultMixin

if TYPE_CHECKING:
    from ketameta.synthesis.regression import MetaRegResult

COMPARE_TOL = math.sqrt(np.finfo(float).eps)  # ties in permutation statistics, as metafor


@dataclass(frozen=True)
class PermutationResult(ResultMixin):
    """Permutation p-values of a meta-regression (metafor's ``permutest()``)."""

    pvalue: pd.Series
    qm_pvalue: float
    n_permutations: int
    exact: bool
    _title = "Permutation test"

    def summary(self) -> pd.DataFrame:
        out = pd.DataFrame({"pvalue_perm": self.pvalue})
        out.loc["QM (omnibus)", "pvalue_perm"] = self.qm_pvalue
        return out


MAX_EXACT = 2_000_000  # exact=True beyond this many permutations would not fit in memory


def _permutest(res: MetaRegResult, n_perm: int, seed: int | None, exact: Any, executor: Any = None):
    if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 2:
        raise ValueError(f"n_perm must be an integer >= 2, got {n_perm!r}")
    if exact not in ("auto", True, False):
        raise ValueError(f"exact must be 'auto', True or False, got {exact!r}")
    k = res.k
    intercept_only = res.p == 1 and res.coef.index[0] == "intrcpt"
    n_patterns = 2**k if intercept_only else distinct_permutation_count(res.X)
    use_exact = n_patterns <= n_perm if exact == "auto" else bool(exact)
    if use_exact and n_patterns > MAX_EXACT:
        raise ValueError(
            f"exact=True needs {n_patterns} permutations (more than {MAX_EXACT}); "
            "use exact=False with n_perm random permutations"
        )
    rng = np.random.default_rng(seed)
    obs_z = np.asarray(res.coef["statistic"])
    if intercept_only:
        signs = (
            np.array(list(itertools.product([1.0, -1.0], repeat=k)))
            if use_exact
            else np.vstack([np.ones(k), rng.choice([-1.0, 1.0], size=(n_perm - 1, k))])
        )
        args = (res.yi, res.vi, res.method, res.test, res.level)
        parts = _map_permutations(_parallel.sign_flip_chunk, signs, args, executor)
        z_perm = np.concatenate([p[0] for p in parts])[:, None]
        qm_perm, qm_obs = z_perm[:, 0] ** 2, obs_z[0] ** 2
        converged = np.concatenate([p[1] for p in parts])
    else:
        orders = (
            distinct_permutations(res.X)
            if use_exact
            else np.vstack(
                [np.arange(k), rng.permuted(np.tile(np.arange(k), (n_perm - 1, 1)), axis=1)]
            )
        )
        args = (res.yi, res.vi, res.X, res.method, res.test, res.coef.index[0] == "intrcpt")
        parts = _map_permutations(_parallel.row_order_chunk, orders, args, executor)
        z_perm, qm_perm, converged = (np.concatenate([p[i] for p in parts]) for i in range(3))
        qm_obs = res.qm
    if not converged.all():
        warnings.warn(
            f"permutest(): {int((~converged).sum())} permuted fits did not converge "
            "(their statistics are used as they stand)",
            ConvergenceWarning,
            stacklevel=3,
        )
    pvals = (np.abs(z_perm) >= np.abs(obs_z) - COMPARE_TOL).mean(axis=0)
    qm_p = float((qm_perm >= qm_obs - COMPARE_TOL).mean())
    return PermutationResult(
        pvalue=pd.Series(pvals, index=res.coef.index, name="pvalue_perm"),
        qm_pvalue=qm_p,
        n_permutations=int(z_perm.shape[0]),
        exact=use_exact,
    )


def _map_permutations(fn: Any, patterns: np.ndarray, args: tuple, executor: Any) -> list:
    """``fn(chunk, *args)`` over chunks of 4096 patterns, in order, in process or on
    ``executor`` (the same chunks either way, so the same numbers)."""
    bounds = _parallel.chunk_bounds(len(patterns), _parallel.PERMUTATION_CHUNK)
    pieces = [patterns[a:b] for a, b in bounds]
    consts = [[a] * len(pieces) for a in args]
    return list(_parallel.map_chunks(fn, pieces, *consts, executor=executor))
