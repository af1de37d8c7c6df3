"""Effect-size formulas on numpy arrays, as metafor's ``escalc()`` defines them.

Every function returns ``(yi, vi)``. Group 1 is the treatment, group 2 the control.
References: Hedges (1981) for the exact small-sample correction; Morris (2008) and Becker
(1988) for standardized mean changes; metafor's ``escalc`` documentation for the variants.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

Array = NDArray[np.float64]
TO_OPTIONS = ("only0", "all", "if0all", "none")


def hedges_correction(m: Array) -> Array:
    """Exact small-sample correction ``c(m) = Γ(m/2) / (sqrt(m/2) Γ((m-1)/2))``."""
    m = np.asarray(m, dtype=float)
    return np.exp(gammaln(m / 2.0) - 0.5 * np.log(m / 2.0) - gammaln((m - 1.0) / 2.0))


def smd(m1, sd1, n1, m2, sd2, n2, vtype: str = "LS") -> tuple[Array, Array]:
    """Hedges' g with the exact correction; ``vtype`` "LS" (default), "UB", "LS2" or "AV"."""
    mi = n1 + n2 - 2.0
    sd_pooled = np.sqrt(((n1 - 1.0) * sd1**2 + (n2 - 1.0) * sd2**2) / mi)
    cmi = hedges_correction(mi)
    d = (m1 - m2) / sd_pooled
    yi = cmi * d
    inv_n = 1.0 / n1 + 1.0 / n2
    if vtype == "LS":
        vi = inv_n + yi**2 / (2.0 * (n1 + n2))
    elif vtype == "UB":
        vi = inv_n + (1.0 - (mi - 2.0) / (mi * cmi**2)) * yi**2
    elif vtype == "LS2":
        vi = cmi**2 * (inv_n + d**2 / (2.0 * (n1 + n2)))
    elif vtype == "AV":
        n_total = n1 + n2
        ybar = np.sum(n_total * yi) / np.sum(n_total)
        vi = inv_n + ybar**2 / (2.0 * n_total)
    else:
        raise ValueError(f"vtype must be 'LS', 'UB', 'LS2' or 'AV' for SMD, got {vtype!r}")
    return yi, vi


def smdh(m1, sd1, n1, m2, sd2, n2) -> tuple[Array, Array]:
    """Standardized mean difference without assuming equal variances (Bonett 2009)."""
    sd_avg = np.sqrt((sd1**2 + sd2**2) / 2.0)
    cmi = hedges_correction(n1 + n2 - 2.0)
    yi = cmi * (m1 - m2) / sd_avg
    # Bonett's variance with the corrected yi plugged in, scaled by c(m)^2 (metafor 3.8)
    vi = cmi**2 * (
        yi**2 * (sd1**4 / (n1 - 1.0) + sd2**4 / (n2 - 1.0)) / (8.0 * sd_avg**4)
        + (sd1**2 / (n1 - 1.0) + sd2**2 / (n2 - 1.0)) / sd_avg**2
    )
    return yi, vi


def md(m1, sd1, n1, m2, sd2, n2, vtype: str = "LS") -> tuple[Array, Array]:
    """Raw mean difference; ``vtype`` "LS" (separate variances, default) or "HO" (pooled)."""
    yi = m1 - m2
    if vtype == "LS":
        vi = sd1**2 / n1 + sd2**2 / n2
    elif vtype == "HO":
        pooled = ((n1 - 1.0) * sd1**2 + (n2 - 1.0) * sd2**2) / (n1 + n2 - 2.0)
        vi = pooled * (1.0 / n1 + 1.0 / n2)
    else:
        raise ValueError(f"vtype must be 'LS' or 'HO' for MD, got {vtype!r}")
    return yi, vi


