"""The report page: one self-contained HTML file that opens offline and can be mailed around.

plotly.js is inlined once in the head; each figure is a ``<div>`` and a small script that draws it
from its JSON. Nothing is fetched from the network: no CDN, no fonts, no MathJax. Every piece of text
that came from a user's file goes through :func:`esc`.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from .. import __version__
from ..atomic import write_text_atomic

# A small template instead of plotly's default one, which adds ~6 KB of JSON to every figure.
TEMPLATE = go.layout.Template(layout=dict(
    font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12, color="#222"),
    colorway=["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00",
              "#b82e2e", "#316395"],
    paper_bgcolor="white", plot_bgcolor="white", hovermode="closest",
    # SI prefixes (k, M, G, m, µ) rather than plotly's default "B" for billion, which reads as bytes.
    xaxis=dict(gridcolor="#e5e5e5", linecolor="#999", zerolinecolor="#ccc", automargin=True, exponentformat="SI"),
    yaxis=dict(gridcolor="#e5e5e5", linecolor="#999", zerolinecolor="#ccc", automargin=True, exponentformat="SI"),
    margin=dict(l=60, r=20, t=50, b=50),
    legend=dict(font=dict(size=11)),
))
# What a figure's toolbar offers: no plotly logo link, downloads as SVG-free PNG rendered locally.
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "modeBarButtonsToRemove": ["lasso2d", "select2d"]}

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; line-height: 1.45; }
header { background: #1f2d3d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 2px 0; color: #c9d3de; }
nav { background: #fff; border-bottom: 1px solid #ddd; padding: 8px 32px; position: sticky; top: 0; z-index: 5; }
nav a { margin-right: 18px; color: #1f5fa8; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; margin: 18px 0; padding: 8px 22px 18px; }
h2 { border-bottom: 1px solid #eee; padding-bottom: 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid #e1e4e8; border-radius: 6px; padding: 10px 14px; min-width: 170px; background: #fbfcfd; }
.card .value { font-size: 22px; font-weight: 700; }
.card .label { font-size: 12px; color: #555; }
.card .note { font-size: 11px; color: #777; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: 8px 12px; margin: 10px 0; }
.danger { background: #fdecea; border-left: 6px solid #c62828; color: #7f1010; padding: 10px 14px; margin: 10px 0;
          font-weight: 600; }
.ok { background: #eef8ee; border-left: 4px solid #3a9a3a; padding: 8px 12px; margin: 10px 0; }
.figure { width: 100%; min-height: 380px; margin: 10px 0 4px 0; }
.caption { color: #555; font-size: 13px; margin: 0 0 16px 0; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.grid2 > div { min-width: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
details { margin: 8px 0; }
code { background: #f3f5f7; padding: 1px 4px; border-radius: 3px; }
footer { color: #777; font-size: 12px; padding: 0 32px 24px; }
"""


def esc(text: Any) -> str:
    """Text for HTML: everything escaped, quotes included."""
    return html.escape("" if text is None else str(text), quote=True)


@dataclass
class Figure:
    """A plotly figure with its caption (plain text: it is escaped)."""

    fig: go.Figure
    caption: str = ""
    height_px: int = 420


