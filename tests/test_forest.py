"""Forest plots: the figure shows what the result holds (rows, labels, extents, axis scale)."""

import dataclasses
import math
import warnings

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from _reference import load_case
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ketameta import escalc, meta, meta_mh, meta_peto, subgroup
from ketameta.plots import forest, save

BCG_ARMS = {"events1": "tpos", "n1": "n1", "events2": "cpos", "n2": "n2"}


@pytest.fixture(scope="module")
def bcg():
    data, _ = load_case("escalc_rr_bcg")
    data["label"] = data["author"] + " " + data["year"].astype(str)
    data["n1"], data["n2"] = data["tpos"] + data["tneg"], data["cpos"] + data["cneg"]
    return escalc(
        "RR",
        data=data,
        events1="tpos",
        n1="n1",
        events2="cpos",
        n2="n2",
        direction="lower_is_better",
    )


@pytest.fixture(scope="module")
def bcg_by_alloc(bcg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return subgroup(bcg, "alloc")


def gid(ax, name):
    return [a for a in [*ax.patches, *ax.lines, *ax.texts] if a.get_gid() == name]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def drawn(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_bcg_rows_diamond_pi_and_log_axis(bcg):
    res = meta(data=bcg)
    fig = forest(res, arm_columns=BCG_ARMS)
    ax_left, ax, ax_right = fig.axes
    assert len(gid(ax, "study")) == res.k == len(gid(ax, "ci")) == 13
    (diamond,) = gid(ax, "diamond-overall")
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(math.exp(res.ci_low), rel=1e-12)
    assert xs.max() == pytest.approx(math.exp(res.ci_high), rel=1e-12)
    (pi,) = gid(ax, "pi")
    assert pi.get_xdata() == pytest.approx([math.exp(res.pi_low), math.exp(res.pi_high)])
    assert ax.get_xscale() == "log"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert {"0.25", "0.5", "1", "2"} <= set(ticks)
    pooled = f"{math.exp(res.estimate):.2f} [{math.exp(res.ci_low):.2f}, "
    assert pooled + f"{math.exp(res.ci_high):.2f}]" in texts(ax_right)
    # each study's square sits at exp(yi) with the text of the same numbers on its row
    studies = res.studies()
    squares = sorted(gid(ax, "study"), key=lambda a: -a.get_ydata()[0])
    assert [s.get_xdata()[0] for s in squares] == pytest.approx(np.exp(studies["yi"]))
    assert "Aronson 1948" in texts(ax_left)
    assert "4/123" in texts(ax_left) and "11/139" in texts(ax_left)  # events/total per arm
    assert f"{studies['weight'][0]:.1f}%" in texts(ax_right)
    assert gid(ax, "favours-left")[0].get_text() == "← Favours ketamine"
    assert gid(ax, "favours-right")[0].get_text() == "Favours control →"


def test_square_area_follows_the_weight(bcg):
    res = meta(data=bcg)
    squares = sorted(gid(forest(res).axes[1], "study"), key=lambda a: -a.get_ydata()[0])
    sides = np.array([s.get_markersize() for s in squares])
    ratio = (sides / sides.max()) ** 2
    assert ratio == pytest.approx(res.weights / res.weights.max())


def test_difference_measure_linear_axis_and_sign_convention():
    frame = pd.DataFrame({"yi": [-0.5, -0.2, -0.4], "vi": [0.04, 0.05, 0.03]})
    frame.attrs.update(measure="SMD", favours_group1="positive")
    res = meta(data=frame)
    fig = forest(res, group_labels=("esketamine", "placebo"))
    ax = fig.axes[1]
    assert ax.get_xscale() == "linear"
    # positive favours group 1: group 1 is on the right
    assert gid(ax, "favours-left")[0].get_text() == "← Favours placebo"
    assert gid(ax, "favours-right")[0].get_text() == "Favours esketamine →"
    (diamond,) = gid(ax, "diamond-overall")
    assert diamond.get_xy()[:, 0].min() == pytest.approx(res.ci_low, rel=1e-12)
    assert ax.xaxis.label.get_text().startswith("Standardized mean difference")


def test_no_favours_labels_without_a_sign_convention():
    fig = forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]))
    assert gid(fig.axes[1], "favours-left") == []


