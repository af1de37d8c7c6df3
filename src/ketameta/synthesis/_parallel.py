"""Chunks and executors: the shared machinery of ``meta_batch(chunk=, executor=)`` and
``permutest(executor=)``.

A batched workload is cut into chunks of rows; each chunk is one call of a module-level
function (so it pickles for process pools and dask workers), and the chunks come back in order.
``executor`` is ``None`` (the chunks run one after another in this process), any
``concurrent.futures.Executor`` or a ``dask.distributed.Client`` (recognised by duck typing:
dask is never imported here). Every row of a batch is fitted independently of the others, so
the numbers do not depend on the chunk size or on where a chunk runs.

Examples
--------
>>> from concurrent.futures import ThreadPoolExecutor
>>> chunk_bounds(10, 4)
[(0, 4), (4, 8), (8, 10)]
>>> with ThreadPoolExecutor(2) as pool:
...     list(map_chunks(pow, [2, 3, 4], [2, 2, 2], executor=pool))
[4, 9, 16]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ketameta._core.batch import fit_batch

MEMORY_BUDGET = 64 * 2**20  # bytes of working arrays per chunk of meta_batch()
PERMUTATION_CHUNK = 4096  # permuted fits per chunk (the core's own batch size)

# the (n,) arrays of a meta_batch() result, in BatchResult's order (k is counted separately)
BATCH_FIELDS = (
    "estimate", "se", "statistic", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high", "tau2",
    "tau2_ci_low", "tau2_ci_high", "tau", "i2", "i2_ci_low", "i2_ci_high", "h2", "h2_ci_low",
    "h2_ci_high", "q", "q_df", "q_pvalue", "df", "vt", "converged", "se_tau2", "loglik",
)  # fmt: skip
CI_FIELDS = ("tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high", "h2_ci_low", "h2_ci_high")


def default_chunk(k: int, budget: int = MEMORY_BUDGET) -> int:
    """Rows per chunk so that one chunk's working arrays take about ``budget`` bytes.

    A fit of one row of ``k`` studies holds about ``16 k + 64`` float64 values at its peak
    (measured with tracemalloc on REML with Q-profile intervals: 12-17 k-wide temporaries plus
    about 60 scalars per row), so ``chunk = budget // (8 (16 k + 64))``: 21,845 rows for
    k = 20 and the default 64 MiB.

    Examples
    --------
    >>> default_chunk(20)
    21845
    >>> default_chunk(10**9)
    1
    """
    return max(1, int(budget) // (8 * (16 * int(k) + 64)))


def check_chunk(chunk: Any, name: str = "chunk") -> int:
    """``chunk`` as a positive int, or a ValueError naming the argument."""
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"'{name}' must be a positive integer, got {chunk!r}.")
    return int(chunk)


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``chunk`` rows covering ``range(n)``."""
    return [(a, min(a + chunk, n)) for a in range(0, n, chunk)]


class _SubmitGather:
    """An ordered ``map`` over an object with ``submit`` and ``gather`` (a client-like)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def map(self, fn: Callable, *iterables: Iterable) -> Iterator:
        futures = [self._client.submit(fn, *args) for args in zip(*iterables, strict=True)]
        return iter(self._client.gather(futures))


class _ScatterMap:
    """An ordered ``map`` on a dask ``Client``: array chunks are scattered to the workers first
    (straight to them, not through the scheduler inside the task graph); an argument that is
    the same object for every chunk is scattered once. Results are fetched in order and
    released as they are read."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def map(self, fn: Callable, *iterables: Iterable) -> Iterator:
        client, columns = self._client, []
        for values in map(list, iterables):
            if not values or not isinstance(values[0], np.ndarray):
                columns.append(values)
            elif all(x is values[0] for x in values):
                columns.append([client.scatter(values[0], hash=False)] * len(values))
            else:
                columns.append(client.scatter(values, hash=False))
        pending = deque(client.map(fn, *columns, pure=False))

        def results() -> Iterator:
            while pending:
                yield pending.popleft().result()

        return results()


def resolve_executor(executor: Any) -> Any:
    """The object whose ``map`` fans the chunks out, or ``None`` to run them in process.

    A ``dask.distributed.Client`` (anything with ``get_executor`` and ``scatter``) is used
    through its futures, the chunks scattered to the workers; an object with ``get_executor``
    alone gives that executor; one with ``submit`` and ``gather`` but neither is wrapped; any
    other object with ``map`` (a ``concurrent.futures`` executor) is used as it is.
    """
    if executor is None:
        return None
    if callable(getattr(executor, "get_executor", None)):
        if callable(getattr(executor, "scatter", None)):
            return _ScatterMap(executor)
        return executor.get_executor()
    if callable(getattr(executor, "submit", None)) and callable(getattr(executor, "gather", None)):
        return _SubmitGather(executor)
    if callable(getattr(executor, "map", None)):
        return executor
    raise TypeError(
        "'executor' must be a concurrent.futures.Executor or a dask.distributed.Client, "
        f"got {type(executor).__name__}."
    )


