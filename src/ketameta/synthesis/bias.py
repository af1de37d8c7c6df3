"""Small-study bias: Egger's regression test (with metafor's ``regtest()`` predictors), the
binary-outcome tests of Peters, Harbord and Macaskill, Begg's rank correlation, trim-and-fill,
PET-PEESE and fail-safe N, as metafor's ``regtest()``, ``ranktest()``, ``trimfill()`` and
``fsn()`` (validated against metafor 3.8.1 on the BCG and Hackshaw reference cases; Peters and
Harbord against plain ``lm()`` fits of the published formulas, tests/reference/regtest_binary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketameta._core.batch import fit_batch
from ketameta._core.regression import fit_mods, tau2_mods
from ketameta.synthesis._inputs import check_alpha
from ketameta.synthesis.results import ResultMixin


@dataclass(frozen=True)
class TestResult(ResultMixin):
    """A small-study test: statistic, p-value and (for regression tests) the limit estimate."""

    test: str
    statistic: float
    pvalue: float
    df: float | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    tau: float | None = None
    predictor: str | None = None
    coef: tuple[float, ...] = ()  # regression tests: (intercept, slope)
    coef_se: tuple[float, ...] = ()
    tau2: float | None = None  # model="rma": the residual tau²
    _title = "Small-study test"

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in self.__dict__.items()}])


@dataclass(frozen=True)
class TrimFillResult(ResultMixin):
    """Trim-and-fill: the number of imputed studies, the side, and the refit on filled data."""

    k0: int
    se_k0: float
    side: str
    estimator: str
    filled_yi: np.ndarray
    filled_vi: np.ndarray
    result: Any
    _title = "Trim-and-fill"

    def summary(self) -> pd.DataFrame:
        out = self.result.summary().copy()
        out.insert(0, "k0", self.k0)
        out.insert(1, "side", self.side)
        return out


def _need(result: Any, k_min: int, name: str) -> None:
    if result.k < k_min:
        raise ValueError(f"{name}() needs at least {k_min} studies; the result has {result.k}")


PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")


def _column(result: Any, value: Any, name: str) -> np.ndarray:
    """An array aligned with the result's studies: given, or a column of ``result.data``."""
    data = getattr(result, "data", None)
    if isinstance(value, str):
        if data is None or value not in data.columns:
            raise ValueError(f"{name}: column {value!r} is not in the result's data; pass the "
                             "values as an array")  # fmt: skip
        value = data[value]
    out = np.asarray(value, dtype=float)
    if out.shape != np.shape(result.yi):
        raise ValueError(f"{name} has {out.size} values; the result has {np.size(result.yi)}")
    return out


def _sample_sizes(result: Any, ni: Any) -> np.ndarray:
    """Total sample sizes: ``ni``, else the data's ``ni`` column, else ``n1 + n2``."""
    data = getattr(result, "data", None)
    if ni is not None:
        return _column(result, ni, "'ni'")
    if data is not None and "ni" in data.columns:
        return _column(result, "ni", "'ni'")
    if data is not None and {"n1", "n2"} <= set(data.columns):
        return _column(result, "n1", "'n1'") + _column(result, "n2", "'n2'")
    raise ValueError("the predictor needs the sample sizes: pass ni=..., or fit the result on "
                     "escalc() output with n1/n2 columns")  # fmt: skip


