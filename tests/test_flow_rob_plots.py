"""PRISMA flow diagram and risk-of-bias figures: their content, their layout and bad input."""

import itertools

import matplotlib as mpl
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ketameta.plots.flow import HEADINGS, prisma_flow
from ketameta.plots.rob import JUDGEMENTS, ROB2_DOMAINS, rob_summary_bar, rob_traffic_light

REASONS = {
    "Review or commentary, not a primary study": 3,
    "Case report or withdrawn trial (no participants, no outcomes)": 2,
    "No ketamine-vs-control contrast, or a pooled re-analysis of included trials": 2,
}
COUNTS = {
    "identified": 80,
    "screened": 80,
    "excluded": REASONS,
    "awaiting": 38,
    "included_studies": 35,
    "included_records": 88,
    "per_analysis": {"overall": 15, "route": 15, "psychotherapy": 3},
}
STUDIES = [
    "Berman 2000", "Zarate 2006", "Diazgranados 2010", "Murrough 2013", "Lapidus 2014",
    "Feder 2014", "Hu 2016", "Singh 2016", "Grunebaum 2018", "Daly 2018", "Canuso 2018",
    "Fedgchin 2019", "Fu 2020 (ASPIRE I)", "Ionescu 2021 (ASPIRE II)", "Wilkinson 2021",
]  # fmt: skip
OVERALL = ["some_concerns"] * 15
OVERALL[4] = OVERALL[14] = "high"
OVERALL[10] = "low"
DOMAIN_ROWS = [
    {"study": "A 2019", "D1": "low", "D2": "some_concerns", "D3": "low", "D4": "high",
     "D5": "", "overall": "high"},
    {"study": "B 2020", "D1": "Some concerns", "D2": "low", "D3": None, "D4": "low",
     "D5": "low", "overall": "some_concerns"},
    {"study": "C 2021", "D1": "LOW", "D2": "low", "D3": "low", "D4": "low", "D5": "low",
     "overall": "low"},
]  # fmt: skip


def texts(fig: Figure, gid: str | None = None) -> list[str]:
    """Every text of the figure (no-break spaces as spaces), optionally only those with ``gid``."""
    found = [t for t in fig.findobj(mpl.text.Text) if gid is None or t.get_gid() == gid]
    return [t.get_text().replace("\u00a0", " ") for t in found if t.get_text()]


def gids(fig: Figure, prefix: str) -> list[str]:
    return [a.get_gid() for a in fig.axes[0].patches if (a.get_gid() or "").startswith(prefix)]


def extents(fig: Figure, dpi: float, objects):
    fig.set_dpi(dpi)
    renderer = FigureCanvasAgg(fig).get_renderer()
    return [o.get_window_extent(renderer) for o in objects]


def overlap(a, b, tol: float = 0.5) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


# ---------------------------------------------------------------- PRISMA flow


def test_flow_shows_every_number_and_reason():
    fig = prisma_flow(COUNTS, title="Study flow")
    shown = " ".join(texts(fig))
    for phrase in [
        "Records identified (n = 80)",
        "Records screened (n = 80)",
        "Records excluded (n = 7)",
        "Studies awaiting classification (n = 38)",
        "Studies included in review (n = 35)",
        "Reports of included studies (n = 88)",
        "overall (k = 15)",
        "route (k = 15)",
        "psychotherapy (k = 3)",
    ]:
        assert phrase in shown, phrase
    joined = " ".join(" ".join(texts(fig, "text-excluded")).replace("• ", "").split())
    for reason, n in REASONS.items():  # long reasons may wrap: compare word sequences
        assert f"{reason} (n = {n})" in joined
    assert "Study flow" in texts(fig, "title")
    assert sorted(texts(fig, "phase-label")) == ["Identification", "Included", "Screening"]


def test_flow_boxes_and_arrows():
    fig = prisma_flow(COUNTS)
    boxes = gids(fig, "box-")
    assert sorted(boxes) == ["box-awaiting", "box-excluded", "box-identified", "box-included",
                             "box-screened"]  # fmt: skip
    # identified -> screened -> included (down), screened -> excluded, trunk -> awaiting (across)
    assert len(gids(fig, "arrow")) == 4
    with_dups = prisma_flow({**COUNTS, "duplicates_removed": 4})
    assert "box-duplicates_removed" in gids(with_dups, "box-")
    assert len(gids(with_dups, "arrow")) == 5
    assert "• Duplicate records removed (n = 4)" in texts(with_dups)