def test_text_stays_inside_the_figure_and_columns_do_not_overlap(bcg):
    long = "Study $x_1$ ^ {y} " + "very long name " * 13  # 200+ characters, with markup
    assert len(long) >= 200
    res = meta(data=bcg.assign(label=[long + str(i) for i in range(len(bcg))]))
    fig = forest(res, arm_columns=BCG_ARMS, label_chars=40, title="A $title$ with_markup^")
    renderer = drawn(fig)
    for ax in fig.axes:
        for text in [*ax.texts, *fig.texts]:
            box = text.get_window_extent(renderer)
            assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, text.get_text()
            assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, text.get_text()
    ax_left = fig.axes[0]
    label = [t for t in ax_left.texts if t.get_text().startswith("Study $x_1$")][0]
    assert label.get_text().endswith("…") and len(label.get_text()) <= 40
    assert not label.get_parse_math()  # shown literally, not as mathtext
    # the label and the arm columns of one row are side by side, not on top of each other
    row_y = label.get_position()[1]
    same_row = sorted(
        (t.get_window_extent(renderer) for t in ax_left.texts if t.get_position()[1] == row_y),
        key=lambda b: b.x0,
    )
    assert len(same_row) == 3
    for a, b in zip(same_row, same_row[1:], strict=False):
        assert a.x1 < b.x0


@pytest.mark.parametrize("k", [3, 30, 100])
def test_height_follows_the_rows_and_rows_do_not_overlap(k):
    rng = np.random.default_rng(k)
    res = meta(
        rng.normal(-0.3, 0.2, k), rng.uniform(0.01, 0.1, k), labels=[f"S{i}" for i in range(k)]
    )
    fig = forest(res)
    renderer = drawn(fig)
    boxes = sorted(
        (t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_text().startswith("S")),
        key=lambda b: b.y0,
    )
    assert len(boxes) == k
    assert all(a.y1 <= b.y0 for a, b in zip(boxes, boxes[1:], strict=False))
    rows = k + 4  # studies, blank, diamond, prediction interval, heterogeneity
    assert fig.get_figheight() == pytest.approx(0.25 * (rows + 0.6) + 0.95 + 0.12 + 0.25)


def test_subgroup_forest_blocks_diamonds_and_tests(bcg_by_alloc):
    res = bcg_by_alloc
    fig = forest(res, arm_columns=BCG_ARMS)
    ax_left, ax, _ = fig.axes
    assert len(gid(ax, "study")) == 13
    assert sum(r.k for r in res.results.values()) == 13
    for level in res.levels:
        (d,) = gid(ax, f"diamond-{level}")
        xs = d.get_xy()[:, 0]
        assert xs.min() == pytest.approx(math.exp(res.results[level].ci_low), rel=1e-12)
        assert xs.max() == pytest.approx(math.exp(res.results[level].ci_high), rel=1e-12)
        assert f"alloc: {level}" in texts(ax_left)
    (overall,) = gid(ax, "diamond-overall")
    assert overall.get_xy()[:, 0].min() == pytest.approx(math.exp(res.overall.ci_low))
    het = [t.get_text() for t in gid(ax_left, "heterogeneity")]
    assert len(het) == len(res.levels) + 1
    assert f"I² = {res.results['random'].i2:.1f}%" in het[1]
    tests = [t.get_text() for t in gid(ax_left, "subgroup-test")]
    sep, com = res.test_separate, res.test_common
    assert tests[0].startswith("Test for subgroup differences (separate τ², Wald)")
    assert f"Q = {sep.statistic:.2f}, df = {sep.df:g}, p = {sep.pvalue:.3f}" in tests[0]
    assert f"QM = {com.statistic:.2f}, df = {com.df:g}" in tests[1]


def test_empty_and_single_study_subgroups_still_draw(bcg_by_alloc):
    res = bcg_by_alloc
    empty = dataclasses.replace(res, levels=(*res.levels, "none"))
    fig = forest(empty)
    assert [t.get_text() for t in gid(fig.axes[0], "empty")] == ["no studies in this subgroup"]
    assert len(gid(fig.axes[1], "study")) == 13
    with pytest.raises(ValueError, match="no subgroups"):
        forest(dataclasses.replace(res, results={}, overall=None))


