"""Mantel-Haenszel and Peto pooling of 2x2 tables (pure numpy), as metafor's rma.mh/rma.peto.

Cells follow metafor: ``a``/``b`` events/non-events in group 1 (treatment), ``c``/``d`` in
group 2 (control). Arrays are float64 shaped ``(..., k)``: the last axis holds the tables, leading
axes index independent meta-analyses; every function reduces over the last axis. ``mask``
(bool, ``True`` = the table takes part) handles ragged problems; masked-out entries may hold any
finite placeholder.

The pooled estimates use the raw counts (nothing is added; tables without events, or with only
events, in both arms stay in and contribute nothing to OR/RR, but their sizes enter the RD
weights), as metafor's default ``add=c(1/2, 0)``, ``to=c("only0", "none")``,
``drop00=c(TRUE, FALSE)`` whose second elements govern the pooled estimate. The continuity
correction (``add``/``to``) and ``drop00`` only change the per-study ``yi``/``vi`` used for Q.

References: Mantel & Haenszel (1959); Robins, Breslow & Greenland (1986) for the variance of the
MH log odds ratio; Greenland & Robins (1985) for the MH log risk ratio; Sato, Greenland & Robins
(1989) for the variance of the MH risk difference (the formula metafor uses); Yusuf et al.
(1985) for Peto's one-step odds ratio; Tarone (1985) and Breslow & Day (1980) for the
homogeneity tests of the odds ratio.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Array = NDArray[np.float64]

MH_MEASURES = ("OR", "RR", "RD")
TO_OPTIONS = ("only0", "all", "if0all", "none")


class Pooled(NamedTuple):
    """Pooled estimate (log scale for OR and RR) and its standard error, shaped ``(...)``."""

    estimate: Array
    se: Array


class ChiSquare(NamedTuple):
    """A chi-square statistic with its degrees of freedom and upper-tail p-value."""

    statistic: Array
    df: Array
    pvalue: Array


class Heterogeneity(NamedTuple):
    """Q, its df (k.yi - 1), p-value, I² (percent) and H², with metafor's k.yi <= 1 rule."""

    q: Array
    q_df: Array
    q_pvalue: Array
    i2: Array
    h2: Array


def _cells(a, b, c, d, mask):
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    if mask is None:
        mask = np.ones(np.broadcast_shapes(a.shape, b.shape, c.shape, d.shape), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    # placeholders for masked-out tables: a harmless 1/1/1/1 table whose terms are zeroed below
    a, b, c, d = (np.where(mask, x, 1.0) for x in (a, b, c, d))
    return a, b, c, d, mask


def _sum(x: Array, mask: Array) -> Array:
    return np.sum(np.where(mask, x, 0.0), axis=-1)


def double_zero(a, b, c, d) -> NDArray[np.bool_]:
    """Tables without events in both arms, or with only events in both arms."""
    return ((np.asarray(a) == 0) & (np.asarray(c) == 0)) | (
        (np.asarray(b) == 0) & (np.asarray(d) == 0)
    )


def mantel_haenszel(a, b, c, d, measure: str, *, mask=None) -> Pooled:
    """MH estimate (log OR, log RR or RD) and its SE on the raw counts.

    OR: Robins-Breslow-Greenland variance; RR: Greenland-Robins variance; RD: the Sato,
    Greenland & Robins (1989) variance (metafor's). NaN where the MH ratio is 0 or undefined
    (OR: ``sum(a d / n)`` or ``sum(b c / n)`` is 0; RR: no events in one group overall).
    """
    if measure not in MH_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MH_MEASURES)}, got {measure!r}")
    a, b, c, d, mask = _cells(a, b, c, d, mask)
    n1, n2 = a + b, c + d
    n = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "OR":
            r, s = a * d / n, b * c / n
            p, q = (a + d) / n, (b + c) / n
            big_r, big_s = _sum(r, mask), _sum(s, mask)
            var = 0.5 * (
                _sum(p * r, mask) / big_r**2
                + _sum(p * s + q * r, mask) / (big_r * big_s)
                + _sum(q * s, mask) / big_s**2
            )
            ok = (big_r > 0) & (big_s > 0)
            est = np.log(big_r / big_s)
        elif measure == "RR":
            big_r, big_s = _sum(a * n2 / n, mask), _sum(c * n1 / n, mask)
            var = _sum(n1 * n2 * (a + c) / n**2 - a * c / n, mask) / (big_r * big_s)
            ok = (_sum(a, mask) > 0) & (_sum(c, mask) > 0)
            est = np.log(big_r / big_s)
        else:
            w = _sum(n1 * n2 / n, mask)
            est = _sum((a * n2 - c * n1) / n, mask) / w
            p_term = _sum((n1**2 * c - n2**2 * a + n1 * n2 * (n2 - n1) / 2.0) / n**2, mask)
            q_term = _sum((a * (n2 - c) + c * (n1 - a)) / n, mask) / 2.0
            var = (est * p_term + q_term) / w**2
            ok = np.ones(est.shape, dtype=bool)
    nan = np.full(est.shape, np.nan)
    # no informative table (RD; RR with only events): var is 0 up to round-off, as metafor's 0
    var = np.where(np.abs(var) <= 1e-14 * np.maximum(np.abs(est), 1.0), 0.0, var)
    return Pooled(np.where(ok, est, nan), np.where(ok, np.sqrt(np.maximum(var, 0.0)), nan))