def test_flow_arrows_point_down_the_main_column_and_across_to_the_side():
    fig = prisma_flow(COUNTS)
    box = {p.get_gid(): p for p in fig.axes[0].patches}
    main, side = box["box-screened"], box["box-excluded"]
    down = across = 0
    for a in (p for p in fig.axes[0].patches if p.get_gid() == "arrow"):
        (x0, y0), (x1, y1) = a._posA_posB  # start and end, in data coordinates (inches)
        if x0 == x1:  # down the middle of the main column
            down += 1
            assert y1 < y0 and x0 == pytest.approx(main.get_x() + main.get_width() / 2)
        else:  # across, ending at the side column's left edge
            across += 1
            assert y0 == y1 and x1 > x0
            assert main.get_x() < x0 <= main.get_x() + main.get_width() + 1e-9
            assert x1 == pytest.approx(side.get_x())
    assert (down, across) == (2, 2)


@pytest.mark.parametrize("dpi", [72, 100, 150, 300])
def test_flow_text_stays_inside_its_box_and_nothing_overlaps(dpi):
    counts = {
        **COUNTS,
        "identified": {
            "Earlier systematic reviews and meta-analyses": 52,
            "PubMed": 21,
            "Trial registries (ClinicalTrials.gov, ISRCTN)": 7,
        },  # fmt: skip
        "duplicates_removed": 0,
        "awaiting": {
            "Numbers only in figures; the authors were contacted for the data": 30,
            "Full text not available": 8,
        },  # fmt: skip
    }
    fig = prisma_flow(counts, title="A long title for the flow diagram")
    ax = fig.axes[0]
    boxes = {p.get_gid(): p for p in ax.patches if p.get_gid().startswith("box-")}
    names = list(boxes)
    box_ext = dict(zip(names, extents(fig, dpi, boxes.values()), strict=True))
    for a, b in itertools.combinations(names, 2):
        assert not overlap(box_ext[a], box_ext[b]), (a, b)
    body = [t for t in ax.texts if t.get_gid().startswith("text-")]
    text_ext = extents(fig, dpi, body)
    for t, e in zip(body, text_ext, strict=True):
        inside = box_ext["box-" + t.get_gid()[5:]]
        assert inside.x0 < e.x0 and e.x1 < inside.x1 and inside.y0 < e.y0 and e.y1 < inside.y1, (
            t.get_text()
        )
    for (t, e), (u, f) in itertools.combinations(zip(body, text_ext, strict=True), 2):
        assert not overlap(e, f, tol=1.0), (t.get_text(), u.get_text())
    fig_box = fig.bbox
    for e in extents(fig, dpi, ax.texts):
        assert fig_box.x0 <= e.x0 and e.x1 <= fig_box.x1 and fig_box.y0 <= e.y0 <= fig_box.y1


def test_flow_missing_keys_leave_their_boxes_out():
    fig = prisma_flow({"screened": 80, "included_studies": 35})
    assert sorted(gids(fig, "box-")) == ["box-included", "box-screened"]
    assert len(gids(fig, "arrow")) == 1
    assert sorted(texts(fig, "phase-label")) == ["Included", "Screening"]
    # no screened box: the main line runs on from the box above to the side box
    no_screened = prisma_flow({"identified": 10, "excluded": 3})
    assert sorted(gids(no_screened, "box-")) == ["box-excluded", "box-identified"]
    assert len(gids(no_screened, "arrow")) == 1
    assert [ln.get_gid() for ln in no_screened.axes[0].lines] == ["trunk"]
    # nothing above a side box: no arrow into it
    alone = prisma_flow({"excluded": 3, "included_studies": 5})
    assert len(gids(alone, "arrow")) == 0
    # the trunk ends at a side box when no main box follows it
    end = prisma_flow({"screened": 80, "awaiting": {"no numbers": 38}})
    assert len(gids(end, "arrow")) == 1
    assert [ln.get_gid() for ln in end.axes[0].lines] == ["trunk"]


def test_flow_breakdowns_and_labels():
    fig = prisma_flow(
        {"identified": {"Databases": 60, "Registers": 20}, "awaiting": 38},
        labels={"awaiting": "Studies awaiting numbers"},
    )
    shown = texts(fig)
    assert "Records identified (n = 80) from:" in shown
    assert "• Databases (n = 60)" in shown and "• Registers (n = 20)" in shown
    assert "Studies awaiting numbers (n = 38)" in shown
    assert set(HEADINGS) == {*COUNTS, "duplicates_removed"}


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ({"screened": -1}, r"counts\['screened'\]: a count must be a non-negative"),
        ({"excluded": {"no control": -2}}, r"counts\['excluded'\]\['no control'\]"),
        ({"per_analysis": {"route": 2.5}}, r"counts\['per_analysis'\]\['route'\]"),
        ({"per_analysis": 3}, r"counts\['per_analysis'\]: expected a mapping"),
        ({"included_studies": True}, r"counts\['included_studies'\]"),
        ({"included_studies": "35"}, r"counts\['included_studies'\]"),
        ({"screenned": 80}, r"unknown key\(s\) \['screenned'\]"),
        ({}, "no box to draw"),
    ],
)
def test_flow_bad_input(counts, match):
    with pytest.raises(ValueError, match=match):
        prisma_flow(counts)


