"""HTML pieces of the report: escaped tables of preformatted cells, figures as inline PNG.

Figures are written to memory (no temporary file anywhere), with the fixed metadata of
`ketameta.plots.save`, so two builds give the same bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1d;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:2px solid #1f4e79;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.6em}
table.ketameta{border-collapse:collapse;font-size:.85em;margin:.8em 0}
table.ketameta th{overflow-wrap:normal}
table.ketameta th,table.ketameta td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;
vertical-align:top;overflow-wrap:break-word}
table.ketameta th{background:#f1f4f8}
img{max-width:100%}.note{color:#555;font-size:.9em}
.verdict{background:#eef4fb;border-left:4px solid #1f4e79;padding:.5em 1em;margin:.8em 0}
.verdict.no{background:#fbf3ee;border-left-color:#b35c1e}
.warn{background:#fff7e0;border-left:4px solid #e0a800;padding:.5em 1em;font-size:.85em}
.cert{white-space:nowrap}.small{font-size:.8em;color:#555}
ol.fn{font-size:.85em;color:#333}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, cls: str = ""
) -> str:
    """A table of preformatted cells: ``columns`` are ``(key, header)`` pairs; all text escaped."""
    head = "".join(f"<th>{esc(header)}</th>" for _, header in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(row.get(key, ''))}</td>" for key, _ in columns) + "</tr>"
        for row in rows
    )
    extra = f" {cls}" if cls else ""
    return (
        f'<table class="ketameta{extra}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def figure(fig: Any, alt: str, *, dpi: int = 150) -> str:
    """A matplotlib Figure as an inline PNG (deterministic bytes, written to memory)."""
    from ketameta.plots._style import style_context

    buffer = io.BytesIO()
    with style_context():
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight")
    png = buffer.getvalue()
    width_px = int.from_bytes(png[16:20], "big")  # the PNG header's width
    css_width = round(width_px / dpi * 96)  # the figure's physical size, in CSS pixels
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img alt="{esc(alt)}" style="width:{css_width}px;max-width:100%" '
        f'src="data:image/png;base64,{data}">'
    )


def paragraph(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def details(summary: str, inner: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{inner}</details>"
