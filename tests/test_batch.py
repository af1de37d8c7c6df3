"""fit_batch / meta_batch: many meta-analyses at once give exactly the one-at-a-time numbers.

The one-at-a-time path (meta()) is itself checked against metafor in
test_pooling_reference.py, so agreement here carries the metafor match over to batches.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import load_case

from ketameta._core.batch import fit_batch
from ketameta._core.pooling import pool
from ketameta.exceptions import ConvergenceWarning, SingleStudyWarning
from ketameta.synthesis.pooling import meta, meta_batch
from ketameta.synthesis.results import BatchResult

RTOL_SAME = 1e-10  # batch vs single path: same arithmetic, summation order may differ slightly
ATOL_SAME = 1e-12

CASES = ("rma_methods_bcg_logrr", "rma_methods_hackshaw1998_logor", "rma_methods_normand1999_smd")
METHODS = ("EE", "DL", "HE", "HS", "HSk", "SJ", "ML", "REML", "EB", "PM", "PMM", "DLIT", "SJIT")

SCALARS = {
    "k": "k",
    "estimate": "estimate",
    "se": "se",
    "statistic": "statistic",
    "pvalue": "pvalue",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "pi_low": "pi_low",
    "pi_high": "pi_high",
    "tau2": "tau2",
    "tau": "tau",
    "i2": "i2",
    "h2": "h2",
    "q": "q",
    "q_pvalue": "q_pvalue",
    "vt": "vt",
}
INTERVALS = {"tau2_ci": "tau2_ci", "tau_ci": "tau_ci", "i2_ci": "i2_ci", "h2_ci": "h2_ci"}


def _stacked():
    """The three reference data sets as one NaN-padded (3, 37) batch."""
    rows = [load_case(name)[0] for name in CASES]
    width = max(len(r) for r in rows)
    yi = np.full((len(rows), width), np.nan)
    vi = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        yi[i, : len(r)] = r["yi"]
        vi[i, : len(r)] = r["vi"]
    return yi, vi, [r["yi"].to_numpy() for r in rows], [r["vi"].to_numpy() for r in rows]


YI, VI, Y_LIST, V_LIST = _stacked()


def _assert_same(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL_SAME, atol=ATOL_SAME, err_msg=what)


@pytest.mark.parametrize("test", ["z", "knha"])
@pytest.mark.parametrize("method", METHODS)
def test_meta_batch_equals_one_at_a_time(method, test):
    batch = meta_batch(YI, VI, method=method, test=test)
    assert isinstance(batch, BatchResult)
    for i, (y, v) in enumerate(zip(Y_LIST, V_LIST, strict=True)):
        single = meta(y, v, method=method, test=test)
        for name in SCALARS:
            _assert_same(getattr(batch, name)[i], getattr(single, name), f"{name} row {i}")
        if method != "EE":
            _assert_same(batch.tau2_ci_low[i], single.tau2_ci[0], f"tau2_ci_low row {i}")
            _assert_same(batch.tau2_ci_high[i], single.tau2_ci[1], f"tau2_ci_high row {i}")
            _assert_same(batch.i2_ci_low[i], single.i2_ci[0], f"i2_ci_low row {i}")
            _assert_same(batch.h2_ci_high[i], single.h2_ci[1], f"h2_ci_high row {i}")
        else:
            assert np.isnan(batch.tau2_ci_low[i]) and np.isnan(single.tau2_ci[0])


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
def test_meta_batch_without_cis_keeps_every_estimate(method):
    full = meta_batch(YI, VI, method=method)
    fast = meta_batch(YI, VI, method=method, ci=False)
    for name in (*SCALARS, "se_tau2", "loglik"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(full, name), err_msg=name)
    for name in ("tau2_ci_low", "tau2_ci_high", "i2_ci_low", "i2_ci_high", "h2_ci_low"):
        assert np.isnan(getattr(fast, name)).all() and np.isfinite(getattr(full, name)).all()


@pytest.mark.parametrize("method", ["DL", "REML", "PM", "ML", "DLIT"])
def test_mask_equals_the_unmasked_subset(method):
    rng = np.random.default_rng(7)
    y, v = Y_LIST[1], V_LIST[1]  # hackshaw, k = 37
    masks = rng.random((50, y.size)) < 0.6
    masks[:, :2] = True  # at least two studies each
    out = fit_batch(np.broadcast_to(y, masks.shape), np.broadcast_to(v, masks.shape),
                    mask=masks, method=method, test="knha")  # fmt: skip
    for i in range(0, 50, 7):
        sub = fit_batch(y[masks[i]], v[masks[i]], method=method, test="knha")
        for key in ("estimate", "se", "tau2", "q", "i2", "pi_low", "tau2_ci_low", "tau2_ci_high"):
            _assert_same(out[key][i], sub[key], f"{key} mask {i}")
        _assert_same(out["weights"][i][masks[i]], sub["weights"], f"weights mask {i}")
        assert np.all(out["weights"][i][~masks[i]] == 0)


def test_leading_axes_of_any_rank():
    y = np.stack([Y_LIST[0][:9], Y_LIST[2]]).reshape(2, 1, 9)
    v = np.stack([V_LIST[0][:9], V_LIST[2]]).reshape(2, 1, 9)
    out = fit_batch(y, v, method="REML")
    assert out["estimate"].shape == (2, 1)
    assert out["weights"].shape == (2, 1, 9)
    single = meta(Y_LIST[2], V_LIST[2], method="REML")
    _assert_same(out["estimate"][1, 0], single.estimate, "estimate")
    _assert_same(out["tau2_ci_high"][1, 0], single.tau2_ci[1], "tau2_ci_high")


def test_many_random_problems_all_converge_and_match_singles():
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.01, 0.2, size=(300, 15))
    yi = rng.normal(0.2, np.sqrt(vi + rng.choice([0.0, 0.01, 0.2], size=(300, 1))))
    out = fit_batch(yi, vi, method="REML")
    assert out["converged"].all() and out["ci_converged"].all()
    for i in (0, 17, 123, 299):
        single = meta(yi[i], vi[i], method="REML")
        _assert_same(out["tau2"][i], single.tau2, f"tau2 {i}")
        _assert_same(out["ci_high"][i], single.ci_high, f"ci_high {i}")


def test_ci_tau2_false_skips_the_interval():
    out = fit_batch(YI[:, :9], VI[:, :9], method="DL", ci_tau2=False)
    assert "tau2_ci_low" not in out
    assert out["tau2"].shape == (3,)


def test_summary_has_one_row_per_meta_analysis():
    res = meta_batch(YI, VI, method="REML")
    table = res.summary()
    assert isinstance(table, pd.DataFrame)
    assert len(table) == len(res) == 3
    assert table["k"].tolist() == [13, 37, 9]
    assert {"estimate", "ci_low", "tau2", "tau2_ci_low", "i2", "q_pvalue"} <= set(table.columns)
    _assert_same(table["estimate"].to_numpy(), res.estimate, "summary estimate")
    assert "Batch of meta-analyses" in res._repr_html_()


def test_pool_weights_are_percent_and_sum_to_100():
    out = pool(YI, VI, np.array([0.1, 0.02, 0.5]), mask=~np.isnan(YI))
    np.testing.assert_allclose(out["weights"].sum(axis=-1), 100.0)


def test_meta_batch_warns_naming_rows_that_did_not_converge(monkeypatch):
    import ketameta.synthesis.pooling as analysis

    real = analysis.fit_batch
    monkeypatch.setattr(analysis, "fit_batch", lambda *a, **kw: real(*a, **{**kw, "maxiter": 1}))
    with pytest.warns(ConvergenceWarning, match=r"rows \[0, 1, 2\]"):
        meta_batch(YI, VI, method="REML")


@pytest.mark.parametrize(
    ("yi", "vi", "message"),
    [
        (np.ones(3), np.ones(3), "must be 2-D"),
        (np.ones((2, 3)), np.ones((2, 4)), "same shape"),
        ([[0.1, np.nan]], [[0.1, 0.2]], "NaN in only one"),
        ([[0.1, np.inf]], [[0.1, 0.2]], "infinite"),
        ([[0.1, 0.2]], [[0.1, 0.0]], r"'vi' must be > 0: row 0, column 1"),
        ([[0.1, 0.2], [np.nan, np.nan]], [[0.1, 0.2], [np.nan, np.nan]], r"no studies: \[1\]"),
    ],
)
def test_meta_batch_rejects_bad_input(yi, vi, message):
    with pytest.raises(ValueError, match=message):
        meta_batch(yi, vi)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "XX"}, "Unknown 'method'"),
        ({"test": "hk"}, "Unknown 'test'"),
        ({"level": 0}, "'level'"),
        ({"level": 100}, "'level'"),
    ],
)
def test_meta_batch_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        meta_batch(YI, VI, **kwargs)


@pytest.mark.parametrize("test", ["z", "knha"])
def test_single_study_rows_get_tau2_zero_and_the_z_interval(test):
    yi = np.array([[0.3, np.nan, np.nan], [0.1, 0.2, 0.4]])
    vi = np.array([[0.05, np.nan, np.nan], [0.02, 0.03, 0.04]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = meta_batch(yi, vi, method="REML", test=test)
    assert res.k.tolist() == [1, 3]
    assert res.tau2[0] == 0.0 and res.estimate[0] == 0.3
    assert res.se[0] == pytest.approx(np.sqrt(0.05), rel=1e-15)
    assert np.isnan(res.tau2_ci_low[0]) and np.isnan(res.df[0])
    with pytest.warns(SingleStudyWarning):
        single = meta([0.3], [0.05], test=test)
    _assert_same(res.ci_low[0], single.ci_low, "ci_low")
    _assert_same(res.pvalue[0], single.pvalue, "pvalue")
    _assert_same(res.pi_high[0], single.pi_high, "pi_high")