def test_flow_bad_label_key():
    with pytest.raises(ValueError, match=r"labels: unknown key\(s\) \['waiting'\]"):
        prisma_flow(COUNTS, labels={"waiting": "x"})


def test_flow_renders(tmp_path):
    before = dict(mpl.rcParams)
    fig = prisma_flow(COUNTS, title="Study flow (PRISMA 2020)")
    fig.savefig(tmp_path / "flow.png", dpi=150)
    assert (tmp_path / "flow.png").stat().st_size > 10_000
    assert dict(mpl.rcParams) == before


# ---------------------------------------------------------------- risk of bias


def cells(fig: Figure) -> dict[str, tuple[str, str]]:
    """gid -> (face colour, symbol) of every judgement cell."""
    ax = fig.axes[0]
    symbols = {t.get_gid(): t.get_text() for t in ax.texts}
    return {
        ln.get_gid(): (ln.get_markerfacecolor(), symbols[ln.get_gid().replace("cell", "symbol")])
        for ln in ax.lines
        if ln.get_gid().startswith("cell-")
    }


def test_traffic_light_overall_only():
    rows = [{"study": s, "overall": j} for s, j in zip(STUDIES, OVERALL, strict=True)]
    fig = rob_traffic_light(rows)
    found = cells(fig)
    assert len(found) == 15
    for i, j in enumerate(OVERALL):
        _, colour, symbol, _ = JUDGEMENTS[j]
        assert found[f"cell-{i}-overall"] == (colour, symbol)
    assert texts(fig, "label") == STUDIES
    assert texts(fig, "header") == ["Overall"]
    assert texts(fig, "legend-judgement") == ["Low", "Some concerns", "High"]  # no "missing"
    assert texts(fig, "legend-domain") == [] and texts(fig, "domains-title") == []


def test_traffic_light_domains_and_missing():
    fig = rob_traffic_light(pd.DataFrame(DOMAIN_ROWS), title="RoB 2")
    found = cells(fig)
    assert len(found) == 3 * 6
    assert texts(fig, "header") == ["D1", "D2", "D3", "D4", "D5", "Overall"]
    expect = {
        "cell-0-D4": "high", "cell-0-D5": "missing", "cell-1-D1": "some_concerns",
        "cell-1-D3": "missing", "cell-2-D1": "low", "cell-0-overall": "high",
    }  # fmt: skip
    for gid, j in expect.items():
        assert found[gid] == (JUDGEMENTS[j][1], JUDGEMENTS[j][2]), gid
    assert texts(fig, "legend-judgement") == ["Low", "Some concerns", "High", "No information"]
    assert texts(fig, "legend-domain") == [f"{d}: {desc}" for d, desc in ROB2_DOMAINS.items()]
    assert texts(fig, "domains-title") == ["Risk of bias domains"]
    assert texts(fig, "label") == ["A 2019", "B 2020", "C 2021"]
    # legend discs carry the judgement's colour and symbol too
    legend = {ln.get_gid(): ln.get_markerfacecolor() for ln in fig.axes[0].lines}
    assert legend["legend-high"] == JUDGEMENTS["high"][1]


def test_traffic_light_column_choice():
    rows = [{"name": "X", "D3": "low", "D1": "high", "judgement": "high"}]
    fig = rob_traffic_light(rows, labels="name", overall="judgement")
    assert texts(fig, "header") == ["D1", "D3", "Overall"]  # D1-D5 in domain order
    fig = rob_traffic_light(rows, labels="name", domains={"D3": "Missing data"}, overall=None)
    assert texts(fig, "header") == ["D3"]
    assert texts(fig, "legend-domain") == ["D3: Missing data"]
    # no overall column but domains: drawn without it
    assert texts(rob_traffic_light([{"study": "Y", "D1": "low"}]), "header") == ["D1"]