@dataclass
class Section:
    """One titled part of the page: HTML blocks and figures, in order."""

    anchor: str
    title: str
    parts: list[str | Figure | list[Figure]] = field(default_factory=list)

    def html(self, text_html: str) -> None:
        """Add a block of HTML that the caller has already escaped."""
        self.parts.append(text_html)

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{esc(text)}</p>")

    def ok(self, text: str) -> None:
        self.parts.append(f'<div class="ok">{esc(text)}</div>')

    def warning(self, text: str) -> None:
        self.parts.append(f'<div class="warning">{esc(text)}</div>')

    def danger(self, text: str) -> None:
        """A red banner: the figures below may not describe this machine."""
        self.parts.append(f'<div class="danger">{esc(text)}</div>')

    def figure(self, fig: go.Figure, caption: str = "", height_px: int = 420) -> None:
        self.parts.append(Figure(fig, caption, height_px))

    def figures_side_by_side(self, figures: Sequence[Figure]) -> None:
        self.parts.append(list(figures))


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """Headline figures: (label, value, note) each, escaped."""
    body = "".join(f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
                   f'<div class="note">{esc(note)}</div></div>' for label, value, note in items)
    return f'<div class="cards">{body}</div>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    """An HTML table, every cell escaped; ``numeric`` right-aligns columns."""
    numeric = list(numeric) if numeric is not None else [False] * len(header)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if numeric[i] else ""}>{esc(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bytes_ticks(values: Sequence[float]) -> dict[str, Any]:
    """Tick positions and labels for a log axis of bytes: powers of 1024 (and 32×, when few), as KiB/MiB/GiB."""
    positive = [v for v in values if v > 0]
    if not positive:
        return {}
    lo, hi = min(positive), max(positive)
    ticks = []
    power = 1.0
    while power <= hi * 4:
        for step in (1, 32) if hi / lo < 1024 ** 2 else (1,):
            value = power * step
            if lo / 4 <= value <= hi * 4:
                ticks.append(value)
        power *= 1024
    return {"tickvals": ticks, "ticktext": [_fmt_bytes(v) for v in ticks]}


def _fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.0f} PiB"


def render_page(title: str, subtitle_lines: Sequence[str], sections: Sequence[Section], footer: str) -> str:
    """The whole HTML document: plotly.js once, then every section and its figures."""
    counter = iter(range(1, 1_000_000))
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        body.append(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>')
        for part in s.parts:
            if isinstance(part, str):
                body.append(part)
            elif isinstance(part, Figure):
                body.append(_figure_html(part, next(counter)))
            else:
                body.append('<div class="grid2">' + "".join(_figure_html(f, next(counter)) for f in part)
                            + "</div>")
        body.append("</section>")
    subtitle = "".join(f"<p>{esc(line)}</p>" for line in subtitle_lines)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # No request may leave the page: only inline scripts, styles and data: images.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
        "font-src data:\">"
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{esc(title)}</h1>{subtitle}</header><nav>{nav}</nav><main>{''.join(body)}</main>"
        f"<footer>{esc(footer)}</footer></body></html>\n"
    )


def _figure_html(f: Figure, number: int) -> str:
    div_id = f"figure-{number}"
    f.fig.update_layout(template=TEMPLATE)
    if f.fig.layout.height is None:
        f.fig.update_layout(height=f.height_px)
    # to_json escapes <, > and / inside strings, so no text can close the script early.
    spec = pio.to_json(f.fig, validate=True)
    caption = f'<p class="caption">{esc(f.caption)}</p>' if f.caption else ""
    # Drawn once the whole page is parsed, so that each figure is sized to its final place in the layout.
    return (f'<div><div id="{div_id}" class="figure"></div>{caption}<script>'
            f'document.addEventListener("DOMContentLoaded", function() {{ var spec = {spec}; '
            f'Plotly.newPlot("{div_id}", spec.data, spec.layout, {json.dumps(PLOT_CONFIG)}); }});</script></div>')


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: Any) -> str:
    """A fraction as a percentage: 0.93 → 93.0%."""
    return f"{value:.1%}" if is_num(value) else "-"


def ape_pct(value: Any) -> str:
    """An absolute percentage error, which gru-sim keeps in percent (model/metrics.py): 5.2 → 5.2%."""
    return f"{value:.1f}%" if is_num(value) else "-"


def write_html(path: str | Path, html: str) -> Path:
    """Write a page whole or not at all, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, html)  # a reader never sees half a report


def footer(results: dict[str, Any]) -> str:
    """The page footer: the gru-sim version that wrote the results, and when."""
    created = results.get("created_utc")
    return f"gru-sim {results.get('gru_sim_version', __version__)}" + (f" · {created}" if created else "")
