"""The sentences gru-sim writes about a forecast: extrapolation warnings, and the titles and captions
of the simulated timelines. They are stored in results.json (and printed by ``gru-sim run``), so the
study calls these while it runs; no plotly here."""

from __future__ import annotations

from typing import Any

from ..config import GruConfig

# Axes the profile either covers or not (the cost model marks them with a factor of 2, meaning "other").
CATEGORICAL_AXES = ("mode", "bidirectional", "threads")


def extrapolation_warnings(records_by_study: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One sentence per study whose predictions leave the profile's calibrated range, naming the axes
    and how far (the ``extrapolated_axes`` factors of the predict records: value / calibrated limit)."""
    out = []
    for study, records in records_by_study.items():
        outside = [r for r in records if r.get("extrapolated")]
        if not outside:
            continue
        worst: dict[str, float] = {}
        for r in outside:
            for axis, factor in (r.get("extrapolated_axes") or {}).items():
                worst[axis] = max(worst.get(axis, 0.0), float(factor))
        axes = "; ".join(f"{axis} not calibrated" if axis in CATEGORICAL_AXES else f"{axis} up to {factor:.3g}× beyond"
                         for axis, factor in sorted(worst.items()))
        n = len(records)
        one = len(outside) == 1
        out.append(f"{study}: {len(outside)} of {n} configuration{'s' * (n != 1)} {'lies' if one else 'lie'} outside "
                   f"the profile's calibrated range{' (' + axes + ')' if axes else ''}. "
                   f"{'Its prediction is an extrapolation' if one else 'Their predictions are extrapolations'}: "
                   f"calibrate over a wider range before trusting {'it' if one else 'them'}.")
    return out


def kernel_lane(layer: int, direction: int) -> str:
    """The timeline lane of a kernel of ``layer`` and ``direction`` (layer -1: the call itself)."""
    return "call" if layer < 0 else f"layer {layer} · {'left to right' if direction == 0 else 'right to left'}"


def kernel_timeline_text(config: GruConfig, executor: str, chunk_steps: int, makespan_s: float,
                         peak_memory_bytes: int) -> tuple[str, str]:
    """Title and caption of the sweep's kernel timeline."""
    label = (f"{config.mode} B={config.batch} T={config.seq_len} I={config.input_size} H={config.hidden_size} "
             f"L={config.num_layers}{' bidirectional' if config.bidirectional else ''}")
    return (f"Simulated kernels of one call: {label}",
            f"The sweep's median-latency configuration on the {executor} executor; "
            f"{chunk_steps} step{'s' * (chunk_steps > 1)} per bar. Latency {makespan_s:.4g} s, "
            f"peak memory {peak_memory_bytes} bytes.")


def batch_name(index: int, size: int, padded_len: int) -> str:
    """How a serving batch is named on the timeline."""
    return f"batch {index}: {size} request{'s' * (size != 1)} padded to {padded_len} steps"


def batch_timeline_text(batches: int) -> tuple[str, str]:
    """Title and caption of the serving study's batch timeline."""
    return ("Simulated batches on the replicas",
            f"The first {batches} batches of the run at the configured rate; gaps are idle replicas.")


def step_timeline_text(devices: int) -> tuple[str, str]:
    """Title and caption of the training study's step timeline."""
    return (f"One simulated training step on {devices} device{'s' * (devices > 1)}",
            "Gradient buckets are all-reduced as backward produces them, as PyTorch DDP does; the "
            "optimizer step waits for the last one.")
