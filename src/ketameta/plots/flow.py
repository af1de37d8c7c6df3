"""A PRISMA 2020 flow diagram drawn from plain counts (no review objects are read).

The layout follows the PRISMA 2020 template: phase bars on the far left (Identification,
Screening, Included), the main boxes in the left column joined by arrows down, and the boxes of
records that leave the flow (duplicates, exclusions with reasons, studies awaiting
classification) in the right column with arrows across. Text is wrapped to the box width with
widths measured by the Agg renderer, and every box is as tall as its lines, so numbers and long
reasons never overlap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ketameta.plots._style import FONT_FAMILY, FONT_SIZE, KetametaFigure, style_context

KEYS = (
    "identified",
    "duplicates_removed",
    "screened",
    "excluded",
    "awaiting",
    "included_studies",
    "included_records",
    "per_analysis",
)
HEADINGS = {
    "identified": "Records identified",
    "duplicates_removed": "Duplicate records removed",
    "screened": "Records screened",
    "excluded": "Records excluded",
    "awaiting": "Studies awaiting classification",
    "included_studies": "Studies included in review",
    "included_records": "Reports of included studies",
    "per_analysis": "Studies in each analysis",
}
MARGIN_IN = 0.15
PHASE_W_IN = 0.3  # width of the coloured phase bars
GAP_IN = 0.18  # phase bar to main column
LEFT_W_IN = 3.0  # main (left) column box width
ACROSS_IN = 0.5  # horizontal arrow length between the columns
RIGHT_W_IN = 2.9  # side (right) column box width
DOWN_IN = 0.42  # vertical arrow length between two rows
PAD_IN = 0.09  # text padding inside a box
INDENT_IN = 0.14  # list items
LINE_IN = FONT_SIZE * 1.3 / 72  # one text line
TITLE_IN = 0.4
INK = "#222222"
BOX_EDGE = "#3b3b3b"
PHASE_FACE = "#c9dff0"
PHASE_EDGE = "#7aa7cc"
TEXT = {"color": INK, "parse_math": False, "fontsize": FONT_SIZE}


_RENDERERS = [RendererAgg(1, 1, dpi) for dpi in (72, 100, 150, 300)]


@lru_cache(maxsize=4096)
def text_width_in(text: str, size: float = FONT_SIZE, bold: bool = False) -> float:
    """Width of ``text`` in inches: the widest of Agg's renderings at 72 to 300 dpi.

    Hinting makes a text's width depend on the resolution (bold text by up to ~8 %), so a box
    sized at one dpi could be too narrow when saved at another; the maximum fits them all.
    """
    if not text:
        return 0.0
    font = FontProperties(family=FONT_FAMILY, size=size, weight="bold" if bold else "normal")
    return max(
        r.get_text_width_height_descent(text, font, ismath=False)[0] / r.dpi for r in _RENDERERS
    )


@dataclass
class _Box:
    """A box's lines as (text, bold, indented); ``name`` becomes the patch's gid."""

    name: str
    lines: list[tuple[str, bool, bool]] = field(default_factory=list)

    def head(self, text: str) -> _Box:
        self.lines.append((text, True, False))
        return self

    def item(self, text: str) -> _Box:
        self.lines.append((text, False, True))
        return self


@dataclass
class _Row:
    phase: str
    left: _Box | None = None
    right: _Box | None = None


def prisma_flow(
    counts: Mapping, *, title: str | None = None, labels: Mapping[str, str] | None = None
) -> Figure:
    """Draw a PRISMA 2020 flow diagram (identification, screening, included) from counts.

    Parameters
    ----------
    counts : mapping
        Any of these keys; a missing key leaves its box (or line) out:

        - ``identified``: records identified, an int or a mapping source -> count (the total
          is the sum; each source is listed in the box);
        - ``duplicates_removed``: duplicate records removed before screening (side box);
        - ``screened``: records screened;
        - ``excluded``: an int or a mapping reason -> count (side box, reasons listed; the
          total is the sum);
        - ``awaiting``: studies awaiting classification (or numbers), an int or a mapping
          reason -> count (side box);
        - ``included_studies``, ``included_records``: studies included and their reports;
        - ``per_analysis``: mapping analysis name -> number of studies (k), listed in the
          final box.

        Counts must be non-negative whole numbers.
    title : str, optional
        Shown above the diagram.
    labels : mapping, optional
        Other wording for a box's heading, by key (defaults in `HEADINGS`), e.g.
        ``{"awaiting": "Studies awaiting numbers"}``; the count is appended as ``(n = ...)``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes in inches (y up). Boxes are ``FancyBboxPatch`` with gid ``"box-<key>"``
        (``box-identified``, ``box-duplicates_removed``, ``box-screened``, ``box-excluded``,
        ``box-awaiting``, ``box-included``), arrows are ``FancyArrowPatch`` with gid
        ``"arrow"``, phase bars have gid ``"phase-<name>"``.

    Raises
    ------
    ValueError
        An unknown key, a count that is negative or not a whole number, or no box to draw;
        the message names the key (and reason).

    Examples
    --------
    >>> fig = prisma_flow({"screened": 80, "excluded": {"not randomised": 5, "no control": 2},
    ...                    "included_studies": 73})
    >>> sorted(p.get_gid() for p in fig.axes[0].patches if p.get_gid().startswith("box"))
    ['box-excluded', 'box-included', 'box-screened']
    >>> sum(p.get_gid() == "arrow" for p in fig.axes[0].patches)
    2
    """
    unknown = [k for k in labels or {} if k not in HEADINGS]
    if unknown:
        raise ValueError(f"labels: unknown key(s) {unknown}; known keys are {', '.join(KEYS)}")
    rows = _rows(counts, {**HEADINGS, **(labels or {})})
    if not any(r.left or r.right for r in rows):
        raise ValueError(f"counts: no box to draw; give at least one of {', '.join(KEYS)}")
    wrapped = [
        (
            _wrap(r.left, LEFT_W_IN) if r.left else None,
            _wrap(r.right, RIGHT_W_IN) if r.right else None,
        )
        for r in rows
    ]
    heights = [max(_box_height(lines) if lines else 0.0 for lines in pair) for pair in wrapped]
    for phase in dict.fromkeys(r.phase for r in rows):  # rows tall enough for the phase's name
        members = [i for i, r in enumerate(rows) if r.phase == phase]
        span = sum(heights[i] for i in members) + DOWN_IN * (len(members) - 1)
        deficit = text_width_in(phase, FONT_SIZE, bold=True) + 0.2 - span
        for i in members:
            heights[i] += max(deficit, 0.0) / len(members)
    x_phase = MARGIN_IN
    x_left = x_phase + PHASE_W_IN + GAP_IN
    x_right = x_left + LEFT_W_IN + ACROSS_IN
    width = x_right + RIGHT_W_IN + MARGIN_IN
    top = MARGIN_IN + (TITLE_IN if title else 0.0)
    height = top + sum(heights) + DOWN_IN * (len(rows) - 1) + MARGIN_IN
    with style_context():
        fig = KetametaFigure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        centres, spans = [], {}
        y = height - top
        for (left, right), row, h in zip(wrapped, rows, heights, strict=True):
            centre = y - h / 2
            centres.append(centre)
            lo, hi = spans.get(row.phase, (math.inf, -math.inf))
            spans[row.phase] = (min(lo, y - h), max(hi, y))
            if left:
                _draw_box(ax, row.left.name, x_left, LEFT_W_IN, centre, left)
            if right:
                _draw_box(ax, row.right.name, x_right, RIGHT_W_IN, centre, right)
            y -= h + DOWN_IN
        _draw_arrows(ax, rows, wrapped, centres, x_left, x_right)
        for phase, (lo, hi) in spans.items():
            _draw_phase(ax, phase, x_phase, lo, hi)
        if title:
            kw = {**TEXT, "fontsize": FONT_SIZE + 2, "fontweight": "bold"}
            ax.text(MARGIN_IN, height - MARGIN_IN, title, va="top", gid="title", **kw)
    return fig


def _count(value: object, where: str) -> int:
    """A non-negative whole number, or a ValueError naming ``where``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and math.isfinite(float(value)) and float(value) == int(value) and value >= 0:
        return int(value)
    raise ValueError(f"{where}: a count must be a non-negative whole number, got {value!r}")


