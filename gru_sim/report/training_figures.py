"""Figures of a data-parallel training study: step time and scaling efficiency as devices are
added, and how much of each step goes to computing versus exchanging gradients.

Input: the ``training`` list of results.json read back, one
:class:`~gru_sim.sim.training.TrainingPoint` per device count; output: plotly figures.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..sim.training import TrainingPoint
from .page import Figure


def scaling_figure(rows: Sequence[TrainingPoint]) -> Figure:
    """Step time and scaling efficiency against the number of devices."""
    rows = sorted(rows, key=lambda r: r.devices)
    devices = [r.devices for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("step time", "scaling efficiency"),
                        horizontal_spacing=0.12)
    fig.add_trace(go.Scatter(x=devices, y=[r.step_time_s for r in rows], mode="lines+markers",
                             name="step time", hovertemplate="%{x} devices: %{y:.4g} s<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=devices, y=[r.scaling_efficiency for r in rows], mode="lines+markers",
                             name="efficiency", hovertemplate="%{x} devices: %{y:.1%}<extra></extra>"),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=[min(devices), max(devices)], y=[1, 1], mode="lines", name="perfect scaling",
                             line=dict(color="#999", dash="dot"), hoverinfo="skip"), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="devices", type="log" if max(devices) >= 8 * min(devices) else "linear",
                         tickvals=devices, row=1, col=col)
    fig.update_yaxes(title_text="time per step", ticksuffix="s", row=1, col=1)
    fig.update_yaxes(title_text="throughput / (devices × one-device throughput)", tickformat=".0%",
                     range=[0, 1.05], row=1, col=2)
    fig.update_layout(title="Scaling with the number of devices", showlegend=False)
    return Figure(fig, "Each device runs batch_per_device sequences per step (weak scaling); efficiency is the "
                       "throughput gained relative to perfect linear scaling.", 420)


def compute_vs_communication_figure(rows: Sequence[TrainingPoint]) -> Figure:
    """Each step split into compute, communication hidden behind backward, and exposed communication."""
    rows = sorted(rows, key=lambda r: r.devices)
    labels = [f"{r.devices} device{'s' * (r.devices != 1)}" for r in rows]
    exposed = [r.exposed_comm_s for r in rows]
    hidden = [max(r.allreduce_s - e, 0.0) for r, e in zip(rows, exposed)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r.compute_s for r in rows], name="compute (forward + backward + "
                         "optimizer)", hovertemplate="%{y:.4g} s<extra>compute</extra>"))
    fig.add_trace(go.Bar(x=labels, y=exposed, name="communication not hidden",
                         hovertemplate="%{y:.4g} s<extra>exposed communication</extra>"))
    fig.add_trace(go.Bar(x=labels, y=hidden, name="communication overlapped with backward",
                         marker=dict(pattern=dict(shape="/")), opacity=0.6,
                         hovertemplate="%{y:.4g} s<extra>overlapped communication</extra>"))
    fig.update_layout(barmode="stack", title="Compute against communication per step",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(title_text="time per step", ticksuffix="s")
    return Figure(fig, "The all-reduce of gradients overlaps the backward pass in buckets, as PyTorch DDP does; "
                       "only the part that is not hidden adds to the step time (the hatched part is drawn on top "
                       "for reference, it costs no extra time).")