def map_chunks(fn: Callable, *iterables: Iterable, executor: Any = None) -> Iterator:
    """``fn`` over the chunks, results in input order: in process or on ``executor``."""
    pool = resolve_executor(executor)
    if pool is None:
        return map(fn, *iterables)
    return pool.map(fn, *iterables)


# --- meta_batch() ------------------------------------------------------------------------


def _raise_first_problem(y: np.ndarray, v: np.ndarray) -> None:
    """The checks of meta_batch() on whole arrays, raising with global rows (error path)."""
    ny, nv = np.isnan(y), np.isnan(v)
    mismatch = np.argwhere(ny != nv)
    if mismatch.size:
        r, c = mismatch[0]
        raise ValueError(
            f"NaN padding must be in both 'yi' and 'vi': row {r}, column {c} is NaN in only one "
            f"({len(mismatch)} such cells)."
        )
    if np.isinf(y).any() or np.isinf(v).any():
        r, c = np.argwhere(np.isinf(y) | np.isinf(v))[0]
        raise ValueError(f"'yi'/'vi' must be finite: row {r}, column {c} is infinite.")
    bad = ~ny & (v <= 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"'vi' must be > 0: row {r}, column {c} is {v[r, c]}.")
    k = (~ny).sum(axis=1)
    if (k == 0).any():
        raise ValueError(f"Rows with no studies: {np.flatnonzero(k == 0).tolist()}.")


def validate_batch(
    y: np.ndarray, v: np.ndarray, bounds: list[tuple[int, int]]
) -> tuple[np.ndarray, bool]:
    """Studies per row (n,) and whether no cell is padding, scanning ``bounds`` chunk by chunk.

    A chunk with any problem sends the whole arrays through the unchunked checks, so the error
    is the one (first cell, global row and column, count of cells) an unchunked scan raises.
    """
    k = np.empty(y.shape[0], dtype=np.int64)
    full = True
    for a, b in bounds:
        ny = np.isnan(y[a:b])
        vc = v[a:b]
        kc = y.shape[1] - ny.sum(axis=1)
        bad = (
            (ny != np.isnan(vc)).any()
            or np.isinf(y[a:b]).any()
            or np.isinf(vc).any()
            or (~ny & (vc <= 0)).any()
            or (kc == 0).any()
        )
        if bad:
            _raise_first_problem(y, v)
        k[a:b] = kc
        full = full and bool(kc.min(initial=y.shape[1]) == y.shape[1])
    return k, full


def fit_rows(
    fit: Callable,
    y: np.ndarray,
    v: np.ndarray,
    padded: bool,
    method: str,
    test: str,
    level: float,
    ci: bool,
) -> dict[str, np.ndarray]:
    """One chunk of meta_batch(): the (m,) result arrays of ``fit`` (``fit_batch``) on rows
    ``y, v``."""
    mask = ~np.isnan(y) if padded else None
    out = fit(y, v, mask=mask, method=method, test=test, level=level, ci_tau2=ci)
    return {key: out[key] for key in BATCH_FIELDS if ci or key not in CI_FIELDS}


def fit_batch_chunked(
    y: np.ndarray,
    v: np.ndarray,
    bounds: list[tuple[int, int]],
    *,
    padded: bool,
    method: str,
    test: str,
    level: float,
    ci: bool,
    executor: Any = None,
    fit: Callable = fit_batch,
) -> dict[str, np.ndarray]:
    """The result arrays of every row, the chunks fitted in order or on ``executor``.

    ``fit`` is the batch fitter (``fit_batch``; the caller's, so that tests can patch it).

    Results are written into preallocated (n,) arrays as chunks arrive, so the peak memory is
    the output plus the working arrays of the chunks in flight.
    """
    n = y.shape[0]
    out = {key: np.empty(n, dtype=bool if key == "converged" else float) for key in BATCH_FIELDS}
    if not ci:
        for key in CI_FIELDS:
            out[key].fill(np.nan)
    m = len(bounds)
    fitted = map_chunks(
        fit_rows,
        [fit] * m,
        [y[a:b] for a, b in bounds],
        [v[a:b] for a, b in bounds],
        [padded] * m,
        [method] * m,
        [test] * m,
        [level] * m,
        [ci] * m,
        executor=executor,
    )
    for (a, b), part in zip(bounds, fitted, strict=True):
        for key, values in part.items():
            out[key][a:b] = values
    return out


# --- permutation tests --------------------------------------------------------------------


def sign_flip_chunk(
    signs: np.ndarray, y: np.ndarray, v: np.ndarray, method: str, test: str, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Statistics (m,) and convergence (m,) of the intercept-only model with flipped signs."""
    out = fit_batch(
        signs * y,
        np.broadcast_to(v, signs.shape),
        method=method,
        test=test,
        level=level,
        ci_tau2=False,
    )
    return np.asarray(out["statistic"]), np.asarray(out["converged"], dtype=bool)


def row_order_chunk(
    orders: np.ndarray,
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    method: str,
    test: str,
    intercept: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficient statistics (m, p), QM (m,) and convergence (m,) of the permuted designs."""
    from ketameta._core.regression import permutation_statistics

    return permutation_statistics(
        y, v, X, orders, method, test=test, intercept=intercept, chunk=PERMUTATION_CHUNK
    )
