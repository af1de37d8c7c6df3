"""Property-based tests (hypothesis): invariances of ``meta()`` that hold for any data, the batched
fit against single fits, subgroups against separate fits, and the studies file: whatever
``validate_studies`` accepts, ``load_studies`` loads (and whatever it refuses, ``load_studies``
refuses with a named error, never a crash). A few hundred examples in all, a few seconds."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data import fake_studies, write

import ketameta as km
from ketameta.cli import main
from ketameta.exceptions import DataValidationError, KetametaWarning
from ketameta.review.studies import load_studies, read_studies_file, validate_studies

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
METHODS = st.sampled_from(["REML", "DL", "ML", "PM", "EE"])

effect = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
variance = st.floats(1e-3, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def studies(draw, k_min: int = 2, k_max: int = 12):
    k = draw(st.integers(k_min, k_max))
    yi = np.array(draw(st.lists(effect, min_size=k, max_size=k)))
    vi = np.array(draw(st.lists(variance, min_size=k, max_size=k)))
    return yi, vi


def fit(yi, vi, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        return km.meta(yi, vi, **options)


def close(a, b, scale=1.0):
    return a == pytest.approx(b, rel=1e-6, abs=1e-8 * max(1.0, scale))


@FAST
@given(studies(), METHODS, st.randoms(use_true_random=False))
def test_permuting_the_studies_changes_nothing(data, method, rnd):
    yi, vi = data
    order = list(range(yi.size))
    rnd.shuffle(order)
    a, b = fit(yi, vi, method=method), fit(yi[order], vi[order], method=method)
    assert close(a.estimate, b.estimate) and close(a.se, b.se)
    assert close(a.tau2, b.tau2) and close(a.q, b.q)


@FAST
@given(studies(), METHODS, st.floats(-50, 50))
def test_location_shift(data, method, shift):
    yi, vi = data
    a, b = fit(yi, vi, method=method), fit(yi + shift, vi, method=method)
    assert close(b.estimate, a.estimate + shift, scale=abs(shift))
    assert close(b.tau2, a.tau2) and close(b.se, a.se)


@FAST
@given(studies(), METHODS, st.floats(0.05, 20))
def test_scale_equivariance(data, method, factor):
    yi, vi = data
    a, b = fit(yi, vi, method=method), fit(factor * yi, factor**2 * vi, method=method)
    assert close(b.estimate, factor * a.estimate, scale=factor)
    assert close(b.tau2, factor**2 * a.tau2, scale=factor**2)
    assert close(b.statistic, a.statistic) and close(b.i2, a.i2)


@FAST
@given(studies(k_min=1, k_max=30))
def test_reml_tau2_is_finite_and_not_negative(data):
    yi, vi = data
    res = fit(yi, vi, method="REML")
    assert np.isfinite(res.tau2) and res.tau2 >= 0
    assert np.isfinite(res.estimate) and np.isfinite(res.se) and res.se > 0


@settings(max_examples=25, deadline=None)
@given(st.lists(studies(k_min=1, k_max=8), min_size=1, max_size=5), st.sampled_from(["REML", "DL"]))
def test_batch_equals_single_fits(problems, method):
    k = max(y.size for y, _ in problems)
    yi = np.full((len(problems), k), np.nan)
    vi = np.full((len(problems), k), np.nan)
    for i, (y, v) in enumerate(problems):
        yi[i, : y.size], vi[i, : v.size] = y, v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        batch = km.meta_batch(yi, vi, method=method)
    for i, (y, v) in enumerate(problems):
        one = fit(y, v, method=method)
        assert close(batch.estimate[i], one.estimate) and close(batch.se[i], one.se)
        assert close(batch.tau2[i], one.tau2)


@settings(max_examples=25, deadline=None)
@given(
    studies(k_min=4, k_max=14), st.randoms(use_true_random=False), st.sampled_from(["DL", "REML"])
)
def test_subgroup_levels_equal_separate_fits(data, rnd, method):
    yi, vi = data
    groups = ["a", "b"] + [rnd.choice(["a", "b", "c"]) for _ in range(yi.size - 2)]
    rnd.shuffle(groups)
    df = pd.DataFrame({"yi": yi, "vi": vi, "g": groups})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetametaWarning)
        res = km.subgroup(df, "g", method=method)
    assert set(res.levels) == set(groups)
    for level in res.levels:
        part = df[df["g"] == level]
        one = fit(part["yi"].to_numpy(), part["vi"].to_numpy(), method=method)
        assert close(res.results[level].estimate, one.estimate)
        assert close(res.results[level].tau2, one.tau2)


# ---------------------------------------------------------------------------- the studies file

CELLS = {
    "route": ["iv", " iv ", "IV", "intranasal\t", "nasal", ""],
    "primary": ["true", "TRUE ", " False", "yes", "1", ""],
    "n1": ["30", " 30 ", "30.0", "2_0", "\uff13\uff10", "30,5", "-3", "nan", "1e2", ""],
    "sd1": ["7.5", " 7.50", ".5", "-1", "7,5", "inf", "1e-3", "x"],
    "year": ["2020", "2020 ", "1899", "20.5", "2020.0", "two"],
    "design": ["parallel_rct", " parallel_rct", "single_arm", "rct"],
}
cell_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=8)
edits = st.lists(
    st.tuples(
        st.sampled_from(sorted(CELLS)),
        st.integers(0, 2),
        st.one_of(st.sampled_from(sorted({v for vs in CELLS.values() for v in vs})), cell_text),
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(edits)
def test_what_validates_loads(changes):
    df = fake_studies()
    for column, row, value in changes:
        df.loc[row, column] = value
    with tempfile.TemporaryDirectory() as folder:
        path = write(df, Path(folder) / "studies.csv")
        problems = validate_studies(read_studies_file(path))
        if problems:
            with pytest.raises(DataValidationError):
                load_studies(path)
            return
        studies = load_studies(path)  # validate OK implies the load succeeds
        assert len(studies) == 3
        assert studies["primary"].map(type).eq(bool).all()
        assert set(studies["route"]) <= {"iv", "intranasal", "oral", "im", "sc", "sublingual"}
        for column in ("n1", "sd1", "year"):
            assert pd.api.types.is_numeric_dtype(studies[column])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["validate-data", str(path)]) == 0
