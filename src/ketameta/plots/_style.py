"""Shared helpers for ketameta's figures: local style, number formats, reproducible saving."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

RATIO_MEASURES = {"RR", "OR", "ROM", "PETO", "HR"}
FONT_FAMILY = "DejaVu Sans"  # bundled with matplotlib: the same glyphs (and widths) everywhere
FONT_SIZE = 9.0
SMALL_SIZE = 8.0

# rcParams applied inside every ketameta plot (never to the user's global state)
STYLE = {
    "font.size": FONT_SIZE,
    "font.family": FONT_FAMILY,
    "legend.fontsize": SMALL_SIZE,
    "axes.unicode_minus": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.spines.left": False,
    "svg.hashsalt": "ketameta",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "text.usetex": False,
}


def set_ratio_axis(axis: Any, low: float, high: float) -> None:
    """Plain tick labels (0.25, 0.5, 1, 2, 4) on a log-scaled matplotlib axis (x or y)."""
    ticks = ratio_ticks(low, high)
    if len(ticks) >= 2:
        axis.set_major_locator(FixedLocator(ticks))
    else:  # a very narrow axis: matplotlib's log locator with every subdivision
        axis.set_major_locator(LogLocator(subs="all", numticks=6))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def style_context():
    """A context manager with ketameta's plot style, leaving global rcParams untouched."""
    return mpl.rc_context(STYLE)


def is_ratio(measure: str | None) -> bool:
    """Whether a measure is analysed on the log scale and shown back-transformed."""
    return (measure or "").upper() in RATIO_MEASURES


MEASURE_NAMES = {
    "SMD": ("SMD", "Standardized mean difference (Hedges' g)"),
    "SMDH": ("SMD", "Standardized mean difference (heteroscedastic)"),
    "SMCR": ("SMCR", "Standardized mean change"),
    "SMCC": ("SMCC", "Standardized mean change"),
    "MD": ("MD", "Mean difference"),
    "RD": ("RD", "Risk difference"),
    "RR": ("RR", "Risk ratio"),
    "OR": ("OR", "Odds ratio"),
    "PETO": ("OR", "Odds ratio (Peto)"),
    "ROM": ("ROM", "Ratio of means"),
    "HR": ("HR", "Hazard ratio"),
    "ZCOR": ("z", "Fisher's z"),
    "GEN": ("Estimate", "Effect size"),
}


def measure_names(measure: str | None) -> tuple[str, str]:
    """(short, long) display names of a measure; ratio measures say 'log scale' in the long one."""
    short, long = MEASURE_NAMES.get((measure or "").upper(), (measure or "Estimate", measure or ""))
    if is_ratio(measure):
        long += " (log scale)"
    return short, long or "Effect size"


RATIO_TICKS = (
    (0.001, 0.01, 0.1, 1, 10, 100, 1000),
    (0.05, 0.25, 1, 4, 20),
    (0.1, 0.25, 0.5, 1, 2, 4, 10),
    (0.5, 0.75, 1, 1.5, 2),
    (0.8, 0.9, 1, 1.1, 1.25),
)


def ratio_ticks(low: float, high: float) -> list[float]:
    """Plain tick positions for a log axis from ``low`` to ``high`` (display scale): the finest
    of a few familiar sets with at most 7 inside that spans half the axis (possibly fewer than 2
    ticks on a narrow axis)."""
    chosen: list[float] = []
    for candidates in RATIO_TICKS:
        inside = [t for t in candidates if low <= t <= high]
        covers = len(inside) > 1 and math.log(inside[-1] / inside[0]) >= 0.5 * math.log(high / low)
        if len(inside) <= 7 and (covers or not chosen) and len(inside) > len(chosen):
            chosen = inside
    return chosen


def fmt(value: float, digits: int = 2) -> str:
    """A number for a figure: fixed digits, a real minus sign, '-' for missing, inf as ∞."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}".replace("-", "\u2212")


def shorten(text: str, limit: int) -> str:
    """Cut a label to ``limit`` characters with an ellipsis (long labels stay legible)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


PNG_DPI = 150  # what `save` and the notebook display use, so both give the same bytes

# what would vary between two saves of one figure, left out per format
_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
}


def _write(fig: Figure, target: Any, fmt: str, dpi: int) -> None:
    with style_context():
        fig.savefig(target, format=fmt, dpi=dpi, metadata=_METADATA[fmt], bbox_inches="tight")


def save(fig: Figure, path: str | Path, *, dpi: int = PNG_DPI) -> Path:
    """Save a figure to PNG, SVG or PDF (by suffix) so that saving it twice gives identical bytes.

    What would vary is left out or fixed: PNG without the "Software" text chunk, SVG without
    its date and with fixed element ids (``svg.hashsalt`` set in a local ``rc_context``), PDF
    without creation/modification dates. Global matplotlib settings are not touched.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> import tempfile, pathlib
    >>> fig = Figure(); _ = fig.add_subplot().plot([0, 1])
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.png"
    >>> save(fig, p).read_bytes() == save(fig, p).read_bytes()
    True
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix.lstrip(".") not in _METADATA:
        raise ValueError(f"path: unsupported file type {suffix!r}; use .png, .svg or .pdf")
    _write(fig, path, suffix.lstrip("."), dpi)
    return path


def png_bytes(fig: Figure, *, dpi: int = PNG_DPI) -> bytes:
    """The PNG that `save` would write for ``fig``, as bytes (identical on every call)."""
    buffer = io.BytesIO()
    _write(fig, buffer, "png", dpi)
    return buffer.getvalue()


class KetametaFigure(Figure):
    """The `matplotlib.figure.Figure` every ketameta plot returns, shown inline by Jupyter.

    ketameta builds figures without pyplot (no global state, no GUI window), and a bare
    ``Figure`` is displayed by Jupyter as the text ``<Figure size ...>`` unless a
    ``%matplotlib`` magic is active. This subclass adds ``_repr_png_``: the last expression of a
    cell, e.g. ``res.plot_forest()``, is displayed as the PNG that `save` writes (the same bytes),
    with no magic and no pyplot. Everything else is the plain matplotlib Figure.

    Examples
    --------
    >>> fig = KetametaFigure(figsize=(2, 1)); _ = fig.add_subplot().plot([0, 1])
    >>> fig._repr_png_()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """

    def _repr_png_(self) -> bytes:
        return png_bytes(self)
