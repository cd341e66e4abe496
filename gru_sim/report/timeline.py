"""A Gantt chart of a simulated timeline: the kernels of one GRU call on their resources (with the
memory in use beneath them), or the batches of a serving run on their replicas.

Input: ``{"title", "caption", "items": [{"lane", "name", "start_s", "duration_s", "category"}],
"memory_timeline": {"time_s": [...], "bytes": [...]}}`` (the memory part optional).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .page import Figure

MAX_ITEMS = 3000


def gantt_figure(timeline: dict[str, Any]) -> Figure | None:
    """One horizontal bar per item, one row per lane, one colour per category."""
    all_items = timeline.get("items") or []
    if not all_items:
        return None
    items = all_items[:MAX_ITEMS]
    lanes = list(dict.fromkeys(i["lane"] for i in items))
    memory = timeline.get("memory_timeline") or {}
    with_memory = bool(memory.get("time_s"))
    gantt_height = 34 * len(lanes) + 160
    fig = make_subplots(rows=2 if with_memory else 1, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.7, 0.3] if with_memory else None)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_category[str(item.get("category", "kernel"))].append(item)
    for category, its in by_category.items():
        fig.add_trace(go.Bar(
            y=[i["lane"] for i in its], x=[i["duration_s"] for i in its], base=[i["start_s"] for i in its],
            orientation="h", name=category, text=[i["name"] for i in its], textposition="none",
            marker=dict(line=dict(color="white", width=0.5)),
            customdata=[[i["start_s"], i["start_s"] + i["duration_s"]] for i in its],
            hovertemplate="%{text}<br>%{customdata[0]:.6g} s → %{customdata[1]:.6g} s (%{x:.4g} s)"
                          "<extra>%{fullData.name}</extra>"), row=1, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=lanes[::-1], title_text="", row=1, col=1)
    if with_memory:
        fig.add_trace(go.Scatter(x=memory["time_s"], y=memory["bytes"], mode="lines", line=dict(shape="hv"),
                                 name="memory in use", hovertemplate="%{x:.6g} s: %{y:.4s}B<extra></extra>"),
                      row=2, col=1)
        fig.update_yaxes(title_text="memory", tickformat="~s", ticksuffix="B", rangemode="tozero", row=2, col=1)
        gantt_height = int(gantt_height / 0.7)
    fig.update_xaxes(title_text="simulated time", ticksuffix="s", row=2 if with_memory else 1, col=1)
    fig.update_layout(title=str(timeline.get("title", "Timeline")), barmode="overlay",
                      height=max(320, gantt_height),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    caption = str(timeline.get("caption", ""))
    if len(all_items) > MAX_ITEMS:
        caption += f" Showing the first {MAX_ITEMS} of {len(all_items)} items."
    return Figure(fig, caption.strip())