def _breakdown(value: object, key: str) -> tuple[int, dict[str, int]]:
    """(total, parts) of an int or a mapping name -> count."""
    if isinstance(value, Mapping):
        parts = {str(k): _count(v, f"counts[{key!r}][{k!r}]") for k, v in value.items()}
        return sum(parts.values()), parts
    return _count(value, f"counts[{key!r}]"), {}


def _n(value: int) -> str:
    return f"(n\u00a0=\u00a0{value:,})"  # no-break spaces: a count is never split


def _rows(counts: Mapping, h: Mapping[str, str]) -> list[_Row]:
    if not isinstance(counts, Mapping):
        raise ValueError(f"counts: expected a mapping of {', '.join(KEYS)}, got {counts!r}")
    unknown = [k for k in counts if k not in KEYS]
    if unknown:
        raise ValueError(f"counts: unknown key(s) {unknown}; known keys are {', '.join(KEYS)}")
    c = {k: v for k, v in counts.items() if v is not None}
    rows: list[_Row] = []
    if "identified" in c or "duplicates_removed" in c:
        row = _Row("Identification")
        if "identified" in c:
            row.left = _side("identified", h["identified"], c["identified"], " from:")
        if "duplicates_removed" in c:
            n = _count(c["duplicates_removed"], "counts['duplicates_removed']")
            row.right = _Box("duplicates_removed").head("Records removed before screening:")
            row.right.item(f"{h['duplicates_removed']} {_n(n)}")
        rows.append(row)
    if "screened" in c or "excluded" in c:
        row = _Row("Screening")
        if "screened" in c:
            n = _count(c["screened"], "counts['screened']")
            row.left = _Box("screened").head(f"{h['screened']} {_n(n)}")
        if "excluded" in c:
            row.right = _side("excluded", h["excluded"], c["excluded"])
        rows.append(row)
    if "awaiting" in c:
        box = _side("awaiting", h["awaiting"], c["awaiting"])
        rows.append(_Row("Screening", right=box))
    final = [k for k in ("included_studies", "included_records", "per_analysis") if k in c]
    if final:
        box = _Box("included")
        if "included_studies" in c:
            n = _count(c["included_studies"], "counts['included_studies']")
            box.head(f"{h['included_studies']} {_n(n)}")
        if "included_records" in c:
            n = _count(c["included_records"], "counts['included_records']")
            box.head(f"{h['included_records']} {_n(n)}")
        if "per_analysis" in c:
            if not isinstance(c["per_analysis"], Mapping):
                raise ValueError(
                    "counts['per_analysis']: expected a mapping analysis name -> number of "
                    f"studies, got {c['per_analysis']!r}"
                )
            if box.lines:
                box.lines.append(("", False, False))
            box.lines.append((f"{h['per_analysis']}:", False, False))
            for name, k in c["per_analysis"].items():
                box.item(f"{name} (k\u00a0=\u00a0{_count(k, f'counts[{KEYS[7]!r}][{name!r}]'):,})")
        rows.append(_Row("Included", left=box))
    return rows


