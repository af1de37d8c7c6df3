"""The review's CHE model matches metafor + clubSandwich on the same effects
(tests/reference/che_review, script tests/reference/_scripts/12_che_review.R)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _reference import load_case

from ketameta.review.che import CHE_RHO, che, che_effects
from ketameta.review.studies import load_studies


@pytest.fixture(scope="module")
def case():
    return load_case("che_review")


def test_the_reference_input_is_what_the_review_computes_now(case):
    data, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effects, _ = che_effects(load_studies())
    now = effects[["study_id", "record_id", "yi", "vi"]].reset_index(drop=True)
    assert now["record_id"].tolist() == data["record_id"].tolist(), (
        "the CHE records changed: regenerate tests/reference/che_review with "
        "12_che_review.R on the new che_effects() output"
    )
    np.testing.assert_allclose(now["yi"], data["yi"], rtol=1e-12)
    np.testing.assert_allclose(now["vi"], data["vi"], rtol=1e-12)


def test_che_matches_metafor_and_clubsandwich(case):
    data, expected = case
    studies = load_studies()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = che(studies, rho=CHE_RHO)
    model, rob = result.model, result.robust
    assert result.k == len(data) and result.studies == data["study_id"].nunique()
    assert model.estimate == pytest.approx(expected["b"][0], rel=1e-6)
    assert model.se == pytest.approx(expected["se"][0], rel=1e-6)
    np.testing.assert_allclose(model.sigma2, expected["sigma2"], rtol=1e-5)
    assert model.loglik == pytest.approx(expected["logLik"], rel=1e-8)
    coef = rob.coef.iloc[0]
    cr2 = expected["CR2"]
    assert coef["se"] == pytest.approx(cr2["SE"][0], rel=1e-6)
    assert rob.df[0] == pytest.approx(cr2["df"][0], rel=1e-6)
    assert coef["pvalue"] == pytest.approx(cr2["p"][0], rel=1e-6)


def test_the_working_covariance_is_metafors_vcalc(case):
    from ketameta.synthesis.multilevel import vcalc

    data, expected = case
    V = vcalc(data["vi"].to_numpy(), data["study_id"].to_numpy(),
              obs=data["record_id"].to_numpy(), rho=CHE_RHO)  # fmt: skip
    np.testing.assert_allclose(V, np.asarray(expected["V"], dtype=float), rtol=1e-12, atol=1e-15)
    assert isinstance(data, pd.DataFrame)