def egger_test(
    result: Any,
    *,
    model: Literal["rma", "lm"] = "rma",
    predictor: Literal["sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"] = "sei",
    ni: Any = None,
) -> TestResult:
    """Regression test for funnel-plot asymmetry (metafor's ``regtest()``; Egger's with "sei").

    ``model="rma"`` (default, as metafor): a meta-regression of yi on the predictor with the
    result's tau² method and test; ``"lm"``: weighted least squares with weights 1/vi and a
    multiplicative error (t test, k-2 df; Egger's classical test). ``predictor``: the standard
    error ``sei`` (default), the variance ``vi``, the total sample size ``ni``, ``1/ni``
    (``ninv``), ``sqrt(ni)`` or ``1/sqrt(ni)``; ``ni`` defaults to the data's ``ni`` column or
    ``n1 + n2`` (escalc output). The test is the predictor's coefficient; ``estimate`` is the
    intercept, the limit estimate as the predictor -> 0 (None for ``ni`` and ``sqrtni``).
    ``coef``/``coef_se`` hold (intercept, slope). ``model="lm", predictor="ninv"`` on a log odds
    ratio is metafor's version of Peters' test (weights 1/vi; see :func:`peters_test`).

    Examples
    --------
    >>> from ketameta import meta
    >>> res = meta([-0.5, -0.2, -0.4, -0.1, -0.6], [0.04, 0.05, 0.03, 0.02, 0.08], method="DL")
    >>> round(egger_test(res).pvalue, 3) < 1
    True
    >>> egger_test(res, model="lm", predictor="ninv", ni=[80, 60, 100, 150, 40]).df
    3
    """
    _need(result, 3, "egger_test")
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}, got {predictor!r}")
    y, v = np.asarray(result.yi), np.asarray(result.vi)
    if predictor in ("sei", "vi"):
        x = np.sqrt(v) if predictor == "sei" else v
    else:
        n = _sample_sizes(result, ni)
        x = {"ni": n, "ninv": 1 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1 / np.sqrt(n)}[predictor]
    X = np.column_stack([np.ones_like(y), x])
    tau2 = None
    if model == "rma":
        method = "FE" if result.method in ("EE", "FE") else result.method
        tau2, _ = tau2_mods(y, v, X, method)
        fit = fit_mods(y, v, X, tau2, test=result.test, level=result.level, fixed=method == "FE")
    elif model == "lm":
        fit = fit_mods(y, v, X, 0.0, test="knha", level=result.level, fixed=True)
    else:
        raise ValueError(f"model must be 'rma' or 'lm', got {model!r}")
    limit = predictor not in ("ni", "sqrtni")
    return TestResult(
        "Egger (sei)" if predictor == "sei" else f"Regression test ({predictor})",
        float(fit["statistic"][1]),
        float(fit["pvalue"][1]),
        fit["df"],
        float(fit["b"][0]) if limit else None,
        float(fit["ci_low"][0]) if limit else None,
        float(fit["ci_high"][0]) if limit else None,
        predictor=predictor,
        coef=tuple(float(b) for b in fit["b"]),
        coef_se=tuple(float(b) for b in fit["se"]),
        tau2=None if tau2 is None else float(tau2),
    )


def begg_test(result: Any) -> TestResult:
    """Begg and Mazumdar's rank correlation test (metafor's ``ranktest()``): Kendall's tau
    between the standardized deviates from the common-effect estimate and the variances (exact
    p-value for k < 50 without ties)."""
    _need(result, 3, "begg_test")
    y, v = np.asarray(result.yi), np.asarray(result.vi)
    w = 1.0 / v
    b = np.sum(w * y) / np.sum(w)
    standardized = (y - b) / np.sqrt(v - 1.0 / np.sum(w))
    ties = len(np.unique(standardized)) < y.size or len(np.unique(v)) < y.size
    method = "exact" if y.size < 50 and not ties else "asymptotic"
    tau, p = stats.kendalltau(standardized, v, method=method)
    return TestResult("Begg rank correlation", float(tau), float(p), tau=float(tau))


def trim_and_fill(
    result: Any,
    *,
    estimator: Literal["L0", "R0"] = "L0",
    side: Literal["left", "right"] | None = None,
    maxiter: int = 100,
) -> TrimFillResult:
    """Duval and Tweedie's trim-and-fill, as metafor's ``trimfill()``.

    The side of the missing studies is, unless given, chosen as metafor does: from the sign of
    the slope of yi on sei (a negative slope puts the missing studies on the right).
    """
    from ketameta.synthesis.pooling import meta

    _need(result, 3, "trim_and_fill")
    y0, v0 = np.asarray(result.yi, dtype=float), np.asarray(result.vi, dtype=float)
    method = result.method
    if side is None:
        X = np.column_stack([np.ones_like(y0), np.sqrt(v0)])
        mods_method = "FE" if method in ("EE", "FE") else method
        tau2, _ = tau2_mods(y0, v0, X, mods_method)
        slope = fit_mods(y0, v0, X, tau2, fixed=mods_method == "FE")["b"][1]
        side = "right" if slope < 0 else "left"
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    y = -y0 if side == "right" else y0.copy()
    order = np.argsort(y, kind="stable")
    y, v = y[order], v0[order]
    k = y.size
    k0, previous, se_k0, b = 0, -1, float("nan"), 0.0
    for _ in range(maxiter):
        if k0 == previous:
            break
        previous = k0
        b = float(fit_batch(y[: k - k0], v[: k - k0], method=method, ci_tau2=False)["estimate"])
        centred = y - b
        ranks = stats.rankdata(np.abs(centred), method="ordinal")
        signed = np.sign(centred) * ranks
        if estimator == "L0":
            s_r = signed[signed > 0].sum()
            k0_raw = (4.0 * s_r - k * (k + 1)) / (2.0 * k - 1.0)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * k0_raw**3
                + 27 * k0_raw**2
                + 17 * k0_raw
                - 18 * k * k0_raw**2
                - 18 * k * k0_raw
                + 6 * k**2 * k0_raw
            ) / 24.0
            se_k0 = 4.0 * math.sqrt(max(var_sr, 0.0)) / (2.0 * k - 1.0)
        elif estimator == "R0":
            negative = -signed[signed < 0]
            k0_raw = (k - (negative.max() if negative.size else 0)) - 1.0
            se_k0 = math.sqrt(2.0 * max(0.0, k0_raw) + 2.0)
        else:
            raise ValueError(f"estimator must be 'L0' or 'R0', got {estimator!r}")
        k0 = int(max(0, round(k0_raw)))
    fill_y = 2.0 * b - y[k - k0 :] if k0 > 0 else np.array([])
    fill_v = v[k - k0 :] if k0 > 0 else np.array([])
    if side == "right":
        fill_y = -fill_y
    labels = [*result.labels, *[f"filled {i + 1}" for i in range(k0)]]
    filled = (
        meta(
            np.concatenate([y0, fill_y]),
            np.concatenate([v0, fill_v]),
            method=method,
            test=result.test,
            level=result.level,
            labels=labels,
            measure=result.measure,
        )
        if k0 > 0
        else result
    )
    return TrimFillResult(k0, se_k0, side, estimator, fill_y, fill_v, filled)


