"""Figures of a sweep: how latency and throughput move with batch, sequence length and hidden size,
where each configuration sits against the machine's ceilings and its memory, and where its time goes.

Input: the ``sweep`` list of results.json read back: its predictions
(:class:`~gru_sim.predict.Prediction`), and for the roofline its :class:`~gru_sim.study.records.SweepRecord`
s; output: plotly figures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import GruConfig
from ..predict import Prediction
from ..study.records import SweepRecord
from ..units import fmt_bytes, fmt_seconds
from .page import Figure, bytes_ticks

# The axes a user reads a sweep along, and the config fields that tell series apart.
X_AXES = (("batch", "batch (sequences per call)"), ("seq_len", "sequence length (steps)"),
          ("hidden_size", "hidden size (units)"))
SERIES_FIELDS = ("mode", "batch", "seq_len", "input_size", "hidden_size", "num_layers", "bidirectional",
                 "dtype", "impl", "threads")
SHORT = {"batch": "B", "seq_len": "T", "input_size": "I", "hidden_size": "H", "num_layers": "L",
         "threads": "threads"}
MAX_SERIES = 10
MAX_BARS = 40
BREAKDOWN_LABELS = {
    "input_projection_s": "input projection", "recurrent_matmul_s": "recurrent matmul",
    "pointwise_s": "pointwise gates", "step_overhead_s": "per-step overhead",
    "call_overhead_s": "per-call overhead", "backward_s": "backward",
}


# Fields a label leaves out when they hold their usual value.
USUAL = {"num_layers": 1, "bidirectional": False, "dtype": "float32", "impl": "torch-gru", "threads": 1}


def config_label(config: GruConfig | Mapping[str, Any], fields: Sequence[str] | None = None) -> str:
    """``training B=32 T=200 I=80 H=512``: the fields named (default: every field that is not at its usual
    value), the way the report writes a config (a GruConfig, or the ``config`` mapping of a record)."""
    if isinstance(config, GruConfig):
        config = config.to_dict()
    parts = []
    for f in fields if fields is not None else SERIES_FIELDS:
        if f not in config or (fields is None and USUAL.get(f, object()) == config[f]):
            continue
        v = config[f]
        if f == "mode":
            parts.append(str(v))
        elif f == "bidirectional":
            if v:
                parts.append("bidir")
        elif f in ("dtype", "impl"):
            parts.append(str(v))
        else:
            parts.append(f"{SHORT.get(f, f)}={v}")
    return " ".join(parts)


def varying_fields(records: Sequence[Prediction]) -> list[str]:
    """Config fields that take more than one value across the sweep."""
    return [f for f in SERIES_FIELDS if len({getattr(r.config, f) for r in records}) > 1]


def _spread(items: list[Any], n: int) -> list[Any]:
    """At most ``n`` items, evenly spread over the list (first and last kept)."""
    if len(items) <= n:
        return items
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]


def _log_axis(values: Sequence[float]) -> str:
    positive = [v for v in values if v > 0]
    return "log" if positive and max(positive) / min(positive) >= 8 else "linear"


def scaling_figures(records: Sequence[Prediction]) -> list[Figure]:
    """Latency (with its 90 % interval) and throughput against each axis the sweep varies."""
    varying = varying_fields(records)
    out = []
    for axis, axis_title in X_AXES:
        if axis not in varying:
            continue
        others = [f for f in varying if f != axis]
        groups: dict[tuple[Any, ...], list[Prediction]] = defaultdict(list)
        for r in records:
            groups[tuple(getattr(r.config, f) for f in others)].append(r)
        series = [sorted(g, key=lambda r: getattr(r.config, axis)) for g in groups.values() if len(g) >= 2]
        if not series:
            continue
        shown = _spread(sorted(series, key=lambda g: [str(getattr(g[0].config, f)) for f in others]), MAX_SERIES)
        fig = make_subplots(rows=1, cols=2, subplot_titles=("latency per call (band: 90% interval)",
                                                            "throughput (tokens/s)"), horizontal_spacing=0.1)
        for i, g in enumerate(shown):
            name = config_label(g[0].config, others) or "all"
            color = f"hsl({(i * 360 // max(len(shown), 1)) % 360}, 65%, 45%)"
            fill = f"hsla({(i * 360 // max(len(shown), 1)) % 360}, 65%, 45%, 0.15)"
            xs = [getattr(r.config, axis) for r in g]
            lat = [r.latency_s for r in g]
            lo = [r.latency_interval_s[0] for r, v in zip(g, lat)]
            hi = [r.latency_interval_s[1] for r, v in zip(g, lat)]
            tokens = [r.throughput_tokens_per_s for r in g]
            tokens_lo = [r.config.batch * r.config.seq_len / h for r, h in zip(g, hi)]
            tokens_hi = [r.config.batch * r.config.seq_len / l if l > 0 else t
                         for r, l, t in zip(g, lo, tokens)]
            for col, (mid, low, high, unit) in enumerate(((lat, lo, hi, "s"), (tokens, tokens_lo, tokens_hi,
                                                                                "tokens/s")), start=1):
                fig.add_trace(go.Scatter(x=xs + xs[::-1], y=high + low[::-1], fill="toself", fillcolor=fill,
                                         mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False,
                                         legendgroup=name), row=1, col=col)
                fig.add_trace(go.Scatter(x=xs, y=mid, mode="lines+markers", name=name, legendgroup=name,
                                         showlegend=col == 1, line=dict(color=color),
                                         customdata=[[a, b] for a, b in zip(low, high)],
                                         hovertemplate=f"{axis}=%{{x}}<br>%{{y:.4g}} {unit}<br>"
                                                       f"interval %{{customdata[0]:.4g}} – %{{customdata[1]:.4g}}"
                                                       "<extra>%{fullData.name}</extra>"), row=1, col=col)
        all_x = sorted({getattr(r.config, axis) for r in records})
        ticks = dict(tickvals=all_x) if len(all_x) <= 12 else {}
        for col in (1, 2):
            fig.update_xaxes(title_text=axis_title, type=_log_axis(all_x), row=1, col=col, **ticks)
        fig.update_yaxes(title_text="latency", ticksuffix="s", type="log", row=1, col=1)
        fig.update_yaxes(title_text="tokens per second", type="log", row=1, col=2)
        fig.update_layout(title=f"Latency and throughput against {axis}", legend=dict(orientation="h", y=-0.2))
        note = (f" Showing {len(shown)} of {len(series)} series, spread evenly." if len(shown) < len(series)
                else "")
        out.append(Figure(fig, f"Each line keeps every other field fixed ({', '.join(others) or 'none vary'}); the "
                               f"shaded band is the model's 90% prediction interval.{note}", 460))
    return out


def memory_figure(records: Sequence[Prediction], device_memory_bytes: float | None) -> Figure:
    """Peak memory of every configuration, smallest first, against the device's memory."""
    ordered = sorted(records, key=lambda r: r.peak_memory_bytes)
    ys = [r.peak_memory_bytes for r in ordered]
    labels = [config_label(r.config) for r in ordered]
    over = [device_memory_bytes is not None and y > device_memory_bytes for y in ys]
    fig = go.Figure(go.Scatter(
        x=list(range(1, len(ys) + 1)), y=ys, mode="markers", name="peak memory",
        marker=dict(color=["#dc3912" if o else "#3366cc" for o in over], size=7),
        text=labels, hovertemplate="%{text}<br>%{y:.4s}B<extra></extra>"))
    caption = "Peak memory of one call beyond what was allocated before it, sorted."
    if device_memory_bytes:
        fig.add_hline(y=device_memory_bytes, line=dict(color="#dc3912", dash="dash"),
                      annotation_text=f"device memory {device_memory_bytes / 2**30:.3g} GiB",
                      annotation_position="top left")
        n_over = sum(over)
        caption += (f" {n_over} configuration{'s' * (n_over != 1)} would not fit (red)." if n_over
                    else " Every configuration fits in the device's memory.")
    fig.update_layout(title="Peak memory against the device's memory", showlegend=False)
    fig.update_xaxes(title_text="configuration (sorted by peak memory)")
    fig.update_yaxes(title_text="peak memory", type="log",
                     **bytes_ticks(ys + ([device_memory_bytes] if device_memory_bytes else [])))
    return Figure(fig, caption)