def test_single_study_subgroup_is_shown_not_pooled():
    frame = pd.DataFrame(
        {"yi": [-0.5, -0.2, -0.4, -0.1], "vi": [0.04, 0.05, 0.03, 0.02], "g": ["a", "a", "a", "b"]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = subgroup(frame, "g", method="DL")
    fig = forest(res)
    assert len(gid(fig.axes[1], "study")) == 4
    assert gid(fig.axes[1], "diamond-b") == []
    assert [t.get_text() for t in gid(fig.axes[0], "not-pooled")] == ["k = 1: shown, not pooled"]


def test_single_study_meta_draws_without_pi():
    with pytest.warns(Warning):
        res = meta([-0.4], [0.05])
    fig = forest(res)
    assert len(gid(fig.axes[1], "study")) == 1 and gid(fig.axes[1], "pi") == []
    # one study: no pooled diamond, no "100%" weight
    assert gid(fig.axes[1], "diamond-overall") == []
    assert "single study: shown, not pooled" in texts(fig.axes[0])
    assert "Weight" not in texts(fig.axes[2]) and "100.0%" not in texts(fig.axes[2])


def test_subgroup_levels_in_words_and_tests_can_be_left_out():
    df = pd.DataFrame({"yi": [-0.5, -0.3, -0.4, -0.1], "vi": [0.04, 0.05, 0.03, 0.04],
                       "route": ["iv", "iv", "intranasal", "intranasal"]})
    res = subgroup(df, "route")
    fig = forest(res, level_labels={"iv": "Intravenous"}, subgroup_tests=False)
    left = texts(fig.axes[0])
    assert "Intravenous" in left and "route: intranasal" in left
    assert not any("Test for subgroup differences" in t for t in left)
    assert any("Test for subgroup differences" in t for t in texts(forest(res).axes[0]))


def test_cis_past_the_axis_get_arrows_and_infinite_bounds_draw():
    res = meta([-0.4, -0.2, 0.1], [0.05, 2.0, 0.04])
    fig = forest(res, xlim=(-1.0, 1.0))
    assert len(gid(fig.axes[1], "ci-arrow")) == 2  # the wide study, both ends
    # automatic limits: a whisker far wider than the estimates' spread is cut, with arrows
    assert len(gid(forest(res).axes[1], "ci-arrow")) == 2
    narrow = meta([-0.4, -0.2, 0.1], [0.05, 0.06, 0.04])
    assert gid(forest(narrow).axes[1], "ci-arrow") == []
    infinite = dataclasses.replace(narrow, ci_high=math.inf)
    fig = forest(infinite)
    ax = fig.axes[1]
    (diamond,) = gid(ax, "diamond-overall")
    assert np.isfinite(diamond.get_xy()).all()
    assert diamond.get_xy()[:, 0].max() == pytest.approx(ax.get_xlim()[1])
    assert len(gid(ax, "ci-arrow")) == 1
    assert any(t.endswith(", ∞]") for t in texts(fig.axes[2]))


def test_sorting_columns_and_bad_options(bcg):
    res = meta(data=bcg)
    fig = forest(res, sort="effect")
    labels = [t for t in texts(fig.axes[0]) if t in set(res.labels)]
    assert labels == [res.labels[i] for i in np.argsort(res.yi, kind="stable")]
    fig = forest(res, sort="year", columns={"ablat": "Latitude"})
    labels = [t for t in texts(fig.axes[0]) if t in set(res.labels)]
    assert labels == [res.labels[i] for i in np.argsort(bcg["year"].to_numpy(), kind="stable")]
    assert "Latitude" in [t.get_text() for t in fig.texts] and "44" in texts(fig.axes[0])
    with pytest.raises(ValueError, match="columns: 'nope'"):
        forest(res, columns=["nope"])
    with pytest.raises(ValueError, match="sort"):
        forest(res, sort="size")
    with pytest.raises(ValueError, match="sort='year'"):
        forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03]), sort="year")
    with pytest.raises(ValueError, match="xlim"):
        forest(res, xlim=(0.0, 2.0))
    with pytest.raises(ValueError, match="arm_columns: 'tp'"):
        forest(res, arm_columns={"events1": "tp"})


