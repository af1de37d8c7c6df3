"""Shared helpers for ketameta's figures: local style, number formats, reproducible saving."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

RATIO_MEASURES = {"RR", "OR", "ROM", "PETO", "HR"}

# rcParams applied inside every ketameta plot (never to the user's global state)
STYLE = {
    "font.size": 9,
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.spines.left": False,
    "svg.hashsalt": "ketameta",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "text.usetex": False,
}


def style_context():
    """A context manager with ketameta's plot style, leaving global rcParams untouched."""
    return mpl.rc_context(STYLE)


def is_ratio(measure: str | None) -> bool:
    """Whether a measure is analysed on the log scale and shown back-transformed."""
    return (measure or "").upper() in RATIO_MEASURES


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


def save(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Save a figure to PNG, SVG or PDF (by suffix) with fixed metadata, so that saving the same
    figure twice gives identical bytes.

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
    metadata = {
        ".png": {"Software": None},
        ".svg": {"Date": None, "Creator": None},
        ".pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    }.get(suffix)
    if metadata is None:
        raise ValueError(f"save(): unsupported file type {suffix!r}; use .png, .svg or .pdf")
    with style_context():
        fig.savefig(path, dpi=dpi, metadata=metadata, bbox_inches="tight")
    return path
