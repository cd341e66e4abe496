"""Figures of a gradient-flow study: how much of a loss's gradient on the last step reaches earlier
steps, how far back it stays within 1,000× of its value there (the memory horizon) compared with the
sequence lengths the scenario serves and trains on, and the forward pass's error in half precision.

Input: the ``gradients`` list of results.json (one ``gru-sim gradients --json`` record per
configuration, each with a ``label``), and the lengths the scenario runs; output: plotly figures.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from .page import Figure

# The contract's horizon: the norm has fallen this many times below its value at the last step.
HORIZON_FALL = 1000.0


def _label(record: Mapping[str, Any]) -> str:
    return str(record.get("label") or f"init {record['config']['init']}")


def grad_norm_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """‖∂L/∂h_{T−k}‖ against k on a log scale, one line per configuration, at its longest T."""
    fig = go.Figure()
    for record in records:
        norms = record["grad_norm_by_steps_back"]
        # A log axis cannot show an underflowed (zero) or overflowed (null) norm: those points are gaps.
        shown = [n if n is not None and n > 0 else None for n in norms]
        fig.add_trace(go.Scatter(x=list(range(len(norms))), y=shown, mode="lines", name=_label(record),
                                 hovertemplate="%{x} steps back: %{y:.3g}<extra>" + _label(record) + "</extra>"))
        horizon = record.get("horizon_steps")
        if horizon is not None and norms[horizon] is not None and norms[horizon] > 0:
            fig.add_trace(go.Scatter(x=[horizon], y=[norms[horizon]], mode="markers", showlegend=False,
                                     marker=dict(symbol="x", size=10, color="#222"),
                                     hovertemplate=f"horizon: {horizon} steps<extra>{_label(record)}</extra>"))
    fig.update_yaxes(type="log", title_text="‖∂L/∂h_(T−k)‖ (loss on the last step)", exponentformat="power")
    fig.update_xaxes(title_text="steps back k")
    seq_len = max(r["config"]["seq_len"] for r in records)
    fig.update_layout(title=f"Gradient norm against steps back (T = {seq_len:,})",
                      legend=dict(orientation="h", y=-0.2))
    return Figure(fig, "The gradient of a loss on the last step's output with respect to each earlier state "
                       "(all layers), averaged over a few random inputs. A straight line on this log scale is a "
                       "constant factor per step; × marks the horizon, where the norm has fallen 1,000× below its "
                       "value at the last step. Gaps are norms that underflowed to zero.")


def horizon_figure(records: Sequence[Mapping[str, Any]], workload_seq_lens: Mapping[str, int]) -> Figure:
    """The memory horizon against the sequence lengths measured, with the diagonal T (the whole
    sequence) and the lengths the scenario serves and trains on (``label → length``)."""
    fig = go.Figure()
    lengths = sorted({r["seq_len"] for rec in records for r in rec["by_seq_len"]} | set(workload_seq_lens.values()))
    for record in records:
        rows = sorted(record["by_seq_len"], key=lambda r: r["seq_len"])
        fig.add_trace(go.Scatter(
            x=[r["seq_len"] for r in rows],
            y=[r["horizon_steps"] if r["horizon_steps"] is not None else r["seq_len"] for r in rows],
            mode="lines+markers", name=_label(record),
            marker=dict(symbol=["circle" if r["horizon_steps"] is not None else "triangle-up-open" for r in rows],
                        size=9),
            customdata=[("%d steps" % r["horizon_steps"]) if r["horizon_steps"] is not None
                        else "beyond T (never falls 1,000×)" for r in rows],
            hovertemplate="T = %{x}: horizon %{customdata}<extra>" + _label(record) + "</extra>"))
    fig.add_trace(go.Scatter(x=[lengths[0], lengths[-1]], y=[lengths[0], lengths[-1]], mode="lines",
                             name="the whole sequence (horizon = T)", line=dict(color="#999", dash="dot"),
                             hoverinfo="skip"))
    # Traces rather than layout shapes: a shape's or annotation's position on a log axis is read as a
    # power of ten, a trace's as data.
    for name, seq_len in workload_seq_lens.items():
        fig.add_trace(go.Scatter(x=[seq_len, seq_len], y=[1, lengths[-1]], mode="lines+text", text=["", name],
                                 textposition="top center", textfont=dict(size=10, color="#777"),
                                 line=dict(color="#bbb", dash="dash"), showlegend=False,
                                 hovertemplate=f"{name}: T = {seq_len:,}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="sequence length T (steps)")
    fig.update_yaxes(type="log", title_text="horizon (steps back until 1,000× smaller)")
    fig.update_layout(title="Memory horizon against the sequence lengths", legend=dict(orientation="h", y=-0.2))
    return Figure(fig, "Below the diagonal, a dependency spanning the whole sequence reaches the first step with "
                       "less than 1/1,000 of the last step's gradient: training cannot learn it without "
                       "truncation or a different initialisation. Open triangles on the diagonal: the gradient "
                       "never fell 1,000× within T. Dashed lines: the lengths the scenario serves and trains on.")


def forward_error_figure(records: Sequence[Mapping[str, Any]]) -> Figure | None:
    """The forward pass's max relative error against the float64 reference, per dtype, against T."""
    fig = go.Figure()
    for record in records:
        rows = sorted(record["by_seq_len"], key=lambda r: r["seq_len"])
        for dtype in sorted({d for r in rows for d in r.get("forward_rel_error", {})}):
            name = f"{dtype}" if len(records) == 1 else f"{dtype}, {_label(record)}"
            fig.add_trace(go.Scatter(x=[r["seq_len"] for r in rows],
                                     y=[r["forward_rel_error"].get(dtype) for r in rows],
                                     mode="lines+markers", name=name,
                                     hovertemplate="T = %{x}: %{y:.2e}<extra>" + name + "</extra>"))
    if not fig.data:
        return None
    fig.update_xaxes(type="log", title_text="sequence length T (steps)")
    fig.update_yaxes(type="log", title_text="max |y − y_ref| / max |y_ref|", exponentformat="power")
    fig.update_layout(title="Forward error in half precision against T", legend=dict(orientation="h", y=-0.2))
    return Figure(fig, "torch.nn.GRU's output in each number format against the float64 NumPy reference with the "
                       "same rounded weights and inputs: whether rounding errors accumulate along the sequence.")
