"""Frozen result objects: what every analysis returns.

Each result is a small frozen dataclass of named numbers (metafor's vocabulary: ``estimate``,
``se``, ``ci_low``, ``tau2``, ``i2``, ...). ``summary()`` gives a tidy DataFrame and Jupyter
shows that table through ``_repr_html_``. Results never recompute; plots and tables only read them.
"""

from __future__ import annotations

import html

import pandas as pd


class ResultMixin:
    """Display helpers shared by every result class.

    A subclass defines ``summary() -> pandas.DataFrame``; this mixin turns it into HTML for
    Jupyter and into plain text for ``print``.
    """

    _title: str = "ketameta result"

    def summary(self) -> pd.DataFrame:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _repr_html_(self) -> str:
        table = self.summary().to_html(float_format=lambda x: f"{x:.4g}", border=0)
        return f"<div><strong>{html.escape(self._title)}</strong>{table}</div>"

    def __str__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 30):
            return f"{self._title}\n{self.summary().to_string()}"