def cmh_test(a, b, c, d, *, correct: bool = True, mask=None) -> ChiSquare:
    """Cochran-Mantel-Haenszel test of OR = 1 (1 df; hypergeometric variance with n - 1).

    ``correct=True`` subtracts 1/2 from ``|sum(a - E[a])|`` before squaring (metafor's default;
    the difference is squared as it stands, as metafor, even if it is below 1/2). NaN when no
    table has an event, or none has a non-event.
    """
    a, b, c, d, mask = _cells(a, b, c, d, mask)
    n1, n2, m1, m2 = a + b, c + d, a + c, b + d
    n = n1 + n2
    diff = np.abs(_sum(a - n1 * m1 / n, mask)) - (0.5 if correct else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = diff**2 / _sum((n1 / n) * (n2 / n) * m1 * m2 / (n - 1.0), mask)
    ok = (_sum(m1, mask) > 0) & (_sum(m2, mask) > 0)
    stat = np.where(ok, stat, np.nan)
    return ChiSquare(stat, np.ones(stat.shape), stats.chi2.sf(stat, 1))


def tarone_test(a, b, c, d, or_mh, *, mask=None) -> tuple[ChiSquare, ChiSquare]:
    """Breslow-Day and Tarone's homogeneity tests of the OR around the MH odds ratio ``or_mh``.

    ``or_mh`` is on the ratio scale (``exp`` of the MH log OR), shaped ``(...)``. Tables enter
    when their fitted cell under ``or_mh`` is positive and both margins (events, non-events) are
    non-zero; df = that count - 1 (p-value NaN below 2 such tables), both statistics truncated at
    0, as metafor. Returns ``(breslow_day, tarone)``.
    """
    a, b, c, d, mask = _cells(a, b, c, d, mask)
    psi = np.asarray(or_mh, dtype=np.float64)[..., None]
    n1, n2, xt, yt = a + b, c + d, a + c, b + d
    n = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        big_a = psi * (n1 + xt) + (n2 - xt)
        root = np.sqrt(big_a**2 - 4.0 * n1 * xt * psi * (psi - 1.0))
        fitted = np.where(psi == 1.0, n1 * xt / n, (big_a - root) / (2.0 * (psi - 1.0)))
        pos = mask & (fitted > 0) & (xt > 0) & (yt > 0)
        f11 = np.where(pos, fitted, 1.0)
        f12, f21 = n1 - f11, xt - f11
        f22 = f11 - n1 - xt + n
        # the fitted table's variance of a is 1 / (1/f11 + 1/f12 + 1/f21 + 1/f22)
        inv_var = np.where(pos, 1.0 / f11 + 1.0 / f12 + 1.0 / f21 + 1.0 / f22, np.inf)
        resid = np.where(pos, a - f11, 0.0)
        bd = np.maximum(0.0, np.sum(resid**2 * np.where(pos, inv_var, 0.0), axis=-1))
        ta = np.maximum(0.0, bd - np.sum(resid, axis=-1) ** 2 / np.sum(1.0 / inv_var, axis=-1))
    k_pos = np.sum(pos, axis=-1).astype(np.float64)
    defined = np.isfinite(np.asarray(or_mh, dtype=np.float64))
    bd, ta = np.where(defined, bd, np.nan), np.where(defined, ta, np.nan)
    df = np.where(defined, k_pos - 1.0, np.nan)
    with np.errstate(invalid="ignore"):
        bd_p = np.where(df >= 1, stats.chi2.sf(bd, np.maximum(df, 1.0)), np.nan)
        ta_p = np.where(df >= 1, stats.chi2.sf(ta, np.maximum(df, 1.0)), np.nan)
    return ChiSquare(bd, df, bd_p), ChiSquare(ta, df, ta_p)


def peto(a, b, c, d, *, mask=None) -> tuple[Pooled, Array, Array]:
    """Peto's one-step log odds ratio ``sum(O - E) / sum(V)``, SE ``1 / sqrt(sum(V))``.

    Also returns Peto's heterogeneity statistic ``sum((O - E)^2 / V) - sum(O - E)^2 / sum(V)``
    over the tables with ``V > 0`` (truncated at 0) and the number of such tables (metafor's
    ``k.pos``). The estimate is NaN when ``sum(V) = 0`` (no table has both outcomes).
    """
    a, b, c, d, mask = _cells(a, b, c, d, mask)
    o_minus_e, v = peto_terms(a, b, c, d)
    o_minus_e, v = np.where(mask, o_minus_e, 0.0), np.where(mask, v, 0.0)
    total_v = np.sum(v, axis=-1)
    total_oe = np.sum(o_minus_e, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(total_v > 0, total_oe / total_v, np.nan)
        se = np.where(total_v > 0, 1.0 / np.sqrt(total_v), np.nan)
        positive = v > 0
        per = np.where(positive, o_minus_e**2 / np.where(positive, v, 1.0), 0.0)
        q = np.maximum(0.0, np.sum(per, axis=-1) - total_oe**2 / total_v)
    return Pooled(est, se), q, np.sum(positive, axis=-1).astype(np.float64)


def peto_terms(a, b, c, d) -> tuple[Array, Array]:
    """Per-table ``O - E`` (observed minus expected events in group 1) and hypergeometric ``V``."""
    n1, n2, xt, yt = a + b, c + d, a + c, b + d
    n = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        return a - xt * n1 / n, xt * yt * (n1 / n) * (n2 / n) / (n - 1.0)


def per_study(
    a, b, c, d, measure: str, *, add: float = 0.5, to: str = "only0", drop00: bool = True
) -> tuple[Array, Array]:
    """Per-study ``yi``/``vi`` as metafor's ``escalc()`` (``measure`` OR, RR, RD or PETO).

    ``drop00=True`` first sets tables without events (or with only events) in both arms to NaN;
    then ``add`` goes to every cell of the tables chosen by ``to``: ``"only0"`` tables with a zero
    cell, ``"all"`` every table, ``"if0all"`` every table if any remaining table has a zero cell,
    ``"none"`` none. Non-computable values (a zero cell without correction) are NaN.
    """
    if to not in TO_OPTIONS:
        raise ValueError(f"to must be one of {', '.join(TO_OPTIONS)}, got {to!r}")
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    dropped = double_zero(a, b, c, d) if drop00 else np.zeros(a.shape, dtype=bool)
    zero = ((a == 0) | (b == 0) | (c == 0) | (d == 0)) & ~dropped
    if to == "only0":
        chosen = zero
    elif to == "all":
        chosen = np.ones(a.shape, dtype=bool)
    elif to == "if0all":
        chosen = np.broadcast_to(np.any(zero, axis=-1, keepdims=True), a.shape)
    else:
        chosen = np.zeros(a.shape, dtype=bool)
    shift = np.where(chosen, add, 0.0)
    a, b, c, d = a + shift, b + shift, c + shift, d + shift
    n1, n2 = a + b, c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "OR":
            yi = np.log(a / b) - np.log(c / d)
            vi = 1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d
        elif measure == "RR":
            yi = np.log(a / n1) - np.log(c / n2)
            vi = 1.0 / a - 1.0 / n1 + 1.0 / c - 1.0 / n2
        elif measure == "RD":
            p1, p2 = a / n1, c / n2
            yi = p1 - p2
            vi = p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2
        elif measure == "PETO":
            o_minus_e, v = peto_terms(a, b, c, d)
            yi, vi = o_minus_e / v, 1.0 / v
        else:
            raise ValueError(f"measure must be OR, RR, RD or PETO, got {measure!r}")
    bad = dropped | ~np.isfinite(yi) | ~np.isfinite(vi)
    return np.where(bad, np.nan, yi), np.where(bad, np.nan, vi)


def heterogeneity(yi, vi, estimate, *, q=None, several=None) -> Heterogeneity:
    """Q around ``estimate`` over the finite ``yi``/``vi`` (or the given ``q``), I² and H².

    df = k.yi - 1 with k.yi the number of finite pairs. Where ``several`` is False (default:
    k.yi <= 1) metafor reports p = 1, I² = 0 and H² = 1, and Q = 0 when Q is computed here (a
    given ``q``, Peto's, is kept as metafor keeps it). I² = max(0, 100 (Q - df) / Q), percent.
    """
    yi, vi = np.asarray(yi, dtype=np.float64), np.asarray(vi, dtype=np.float64)
    used = np.isfinite(yi) & np.isfinite(vi)
    df = np.sum(used, axis=-1).astype(np.float64) - 1.0
    several = df >= 1 if several is None else np.asarray(several, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        if q is None:
            est = np.asarray(estimate, dtype=np.float64)[..., None]
            terms = np.where(used, (yi - est) ** 2 / np.where(used, vi, 1.0), 0.0)
            q = np.where(several, np.maximum(0.0, np.sum(terms, axis=-1)), 0.0)
        q = np.asarray(q, dtype=np.float64)
        p = np.where(several, stats.chi2.sf(q, np.maximum(df, 1.0)), 1.0)
        i2 = np.where(several, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
        h2 = np.where(several, q / df, 1.0)
    return Heterogeneity(q, df, p, i2, h2)


def table_weights(a, b, c, d, measure: str) -> Array:
    """Each table's weight in the pooled estimate, in percent (metafor's ``weights()``).

    MH: OR ``b c / n``, RR ``c (a + b) / n``, RD ``(a + b)(c + d) / n``; Peto (``"PETO"``): the
    hypergeometric variance ``(a + c)(b + d) n1 n2 / (n² (n - 1))``. All from the raw counts.
    """
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    n1, n2 = a + b, c + d
    n = n1 + n2
    if measure == "OR":
        w = b * c / n
    elif measure == "RR":
        w = c * n1 / n
    elif measure == "RD":
        w = n1 * n2 / n
    elif measure == "PETO":
        w = (a + c) * (b + d) * (n1 / n) * (n2 / n) / (n - 1.0)
    else:
        raise ValueError(f"measure must be OR, RR, RD or PETO, got {measure!r}")
    with np.errstate(divide="ignore", invalid="ignore"):  # all weights 0: NaN, as metafor's NA
        return 100.0 * w / np.sum(w, axis=-1, keepdims=True)
