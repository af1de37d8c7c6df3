"""Leave-one-out, influence and cumulative fits on the batched core (pure numpy).

Every refit runs as one vectorised batch: the k leave-one-out problems are the rows of a
(k, k) mask, the k cumulative problems the rows of a lower-triangular mask, so nothing loops
over single fits in Python. Influence measures follow Viechtbauer & Cheung (2010), as metafor's
``influence.rma.uni()`` computes them for models without moderators.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ketameta._core.batch import fit_batch


def leave_one_out(yi, vi, *, method: str, test: str = "z", level: float = 95.0) -> dict:
    """Fits with each study left out in turn (row i = without study i)."""
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.size
    mask = ~np.eye(k, dtype=bool)
    return fit_batch(
        np.broadcast_to(yi, (k, k)),
        np.broadcast_to(vi, (k, k)),
        mask=mask,
        method=method,
        test=test,
        level=level,
        ci_tau2=False,
    )


def cumulative(yi, vi, order, *, method: str, test: str = "z", level: float = 95.0) -> dict:
    """Fits of the first 1, 2, ..., k studies in ``order`` (row j = the first j + 1)."""
    y = np.asarray(yi, dtype=float)[order]
    v = np.asarray(vi, dtype=float)[order]
    k = y.size
    mask = np.tril(np.ones((k, k), dtype=bool))
    return fit_batch(
        np.broadcast_to(y, (k, k)),
        np.broadcast_to(v, (k, k)),
        mask=mask,
        method=method,
        test=test,
        level=level,
        ci_tau2=False,
    )


def influence_measures(
    yi, vi, *, estimate: float, se: float, tau2: float, method: str, test: str = "z"
) -> dict:
    """Externally studentized residuals, DFFITS, Cook's distance, covariance ratio, leave-one-out
    tau² and QE, hat values, weights (percent), DFBETAS and metafor's influential flag."""
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.size
    p = 1
    loo = leave_one_out(yi, vi, method=method, test=test)
    b_del, se_del, tau2_del = loo["estimate"], loo["se"], loo["tau2"]
    w = 1.0 / (vi + tau2)
    hat = w / w.sum()
    rstudent = (yi - b_del) / np.sqrt(vi + tau2_del + se_del**2)
    dffits = (estimate - b_del) / np.sqrt(hat * (tau2_del + vi))
    cooks_d = (estimate - b_del) ** 2 / se**2
    cov_ratio = se_del**2 / se**2
    _ = p  # one coefficient (no moderators)
    # DFBETAS scale by the variance of the estimate with every study weighted at tau2_del
    vb_del_all = 1.0 / np.sum(1.0 / (vi[None, :] + tau2_del[:, None]), axis=1)
    dfbetas = (estimate - b_del) / np.sqrt(vb_del_all)
    influential = (
        (np.abs(dffits) > 3.0 * np.sqrt(p / (k - p)))
        | (stats.chi2.cdf(cooks_d, df=p) > 0.5)
        | (hat > 3.0 * p / k)
        | (np.abs(dfbetas) > 1.0)
    )
    return {
        "rstudent": rstudent,
        "dffits": dffits,
        "cooks_d": cooks_d,
        "cov_ratio": cov_ratio,
        "tau2_del": tau2_del,
        "qe_del": loo["q"],
        "hat": hat,
        "weight": 100.0 * hat,
        "dfbetas": dfbetas,
        "influential": influential,
    }
