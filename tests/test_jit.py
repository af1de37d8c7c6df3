"""The compiled kernels (numba, ``_core/_jit_kernels.py``) against the numpy engine they replace.

Each kernel is the numpy solver's loop with the per-row sums fused, so the two agree to
rounding: every output of ``fit_batch`` on a batch that mixes padded rows, tau² = 0, k = 2,
vi over three decades and bimodal likelihoods; the kernels one by one; and the switch itself
(``KETAMETA_JIT=0``, :func:`ketameta._core.jit.enabled`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from test_batch_speed_equal import _batch, _boundary_batch
from test_numerics_hard import _bimodal_batch

from ketameta._core import iterative, jit
from ketameta._core.arrays import normalize, prepare
from ketameta._core.batch import fit_batch

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
SWITCHED_OFF = os.environ.get("KETAMETA_JIT", "1").strip().lower() in ("0", "false", "no", "off")
needs_numba = pytest.mark.skipif(
    not HAVE_NUMBA or SWITCHED_OFF, reason="numba is not installed, or KETAMETA_JIT=0"
)


@needs_numba
def test_kernels_load_where_numba_is_installed():
    # a kernel module that fails to compile or import would silently leave the numpy engine
    assert jit.kernels() is not None

KEYS_EXACT = ("k", "converged", "ci_low_found", "ci_high_found", "ci_low_at_limit")


def _problems():
    yi, vi = _batch()
    yield "mixed, NaN padding as data", yi, vi, None
    yield "mixed, masked", yi, vi, ~np.isnan(yi)
    yield "boundary", *_boundary_batch(), None
    yield "bimodal", *_bimodal_batch(n=200, seed=11), None


def _compare(got, ref, name):
    for key, want in ref.items():
        have = got[key]
        if key in KEYS_EXACT or want.dtype == bool:
            np.testing.assert_array_equal(have, want, err_msg=f"{name} {key}")
            continue
        if key == "iterations":
            continue  # a borderline stopping test may fall one step apart
        # rounding of a sum over k terms, amplified near flat roots: relative 1e-10, or
        # 1e-13 of the data's scale for values near 0 (tau² = 0 stays exactly 0)
        finite = np.abs(want[np.isfinite(want)])
        scale = 1e-13 * max(1.0, float(finite.max()) if finite.size else 1.0)
        np.testing.assert_allclose(
            have, want, rtol=1e-10, atol=scale if key != "tau2" else 1e-15, equal_nan=True,
            err_msg=f"{name} {key}",
        )  # fmt: skip
    zeros = ref["tau2"] == 0.0
    np.testing.assert_array_equal(got["tau2"] == 0.0, zeros, err_msg=f"{name} tau2 == 0")


@needs_numba
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_fit_batch_with_kernels_equals_numpy_engine(method):
    assert jit.kernels() is not None
    for name, yi, vi, mask in _problems():
        got = fit_batch(yi, vi, mask=mask, method=method)
        with jit.enabled(False):
            assert jit.kernels() is None
            ref = fit_batch(yi, vi, mask=mask, method=method)
        _compare(got, ref, f"{method} {name}")
        same = np.mean(got["iterations"] == ref["iterations"])
        assert same >= 0.97, (name, same)  # the same steps, not merely the same roots


@needs_numba
def test_kernels_one_by_one():
    kern = jit.kernels()
    yi, vi = _batch(seed=5)
    y, v, m, k = prepare(yi, vi, ~np.isnan(yi))
    y, v, _, _ = normalize(y, v, m)
    n = y.shape[0]
    rng = np.random.default_rng(2)
    t = 10 ** rng.uniform(-3, 1, n)
    tgt = rng.uniform(1, 20, n)
    f, s = kern.q_and_slope(y, v, m, t, tgt)
    with jit.enabled(False):
        f0, s0 = iterative._q_and_slope(y, v, m, t, tgt)
        up = iterative.score_root_upper(y, v, m, True)
        grid, _ = iterative.scan_grid(v, m, up)
        g0 = iterative.score_on_grid(y, v, m, grid, True)
        fs0 = iterative.fisher_scoring(y, v, m, np.full(n, 0.1), reml=True, upper=up)
    np.testing.assert_allclose(f, f0, rtol=1e-12, atol=1e-12 * np.max(np.abs(tgt)))
    np.testing.assert_allclose(s, s0, rtol=1e-12)
    g = kern.score_on_grid(y, v, m, grid, True)
    np.testing.assert_allclose(g, g0, rtol=1e-9, atol=1e-9 * np.nanmax(np.abs(g0)))
    tau2, ok, its = kern.fisher_rows(y, v, m, np.full(n, 0.1), up, True, 1e-12, 1000)
    np.testing.assert_array_equal(ok, fs0[1])
    np.testing.assert_allclose(tau2, fs0[0], rtol=1e-10, atol=1e-15)
    assert np.mean(its == fs0[2]) >= 0.97


@needs_numba
@pytest.mark.parametrize("method", ["PM", "DL"])
def test_q_equation_searches_equal_numpy(method):
    # PM solves Q(tau²) = k - 1 from scratch (no Q(0), no limit, no start point); DL's
    # Q-profile interval starts from nothing known but Q(0) at the FE weights
    for name, yi, vi, mask in _problems():
        got = fit_batch(yi, vi, mask=mask, method=method)
        with jit.enabled(False):
            ref = fit_batch(yi, vi, mask=mask, method=method)
        _compare(got, ref, f"{method} {name}")


@needs_numba
def test_kernel_reports_non_convergence_per_row():
    y, v = _bimodal_batch(n=20, seed=4)
    out = fit_batch(y, v, method="REML", maxiter=2)
    rows = np.flatnonzero(~out["converged"])
    assert rows.size and (out["iterations"][rows] == 2).all()
    with jit.enabled(False):
        ref = fit_batch(y, v, method="REML", maxiter=2)
    np.testing.assert_array_equal(out["converged"], ref["converged"])


@pytest.mark.parametrize("value", ["0", "off"])
def test_environment_switch_turns_the_kernels_off(value):
    code = (
        "import numpy as np; from ketameta._core import jit; from ketameta import meta_batch;"
        "r = meta_batch(np.array([[0.1, 0.5, 0.9]]), np.array([[0.01, 0.02, 0.03]]));"
        "print(jit.kernels() is None, 'numba' in __import__('sys').modules)"
    )
    env = {**os.environ, "KETAMETA_JIT": value}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def test_import_does_not_load_numba():
    code = "import ketameta, sys; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