def pet_peese(result: Any) -> pd.DataFrame:
    """PET (weighted regression on the SE) and PEESE (on the variance) limit estimates
    (Stanley & Doucouliagos 2014): fixed-effect weighted least squares with a multiplicative
    error (t tests, k-2 df). The conditional rule uses PEESE when PET's intercept is significant
    (one-sided 5%) in the direction of the effect."""
    _need(result, 3, "pet_peese")
    y, v = np.asarray(result.yi), np.asarray(result.vi)
    rows = []
    for name, x in (("PET", np.sqrt(v)), ("PEESE", v)):
        X = np.column_stack([np.ones_like(y), x])
        fit = fit_mods(y, v, X, 0.0, test="knha", level=result.level, fixed=True)
        rows.append(
            {
                "model": name,
                "estimate": fit["b"][0],
                "se": fit["se"][0],
                "statistic": fit["statistic"][0],
                "pvalue": fit["pvalue"][0],
                "ci_low": fit["ci_low"][0],
                "ci_high": fit["ci_high"][0],
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    pet = table.loc["PET"]
    use_peese = pet["pvalue"] / 2 < 0.05
    table["selected"] = [not use_peese, bool(use_peese)]
    return table


def fail_safe_n(
    result: Any,
    *,
    type: Literal["Rosenthal", "Orwin", "Rosenberg"] = "Rosenthal",
    alpha: float = 0.05,
    target: float | None = None,
) -> TestResult:
    """Fail-safe N as metafor's ``fsn()``: Rosenthal (one-sided alpha on the Stouffer z),
    Orwin (target default half the unweighted mean effect), Rosenberg (two-sided alpha on the
    common-effect z). The number is rounded up; it is returned as ``statistic``."""
    alpha = check_alpha(alpha, caller="fail_safe_n()")
    y, v = np.asarray(result.yi), np.asarray(result.vi)
    k = y.size
    if type == "Rosenthal":
        z = y / np.sqrt(v)
        n = max(0.0, (z.sum() / stats.norm.ppf(1 - alpha)) ** 2 - k)
        p = float(stats.norm.sf(abs(z.sum()) / math.sqrt(k)))
    elif type == "Orwin":
        mean = float(np.mean(y))
        target = mean / 2.0 if target is None else target
        n = max(0.0, k * (mean - target) / target)
        p = float("nan")
    elif type == "Rosenberg":
        w = 1.0 / v
        s = float(np.sum(w * y))
        n = max(0.0, ((s / stats.norm.ppf(1 - alpha / 2)) ** 2 - w.sum()) / w.mean())
        p = float(2 * stats.norm.sf(abs(s) / math.sqrt(w.sum())))
    else:
        raise ValueError(f"type must be 'Rosenthal', 'Orwin' or 'Rosenberg', got {type!r}")
    return TestResult(f"fail-safe N ({type})", float(math.ceil(n - 1e-9)), p)
