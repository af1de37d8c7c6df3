"""The performance paths give the batched engine's numbers: the lean single fit
(``_core/fastpath.py``), the deferred intervals of ``MetaResult`` and the memory-bounded
chunks of leave-one-out / influence / cumulative. No timing here (see benchmarks/)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from ketameta._core import influence as core_influence
from ketameta._core.batch import fit_batch
from ketameta._core.fastpath import deferred, fit_one
from ketameta._core.tau2 import METHODS
from ketameta.synthesis.pooling import meta

RTOL = 1e-12


def _problems():
    rng = np.random.default_rng(17)
    out = []
    for i in range(40):
        k = int(rng.integers(2, 60))
        vi = rng.uniform(0.01, 0.2, k) * 10 ** rng.uniform(-3, 3)
        if i % 4 == 0:
            vi = vi * 10 ** rng.uniform(-3, 3, k)  # vi spanning orders of magnitude
        yi = rng.normal(0.3, np.sqrt(rng.uniform(0, 0.3) + vi)) * 10 ** rng.uniform(-2, 2)
        out.append((yi, vi))
    out.append((np.array([0.1, 0.1, 0.1]), np.array([0.02, 0.03, 0.04])))  # tau2 = 0
    out.append((np.array([-3.16, 0.0, 3.16]), np.array([0.01, 0.01, 0.01])))  # at the limit
    return out


PROBLEMS = _problems()


def _close(got, ref, key, scale=1.0):
    got, ref = np.asarray(got, float), np.asarray(ref, float)
    assert np.isnan(got).tolist() == np.isnan(ref).tolist(), key
    ok = ~np.isnan(ref)
    # p-values: relative error of the statistic times its square (the normal tail)
    rtol = 1e-10 if key == "pvalue" else RTOL
    # bounds near 0 (estimate - half width) cancel: compare at the scale of the estimate
    atol = 0.0
    if key in ("ci_low", "ci_high", "pi_low", "pi_high", "estimate", "statistic"):
        atol = RTOL * scale  # the data's scale: max |yi| + sqrt(max vi)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=rtol, atol=atol + 1e-300, err_msg=key)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["z", "knha"])
def test_lean_fit_equals_the_batched_engine(method, test):
    lean = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for yi, vi in PROBLEMS:
            scale = float(np.max(np.abs(yi)) + np.sqrt(np.max(vi)))
            ref = fit_batch(yi, vi, method=method, test=test)
            got = fit_one(yi, vi, method=method, test=test)
            if got is None:  # declined: meta() uses fit_batch itself
                continue
            lean += 1
            got.update(
                deferred(
                    yi, vi, method=method, level=95.0, tau2=got["tau2"], vt=got["vt"],
                )
            )  # fmt: skip
            for key, value in got.items():
                if key.startswith("_") or key in ("iterations", "ci_converged"):
                    continue
                if key.endswith("_ci"):
                    _close(value[0], ref[key[:-3] + "_ci_low"], key)
                    _close(value[1], ref[key[:-3] + "_ci_high"], key)
                else:
                    _close(value, ref[key], key, scale)
    if method != "DLIT":  # DLIT has no lean version
        assert lean >= len(PROBLEMS) - 3


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "EE"])
def test_meta_intervals_are_deferred_and_identical(method):
    yi, vi = PROBLEMS[3]
    res = meta(yi, vi, method=method)
    assert res._deferred is not None  # nothing computed yet
    ref = fit_batch(yi, vi, method=method)
    for name in ("tau2", "tau", "i2", "h2"):
        pair = getattr(res, f"{name}_ci")
        _close(pair[0], ref[f"{name}_ci_low"], name)
        _close(pair[1], ref[f"{name}_ci_high"], name)
    for name in ("se_tau2", "loglik", "deviance", "aic", "bic", "aicc"):
        _close(getattr(res, name), ref[name], name)
    assert res._deferred is None  # computed once, inputs dropped
    table = res.summary()
    np.testing.assert_equal(table["tau2_ci_low"].iloc[0], res.tau2_ci[0])
    fresh = meta(yi, vi, method=method)  # printed before any interval was read
    assert str(fresh) == str(res)
    if method != "EE":
        assert "tau^2" in str(res)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.tau2_ci = (0.0, 1.0)


def test_given_intervals_are_kept():
    yi, vi = PROBLEMS[3]
    res = meta(yi, vi)
    copy = dataclasses.replace(res, level=res.level)
    np.testing.assert_equal([copy.tau2_ci, copy.aic], [res.tau2_ci, res.aic])


def test_large_k_uses_the_batched_engine_and_agrees():
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.01, 0.2, 5000)
    yi = rng.normal(0.3, np.sqrt(vi + 0.1))
    res = meta(yi, vi, method="REML")
    ref = fit_batch(yi, vi, method="REML")
    _close(res.tau2, ref["tau2"], "tau2")
    _close(res.tau2_ci[1], ref["tau2_ci_high"], "tau2_ci")


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
@pytest.mark.parametrize("test", ["z", "knha"])
@pytest.mark.parametrize("which", [0, 4, 5])
def test_chunked_refits_equal_one_batch(method, test, which):
    yi, vi = PROBLEMS[which]
    k = yi.size
    scale = float(np.max(np.abs(yi)) + np.sqrt(np.max(vi)))
    small = 8 * 32 * k * 3  # three rows per chunk
    loo = core_influence.leave_one_out(yi, vi, method=method, test=test, budget=small)
    mask = ~np.eye(k, dtype=bool)
    ref = fit_batch(
        np.broadcast_to(yi, (k, k)), np.broadcast_to(vi, (k, k)), mask=mask, method=method,
        test=test, ci_tau2=False,
    )  # fmt: skip
    keys = ("estimate", "se", "statistic", "ci_low", "ci_high", "pi_low", "pi_high", "tau2")
    for key in (*keys, "q", "i2", "h2", "vt", "df", "k", "q_df"):
        _close(loo[key], ref[key], key, scale)
    _close(loo["pvalue"], ref["pvalue"], "pvalue")
    if method == "PM":
        return
    order = np.argsort(yi)
    cum = core_influence.cumulative(yi, vi, order, method=method, test=test, budget=small)
    ref = fit_batch(
        np.broadcast_to(yi[order], (k, k)), np.broadcast_to(vi[order], (k, k)),
        mask=np.tril(np.ones((k, k), dtype=bool)), method=method, test=test, ci_tau2=False,
    )  # fmt: skip
    for key in ("estimate", "se", "tau2", "q"):
        _close(cum[key], ref[key], key, scale)
    assert core_influence.chunk_rows(100_000) >= 1
