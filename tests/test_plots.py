"""Forest and funnel plots: the figure shows what the result holds."""

import warnings

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from _reference import load_case

from ketameta import escalc, meta, subgroup
from ketameta.plots import forest, funnel, save


@pytest.fixture(scope="module")
def bcg():
    data, _ = load_case("escalc_rr_bcg")
    data["label"] = data["author"] + " " + data["year"].astype(str)
    effects = escalc(
        "RR",
        data=data,
        events1=data["tpos"],
        n1=data["tpos"] + data["tneg"],
        events2=data["cpos"],
        n2=data["cpos"] + data["cneg"],
        direction="lower_is_better",
    )
    effects["n1"], effects["n2"] = data["tpos"] + data["tneg"], data["cpos"] + data["cneg"]
    effects["events1"], effects["events2"] = data["tpos"], data["cpos"]
    return effects


def gid(ax, name):
    return [a for a in [*ax.patches, *ax.lines, *ax.texts] if a.get_gid() == name]


def test_forest_rows_diamond_and_log_axis(bcg):
    res = meta(data=bcg)
    fig = forest(res)
    ax_left, ax, ax_right = fig.axes
    assert len(gid(ax, "study")) == res.k == len(gid(ax, "ci"))
    (diamond,) = gid(ax, "diamond-overall")
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(res.ci_low) and xs.max() == pytest.approx(res.ci_high)
    (pi,) = gid(ax, "pi")
    assert pi.get_xdata().tolist() == pytest.approx([res.pi_low, res.pi_high])
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert {"0.25", "0.5", "1", "2"} <= set(ticks)  # plain, back-transformed tick labels
    texts = [t.get_text() for t in ax_right.texts]
    assert f"{np.exp(res.estimate):.2f} [{np.exp(res.ci_low):.2f}, {np.exp(res.ci_high):.2f}]" in (
        texts
    )
    assert "Aronson 1948" in [t.get_text() for t in ax_left.texts]
    assert "4/123" in [t.get_text() for t in ax_left.texts]  # events/total column
    assert gid(ax, "favours-left")[0].get_text() == "← Favours ketamine"


def test_forest_labels_fit_inside_the_figure(bcg):
    res = meta(data=bcg.assign(label=["Study $x_1$ ^ " + "very long name " * 12] * len(bcg)))
    fig = forest(res, label_chars=40)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    fig_box = fig.bbox
    for text in fig.axes[0].texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= fig_box.x0 - 1 and box.x1 <= fig_box.x1 + 1
    label = [t for t in fig.axes[0].texts if t.get_text().startswith("Study $x_1$")][0]
    assert label.get_text().endswith("…") and len(label.get_text()) <= 40


def test_subgroup_forest_has_blocks_and_the_test(bcg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(bcg, "alloc")
    fig = forest(res)
    ax_left, ax, _ = fig.axes
    assert len(gid(ax, "study")) == 13
    for level in res.levels:
        (d,) = gid(ax, f"diamond-{level}")
        xs = d.get_xy()[:, 0]
        assert xs.min() == pytest.approx(res.results[level].ci_low)
    tests = [t.get_text() for t in ax_left.texts if t.get_gid() == "subgroup-test"]
    assert tests[0].startswith("Test for subgroup differences: χ² = 1.86, df = 2")
    assert "QM = 1.77" in tests[1]


def test_difference_measures_use_a_linear_axis_and_k1_draws():
    with pytest.warns(Warning):
        res = meta([-0.4], [0.05])
    fig = forest(res)
    assert fig.axes[1].get_xscale() == "linear"
    assert len(gid(fig.axes[1], "study")) == 1


def test_ci_past_the_axis_gets_an_arrow():
    res = meta([-0.4, -0.2, 0.1], [0.05, 2.0, 0.04])
    fig = forest(res, xlim=(-1.0, 1.0))
    assert len(gid(fig.axes[1], "ci-arrow")) == 2  # the wide study, both ends


def test_funnel_points_and_filled_studies(bcg):
    res = meta(data=bcg)
    fig = funnel(res, contours=True, filled=(np.array([0.1]), np.array([0.2])))
    ax = fig.axes[0]
    studies = [c for c in ax.collections if c.get_gid() == "studies"][0]
    assert len(studies.get_offsets()) == res.k
    assert len([c for c in ax.collections if c.get_gid() == "filled"][0].get_offsets()) == 1
    assert ax.yaxis_inverted()


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_saving_twice_gives_identical_bytes(tmp_path, suffix):
    fig = forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    a = save(fig, tmp_path / f"a{suffix}").read_bytes()
    b = save(fig, tmp_path / f"b{suffix}").read_bytes()
    assert a == b and len(a) > 1000


def test_plots_leave_global_matplotlib_state_alone(bcg):
    before = dict(mpl.rcParams)
    forest(meta(data=bcg))
    assert dict(mpl.rcParams) == before


def test_result_objects_delegate_to_forest(bcg):
    assert len(meta(data=bcg).plot_forest().axes) == 3
    frame = pd.DataFrame(
        {"yi": [-0.5, -0.2, -0.4, -0.1], "vi": [0.04, 0.05, 0.03, 0.02], "g": ["a", "a", "b", "b"]}
    )
    assert len(subgroup(frame, "g", method="DL").plot_forest().axes) == 3
