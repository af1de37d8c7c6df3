"""The metafor-like printout of a `MetaMVResult` (``print.rma.mv``): ``format_mv``.

Variance components (nested intercepts, then each ``inner | outer`` structure with its
variances and correlations), the heterogeneity and moderator tests and the coefficient table.
`ketameta.synthesis.multilevel_results` re-exports ``format_mv``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ketameta.synthesis import printing
from ketameta.synthesis.printing import fmtx, table_lines

if TYPE_CHECKING:
    from ketameta.synthesis.multilevel_results import MetaMVResult, RandomTerm

__all__ = ["format_mv"]

_HETERO = ("HCS", "HAR", "DIAG", "UN")


def _sigma_lines(res: MetaMVResult, digits: int) -> list[str]:
    terms = [t for t in res.terms if t.inner is None]
    if not terms:
        return []
    rows = [
        [fmtx(s, digits), fmtx(np.sqrt(s), digits), str(len(t.labels)), "no", t.name]
        for s, t in zip(res.sigma2, terms, strict=True)
    ]
    names = [f"sigma^2.{i + 1}" for i in range(len(rows))]
    return table_lines(["estim", "sqrt", "nlvls", "fixed", "factor"], rows, names) + [""]


def _g_lines(res: MetaMVResult, t: int, term: RandomTerm, digits: int) -> list[str]:
    fit = res._fit
    gt = fit.problem.gterms[t]
    theta = fit.theta[fit.problem.slices[t]]
    nv = gt.n_var
    var, cor = theta[:nv], theta[nv:]
    vn, cn = ("tau^2", "rho") if t == 0 else ("gamma^2", "phi")
    levels = [str(v) for v in gt.levels]
    n_outer = len(np.unique(gt.outer))
    width = max(len(term.name), len(term.inner or ""))
    lines = [
        f"outer factor: {term.name.ljust(width)} (nlvls = {n_outer})",
        f"inner factor: {str(term.inner).ljust(width)} (nlvls = {gt.g})",
        "",
    ]
    if gt.struct in _HETERO:
        klvl = np.bincount(gt.index, minlength=gt.g)
        rows = [
            [fmtx(v, digits), fmtx(np.sqrt(v), digits), str(klvl[i]), "no", levels[i]]
            for i, v in enumerate(var)
        ]
        names = [f"{vn}.{i + 1}" for i in range(nv)]
        lines += table_lines(["estim", "sqrt", "k.lvl", "fixed", "level"], rows, names)
    else:
        rows = [[fmtx(var[0], digits), fmtx(np.sqrt(var[0]), digits), "no"]]
        rows += [[fmtx(cor[0], digits), "", "no"]] if cor.size else []
        lines += table_lines(["estim", "sqrt", "fixed"], rows, [vn] + ([cn] if cor.size else []))
        return lines + [""]
    if gt.struct == "UN":
        R = np.eye(gt.g)
        for (a, b), r in zip(gt.pairs(), cor, strict=True):
            R[a, b] = R[b, a] = r
        header = [f"{cn}.{lv}" for lv in levels] + levels
        rows = []
        for i in range(gt.g):
            left = [
                fmtx(R[i, j], digits) if j < i else ("1" if j == i else "") for j in range(gt.g)
            ]
            right = ["-" if j == i else ("no" if j < i else "") for j in range(gt.g)]
            rows.append(left + right)
        lines += ["", *table_lines(header, rows, levels)]
    elif cor.size:
        lines += [
            "",
            *table_lines(["estim", "sqrt", "fixed"], [[fmtx(cor[0], digits), "", "no"]], [cn])[1:],
        ]
    return lines + [""]


def format_mv(res: MetaMVResult, *, digits: int = 4, signif_stars: bool = True) -> str:
    """``print.rma.mv``: variance components, heterogeneity and moderator tests, coefficients."""
    lines = [f"Multivariate Meta-Analysis Model (k = {res.k}; method: {res.method})", ""]
    lines += ["Variance Components:", ""]
    lines += _sigma_lines(res, digits)
    for t, term in enumerate(x for x in res.terms if x.inner is not None):
        lines += _g_lines(res, t, term, digits)
    moderators = res.p > 1 or res.coef.index[0] != "intrcpt"
    if np.isfinite(res.qe):
        title = "Test for Residual Heterogeneity:" if moderators else "Test for Heterogeneity:"
        name = "QE" if moderators else "Q"
        lines += [
            title,
            printing.fmtt(res.qe, name, res.qe_pvalue, df=res.qe_df, digits=digits),
            "",
        ]
    if moderators:
        btt = res._fit.btt + 1
        which = f"s {btt[0]}:{btt[-1]}" if btt.size > 1 else f" {btt[0]}"
        lines.append(f"Test of Moderators (coefficient{which}):")
        if res.test == "t":
            lines.append(
                printing.fmtt(
                    res.qm, "F", res.qm_pvalue, df1=res.qm_df, df2=res.k - res.p, digits=digits
                )
            )
        else:
            lines.append(printing.fmtt(res.qm, "QM", res.qm_pvalue, df=res.qm_df, digits=digits))
        lines.append("")
    df = res.k - res.p
    rows = [
        (r.estimate, r.se, r.statistic, df, r.pvalue, r.ci_low, r.ci_high)
        for r in res.coef.itertuples()
    ]
    names = [str(t) for t in res.coef.index] if moderators else None
    lines += ["Model Results:", ""]
    lines += printing._coef_table(
        rows, "knha" if res.test == "t" else "z", digits, signif_stars, names
    )
    lines += printing._legend(signif_stars)
    if not res.converged:
        lines += ["", "Note: the optimiser did not converge."]
    return "\n".join(lines + printing._note(res.excluded))
