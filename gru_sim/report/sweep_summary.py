"""The report of a sweep too large to draw point by point (millions of configurations priced on a
cluster): its counts and latency quantiles, an even sample against the Pareto front of latency and
throughput, and where every row is on disk.

Input: results.json's ``sweep_summary`` (gru_sim.study.large_sweep); output: one report section.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from ..units import fmt_bytes, fmt_seconds
from .page import Section, cards, table
from .sweep_figures import config_label

# Pareto rows shown in the table.
FRONT_ROWS = 25


def sweep_summary_section(summary: dict[str, Any]) -> Section:
    """The section of a summarised sweep."""
    s = Section("sweep", "Sweep")
    n, n_ex = summary["configurations"], summary["extrapolated"]
    s.paragraph(f"{n:,} configurations predicted from the profile in {summary['chunks']} chunks of up to "
                f"{summary['chunk_rows']:,}" + (f"; {n_ex:,} lie outside its calibrated range (extrapolations)."
                                               if n_ex else ".")
                + f" Too many to draw one by one: below are the quantiles, an even sample (every "
                f"{summary['sample_every']:,}th row) and the Pareto front of latency against throughput.")
    q = summary.get("latency_quantiles_s") or {}
    fastest, slowest = summary["fastest"], summary["slowest"]
    s.html(cards([("fastest call", fmt_seconds(fastest["latency_s"]), config_label(fastest["config"])),
                  ("median latency", fmt_seconds(q.get("p50")), f"p10 {fmt_seconds(q.get('p10'))}, "
                                                                 f"p90 {fmt_seconds(q.get('p90'))}"),
                  ("slowest call", fmt_seconds(slowest["latency_s"]), config_label(slowest["config"]))]))
    s.figure(_sample_figure(summary), f"{len(summary['sample']):,} sampled configurations (grey) and the "
             f"{len(summary['pareto_front'])} on the Pareto front (no other configuration is both faster and of "
             "higher throughput).")
    rows = [[config_label(r["config"]), fmt_seconds(r["latency_s"]),
             f"{fmt_seconds(r['latency_lo_s'])} – {fmt_seconds(r['latency_hi_s'])}",
             f"{r['throughput_tokens_per_s']:.4g}", fmt_bytes(r["peak_memory_bytes"]),
             "yes" if r.get("extrapolated") else ""] for r in summary["pareto_front"][:FRONT_ROWS]]
    s.html("<h3>Pareto front</h3>" + table(["configuration", "latency", "90% interval", "tokens/s", "peak memory",
                                            "extrapolated"], rows, [False, True, True, True, True, False])
           + f"<p class=caption>Every configuration is in {summary['path']} ({summary['format']}, one file per "
             "chunk) beside this report; quantiles are read from a histogram at "
             f"{summary['quantile_resolution']} resolution.</p>")
    return s


def _sample_figure(summary: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    sample, front = summary["sample"], summary["pareto_front"]
    fig.add_trace(go.Scattergl(x=[r["latency_s"] for r in sample], y=[r["throughput_tokens_per_s"] for r in sample],
                               mode="markers", name="sample", marker={"color": "#b0b0b0", "size": 4},
                               text=[config_label(r["config"]) for r in sample]))
    fig.add_trace(go.Scatter(x=[r["latency_s"] for r in front], y=[r["throughput_tokens_per_s"] for r in front],
                             mode="lines+markers", name="Pareto front", line={"shape": "hv"},
                             text=[config_label(r["config"]) for r in front]))
    fig.update_xaxes(title_text="latency of one call", ticksuffix="s", type="log")
    fig.update_yaxes(title_text="throughput (tokens/s)", type="log")
    return fig
