"""Figures of a serving study: how long requests wait and take, how the tail grows with load, how
busy the replicas are, and what batches the batcher forms.

Input: the ``serving`` object of results.json read back as a
:class:`~gru_sim.study.records.ServingRecord`; output: plotly figures.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..study.records import ServingRecord
from ..units import fmt_seconds
from .page import Figure


def latency_cdf_figure(serving: ServingRecord) -> Figure | None:
    """Cumulative distribution of request latency (and queue wait), with the SLO."""
    cdf = serving.latency_cdf
    if not cdf.value_s:
        return None
    fig = go.Figure(go.Scatter(x=list(cdf.value_s), y=list(cdf.fraction), mode="lines", name="latency",
                               hovertemplate="%{y:.1%} of requests within %{x:.4g} s<extra></extra>"))
    wait = serving.queue_wait_cdf
    # A zero wait cannot sit on a log axis; those requests show as the curve's starting height.
    if any(v > 0 for v in wait.value_s):
        pairs = [(v, f) for v, f in zip(wait.value_s, wait.fraction) if v > 0]
        fig.add_trace(go.Scatter(x=[v for v, _ in pairs], y=[f for _, f in pairs], mode="lines", name="queue wait",
                                 line=dict(dash="dot"),
                                 hovertemplate="%{y:.1%} waited at most %{x:.4g} s<extra></extra>"))
    slo = serving.run.slo_p99_latency_s
    if slo:
        fig.add_vline(x=slo, line=dict(color="#dc3912", dash="dash"), annotation_text="SLO p99",
                      annotation_position="top right")
    fig.add_hline(y=0.99, line=dict(color="#999", dash="dot"))
    fig.update_layout(title="Request latency: cumulative distribution")
    fig.update_xaxes(title_text="time since arrival", ticksuffix="s", type="log")
    fig.update_yaxes(title_text="fraction of requests", tickformat=".0%", range=[0, 1.02])
    p = serving.run.latency_s
    caption = (f"p50 {fmt_seconds(p.p50)}, p90 {fmt_seconds(p.p90)}, p99 {fmt_seconds(p.p99)} "
               "at the configured load. Latency = queue wait + the batch's service time.")
    return Figure(fig, caption)


def load_sweep_figure(serving: ServingRecord) -> Figure | None:
    """p99 latency against arrival rate, with the SLO and the configured rate."""
    sweep = serving.load_sweep.sweep
    points = sorted(sweep.points, key=lambda p: p.rate_per_s)
    if not points:
        return None
    rates = [p.rate_per_s for p in points]
    unstable = [p for p in points if p.stable is False]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rates, y=[p.latency_p99_s for p in points], mode="lines+markers", name="p99",
                             hovertemplate="%{x:.4g} req/s → p99 %{y:.4g} s<extra></extra>"))
    fig.add_trace(go.Scatter(x=rates, y=[p.latency_p50_s for p in points], mode="lines+markers", name="p50",
                             line=dict(dash="dot"), hovertemplate="%{x:.4g} req/s → p50 %{y:.4g} s<extra></extra>"))
    if unstable:
        fig.add_trace(go.Scatter(x=[p.rate_per_s for p in unstable], y=[p.latency_p99_s for p in unstable],
                                 mode="markers", name="overloaded (queue keeps growing)",
                                 marker=dict(symbol="x", size=11, color="#dc3912"), hoverinfo="skip"))
    slo = serving.run.slo_p99_latency_s
    if slo:
        fig.add_hline(y=slo, line=dict(color="#dc3912", dash="dash"), annotation_text=f"SLO p99 {slo:.4g} s",
                      annotation_position="top left")
    offered = serving.offered_rate_per_s
    if offered:
        fig.add_vline(x=offered, line=dict(color="#555", dash="dot"), annotation_text="configured rate",
                      annotation_position="bottom right")
    capacity = sweep.capacity_estimate_per_s
    fig.update_layout(title="Tail latency against load", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="arrival rate (requests/s)", type="log" if max(rates) >= 20 * min(rates) else "linear")
    fig.update_yaxes(title_text="latency", ticksuffix="s", type="log")
    caption = (f"Each point is a separate simulation of {serving.load_sweep.requests_per_point} "
               "requests at that arrival rate, with the same batching and replicas and the same random draws.")
    if capacity:
        caption += f" Estimated capacity with full batches: {capacity:.4g} requests/s."
    if slo:
        best = sweep.max_rate_meeting_slo_per_s
        if best is None:
            caption += " No simulated rate meets the SLO."
        elif sweep.bounded is False:
            caption += f" Every simulated rate meets the SLO, up to {best:.4g} requests/s."
        else:
            caption += f" The highest rate that meets the SLO is about {best:.4g} requests/s."
    return Figure(fig, caption)


def queue_figure(serving: ServingRecord) -> Figure | None:
    """Queue length and replica utilization over simulated time."""
    queue = serving.run.queue_length_timeline
    util = serving.run.utilization_timeline
    if not queue:
        return None
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("requests waiting", "replica utilization"))
    fig.add_trace(go.Scatter(x=[t for t, _ in queue], y=[q for _, q in queue], mode="lines", name="queue",
                             line=dict(shape="hv"), hovertemplate="t=%{x:.4g} s: %{y} waiting<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=[t for t, _ in util], y=[u for _, u in util], mode="lines", name="utilization",
                             line=dict(shape="hv", color="#109618"),
                             hovertemplate="t=%{x:.4g} s: %{y:.0%} busy<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text="requests", row=1, col=1)
    fig.update_yaxes(title_text="busy", tickformat=".0%", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="simulated time", ticksuffix="s", row=2, col=1)
    fig.update_layout(title="Queue and utilization over time", showlegend=False, height=480)
    return Figure(fig, f"Mean utilization {serving.run.utilization:.1%}; values are averaged "
                       "over short windows of simulated time.", 480)


def batch_histogram_figure(serving: ServingRecord) -> Figure | None:
    """How many batches of each size the batcher formed."""
    hist = sorted(serving.run.batch_size_histogram)
    if not hist:
        return None
    fig = go.Figure(go.Bar(x=[size for size, _ in hist], y=[count for _, count in hist], name="batches",
                           hovertemplate="%{y} batches of %{x}<extra></extra>"))
    fig.update_layout(title="Batch sizes formed by the batcher", showlegend=False)
    fig.update_xaxes(title_text="requests per batch")
    fig.update_yaxes(title_text="batches")
    caption = f"Mean batch size {serving.run.mean_batch_size:.3g}."
    waste = serving.run.padding_share
    if waste is not None:
        caption += f" {waste:.1%} of the time steps computed were padding (requests padded to their batch's longest)."
    return Figure(fig, caption)