def roofline_figure(records: Sequence[SweepRecord], ceilings: Sequence[dict[str, Any]]) -> Figure:
    """Each configuration's achieved FLOP/s against its arithmetic intensity, under the measured
    ceilings of its hardware group (``{"group", "peak_flops_per_s", "memory_bandwidth_bytes_per_s"}``)."""
    usable = [r for r in records if r.prediction.flops and _traffic(r) and r.prediction.latency_s > 0]
    fig = go.Figure()
    by_mode: dict[str, list[SweepRecord]] = defaultdict(list)
    for r in usable:
        by_mode[str(r.prediction.config.mode)].append(r)
    xs_all = [r.prediction.flops / _traffic(r) for r in usable]
    ys_all = [r.prediction.flops / r.prediction.latency_s for r in usable]
    for mode, rs in sorted(by_mode.items()):
        fig.add_trace(go.Scatter(
            x=[r.prediction.flops / _traffic(r) for r in rs], y=[r.prediction.flops / r.prediction.latency_s for r in rs],
            mode="markers", name=mode, text=[config_label(r.prediction.config) for r in rs],
            hovertemplate="%{text}<br>intensity %{x:.3g} FLOP/byte<br>%{y:.4s}FLOP/s<extra></extra>"))
    compulsory = all(r.compulsory_bytes is not None for r in usable)
    caption = ("Achieved FLOP/s (the call's FLOPs / predicted latency) against arithmetic intensity (FLOPs per byte "
               + ("the call must move at least once: weights, input and output)." if compulsory
                  else "moved).") + " Points far below the roof are latency-bound, not compute- or memory-bound.")
    drawn = [c for c in ceilings if c.get("peak_flops_per_s") and c.get("memory_bandwidth_bytes_per_s")]
    for c in drawn:
        peak, bandwidth = c["peak_flops_per_s"], c["memory_bandwidth_bytes_per_s"]
        ridge = peak / bandwidth
        lo = min(xs_all + [ridge]) / 4
        hi = max(xs_all + [ridge]) * 4
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        fig.add_trace(go.Scatter(x=grid, y=[min(peak, bandwidth * x) for x in grid], mode="lines",
                                 name=f"ceilings {c.get('group', '')}".strip(), line=dict(width=2),
                                 hovertemplate="%{y:.4s}FLOP/s<extra>ceiling</extra>"))
        caption += (f" {c.get('group', 'Ceilings')}: {peak:.3g} FLOP/s peak matmul, {bandwidth:.3g} B/s memory "
                    f"bandwidth (ridge at {ridge:.3g} FLOP/byte).")
    if drawn and usable:
        best = max(y / max(min(c["peak_flops_per_s"], c["memory_bandwidth_bytes_per_s"] * x) for c in drawn)
                   for x, y in zip(xs_all, ys_all))
        caption += (f" The best configuration reaches {best:.0%} of its ceiling: each GRU step is a small matmul that "
                    "must wait for the previous one.")
    elif not drawn:
        caption += " The profile has no measured ceilings for these configurations, so no roofline is drawn."
    fig.update_layout(title="Roofline")
    fig.update_xaxes(title_text="arithmetic intensity (FLOP/byte)", type="log")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text="achieved FLOP/s", type="log")
    return Figure(fig, caption, 460)


