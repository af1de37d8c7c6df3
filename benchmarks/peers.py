"""Adapters: one function per peer and workload, each returning the numbers that are checked.

Every adapter was written from the peer's installed source (not guessed):

* statsmodels 0.15 ``statsmodels.stats.meta_analysis.combine_effects(effect, variance,
  method_re="dl")``: ``mean_effect_re``, ``tau2``. Its random-effects choices are DL
  (``"chi2"``/``"dl"``) and Paule-Mandel (``"iterated"``/``"pm"``): no REML.
* PyMARE 0.0.13 ``pymare.estimators.DerSimonianLaird`` and
  ``VarianceBasedLikelihoodEstimator(method="REML")``: ``fit(y=(k, n), v=(k, n), X=(k, 1))``
  fits the ``n`` columns as independent meta-analyses (its batched mode); ``summary()`` gives
  ``fe_params`` and ``tau2``. REML is maximised with ``scipy.optimize.minimize`` (default
  tolerance), so its tau2 agrees to ~1e-7..1e-6, not to our 1e-12 root.
* pimeta 1.1 ``pimeta.rma(yi, vi, method=)`` (``b``, ``tau2``; Fisher scoring with metafor's
  ``threshold = 1e-5``), ``pimeta.leave1out(y, v, method=)``, ``pimeta.influence(y, v,
  method=)``, ``pimeta.permutest(rma(yi, vi, mods=x), iter=, seed=)``, ``pimeta.gosh(y, v,
  method=)``.
* PyMetaAnalysis 0.9 (import name ``meta_analyze``) ``meta_analysis(effect=, variance=,
  tau2_method=)``: ``estimate``, ``tau2`` (REML root by ``scipy.optimize`` with ``atol=1e-10``);
  ``result.leave_one_out()``.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np


def version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", "?")


def single_fit(method: str) -> dict:
    """``{peer: f(yi, vi) -> (estimate, tau2)}`` for every installed peer that has ``method``."""
    out = {}
    if version("statsmodels") and method == "DL":
        from statsmodels.stats.meta_analysis import combine_effects

        def statsmodels_fit(yi, vi):
            r = combine_effects(yi, vi, method_re="dl")
            return float(r.mean_effect_re), float(r.tau2)

        out["statsmodels"] = statsmodels_fit
    if version("pymare"):
        from pymare import estimators

        def pymare_fit(yi, vi):
            est = (
                estimators.DerSimonianLaird()
                if method == "DL"
                else estimators.VarianceBasedLikelihoodEstimator(method="REML")
            )
            est.fit(y=yi[:, None], v=vi[:, None], X=np.ones((yi.size, 1)))
            s = est.summary()
            return float(np.ravel(s.fe_params)[0]), float(np.ravel(s.tau2)[0])

        out["PyMARE"] = pymare_fit
    if version("pimeta"):
        import pimeta

        def pimeta_fit(yi, vi):
            r = pimeta.rma(yi, vi, method=method)
            return float(np.ravel(r.b)[0]), float(r.tau2)

        out["pimeta"] = pimeta_fit
    if version("meta_analyze"):
        from meta_analyze import meta_analysis

        def pymetaanalysis_fit(yi, vi):
            r = meta_analysis(effect=yi, variance=vi, tau2_method=method)
            return float(r.estimate), float(r.tau2)

        out["PyMetaAnalysis"] = pymetaanalysis_fit
    return out


def batch_reml() -> dict:
    """``{peer: f(Y, V) -> tau2 (n,)}`` for peers with a batched REML fit (rows = analyses)."""
    out = {}
    if version("pymare"):
        from pymare import estimators

        def pymare_batch(Y, V):
            est = estimators.VarianceBasedLikelihoodEstimator(method="REML")
            est.fit(y=Y.T, v=V.T, X=np.ones((Y.shape[1], 1)))
            return np.ravel(est.summary().tau2)

        out["PyMARE batched"] = pymare_batch
    return out


def leave_one_out() -> dict:
    """``{peer: f(yi, vi) -> (estimate (k,), tau2 (k,))}``, REML."""
    out = {}
    if version("pimeta"):
        import pimeta

        def pimeta_loo(yi, vi):
            r = pimeta.leave1out(yi, vi, method="REML")
            return np.asarray(r.estimate), np.asarray(r.tau2)

        out["pimeta"] = pimeta_loo
    if version("meta_analyze"):
        from meta_analyze import meta_analysis

        def pymetaanalysis_loo(yi, vi):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = meta_analysis(effect=yi, variance=vi, tau2_method="REML").leave_one_out()
            frame = r.to_dataframe()
            return frame["estimate"].to_numpy(float), frame["tau2"].to_numpy(float)

        out["PyMetaAnalysis"] = pymetaanalysis_loo
    return out


def influence() -> dict:
    """``{peer: f(yi, vi) -> tau2 with each study deleted (k,)}``, REML."""
    out = {}
    if version("pimeta"):
        import pimeta

        def pimeta_influence(yi, vi):
            r = pimeta.influence(yi, vi, method="REML")
            return np.asarray(r.tau2_del, dtype=float)

        out["pimeta"] = pimeta_influence
    return out


def permutest() -> dict:
    """``{peer: f(yi, vi, x, n_perm) -> (coefficient of x, QM)}`` of the observed model."""
    out = {}
    if version("pimeta"):
        import pimeta

        def pimeta_perm(yi, vi, x, n_perm):
            res = pimeta.rma(yi, vi, mods=x[:, None], method="REML")
            pimeta.permutest(res, iter=n_perm, seed=1)
            return float(np.ravel(res.b)[1]), float(res.QM)

        out["pimeta"] = pimeta_perm
    return out


def gosh(method: str) -> dict:
    """``{peer: f(yi, vi) -> (estimate, tau2)`` of every subset in code order}``."""
    out = {}
    if version("pimeta"):
        import pimeta

        def pimeta_gosh(yi, vi):
            r = pimeta.gosh(yi, vi, method=method)
            incl = np.asarray(r.incl, dtype=bool)
            order = np.argsort(incl @ (1 << np.arange(incl.shape[1])))
            return np.asarray(r.estimate)[order], np.asarray(r.tau2)[order]

        out["pimeta"] = pimeta_gosh
    return out
