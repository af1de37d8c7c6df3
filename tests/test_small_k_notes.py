"""Pools of few studies: the Hartung-Knapp caution with the z interval (2-4 studies) and the
Bayesian result with a prior-sensitivity line (2-5 studies), with the library's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ketameta import meta, meta_bayes
from ketameta.review.findings import BAYES_MAX_STUDIES, BAYES_PRIORS, small_k_note
from ketameta.review.report.words import interval, num, ratio_interval


def _pool(k: int, measure: str = "SMD", seed: int = 4):
    rng = np.random.default_rng(seed)
    vi = rng.uniform(0.03, 0.2, k)
    yi = rng.normal(-0.4, np.sqrt(0.04 + vi))
    return meta(yi, vi, method="REML", test="knha", measure=measure)


def _bayes_text(res, name, scale):
    b = meta_bayes(res.yi, res.vi, tau_prior=name, tau_scale=scale or 0.5)
    if res.measure in ("RR", "OR"):
        return f"{num(math.exp(b.estimate))} {ratio_interval(b.ci_low, b.ci_high)}"
    return f"{num(b.estimate)} {interval(b.ci_low, b.ci_high)} with a {b.prior} prior on tau"


@pytest.mark.parametrize("k", [2, 3, 4])
def test_two_to_four_studies_get_the_z_interval_and_three_priors(k):
    res = _pool(k)
    note = small_k_note(res, k)
    z = meta(res.yi, res.vi, method="REML", test="z")
    assert note.startswith(f"Only {k} studies") and "Hartung-Knapp" in note
    assert f"with a z test the 95% CI is {interval(z.ci_low, z.ci_high)}" in note
    for name, scale in BAYES_PRIORS["SMD"]:
        assert _bayes_text(res, name, scale) in note
    assert note.count("prior on tau") == 3


def test_five_studies_get_the_bayesian_line_without_the_hartung_knapp_caution():
    assert BAYES_MAX_STUDIES == 5
    res = _pool(5)
    note = small_k_note(res, 5)
    assert note.startswith("Bayesian: ")
    assert "Hartung-Knapp" not in note
    name, scale = BAYES_PRIORS["SMD"][0]
    assert _bayes_text(res, name, scale) in note


def test_six_studies_get_no_note():
    assert small_k_note(_pool(6), 6) == ""


def test_ratio_pools_are_shown_on_the_ratio_scale():
    res = _pool(3, measure="RR")
    note = small_k_note(res, 3)
    b = meta_bayes(res.yi, res.vi, tau_prior="half-normal", tau_scale=0.5)
    assert ratio_interval(b.ci_low, b.ci_high) in note
    assert interval(b.ci_low, b.ci_high) not in note  # not on the log scale
