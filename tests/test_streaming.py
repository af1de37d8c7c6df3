"""meta_batch(chunk=): chunked fits are exactly the unchunked ones, messages name global rows,
and the memory in use follows the chunk, not the number of rows."""

import tracemalloc
import warnings
from dataclasses import fields

import numpy as np
import pytest

from ketameta.exceptions import ConvergenceWarning
from ketameta.synthesis import _parallel
from ketameta.synthesis.pooling import meta_batch


def _batch(n, k, seed, ragged=True):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.01, 0.2, (n, k))
    yi = rng.normal(0.3, np.sqrt(0.1 + vi))
    if ragged:  # row i keeps a random subset of at least one study
        pad = rng.random((n, k)) < 0.3
        pad[np.arange(n), rng.integers(0, k, n)] = False
        yi[pad], vi[pad] = np.nan, np.nan
    return yi, vi


def assert_batch_equal(got, want):
    for f in fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name, strict=True)
        else:
            assert a == b, f.name


@pytest.mark.parametrize("method", ["REML", "DL", "PM", "FE"])
@pytest.mark.parametrize("ragged", [True, False])
def test_chunked_equals_one_chunk_exactly(method, ragged):
    yi, vi = _batch(103, 9, seed=1, ragged=ragged)
    whole = meta_batch(yi, vi, method=method, test="knha", chunk=len(yi))
    for chunk in (1, 2, 7, 10, 50, 102, 103, 500, None):  # 1, non-divisors, n, > n, default
        assert_batch_equal(meta_batch(yi, vi, method=method, test="knha", chunk=chunk), whole)


def test_chunked_without_intervals_equals_one_chunk():
    yi, vi = _batch(64, 6, seed=2)
    whole = meta_batch(yi, vi, ci=False, chunk=64)
    assert np.isnan(whole.tau2_ci_low).all() and np.isnan(whole.h2_ci_high).all()
    assert_batch_equal(meta_batch(yi, vi, ci=False, chunk=5), whole)


def test_a_padded_row_gets_the_fit_of_its_studies_alone():
    yi, vi = _batch(40, 8, seed=3)
    res = meta_batch(yi, vi, chunk=3)
    row = 29
    keep = ~np.isnan(yi[row])
    one = meta_batch(yi[row : row + 1, keep], vi[row : row + 1, keep])
    assert res.k[row] == keep.sum() == one.k[0]
    assert res.estimate[row] == pytest.approx(one.estimate[0], rel=1e-12)
    assert res.tau2[row] == pytest.approx(one.tau2[0], rel=1e-9, abs=1e-14)


def test_non_converging_rows_are_named_by_their_global_index(monkeypatch):
    import ketameta.synthesis.pooling as pooling

    real = pooling.fit_batch
    marker = 99.0  # rows whose first yi is the marker "do not converge"

    def fake(yi, vi, **kw):
        out = real(yi, vi, **kw)
        out["converged"] = out["converged"] & (np.asarray(yi)[:, 0] != marker)
        return out

    monkeypatch.setattr(pooling, "fit_batch", fake)
    yi, vi = _batch(30, 5, seed=4, ragged=False)
    yi[[7, 23], 0] = marker
    with pytest.warns(ConvergenceWarning, match=r"for rows \[7, 23\]\.") as record:
        res = meta_batch(yi, vi, chunk=4)
    assert len([w for w in record if issubclass(w.category, ConvergenceWarning)]) == 1
    assert np.flatnonzero(~res.converged).tolist() == [7, 23]


@pytest.mark.parametrize(
    ("row", "col", "edit", "message"),
    [
        (17, 2, ("vi", 0.0), r"'vi' must be > 0: row 17, column 2 is 0.0"),
        (13, 1, ("yi", np.inf), r"must be finite: row 13, column 1 is infinite"),
        (21, 4, ("yi", np.nan), r"row 21, column 4 is NaN in only one \(1 such cells\)"),
    ],
)
def test_input_errors_name_global_rows(row, col, edit, message):
    yi, vi = _batch(25, 6, seed=5, ragged=False)
    name, value = edit
    (yi if name == "yi" else vi)[row, col] = value
    with pytest.raises(ValueError, match=message):
        meta_batch(yi, vi, chunk=4)


def test_rows_without_studies_are_listed_globally_and_first_problem_wins():
    yi, vi = _batch(25, 3, seed=6, ragged=False)
    yi[[11, 19]], vi[[11, 19]] = np.nan, np.nan
    with pytest.raises(ValueError, match=r"Rows with no studies: \[11, 19\]"):
        meta_batch(yi, vi, chunk=4)
    # a later chunk's NaN mismatch is reported before an earlier chunk's infinity, as unchunked
    yi, vi = _batch(25, 3, seed=6, ragged=False)
    yi[2, 0], vi[22, 1] = np.inf, np.nan
    with pytest.raises(ValueError, match=r"row 22, column 1 is NaN in only one"):
        meta_batch(yi, vi, chunk=4)


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True])
def test_bad_chunk_is_refused(chunk):
    yi, vi = _batch(5, 3, seed=7)
    with pytest.raises(ValueError, match="'chunk' must be a positive integer"):
        meta_batch(yi, vi, chunk=chunk)


def test_the_default_chunk_follows_the_memory_budget():
    assert _parallel.default_chunk(20) == 64 * 2**20 // (8 * (16 * 20 + 64))
    assert _parallel.default_chunk(20, budget=2**20) == 341
    assert _parallel.default_chunk(10**9) == 1


def _peak(fn):
    tracemalloc.start()
    try:
        res = fn()
        return res, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streamed_peak_memory_follows_the_output_not_the_rows():
    n, k = 200_000, 20
    yi, vi = _batch(n, k, seed=8, ragged=False)  # 2 x 32 MB of input, allocated before tracing
    meta_batch(yi[:10], vi[:10], method="DL")  # warm up: lazy imports are not the batch's memory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res, peak = _peak(lambda: meta_batch(yi, vi, method="DL", chunk=5000))
    output = sum(a.nbytes for a in vars(res).values() if isinstance(a, np.ndarray))
    assert output == n * (25 * 8 + 8 + 1)  # 25 float arrays, k (int64), converged (bool)
    # the output plus one chunk's working arrays (5000 rows x ~400 values x 8 bytes = 16 MB)
    assert peak < 1.5 * output, (peak / 1e6, output / 1e6)
    # whereas all rows at once hold k-wide intermediates of every row
    whole, peak_whole = _peak(lambda: meta_batch(yi, vi, method="DL", chunk=n))
    assert peak_whole > 2 * output, (peak_whole / 1e6, output / 1e6)
    np.testing.assert_array_equal(whole.estimate, res.estimate)
