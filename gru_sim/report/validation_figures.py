"""Figures of a validation: how close the profile's predictions came to fresh measurements of
configurations it was not fitted on, and whether its prediction intervals are honest.

Input: the ``rows`` of validation.json (``config``, ``measured_latency_s``, ``predicted_latency_s``,
``latency_interval_s``, ``ape``, ``extrapolated``, ``noisy``, and optionally the measured and predicted
peak memory); output: plotly figures.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .page import Figure, bytes_ticks
from .sweep_figures import config_label

RESIDUAL_AXES = ("batch", "seq_len", "input_size", "hidden_size", "num_layers")


def _kind(row: dict[str, Any]) -> str:
    if row.get("noisy"):
        return "noisy measurement"
    if row.get("extrapolated"):
        return "beyond the calibrated range"
    return "inside the calibrated range"


def _groups(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(_kind(r), []).append(r)
    return dict(sorted(out.items()))


def _ape(row: dict[str, Any]) -> float:
    """Absolute percentage error in percent, as gru-sim keeps it (model/metrics.py)."""
    if row.get("ape") is not None:
        return float(row["ape"])
    return 100.0 * abs(row["predicted_latency_s"] - row["measured_latency_s"]) / row["measured_latency_s"]


def parity_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Predicted against measured latency, with the ±10 % band."""
    fig = go.Figure()
    for kind, rs in _groups(rows).items():
        pred = [r["predicted_latency_s"] for r in rs]
        lo = [p - r.get("latency_interval_s", [p, p])[0] for r, p in zip(rs, pred)]
        hi = [r.get("latency_interval_s", [p, p])[1] - p for r, p in zip(rs, pred)]
        fig.add_trace(go.Scatter(
            x=[r["measured_latency_s"] for r in rs], y=pred, mode="markers", name=kind,
            error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=1, width=0),
            text=[config_label(r["config"]) for r in rs], customdata=[_ape(r) for r in rs],
            hovertemplate="%{text}<br>measured %{x:.4g} s<br>predicted %{y:.4g} s<br>APE %{customdata:.1f}%"
                          "<extra></extra>"))
    values = [v for r in rows for v in (r["measured_latency_s"], r["predicted_latency_s"]) if v > 0]
    if values:
        lo_v, hi_v = min(values) / 1.5, max(values) * 1.5
        for factor, name, dash in ((1.0, "prediction = measurement", "solid"), (1.1, "+10%", "dash"),
                                   (0.9, "−10%", "dash")):
            fig.add_trace(go.Scatter(x=[lo_v, hi_v], y=[lo_v * factor, hi_v * factor], mode="lines", name=name,
                                     line=dict(color="#555" if factor == 1 else "#aaa", dash=dash),
                                     hoverinfo="skip"))
    fig.update_layout(title="Predicted against measured latency")
    fig.update_xaxes(title_text="measured latency", ticksuffix="s", type="log")
    fig.update_yaxes(title_text="predicted latency", ticksuffix="s", type="log")
    return Figure(fig, "Each point is a configuration the profile was not fitted on; error bars are the 90% "
                       "prediction interval. Dashed lines: ±10%.", 480)