def _side(key: str, label: str, value: object, lead: str = ":") -> _Box:
    """A heading with the total and, for a mapping, one item per part."""
    total, parts = _breakdown(value, key)
    box = _Box(key).head(f"{label} {_n(total)}{lead if parts else ''}")
    for reason, n in parts.items():
        box.item(f"{reason} {_n(n)}")
    return box


def _wrap(box: _Box, width: float) -> list[tuple[str, bool, float]]:
    """Lines of ``box`` wrapped to fit ``width`` inches: (text, bold, x offset in inches)."""
    out: list[tuple[str, bool, float]] = []
    for text, bold, indented in box.lines:
        x0 = INDENT_IN if indented else 0.0
        avail = width - 2 * PAD_IN - x0
        words, line, first = [w for w in text.split(" ") if w], "", True
        if not words:
            out.append(("", bold, x0))
            continue
        for word in words:
            bullet = "• " if indented and first and not line else ""
            trial = f"{line} {word}" if line else bullet + word
            hang = 0.0 if first else text_width_in("• ", FONT_SIZE) * indented
            if line and text_width_in(trial, FONT_SIZE, bold=bold) > avail - hang:
                out.append((line, bold, x0 + hang))
                line, first = word, False
            else:
                line = trial
        hang = 0.0 if first else text_width_in("• ", FONT_SIZE) * indented
        out.append((line, bold, x0 + hang))
    return out