def test_mantel_haenszel_forest_common_effect_weights_and_no_pi():
    frame = load_case("escalc_rr_bcg")[0]
    frame["n1"], frame["n2"] = frame["tpos"] + frame["tneg"], frame["cpos"] + frame["cneg"]
    res = meta_mh("tpos", "n1", "cpos", "n2", data=frame, measure="RR")
    ax_left, ax, ax_right = forest(res).axes
    assert len(gid(ax, "study")) == 13 and not gid(ax, "pi")
    (diamond,) = gid(ax, "diamond-overall")
    assert diamond.get_xy()[:, 0].min() == pytest.approx(res.exp_ci_low, rel=1e-12)
    assert "Overall (common effect, Mantel-Haenszel; k = 13)" in texts(ax_left)
    (het,) = gid(ax_left, "heterogeneity")
    assert "τ²" not in het.get_text() and f"Q = {res.q:.2f}, df = 12" in het.get_text()
    # weights are metafor's MH weights, one per row; squares scale with them
    assert [f"{w:.1f}%" for w in res.weights] == [
        t.get_text() for t in ax_right.texts if t.get_gid() == "cell-weight"
    ]
    assert "4/123" in texts(ax_left) and "11/139" in texts(ax_left)


def test_peto_forest_shows_the_table_left_out_without_drawing_it():
    frame = load_case("binary_mh_peto_nielweise2007_zerocells")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = meta_peto("ai", "n1i", "ci", "n2i", data=frame)
    ax_left, ax, ax_right = forest(res).axes
    assert len(gid(ax, "study")) == len(gid(ax, "ci")) == 17  # 18 tables, one not estimable
    assert texts(ax_right).count("not estimable") == 1
    assert "Overall (common effect, Peto; k = 18)" in texts(ax_left)


def test_continuous_arms_from_escalc_inputs():
    out = escalc(
        "SMD",
        m1=[-14.0, -10.0],
        sd1=[9.0, 8.0],
        n1=[30, 20],
        m2=[-8.0, -7.0],
        sd2=[10.0, 9.0],
        n2=[30, 22],
        favours_group1="negative",
    )
    fig = forest(meta(data=out))
    headers = [t.get_text() for t in fig.texts]
    assert headers.count("Mean (SD)") == 2 and headers.count("n") == 2
    assert "−14.0 (9.0)" in texts(fig.axes[0]) and "22" in texts(fig.axes[0])


def test_plots_leave_global_matplotlib_state_alone(bcg):
    before = dict(mpl.rcParams)
    fig = forest(meta(data=bcg), title="x")
    drawn(fig)
    assert dict(mpl.rcParams) == before


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_saving_twice_gives_identical_bytes(tmp_path, bcg_by_alloc, suffix):
    fig = forest(bcg_by_alloc, title="BCG")
    a = save(fig, tmp_path / f"a{suffix}").read_bytes()
    b = save(forest(bcg_by_alloc, title="BCG"), tmp_path / f"b{suffix}").read_bytes()
    assert a == b and len(a) > 1000


def test_save_rejects_other_formats(tmp_path):
    with pytest.raises(ValueError, match="unsupported file type '.jpg'"):
        save(forest(meta([-0.5, -0.2, -0.4], [0.04, 0.05, 0.03])), tmp_path / "x.jpg")


def test_result_objects_delegate_to_forest(bcg, bcg_by_alloc):
    assert len(gid(meta(data=bcg).plot_forest().axes[1], "study")) == 13
    fig = bcg_by_alloc.plot_forest()
    assert len(gid(fig.axes[1], "diamond-overall")) == 1


def test_columns_can_be_switched_off(bcg):
    fig = forest(meta(data=bcg), arm_columns=BCG_ARMS, show_arms=False, show_weights=False)
    headers = [t.get_text() for t in fig.texts]
    assert "Events/Total" not in headers and "Weight" not in headers and "RR [95% CI]" in headers
    assert not any(t.endswith("%") for t in texts(fig.axes[2]))
