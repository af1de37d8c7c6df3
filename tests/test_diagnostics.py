"""baujat() against metafor, and the diagnostic plots read their tables."""

import warnings

import numpy as np
import pytest
from _reference import ATOL_NEAR_ZERO, RTOL_CLOSED_FORM, RTOL_ITERATIVE, load_case

from ketameta import meta
from ketameta.plots.diagnostics import baujat_plot, estimates_plot, gosh_plot
from ketameta.synthesis.sensitivity import baujat, gosh, leave_one_out


@pytest.mark.parametrize("case", ["diagnostics_bcg_logrr", "diagnostics_hackshaw1998_logor"])
@pytest.mark.parametrize("method", ["REML", "FE"])
def test_baujat_matches_metafor(case, method):
    data, expected = load_case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = meta(data=data, method=method)
    ours, ref = baujat(res), expected[f"baujat_{method}"]
    rtol = RTOL_CLOSED_FORM if method == "FE" else RTOL_ITERATIVE
    np.testing.assert_allclose(ours["x"], ref["x"], rtol=rtol, atol=ATOL_NEAR_ZERO)
    np.testing.assert_allclose(ours["y"], ref["y"], rtol=rtol, atol=ATOL_NEAR_ZERO)


def test_diagnostic_plots_show_every_row():
    data, _ = load_case("diagnostics_bcg_logrr")
    res = meta(data=data)
    loo = leave_one_out(res)
    fig = estimates_plot(loo, reference=res.estimate)
    ax = fig.axes[0]
    assert len([ln for ln in ax.lines if ln.get_gid() == "ci"]) == res.k
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in loo.index]
    b = baujat(res)
    assert len(baujat_plot(b).axes[0].collections[0].get_offsets()) == res.k
    g = gosh(res)
    assert gosh_plot(g).axes[0].collections  # hexbin for 8191 subsets


def test_influence_panel_has_eight_measures_and_marks_flags():
    from ketameta.plots.diagnostics import influence_panel
    from ketameta.synthesis.sensitivity import influence

    data, _ = load_case("diagnostics_hackshaw1998_logor")
    table = influence(meta(data=data, method="FE"))
    fig = influence_panel(table)
    assert [ax.get_title() for ax in fig.axes][:3] == ["rstudent", "DFFITS", "Cook's distance"]
    marked = fig.axes[0].collections[1].get_offsets()
    assert len(marked) == int(table["influential"].sum())