def _box_height(lines: list[tuple[str, bool, float]]) -> float:
    return 2 * PAD_IN + LINE_IN * len(lines)


def _draw_box(ax, name: str, x: float, w: float, centre: float, lines) -> None:
    h = _box_height(lines)
    ax.add_patch(
        FancyBboxPatch(
            (x, centre - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.04",
            facecolor="white",
            edgecolor=BOX_EDGE,
            lw=0.9,
            gid=f"box-{name}",
        )
    )
    y = centre + h / 2 - PAD_IN - LINE_IN / 2
    for text, bold, dx in lines:
        if text:
            weight = "bold" if bold else "normal"
            ax.text(x + PAD_IN + dx, y, text, va="center_baseline", fontweight=weight,
                    gid=f"text-{name}", **TEXT)  # fmt: skip
        y -= LINE_IN


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=11,
            shrinkA=0,
            shrinkB=0,
            lw=1.0,
            color=INK,
            gid="arrow",
        )
    )


def _draw_arrows(ax, rows, wrapped, centres, x_left, x_right) -> None:
    """Down arrows between main boxes; across arrows from the main column to each side box."""
    trunk = x_left + LEFT_W_IN / 2
    mains = [i for i, r in enumerate(rows) if r.left]
    bottom = {i: centres[i] - _box_height(wrapped[i][0]) / 2 for i in mains}
    for a, b in zip(mains, mains[1:], strict=False):
        _arrow(ax, (trunk, bottom[a]), (trunk, centres[b] + _box_height(wrapped[b][0]) / 2))
    for i, row in enumerate(rows):
        if not row.right:
            continue
        if row.left:
            _arrow(ax, (x_left + LEFT_W_IN, centres[i]), (x_right, centres[i]))
            continue
        above = [j for j in mains if j < i]
        if not above:
            continue  # nothing flows into this box
        if not any(j > i for j in mains):  # the trunk ends here: draw it down to this row
            ax.plot([trunk, trunk], [bottom[above[-1]], centres[i]], color=INK, lw=1.0, gid="trunk")
        _arrow(ax, (trunk, centres[i]), (x_right, centres[i]))


def _draw_phase(ax, phase: str, x: float, lo: float, hi: float) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, lo),
            PHASE_W_IN,
            hi - lo,
            boxstyle="round,pad=0,rounding_size=0.06",
            facecolor=PHASE_FACE,
            edgecolor=PHASE_EDGE,
            lw=0.8,
            gid=f"phase-{phase.lower()}",
        )
    )
    ax.text(x + PHASE_W_IN / 2, (lo + hi) / 2, phase, rotation=90, ha="center", va="center",
            fontweight="bold", gid="phase-label", **TEXT)  # fmt: skip