def rom(m1, sd1, n1, m2, sd2, n2, vtype: str = "LS") -> tuple[Array, Array]:
    """Log ratio of means; ``vtype`` "LS" (default) or "HO" (pooled coefficient of variation)."""
    yi = np.log(m1 / m2)
    if vtype == "LS":
        vi = sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2)
    elif vtype == "HO":
        pooled = ((n1 - 1.0) * sd1**2 + (n2 - 1.0) * sd2**2) / (n1 + n2 - 2.0)
        vi = pooled / (n1 * m1**2) + pooled / (n2 * m2**2)
    else:
        raise ValueError(f"vtype must be 'LS' or 'HO' for ROM, got {vtype!r}")
    return yi, vi


def smcr(m_pre, m_post, sd_pre, n, r) -> tuple[Array, Array]:
    """Standardized mean change, raw-score standardization: ``c(n-1) (post - pre) / sd_pre``."""
    yi = hedges_correction(n - 1.0) * (m_post - m_pre) / sd_pre
    vi = 2.0 * (1.0 - r) / n + yi**2 / (2.0 * n)
    return yi, vi


def smcc(m_pre, m_post, sd_pre, sd_post, n, r) -> tuple[Array, Array]:
    """Standardized mean change, change-score standardization."""
    sd_change = np.sqrt(sd_pre**2 + sd_post**2 - 2.0 * r * sd_pre * sd_post)
    yi = hedges_correction(n - 1.0) * (m_post - m_pre) / sd_change
    vi = 1.0 / n + yi**2 / (2.0 * n)
    return yi, vi


def zcor(r, n) -> tuple[Array, Array]:
    """Fisher's r-to-z transformed correlation: ``atanh(r)``, ``1 / (n - 3)``.

    ``|r| = 1`` has no finite z: it gives NaN here (never ``inf``); ``escalc`` refuses it first.
    """
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.arctanh(r)
    return np.where(np.isfinite(z), z, np.nan), 1.0 / (n - 3.0)


def cor(r, n) -> tuple[Array, Array]:
    """Raw correlation, metafor's default vtype "LS": ``r``, ``(1 - r^2)^2 / (n - 1)``."""
    r = np.asarray(r, dtype=float)
    return r.copy(), (1.0 - r**2) ** 2 / (n - 1.0)


def two_by_two(ai, n1, ci, n2, measure: str, add: float, to: str) -> tuple[Array, Array]:
    """Log RR, log OR or RD from a 2x2 table, with metafor's continuity correction.

    ``to="only0"`` adds ``add`` to every cell of a table with a zero cell, ``"all"`` to every
    table, ``"if0all"`` to every table if any has a zero cell, ``"none"`` never.
    """
    bi, di = n1 - ai, n2 - ci
    has_zero = (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)
    if to == "all":
        mask = np.ones_like(ai, dtype=bool)
    elif to == "only0":
        mask = has_zero
    elif to == "if0all":
        mask = np.full(ai.shape, bool(has_zero.any()))
    elif to == "none":
        mask = np.zeros_like(ai, dtype=bool)
    else:
        raise ValueError(f"to must be 'only0', 'all', 'if0all' or 'none', got {to!r}")
    shift = np.where(mask, add, 0.0)
    a, b, c, d = ai + shift, bi + shift, ci + shift, di + shift
    m1, m2 = a + b, c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "RR":
            yi = np.log(a / m1) - np.log(c / m2)
            vi = 1.0 / a - 1.0 / m1 + 1.0 / c - 1.0 / m2
        elif measure == "OR":
            yi = np.log(a * d / (b * c))
            vi = 1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d
        elif measure == "RD":
            p1, p2 = a / m1, c / m2
            yi = p1 - p2
            vi = p1 * (1.0 - p1) / m1 + p2 * (1.0 - p2) / m2
        else:
            raise ValueError(f"unknown 2x2 measure {measure!r}")
    bad = ~np.isfinite(yi) | ~np.isfinite(vi)
    return np.where(bad, np.nan, yi), np.where(bad, np.nan, vi)
