"""Mantel-Haenszel and Peto pooling of 2x2 tables (pure numpy; one problem of k tables).

References: Mantel & Haenszel (1959); Robins, Breslow & Greenland (1986) for the variance of the
MH log odds ratio; Greenland & Robins (1985) for the MH log risk ratio and risk difference;
Yusuf et al. (1985) for Peto's one-step odds ratio. The estimates use the raw counts (no
continuity correction), as metafor's ``rma.mh``/``rma.peto``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def mantel_haenszel(a, b, c, d, measure: str) -> tuple[float, float]:
    """MH estimate (log scale for OR and RR) and its standard error."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    n1, n2 = a + b, c + d
    n = n1 + n2
    if measure == "OR":
        r, s = a * d / n, b * c / n
        p, q = (a + d) / n, (b + c) / n
        big_r, big_s = r.sum(), s.sum()
        var = (
            (p * r).sum() / (2 * big_r**2)
            + (p * s + q * r).sum() / (2 * big_r * big_s)
            + (q * s).sum() / (2 * big_s**2)
        )
        return float(np.log(big_r / big_s)), float(np.sqrt(var))
    if measure == "RR":
        r, s = a * n2 / n, c * n1 / n
        num = (n1 * n2 * (a + c) / n**2 - a * c / n).sum()
        return float(np.log(r.sum() / s.sum())), float(np.sqrt(num / (r.sum() * s.sum())))
    if measure == "RD":
        w = n1 * n2 / n
        est = ((a * n2 - c * n1) / n).sum() / w.sum()
        # Sato (1989) / Greenland-Robins variance, valid in sparse data
        p_term = (n1**2 * c - n2**2 * a + n1 * n2 * (n2 - n1) / 2.0) / n**2
        q_term = (a * (n2 - c) + c * (n1 - a)) / (2.0 * n)
        var = (est * p_term.sum() + q_term.sum()) / w.sum() ** 2
        return float(est), float(np.sqrt(var))
    raise ValueError(f"measure must be 'OR', 'RR' or 'RD', got {measure!r}")


def cmh_test(a, b, c, d, *, correct: bool = True) -> tuple[float, float]:
    """Cochran-Mantel-Haenszel chi-square test (1 df), with or without continuity correction."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    n1, n2, m1, m2 = a + b, c + d, a + c, b + d
    n = n1 + n2
    expected = n1 * m1 / n
    variance = n1 * n2 * m1 * m2 / (n**2 * (n - 1.0))
    diff = abs(a.sum() - expected.sum()) - (0.5 if correct else 0.0)
    stat = max(diff, 0.0) ** 2 / variance.sum()
    return float(stat), float(stats.chi2.sf(stat, 1))


def peto(a, b, c, d) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Peto's log odds ratio and SE, with the per-table O - E and V."""
    a, b, c, d = (np.asarray(x, dtype=float) for x in (a, b, c, d))
    n1, n2, m1, m2 = a + b, c + d, a + c, b + d
    n = n1 + n2
    o_minus_e = a - n1 * m1 / n
    v = n1 * n2 * m1 * m2 / (n**2 * (n - 1.0))
    return float(o_minus_e.sum() / v.sum()), float(1.0 / np.sqrt(v.sum())), o_minus_e, v
