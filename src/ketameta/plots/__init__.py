"""Figures that read ketameta's result objects: forest and funnel plots."""

from ketameta.plots._style import save
from ketameta.plots.forest import forest
from ketameta.plots.funnel import funnel

__all__ = ["forest", "funnel", "save"]