@pytest.mark.parametrize("dpi", [72, 150, 300])
def test_traffic_light_texts_do_not_overlap(dpi):
    rows = [dict(r, study=f"{r['study']} (a long trial name)") for r in DOMAIN_ROWS]
    fig = rob_traffic_light(rows, title="Risk of bias")
    ax = fig.axes[0]
    plain = [t for t in ax.texts if not t.get_gid().startswith(("symbol-", "legend-low"))]
    plain = [t for t in plain if not t.get_gid().startswith("legend-") or "judgement" in
             t.get_gid() or "domain" in t.get_gid() or "title" in t.get_gid()]  # fmt: skip
    boxes = extents(fig, dpi, plain)
    for (t, a), (u, b) in itertools.combinations(zip(plain, boxes, strict=True), 2):
        assert not overlap(a, b, tol=1.0), (t.get_text(), u.get_text())
    discs = extents(fig, dpi, [ln for ln in ax.lines if ln.get_gid().startswith("cell-")])
    for e in boxes + discs:
        assert fig.bbox.x0 <= e.x0 and e.x1 <= fig.bbox.x1
        assert fig.bbox.y0 <= e.y0 and e.y1 <= fig.bbox.y1
    for a, b in itertools.combinations(discs, 2):
        assert not overlap(a, b)


@pytest.mark.parametrize(
    ("kwargs", "rows", "match"),
    [
        ({}, [{"study": "A", "overall": "medium"}], r"column 'overall', row 0 \(A\).*'medium'"),
        ({}, [{"study": "A", "D2": "unclear"}], r"column 'D2'.*'unclear'"),
        ({}, [{"trial": "A", "overall": "low"}], r"label column 'study' not found"),
        ({"domains": ["D9"]}, [{"study": "A", "D1": "low"}], r"domains: column 'D9'"),
        ({}, [{"study": "A", "risk": "low"}], r"overall: column 'overall' not found"),
        ({}, [], "no studies"),
    ],
)
def test_traffic_light_bad_input(kwargs, rows, match):
    with pytest.raises(ValueError, match=match):
        rob_traffic_light(rows, **kwargs)


def test_summary_bar_shares():
    fig = rob_summary_bar(DOMAIN_ROWS)
    widths = {p.get_gid(): p.get_width() for p in fig.axes[0].patches}
    for col in ("D1", "D2", "D3", "D4", "D5", "overall"):
        assert sum(w for g, w in widths.items() if g.startswith(f"bar-{col}-")) == pytest.approx(
            100
        )
    assert widths["bar-D5-missing"] == pytest.approx(100 / 3)
    weighted = rob_summary_bar(pd.DataFrame(DOMAIN_ROWS).assign(w=[1, 1, 2]), weights="w")
    widths = {p.get_gid(): p.get_width() for p in weighted.axes[0].patches}
    assert widths["bar-overall-low"] == pytest.approx(50)
    assert widths["bar-overall-high"] == pytest.approx(25)
    labels = [t.get_text() for t in weighted.axes[0].get_yticklabels()]
    assert labels[0] == f"D1: {ROB2_DOMAINS['D1']}" and labels[-1] == "Overall risk of bias"
    legend = [t.get_text() for t in weighted.legends[0].get_texts()]
    assert legend == ["Low", "Some concerns", "High", "No information"]
    shares = [t.get_text() for t in weighted.axes[0].texts if t.get_gid() == "share"]
    assert "50%" in shares and "25%" in shares
    assert "33.3%" in [t.get_text() for t in fig.axes[0].texts]  # D5: 1 of 3 studies missing


@pytest.mark.parametrize("dpi", [72, 150, 300])
def test_summary_bar_texts_fit(dpi):
    fig = rob_summary_bar(DOMAIN_ROWS, title="Judgements per domain")
    ax = fig.axes[0]
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # places the tick labels
    renderer = canvas.get_renderer()
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    for t in (t for t in ax.texts if t.get_gid() == "share"):
        e = t.get_window_extent(renderer)
        cx, cy = (e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2
        (bar,) = [b for b in bars if b.x0 < cx < b.x1 and b.y0 < cy < b.y1]
        assert bar.x0 < e.x0 and e.x1 < bar.x1, t.get_text()
    others = [*ax.get_yticklabels(), *ax.get_xticklabels(), *fig.texts, fig.legends[0]]
    for e in (o.get_window_extent(renderer) for o in others):
        assert fig.bbox.x0 <= e.x0 and e.x1 <= fig.bbox.x1
        assert fig.bbox.y0 <= e.y0 and e.y1 <= fig.bbox.y1


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1, -1, 1], r"weights: row 1 has -1"),
        ([1, 2], r"weights: 2 weights for 3 studies"),
        ("w", r"weights: column 'w' not found"),
        ([0, 0, 0], "sum to 0"),
    ],
)
def test_summary_bar_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        rob_summary_bar(DOMAIN_ROWS, weights)


def test_rob_renders(tmp_path):
    rows = [{"study": s, "overall": j} for s, j in zip(STUDIES, OVERALL, strict=True)]
    for name, fig in [
        ("overall", rob_traffic_light(rows)),
        ("domains", rob_traffic_light(DOMAIN_ROWS)),
        ("bar", rob_summary_bar(DOMAIN_ROWS)),
    ]:
        fig.savefig(tmp_path / f"{name}.png", dpi=150)
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
