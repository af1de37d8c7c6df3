"""Mixed-effects meta-regression on numpy arrays: ``y``, ``v`` shaped (k,), ``X`` (k, p).

Model: ``y = X b + u + e`` with ``u ~ N(0, tau2)`` and ``e ~ N(0, v)``. tau² estimators with
moderators follow metafor's ``rma.uni`` (Raudenbush 2009; Viechtbauer 2005):

* ``FE``/``EE``: tau² = 0.
* ``DL``: ``(QE - (k - p)) / tr(P)`` with ``P = W - W X (X'WX)⁻¹ X'W`` at ``W = diag(1/v)``.
* ``ML``/``REML``: Fisher scoring from the HE value to a change below ``tol`` (default 1e-12:
  the exact root; metafor's default stops at 1e-5), with step halving that keeps tau² ≥ 0.
* ``HE``: ``(y'P₀y - tr(P₀V)) / (k - p)`` with the OLS residual maker ``P₀`` (truncated at 0).
* ``HS``: ``(QE - k) / sum(1/v)``; ``HSk``: ``(k/(k - p) QE - k) / sum(1/v)``, with ``QE`` the
  residual heterogeneity at ``W = diag(1/v)``.
* ``SJ``: ``t0 y'P(t0)y / (k - p)`` from ``t0`` = the variance (divisor k) of the raw ``y``,
  which is metafor's starting value (the moderators do not enter it).
* ``PM``/``MP``/``EB``: the root of ``y'P(tau²)y = k - p`` (bisection to the last bit); ``PMM``:
  the root of ``y'P(tau²)y`` = the median of chi²(k - p).
* ``SJIT``: the fixed point of metafor's iteration, which is the ``PM`` root (at a fixed point
  ``y'Py = tr(P(V + tau²I)) = k - p``); returned exactly.
* ``DLIT``: the fixed point of metafor's update ``tau² <- (y'P(tau²)y - (k - p)) / tr P(tau²)``,
  i.e. the root of ``y'P(tau²)y - (k - p) - tau² tr P(tau²)`` (0 where that is negative at 0);
  with no moderators this is `ketameta._core.tau2`'s DLIT. It is not the PM root.

Everything is vectorised over a leading axis of problems (``X`` shaped (n, k, p)), which is
what makes the permutation test fast; a single fit is the batch of one.

Then ``b = (X'WX)⁻¹X'Wy`` with ``W = diag(1/(v + tau²))``; for ``test="knha"`` the covariance is
scaled by ``y'Py/(k-p)``, for ``test="adhoc"`` by ``max(1, y'Py/(k-p))``, and ``"t"`` keeps it;
those three use t(k-p) tests and QM as F(m, k-p), as metafor.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

Array = NDArray[np.float64]
METHODS = (
    "FE",
    "EE",
    "DL",
    "HE",
    "HS",
    "HSk",
    "SJ",
    "ML",
    "REML",
    "EB",
    "PM",
    "MP",
    "PMM",
    "DLIT",
    "SJIT",
)
PM_ROOTS = ("PM", "MP", "EB", "SJIT")  # estimators whose value is the PM root
T_TESTS = frozenset({"t", "knha", "adhoc"})  # t(k - p) tests and QM as F(m, k - p)


def _kh_scale(rss, df, test):
    """The covariance scale factor of ``test`` from ``y'Py``: 1 (z, t), ``y'Py/(k-p)`` (knha),
    ``max(1, y'Py/(k-p))`` (adhoc: never below the unadjusted covariance)."""
    if test not in ("knha", "adhoc"):
        return np.ones(np.shape(rss))
    s2 = np.asarray(rss, dtype=float) / df
    return np.maximum(s2, 1.0) if test == "adhoc" else s2


def _projection(X: Array, w: Array) -> tuple[Array, Array]:
    """``P = W - W X (X'WX)⁻¹ X'W`` and ``(X'WX)⁻¹``."""
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    wx = w[:, None] * X
    return np.diag(w) - wx @ xtwx_inv @ wx.T, xtwx_inv


def normal_traces(X: Array, w: Array) -> tuple[float, float, Array]:
    """``tr P``, ``tr PP`` and ``(X'WX)⁻¹`` of ``P = W - W X (X'WX)⁻¹ X'W`` from p x p
    matrices only (no k x k matrix): with ``A = (X'WX)⁻¹``, ``B = X'W²X``, ``C = X'W³X``,
    ``tr P = sum w - tr AB`` and ``tr PP = sum w² - 2 tr AC + tr ABAB``."""
    A = np.linalg.inv(X.T @ (w[:, None] * X))
    w2 = w * w
    B = X.T @ (w2[:, None] * X)
    C = X.T @ ((w2 * w)[:, None] * X)
    AB = A @ B
    tr_p = float(w.sum() - np.trace(AB))
    tr_pp = float(w2.sum() - 2.0 * np.sum(A * C.T) + np.sum(AB * AB.T))
    return tr_p, tr_pp, A


def _normal_parts(X: Array, w: Array) -> tuple[Array, Array]:
    """Batched ``W X`` and ``(X'WX)⁻¹`` for ``X`` (n, k, p) and ``w`` (n, k)."""
    wx = w[..., None] * X
    return wx, np.linalg.inv(np.einsum("nki,nkj->nij", X, wx))


def _residual_parts(y: Array, X: Array, w: Array) -> tuple[Array, Array, Array, Array]:
    """``P y`` (n, k), ``b`` (n, p), ``W X`` and ``(X'WX)⁻¹`` with ``P = W - WX(X'WX)⁻¹X'W``."""
    wx, A = _normal_parts(X, w)
    b = np.einsum("nij,nj->ni", A, np.einsum("nkp,nk->np", wx, y))
    return w * (y - np.einsum("nkp,np->nk", X, b)), b, wx, A


def _trace_p(w: Array, wx: Array, A: Array) -> Array:
    """``tr(P)`` for each problem."""
    return w.sum(-1) - np.einsum("nij,nji->n", A, np.einsum("nki,nkj->nij", wx, wx))


def tau2_mods_batch(
    y: Array, v: Array, X: Array, method: str, *, tol: float = 1e-12, maxiter: int = 1000
) -> tuple[Array, Array]:
    """tau² of many mixed-effects models at once.

    ``y``, ``v`` shaped (n, k) (or (k,), broadcast), ``X`` (n, k, p). Returns ``(tau2,
    converged)`` shaped (n,). Every problem follows exactly the iterates of a lone fit.
    """
    X = np.asarray(X, dtype=float)
    n, k, p = X.shape
    y = np.broadcast_to(np.asarray(y, dtype=float), (n, k))
    v = np.broadcast_to(np.asarray(v, dtype=float), (n, k))
    done = np.ones(n, dtype=bool)
    if method in ("FE", "EE"):
        return np.zeros(n), done
    if method == "DL":
        w = 1.0 / v
        Py, _, wx, A = _residual_parts(y, X, w)
        qe = np.sum(y * Py, axis=-1)
        return np.maximum(0.0, (qe - (k - p)) / _trace_p(w, wx, A)), done
    if method in ("HS", "HSk"):
        w = 1.0 / v
        Py, _, _, _ = _residual_parts(y, X, w)
        qe = np.sum(y * Py, axis=-1)
        scale = 1.0 if method == "HS" else k / (k - p)
        return np.maximum(0.0, (scale * qe - k) / w.sum(-1)), done
    if method == "SJ":
        t0 = np.var(y, axis=-1)  # divisor k, as metafor's var(y) * (k - 1) / k
        Py, _, _, _ = _residual_parts(y, X, 1.0 / (v + t0[:, None]))
        return np.maximum(0.0, t0 * np.sum(y * Py, axis=-1) / (k - p)), done
    # Hedges-type estimator (OLS residuals): HE itself, and the start of ML/REML
    ones = np.ones((n, k))
    P0y, _, _, A0 = _residual_parts(y, X, ones)
    tr_p0v = v.sum(-1) - np.einsum("nij,nji->n", A0, np.einsum("nki,nk,nkj->nij", X, v, X))
    he = np.maximum(0.0, (np.sum(y * P0y, axis=-1) - tr_p0v) / (k - p))
    if method == "HE":
        return he, done
    if method in PM_ROOTS:
        return _pm_batch(y, v, X, tol, float(k - p)), done
    if method == "DLIT":
        return _pm_batch(y, v, X, tol, float(k - p), dlit=True), done
    if method == "PMM":
        return _pm_batch(y, v, X, tol, float(stats.chi2.ppf(0.5, k - p))), done
    if method not in ("ML", "REML"):
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    tau2 = he.copy()
    active = np.arange(n)  # problems still iterating; only those are recomputed
    # bracket of the root from the signs of the score seen so far: a Fisher step that leaves it
    # (a two-point oscillation, seen under permuted designs) is replaced by its midpoint
    lo, hi, lo_seen = np.zeros(n), np.full(n, np.inf), np.zeros(n, dtype=bool)
    for _ in range(maxiter):
        t, ya, va, Xa = tau2[active], y[active], v[active], X[active]
        w = 1.0 / (va + t[:, None])
        Py, _, wx, A = _residual_parts(ya, Xa, w)
        if method == "REML":
            M2 = np.einsum("nij,njk->nik", A, np.einsum("nki,nkj->nij", wx, wx))
            wwx = w[..., None] * wx
            tr_pp = (
                np.sum(w * w, -1)
                - 2.0 * np.einsum("nij,nji->n", A, np.einsum("nki,nkj->nij", wwx, wx))
                + np.einsum("nij,nji->n", M2, M2)
            )
            step = (np.sum(Py * Py, -1) - _trace_p(w, wx, A)) / tr_pp
        else:
            step = (np.sum(Py * Py, -1) - np.sum(w, -1)) / np.sum(w * w, -1)
        new = t + step
        negative = new < 0
        while np.any(negative):  # step halving keeps tau² >= 0, as metafor
            step = np.where(negative, step / 2.0, step)
            new = t + step
            floor = negative & (np.abs(step) < tol)
            new[floor] = 0.0
            negative = negative & ~floor & (new < 0)
        up = step > 0
        lo[active] = np.where(up, np.maximum(lo[active], t), lo[active])
        lo_seen[active] |= up
        hi[active] = np.where(up, hi[active], np.minimum(hi[active], t))
        la, ha = lo[active], hi[active]
        outside = (lo_seen[active] & (new <= la)) | (new >= ha)
        new = np.where(outside & np.isfinite(ha), 0.5 * (la + ha), new)
        tau2[active] = new
        active = active[np.abs(new - t) >= tol]
        if active.size == 0:
            return tau2, done
    done[active] = False
    return tau2, done


def _pm_batch(
    y: Array, v: Array, X: Array, tol: float, target: float, *, dlit: bool = False
) -> Array:
    """Root of ``y'P(tau²)y = target`` (decreasing in tau²) by vectorised bisection; with
    ``dlit``, of ``y'P(tau²)y - target - tau² tr P(tau²)`` (the DLIT fixed point)."""
    n, k, p = X.shape

    def excess(t: Array) -> Array:
        w = 1.0 / (v + t[:, None])
        Py, _, wx, A = _residual_parts(y, X, w)
        out = np.sum(y * Py, -1) - target
        return out - t * _trace_p(w, wx, A) if dlit else out

    lo = np.zeros(n)
    positive = excess(lo) > 0
    hi = np.maximum(1.0, 10.0 * np.var(y, axis=-1))
    for _ in range(200):
        grow = positive & (excess(hi) > 0)
        if not grow.any():
            break
        hi = np.where(grow, hi * 10.0, hi)
    for _ in range(400):
        width = hi - lo
        if np.all(~positive | (width <= tol * 1e-3 + 4 * np.finfo(float).eps * hi)):
            break
        mid = 0.5 * (lo + hi)
        above = excess(mid) > 0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(positive, 0.5 * (lo + hi), 0.0)


def tau2_mods(
    y: Array, v: Array, X: Array, method: str, *, tol: float = 1e-12, maxiter: int = 1000
) -> tuple[float, bool]:
    """tau² of one mixed-effects model; returns ``(tau2, converged)``."""
    tau2, ok = tau2_mods_batch(y[None], v[None], X[None], method, tol=tol, maxiter=maxiter)
    return float(tau2[0]), bool(ok[0])


def wald_batch(
    y: Array, v: Array, X: Array, tau2: Array, *, test: str = "z", intercept: bool = True
) -> tuple[Array, Array]:
    """Coefficient statistics (n, p) and QM (n,) of many models (QM as F for t/knha/adhoc)."""
    n, k, p = X.shape
    y = np.broadcast_to(np.asarray(y, dtype=float), (n, k))
    w = 1.0 / (np.broadcast_to(v, (n, k)) + np.asarray(tau2)[:, None])
    Py, b, _, vb = _residual_parts(y, X, w)
    if test in ("knha", "adhoc"):
        vb = vb * _kh_scale(np.sum(y * Py, -1), k - p, test)[:, None, None]
    stat = b / np.sqrt(np.einsum("nii->ni", vb))
    idx = np.arange(1 if intercept and p > 1 else 0, p)
    bm = b[:, idx]
    qm = np.einsum("ni,ni->n", bm, np.linalg.solve(vb[:, idx][:, :, idx], bm[..., None])[..., 0])
    return stat, qm / len(idx) if test in T_TESTS else qm


def fit_mods(
    y: Array,
    v: Array,
    X: Array,
    tau2: float,
    *,
    test: str = "z",
    level: float = 95.0,
    intercept: bool = True,
    fixed: bool = False,
) -> dict[str, object]:
    """Coefficients, their tests, QM and QE for given tau² (``intercept``: X[:, 0] is 1).

    ``fixed=True`` (an FE/EE model) takes I² and H² from QE, as metafor does.
    """
    k, p = X.shape
    w = 1.0 / (v + tau2)
    # the p x p normal equations only (no k x k projection matrix)
    vb = np.linalg.inv(X.T @ (w[:, None] * X))
    b = vb @ (X.T @ (w * y))
    df = k - p
    if test in ("knha", "adhoc"):
        e = y - X @ b
        vb = vb * float(_kh_scale(float(w @ (e * e)), df, test))  # y'Py = sum w e² at the fit
    se = np.sqrt(np.diag(vb))
    stat = b / se
    alpha = 1.0 - level / 100.0
    # scipy.special: the functions scipy.stats' t/norm/chi2/f call, without its overhead
    if test in T_TESTS:
        crit = float(special.stdtrit(df, 1.0 - alpha / 2.0))
        pval = 2.0 * special.stdtr(df, -np.abs(stat))
    else:
        crit = float(special.ndtri(1.0 - alpha / 2.0))
        pval = 2.0 * special.ndtr(-np.abs(stat))
    idx = np.arange(1 if intercept and p > 1 else 0, p)
    m = len(idx)
    bm = b[idx]
    qm = float(bm @ np.linalg.solve(vb[np.ix_(idx, idx)], bm))
    if test in T_TESTS:
        qm /= m
        qm_p = float(special.fdtrc(m, df, qm))
    else:
        qm_p = float(special.chdtrc(m, qm))
    w_fe = 1.0 / v
    tr_p_fe, _, A_fe = normal_traces(X, w_fe)
    e_fe = y - X @ (A_fe @ (X.T @ (w_fe * y)))
    qe = float(w_fe @ (e_fe * e_fe))
    vt = (k - p) / tr_p_fe
    if fixed:
        i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
        h2 = qe / (k - p) if k > p else float("nan")
    else:
        i2, h2 = 100.0 * tau2 / (vt + tau2), (vt + tau2) / vt
    return {
        "b": b,
        "vb": vb,
        "se": se,
        "statistic": stat,
        "pvalue": pval,
        "ci_low": b - crit * se,
        "ci_high": b + crit * se,
        "df": df if test in T_TESTS else None,
        "qm": qm,
        "qm_df": m,
        "qm_pvalue": qm_p,
        "qe": qe,
        "qe_df": k - p,
        "qe_pvalue": float(special.chdtrc(k - p, qe)) if k > p else float("nan"),
        "vt": vt,
        "i2": i2,
        "h2": h2,
        "weights": 100.0 * w / w.sum(),
        "crit": crit,
    }


def predict_mods(
    X_new: Array, fit: dict[str, object], tau2: float
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """Predicted values with CI and PI at the rows of ``X_new`` (metafor's ``predict``)."""
    vb = np.asarray(fit["vb"])
    pred = X_new @ np.asarray(fit["b"])
    se = np.sqrt(np.einsum("ij,jk,ik->i", X_new, vb, X_new))
    crit = float(fit["crit"])  # type: ignore[arg-type]
    half_pi = crit * np.sqrt(se**2 + tau2)
    return pred, se, pred - crit * se, pred + crit * se, pred - half_pi, pred + half_pi


def _row_groups(X: Array) -> tuple[Array, Array]:
    """Labels (k,) of identical rows of ``X`` and a representative row index per label."""
    _, first, labels = np.unique(X, axis=0, return_index=True, return_inverse=True)
    return labels.reshape(-1), first


def distinct_permutation_count(X: Array) -> int:
    """Number of distinct row orders of ``X``: ``k! / prod(n_g!)`` over groups of equal rows."""
    labels, _ = _row_groups(X)
    counts = np.bincount(labels)
    total = math.factorial(len(labels))
    for c in counts:
        total //= math.factorial(int(c))
    return total


def distinct_permutations(X: Array) -> Array:
    """Every distinct row order of ``X`` as row indices (n, k); the identity comes first.

    Rows with identical moderator values are interchangeable, so each distinct design is
    listed once (as metafor's exact ``permutest()``).
    """
    labels, first = _row_groups(X)
    seq = sorted(labels.tolist())
    out = []
    while True:  # lexicographic next permutation of a multiset
        out.append(first[seq])
        i = len(seq) - 2
        while i >= 0 and seq[i] >= seq[i + 1]:
            i -= 1
        if i < 0:
            break
        j = len(seq) - 1
        while seq[j] <= seq[i]:
            j -= 1
        seq[i], seq[j] = seq[j], seq[i]
        seq[i + 1 :] = reversed(seq[i + 1 :])
    orders = np.array(out)
    identity = np.flatnonzero(np.all(X[orders] == X[None], axis=(1, 2)))[0]
    return np.concatenate([orders[[identity]], np.delete(orders, identity, axis=0)])


def permutation_statistics(
    y: Array,
    v: Array,
    X: Array,
    orders: Array,
    method: str,
    *,
    test: str = "z",
    intercept: bool = True,
    chunk: int = 4096,
    tol: float = 1e-12,
    maxiter: int = 1000,
) -> tuple[Array, Array, Array]:
    """Refit the model with the rows of ``X`` in each order of ``orders`` (n, k).

    Returns the coefficient statistics (n, p), QM (n,) and convergence flags (n,), the fits
    batched ``chunk`` orders at a time.
    """
    stats_out, qm_out, ok_out = [], [], []
    for start in range(0, len(orders), chunk):
        Xp = X[orders[start : start + chunk]]
        tau2, ok = tau2_mods_batch(y, v, Xp, method, tol=tol, maxiter=maxiter)
        z, qm = wald_batch(y, v, Xp, tau2, test=test, intercept=intercept)
        stats_out.append(z)
        qm_out.append(qm)
        ok_out.append(ok)
    return np.concatenate(stats_out), np.concatenate(qm_out), np.concatenate(ok_out)
