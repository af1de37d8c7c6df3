"""The (restricted) likelihood of the multilevel model and its maximiser (``rma.mv``'s core).

`_Problem` holds the data, the random-effect terms and their parameter layout and evaluates,
block by block, the ML or REML log-likelihood with its analytic score, the GLS estimate and
``(X'M^-1X)^-1`` (formulas in `ketameta._core.multilevel`); `_maximise` runs L-BFGS-B on the
transformed scale and polishes by Newton steps on a finite-difference Hessian of the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from ketameta._core.multilevel_struct import (
    ZMAX,
    Array,
    InnerOuter,
    Intercept,
    ParamLayout,
    build_groups,
)

_LOG_2PI = np.log(2.0 * np.pi)


class _Problem(ParamLayout):
    """Data, terms, parameter layout (sigma2, then tau2/rho, gamma2/phi ...) and blocks."""

    def __init__(self, yi: Array, V: Array, X: Array, components: Sequence[Any]):
        self.y = np.asarray(yi, dtype=np.float64).ravel()
        self.V = np.asarray(V, dtype=np.float64)
        self.X = np.asarray(X, dtype=np.float64).reshape(self.y.size, -1)
        self.k, self.p = self.X.shape
        icomp = [c for c in components if isinstance(c, Intercept)]
        self.icodes = [
            np.unique(np.asarray(c.codes), return_inverse=True)[1].ravel() for c in icomp
        ]
        self.nlevels = [int(c.max()) + 1 for c in self.icodes]
        super().__init__(len(self.icodes), [c for c in components if isinstance(c, InnerOuter)])
        self.groups = build_groups(self.y, self.V, self.X, self.icodes, self.gterms)
        self.logdet_xtx = np.linalg.slogdet(self.X.T @ self.X)[1]
        vdiag = np.diag(self.V) if self.V.ndim == 2 else self.V
        b_ols = np.linalg.lstsq(self.X, self.y, rcond=None)[0]
        res = self.y - self.X @ b_ols
        tot = res @ res / max(self.k - self.p, 1) - vdiag.mean()
        self.scale = max(tot, 0.01 * max(vdiag.mean(), 1e-8)) / max(1, len(self.kinds))

    # ---- likelihood -----------------------------------------------------------------------
    def evaluate(self, q: Array, reml: bool, grad: bool = False) -> dict[str, Any]:
        """Log-likelihood (and score in ``q``), GLS ``b``, ``(X'M^-1X)^-1`` and block caches."""
        ns = len(self.icodes)
        gmats = [gt.gmatrix(q[sl]) for gt, sl in zip(self.gterms, self.slices, strict=True)]
        logdet, H, xy, cache = 0.0, np.zeros((self.p, self.p)), np.zeros(self.p), []
        for grp in self.groups:
            M = grp.V.copy()
            for s, A in zip(q[:ns], grp.A, strict=True):
                M += s * A
            for (G, _), S, ii in zip(gmats, grp.S, grp.inner, strict=True):
                M += S * G[ii[:, :, None], ii[:, None, :]]
            L = np.linalg.cholesky(M)
            logdet += 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum()
            Minv = np.linalg.inv(M)
            MX = Minv @ grp.X
            H += np.einsum("bnp,bnq->pq", grp.X, MX)
            xy += np.einsum("bnp,bn->p", MX, grp.y)
            cache.append((Minv, MX))
        Hinv = np.linalg.inv(H)
        beta = Hinv @ xy
        rss, es = 0.0, []
        for grp, (Minv, _) in zip(self.groups, cache, strict=True):
            r = grp.y - grp.X @ beta
            e = (Minv @ r[:, :, None])[:, :, 0]
            rss += (r * e).sum()
            es.append(e)
        if reml:
            n = self.k - self.p
            ll = -0.5 * (n * _LOG_2PI - self.logdet_xtx + logdet + np.linalg.slogdet(H)[1] + rss)
        else:
            ll = -0.5 * (self.k * _LOG_2PI + logdet + rss)
        out = {"ll": ll, "beta": beta, "vb": Hinv, "cache": cache, "e": es}
        if grad:
            g = np.zeros(q.size)
            for grp, (Minv, MX), e in zip(self.groups, cache, es, strict=True):
                for i, dM in enumerate(self._dM(grp, gmats)):
                    dMe = (dM @ e[:, :, None])[:, :, 0]
                    t = (Minv * dM).sum() - (e * dMe).sum()  # (no BLAS: tiny, many calls)
                    if reml:
                        T = np.einsum("bnp,bnq->pq", MX, dM @ MX)
                        t -= (Hinv * T).sum()
                    g[i] -= 0.5 * t
            out["grad"] = g
        return out

    def _dM(self, grp, gmats):
        yield from grp.A
        for (_, dGs), S, ii in zip(gmats, grp.S, grp.inner, strict=True):
            for dG in dGs:
                yield S * dG[ii[:, :, None], ii[:, None, :]]


def _maximise(
    prob: _Problem,
    reml: bool,
    q0: Array,
    free: NDArray,
    tol: float,
    maxiter: int,
    qfix: Array | None = None,
):
    """Maximise over the ``free`` parameters from ``q0`` with the others at ``qfix`` (default
    ``q0``); returns (q, ev, converged, iters)."""
    qfix = q0 if qfix is None else qfix
    prob = prob.for_fixed(free)
    z = prob.z_from_q(q0)
    for i in np.flatnonzero(~free):
        z[i] = prob.z_scalar(i, qfix[i])
    q0 = np.where(free, prob.q_from_z(z), qfix)
    kinds = np.array(prob.kinds)
    pos = np.isin(kinds, ("var", "sd"))
    bounds = [(0.0, None) if pos[i] else (-ZMAX, ZMAX) for i in np.flatnonzero(free)]
    if not free.any():
        return q0, prob.evaluate(q0, reml), True, 0

    def qz(zz: Array) -> Array:  # q at zz, the fixed entries exactly as given
        return np.where(free, prob.q_from_z(zz), q0)

    def score(zz: Array) -> tuple[float, Array]:
        ev = prob.evaluate(qz(zz), reml, grad=True)
        return ev["ll"], prob.jac(zz).T @ ev["grad"]

    def negative(zf: Array) -> tuple[float, Array]:
        zz = z.copy()
        zz[free] = zf
        try:
            ll, gz = score(zz)
        except np.linalg.LinAlgError:
            return 1e100, np.zeros(zf.size)
        return -ll, -gz[free]

    res = optimize.minimize(
        negative,
        z[free],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12},
    )
    z[free] = res.x
    iters, converged = int(res.nit), False
    ll, gz = score(z)
    for _ in range(50):  # Newton polish on the free, non-boundary parameters
        edge = (pos & (z <= 0.0) & (gz <= 0.0)) | (~pos & (np.abs(z) >= ZMAX) & (z * gz >= 0.0))
        act = free & ~edge
        idx = np.flatnonzero(act)
        if idx.size == 0:
            converged = True
            break
        hess = np.empty((idx.size, idx.size))
        try:  # (a difference step can leave the PD region: then keep the L-BFGS-B point)
            for j, col in enumerate(idx):
                h = 1e-5 * max(1.0, abs(z[col]))
                zp, zm = z.copy(), z.copy()
                zp[col] += h
                zm[col] -= h
                hess[:, j] = (score(zp)[1][idx] - score(zm)[1][idx]) / (2.0 * h)
            hess = 0.5 * (hess + hess.T)
            np.linalg.cholesky(-hess)
            step = np.linalg.solve(-hess, gz[idx])
        except np.linalg.LinAlgError:
            break
        iters += 1
        for _ in range(40):
            zn = z.copy()
            zn[idx] = z[idx] + step
            zn[pos] = np.maximum(zn[pos], 0.0)
            zn[~pos] = np.clip(zn[~pos], -ZMAX, ZMAX)
            try:
                lln, gzn = score(zn)
            except np.linalg.LinAlgError:
                lln = -np.inf
            if lln >= ll - 1e-12 * (1.0 + abs(ll)):
                break
            step = step / 2.0
        else:
            break
        done = np.all(np.abs(zn - z) <= tol * (1.0 + np.abs(z)))
        z, ll, gz = zn, lln, gzn
        if done:
            converged = True
            break
    q = qz(z)
    return q, prob.evaluate(q, reml, grad=True), converged or bool(res.success), iters
