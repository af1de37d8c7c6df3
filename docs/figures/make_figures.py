"""Render the figures in docs/figures: metafor's BCG example (tests/reference/escalc_rr_bcg)
and the bundled review data.

Run from the repository root: ``python docs/figures/make_figures.py``. Compare with metafor's
``forest(res, atransf=exp, ...)`` and contour-enhanced ``funnel()`` of the same data.
"""

import warnings
from pathlib import Path

import pandas as pd

from ketameta import analyses, escalc, meta, subgroup, trim_and_fill
from ketameta.plots import forest, funnel, save

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
ARMS = {"events1": "tpos", "n1": "n1", "events2": "cpos", "n2": "n2"}


def bcg() -> pd.DataFrame:
    data = pd.read_csv(ROOT / "tests" / "reference" / "escalc_rr_bcg" / "input.csv")
    data["label"] = data["author"] + ", " + data["year"].astype(str)
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


def main() -> None:
    effects = bcg()
    res = meta(data=effects)
    opts = {"group_labels": ("vaccine", "control"), "arm_columns": ARMS}
    save(forest(res, title="BCG vaccine trials (RR, REML)", **opts), OUT / "forest_bcg.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sub = subgroup(effects, "alloc")
    save(
        forest(sub, title="BCG vaccine trials by allocation", **opts),
        OUT / "forest_bcg_subgroup.png",
    )
    save(funnel(res, contours=True, title="BCG: contour-enhanced funnel"), OUT / "funnel_bcg.png")
    tf = trim_and_fill(res)
    save(
        funnel(res, filled=tf, title="BCG: funnel with trim-and-fill"),
        OUT / "funnel_bcg_trimfill.png",
    )


def review() -> None:
    """The bundled ketamine evidence: overall (SMD) and by route (one level has k = 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overall = analyses.overall().controlled
        route = analyses.route().controlled
    save(forest(overall, title="Ketamine vs control (SMD)"), OUT / "forest_review_overall.png")
    save(forest(route, title="By route"), OUT / "forest_review_route.png")


if __name__ == "__main__":
    main()
    review()
