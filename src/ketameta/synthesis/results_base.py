"""The building blocks of the result objects of `ketameta.synthesis.results`.

`ResultMixin` (printing, ``_repr_html_`` and the one-line repr of every result),
`StudyRowsMixin` (per-study rows and the forest plot of the results that carry ``yi``/``vi``)
and `_Deferred`, the data descriptor by which `MetaResult` computes its Q-profile intervals and
secondary statistics on first access (with `_DEFERRED_FIELDS`, the names of those fields).
`ketameta.synthesis.results` re-exports all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ketameta.synthesis import printing

__all__ = ["ResultMixin", "StudyRowsMixin"]


class ResultMixin:
    """Display helpers shared by every result class.

    A subclass defines ``summary() -> pandas.DataFrame``. ``str(res)`` (``print``) gives the
    metafor-style block of :mod:`ketameta.synthesis.printing` (other results: the title and
    the summary table), ``_repr_html_`` a formatted table for Jupyter, and ``repr(res)`` one
    line for the classes that leave the dataclass repr off.
    """

    _title: str = "ketameta result"

    def summary(self) -> pd.DataFrame:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def text(self, **options: Any) -> str:
        """The printed block with options (``digits=4``, ``signif_stars``), as ``print.rma``."""
        return printing.to_text(self, **options)

    def _repr_html_(self) -> str:
        return printing.to_html(self)

    def __str__(self) -> str:
        return printing.to_text(self)

    def __repr__(self) -> str:
        return printing.short_repr(self)


class _PendingType:
    """The marker of a deferred field not computed yet. One instance, which pickling and
    copying keep (``__reduce__`` names it), so a result pickled before its deferred fields were
    read still computes them after unpickling instead of returning a stray marker."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_PENDING"

    def __repr__(self) -> str:
        return "<not computed yet>"


_PENDING = _PendingType()
_NAN_PAIR = (float("nan"), float("nan"))


class _Deferred:
    """A result field computed on first access and then cached (in the instance ``__dict__``).

    ``MetaResult`` keeps its Q-profile intervals (``tau2_ci``, ``tau_ci``, ``i2_ci``,
    ``h2_ci``) and secondary statistics (``se_tau2``, ``loglik``, ...) as such fields: a fit
    does not pay for them until they are read (``summary()``, printing and reports read them).
    A value given to the constructor is stored as is. Otherwise the instance's ``_deferred``
    (a zero-argument callable returning a dict of every deferred field, or None: NaN) is called
    once and all of them are cached together. A data descriptor, so it works on the frozen
    dataclass: the generated ``__init__`` stores through ``__set__``, ``res.tau2_ci = x``
    still raises ``FrozenInstanceError``.
    """

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_v_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return _PENDING  # the dataclass default: "not given"
        d = obj.__dict__
        value = d.get(self.slot, _PENDING)
        if value is _PENDING:
            source = d.get("_deferred")
            computed = source() if source is not None else {}
            for name in _DEFERRED_FIELDS:
                slot = "_v_" + name
                if d.get(slot, _PENDING) is _PENDING:
                    default = _NAN_PAIR if name.endswith("_ci") else float("nan")
                    d[slot] = computed.get(name, default)
            d["_deferred"] = None  # computed: drop the inputs it held
            value = d[self.slot]
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value


_DEFERRED_FIELDS = (
    "tau2_ci", "tau_ci", "i2_ci", "h2_ci", "se_tau2", "loglik", "deviance", "aic", "bic", "aicc",
)  # fmt: skip


class StudyRowsMixin:
    """Per-study rows and the forest plot, shared by the results that carry ``yi``, ``vi``,
    ``labels``, ``weights`` (percent) and ``level``."""

    yi: np.ndarray
    vi: np.ndarray
    labels: tuple[str, ...]
    weights: np.ndarray
    level: float

    def studies(self) -> pd.DataFrame:
        """Per-study DataFrame: ``label, yi, vi, ci_low, ci_high, weight`` (weight in percent).

        Study intervals are yi ± z·sqrt(vi) at ``level`` (normal quantile, as metafor's forest
        plot), whatever test the pooled estimate used; NaN where a study has no ``yi``.
        """
        crit = -special.ndtri((1.0 - self.level / 100.0) / 2.0)
        half = crit * np.sqrt(self.vi)
        return pd.DataFrame(
            {
                "label": list(self.labels),
                "yi": self.yi,
                "vi": self.vi,
                "ci_low": self.yi - half,
                "ci_high": self.yi + half,
                "weight": self.weights,
            }
        )

    def plot_forest(self, **kwargs):
        """Forest plot of this result; see :func:`ketameta.plots.forest.forest`."""
        from ketameta.plots.forest import forest

        return forest(self, **kwargs)
