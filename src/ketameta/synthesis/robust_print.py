"""The metafor-like printout of a `RobustResult` (``print.robust.rma``): ``format_robust``.

Cluster counts, the omnibus test of the moderators and the coefficient table, with the label
of each df method (`_DF_LABEL`). `ketameta.synthesis.robust` re-exports ``format_robust``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ketameta.synthesis import printing

if TYPE_CHECKING:
    from ketameta.synthesis.robust import RobustResult

__all__ = ["format_robust"]

_DF_LABEL = {
    "Satterthwaite": "Satterthwaite approx",
    "naive-t": "m - 1",
    "naive-tp": "m - p",
    "z": "none (z)",
}


def format_robust(res: RobustResult, *, digits: int = 4, signif_stars: bool = True) -> str:
    """metafor's ``print.robust.rma`` (cluster counts, omnibus test, coefficient table)."""
    sizes = res.cluster_sizes
    lines = [
        f"Cluster-robust inference (k = {res.k}; var-cov estimator: {res.adjust}; "
        f"df: {_DF_LABEL[res.test]})",
        "",
        f"Number of estimates:   {res.k}",
        f"Number of clusters:    {res.n_clusters}",
        f"Estimates per cluster: {sizes.min()}-{sizes.max()} (mean: {sizes.mean():.2f}, "
        f"median: {np.median(sizes):g})",
        "",
    ]
    btt = np.array(res.btt) + 1
    which = f"s {btt[0]}:{btt[-1]}" if btt.size > 1 else f" {btt[0]}"
    lines.append(f"Test of Moderators (coefficient{which}):")
    df1, df2 = res.qm_df
    if np.isinf(df2):
        lines.append(printing.fmtt(res.qm, "QM", res.qm_pvalue, df=df1, digits=digits))
    else:
        lines.append(printing.fmtt(res.qm, "F", res.qm_pvalue, df1=df1, df2=df2, digits=digits))
    rows = [
        (r.estimate, r.se, r.statistic, r.df, r.pvalue, r.ci_low, r.ci_high)
        for r in res.coef.itertuples()
    ]
    lines += ["", "Model Results:", ""]
    lines += printing._coef_table(
        rows,
        "z" if res.test == "z" else "knha",
        digits,
        signif_stars,
        [str(t) for t in res.coef.index],
    )
    return "\n".join(lines + printing._legend(signif_stars))