def ape_cdf_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Cumulative distribution of the absolute percentage error."""
    fig = go.Figure()
    for kind, rs in _groups(rows).items():
        errors = sorted(_ape(r) for r in rs)
        n = len(errors)
        fig.add_trace(go.Scatter(x=errors, y=[(i + 1) / n for i in range(n)], mode="lines", name=kind,
                                 line=dict(shape="hv"),
                                 hovertemplate="%{y:.0%} within %{x:.1f}%<extra>%{fullData.name}</extra>"))
    fig.add_vline(x=10.0, line=dict(color="#dc3912", dash="dash"), annotation_text="10%")
    fig.update_layout(title="Error distribution")
    fig.update_xaxes(title_text="absolute percentage error", ticksuffix="%")
    fig.update_yaxes(title_text="fraction of configurations", tickformat=".0%", range=[0, 1.02])
    return Figure(fig, "Read off the fraction of configurations predicted within any error.")


def residual_figure(rows: Sequence[dict[str, Any]]) -> Figure | None:
    """Signed relative error against each shape axis that varies: a trend shows a missing term."""
    axes = [a for a in RESIDUAL_AXES if len({r["config"].get(a) for r in rows}) > 1]
    if not axes:
        return None
    fig = make_subplots(rows=1, cols=len(axes), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=axes)
    for col, axis in enumerate(axes, start=1):
        for i, (kind, rs) in enumerate(_groups(rows).items()):
            fig.add_trace(go.Scatter(
                x=[r["config"][axis] for r in rs],
                y=[r["predicted_latency_s"] / r["measured_latency_s"] - 1 for r in rs], mode="markers", name=kind,
                legendgroup=kind, showlegend=col == 1, marker=dict(color=["#3366cc", "#ff9900", "#999"][i % 3]),
                text=[config_label(r["config"]) for r in rs],
                hovertemplate="%{text}<br>error %{y:+.1%}<extra></extra>"), row=1, col=col)
        values = [r["config"][axis] for r in rows]
        fig.update_xaxes(type="log" if max(values) >= 8 * min(values) else "linear", title_text=axis,
                         row=1, col=col)
        fig.add_hline(y=0, line=dict(color="#555"), row=1, col=col)
    fig.update_yaxes(title_text="predicted / measured − 1", tickformat="+.0%", row=1, col=1)
    fig.update_layout(title="Residuals against each axis", legend=dict(orientation="h", y=-0.25))
    return Figure(fig, "A slope or curve here means the cost model misses how time grows along that axis.", 420)


def coverage_figure(rows: Sequence[dict[str, Any]]) -> tuple[Figure, float] | None:
    """Measured latency relative to the prediction, inside or outside each 90 % interval."""
    usable = [r for r in rows if r.get("latency_interval_s")]
    if not usable:
        return None
    ordered = sorted(usable, key=lambda r: r["predicted_latency_s"])
    inside = [r["latency_interval_s"][0] <= r["measured_latency_s"] <= r["latency_interval_s"][1] for r in ordered]
    coverage = sum(inside) / len(inside)
    pred = [r["predicted_latency_s"] for r in ordered]
    x = list(range(1, len(ordered) + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x + x[::-1],
                             y=[r["latency_interval_s"][1] / p for r, p in zip(ordered, pred)]
                             + [r["latency_interval_s"][0] / p for r, p in zip(ordered, pred)][::-1],
                             fill="toself", fillcolor="rgba(51,102,204,0.15)", line=dict(width=0), mode="lines",
                             name="90% interval", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[r["measured_latency_s"] / p for r, p in zip(ordered, pred)], mode="markers",
                             name="measured / predicted",
                             marker=dict(color=["#3366cc" if i else "#dc3912" for i in inside]),
                             text=[config_label(r["config"]) for r in ordered],
                             hovertemplate="%{text}<br>measured / predicted %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"Interval coverage: {coverage:.0%} of measurements inside (target 90%)")
    fig.update_xaxes(title_text="configuration (sorted by predicted latency)")
    fig.update_yaxes(title_text="relative to the prediction", type="log")
    return Figure(fig, "Red points fall outside their interval. Much less than 90% inside means the intervals are "
                       "too narrow; much more means they are wider than they need to be."), coverage


def memory_parity_figure(rows: Sequence[dict[str, Any]]) -> Figure | None:
    """Predicted against measured peak memory."""
    usable = [r for r in rows if r.get("measured_peak_memory_bytes") and r.get("predicted_peak_memory_bytes")]
    if not usable:
        return None
    xs = [r["measured_peak_memory_bytes"] for r in usable]
    ys = [r["predicted_peak_memory_bytes"] for r in usable]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", name="configurations",
                               text=[config_label(r["config"]) for r in usable],
                               hovertemplate="%{text}<br>measured %{x:.4s}B<br>predicted %{y:.4s}B<extra></extra>"))
    lo, hi = min(xs + ys) / 1.5, max(xs + ys) * 1.5
    for factor, dash in ((1.0, "solid"), (1.2, "dash"), (1 / 1.2, "dash")):
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo * factor, hi * factor], mode="lines", showlegend=False,
                                 line=dict(color="#999", dash=dash), hoverinfo="skip"))
    within = sum(abs(y / x - 1) <= 0.2 for x, y in zip(xs, ys)) / len(xs)
    fig.update_layout(title="Predicted against measured peak memory", showlegend=False)
    fig.update_xaxes(title_text="measured peak memory", type="log", **bytes_ticks(xs + ys))
    fig.update_yaxes(title_text="predicted peak memory", type="log", **bytes_ticks(xs + ys))
    return Figure(fig, f"Dashed lines: ±20%. {within:.0%} of configurations are within them.")


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
