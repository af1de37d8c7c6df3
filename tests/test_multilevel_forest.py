"""The multilevel forest plot: study blocks with their records beneath and the pooled diamond."""

from matplotlib.backends.backend_agg import FigureCanvasAgg

from ketameta.plots.multilevel import forest_mv


def test_blocks_records_and_diamond():
    fig = forest_mv(
        [-0.5, -0.3, -0.4], [-0.9, -0.7, -0.7], [-0.1, 0.1, -0.1], ["A 2001", "A 2001", "B 2002"],
        ["24 h", "day 7", "24 h"], estimate=-0.4, ci=(-0.6, -0.2),
    )  # fmt: skip
    FigureCanvasAgg(fig).draw()
    ax, right, left = fig.axes
    headings = [t.get_text() for t in left.texts if t.get_gid() == "study-heading"]
    assert headings == ["A 2001", "B 2002"]  # one block per study, in order
    records = [line for line in ax.lines if line.get_gid() == "record"]
    assert len(records) == 3
    # the records sit beneath their study's heading
    y_heading = {t.get_text(): t.get_position()[1] for t in left.texts if t.get_gid()}
    y_records = sorted((line.get_ydata()[0] for line in records), reverse=True)
    assert y_heading["A 2001"] > y_records[0] > y_records[1] > y_heading["B 2002"] > y_records[2]
    assert any(p.get_gid() == "diamond-overall" for p in ax.patches)
    texts = [t.get_text() for t in right.texts]
    assert "−0.40 [−0.60, −0.20]" in texts or "-0.40 [-0.60, -0.20]" in texts


def test_meta_mv_records_give_the_plotted_intervals():
    import numpy as np

    import ketameta as km

    yi, vi = np.array([-0.5, -0.3, -0.4, -0.2]), np.array([0.04, 0.05, 0.03, 0.06])
    import pandas as pd

    df = pd.DataFrame({"yi": yi, "vi": vi, "study": ["a", "a", "b", "c"], "es": [1, 2, 3, 4]})
    rows = km.meta_mv("yi", "vi", data=df, random="~ 1 | study/es").records()
    np.testing.assert_allclose(rows["ci_low"], yi - 1.959963984540054 * np.sqrt(vi), rtol=1e-12)
    np.testing.assert_allclose(rows["vi"], vi)