def _traffic(record: SweepRecord) -> float:
    """Bytes the roofline divides by: the compulsory traffic when the record has it, else bytes moved."""
    return float(record.compulsory_bytes or record.prediction.bytes_moved or 0)


def breakdown_figure(records: Sequence[Prediction]) -> Figure:
    """Share of each configuration's latency per term of the cost model."""
    ordered = _spread(sorted(records, key=lambda r: r.latency_s), MAX_BARS)
    terms = [t for t in BREAKDOWN_LABELS if any(r.breakdown_s.get(t) for r in ordered)]
    terms += sorted({t for r in ordered for t in r.breakdown_s} - set(terms) - set(BREAKDOWN_LABELS))
    labels = [config_label(r.config) for r in ordered]
    fig = go.Figure()
    for term in terms:
        seconds = [r.breakdown_s.get(term, 0.0) for r in ordered]
        totals = [sum(r.breakdown_s.values()) or r.latency_s for r in ordered]
        fig.add_trace(go.Bar(y=labels, x=[s / t if t else 0 for s, t in zip(seconds, totals)], orientation="h",
                             name=BREAKDOWN_LABELS.get(term, term), customdata=seconds,
                             hovertemplate="%{y}<br>%{x:.1%} (%{customdata:.4g} s)<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="stack", title="Where the time goes", height=max(380, 22 * len(ordered) + 140))
    fig.update_xaxes(title_text="share of latency", tickformat=".0%", range=[0, 1])
    note = f" Showing {len(ordered)} of {len(records)} configurations, spread over the latency range." \
        if len(ordered) < len(records) else ""
    return Figure(fig, "Predicted time per term of the cost model, as a share of each configuration's latency "
                       "(hover for seconds)." + note)


def parallelism_figure(records: Sequence[Prediction]) -> Figure:
    """Total work against the critical path: how much of a call could run at once."""
    usable = list(records)
    fig = go.Figure()
    by_mode: dict[str, list[Prediction]] = defaultdict(list)
    for r in usable:
        by_mode[str(r.config.mode)].append(r)
    for mode, rs in sorted(by_mode.items()):
        fig.add_trace(go.Scatter(
            x=[r.parallelism.critical_path_s for r in rs], y=[r.parallelism.work_s for r in rs],
            mode="markers", name=mode, text=[config_label(r.config) for r in rs],
            customdata=[r.parallelism.avg_concurrency for r in rs],
            hovertemplate="%{text}<br>critical path %{x:.4g} s<br>work %{y:.4g} s<br>"
                          "average concurrency %{customdata:.3g}<extra></extra>"))
    values = [v for r in usable for v in (r.parallelism.critical_path_s, r.parallelism.work_s)
              if v and v > 0]
    if values:
        lo, hi = min(values), max(values)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="work = critical path (serial)",
                                 line=dict(color="#999", dash="dot"), hoverinfo="skip"))
    conc = [r.parallelism.avg_concurrency or 0 for r in usable]
    fig.update_layout(title="Parallelism: total work against the critical path")
    fig.update_xaxes(title_text="critical path", ticksuffix="s", type="log")
    fig.update_yaxes(title_text="total work", ticksuffix="s", type="log")
    caption = ("Points on the dotted line are strictly serial; the vertical distance above it is the parallelism "
               "a device could exploit (work / critical path).")
    if conc:
        caption += f" Average concurrency ranges from {min(conc):.3g} to {max(conc):.3g}."
    return Figure(fig, caption)


def fastest_rows(records: Sequence[Prediction], n: int = 25) -> list[list[str]]:
    """Table rows of the ``n`` configurations with the highest token throughput."""
    best = sorted(records, key=lambda r: -r.throughput_tokens_per_s)[:n]
    rows = []
    for r in best:
        lo, hi = r.latency_interval_s
        rows.append([config_label(r.config), fmt_seconds(r.latency_s),
                     f"{fmt_seconds(lo)} – {fmt_seconds(hi)}", f"{r.throughput_tokens_per_s:.4g}",
                     f"{r.throughput_seq_per_s:.4g}", fmt_bytes(r.peak_memory_bytes),
                     "yes" if r.extrapolated else ""])
    return rows
