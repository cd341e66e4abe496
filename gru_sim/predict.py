"""Predictions for configurations never measured: the record ``gru-sim predict`` prints.

A :class:`Predictor` joins a profile's cost model (latency, its interval and breakdown), its memory
model (peak memory) and the kernel-graph simulator (parallelism) into one CONTRACT.md record: it
sits after both stages of the pipeline, which know nothing of it. It
imports numpy, scipy and simpy — never torch — so one prediction starts and returns fast.
"""

from __future__ import annotations

import math
from typing import Any

from .accounting import account_call, compulsory_bytes
from .config import GruConfig
from .model.kernel_times import CallTimes
from .model.profile import Profile
from .sim.executors import parallelism

# The grid path merges steps so that every layer-direction has at most this many kernels: the
# critical path then differs from the step-by-step one by at most one chunk per layer.
GRID_MAX_CHUNKS = 32


class Predictor:
    """Predicts CONTRACT.md ``predict`` records from one loaded :class:`Profile`."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.model = profile.cost_model
        self.memory = profile.memory_model

    def call_times(self, config: GruConfig) -> CallTimes:
        """Kernel-level durations of ``config`` (for the simulators)."""
        return self.model.kernel_times(config)

    def service_time_s(self, config: GruConfig) -> float:
        """Latency of one call of ``config`` in seconds (a serving batch's service time)."""
        return self.model.predict_one(config)

    def roofline_floor_s(self, config: GruConfig, flops: float, compulsory_bytes: float) -> float:
        """The least time the machine's measured ceilings allow for ``flops`` and ``compulsory_bytes``."""
        _, key, _ = self.model.coefficients(config)
        ceil = self.profile.ceilings.get(key, {})
        floor = 0.0
        if ceil.get("peak_flops_per_s"):
            floor = max(floor, flops / ceil["peak_flops_per_s"])
        if ceil.get("memory_bandwidth_bytes_per_s"):
            floor = max(floor, compulsory_bytes / ceil["memory_bandwidth_bytes_per_s"])
        return floor

    def predict(self, config: GruConfig, max_chunks: int | None = None) -> dict[str, Any]:
        """The ``predict`` record of ``config``. ``max_chunks`` coarsens the kernel graph used for
        the parallelism figures (None: the simulator's default granularity)."""
        secs = self.model.term_seconds(config)
        breakdown = self.model.breakdown(config, secs)
        acc = account_call(config)
        latency = max(float(secs.sum()), self.roofline_floor_s(config, acc.total_flops, compulsory_bytes(config)))
        lo, hi = self.model.interval_s(config, latency)
        chunk = None if max_chunks is None else max(1, math.ceil(config.seq_len / max_chunks))
        par = parallelism(self.model.kernel_times(config), chunk_steps=chunk)
        activations = self.memory.predict_one(config)
        extrapolated = self.model.extrapolation(config)
        return {
            "config": config.to_dict(),
            "latency_s": latency,
            "throughput_seq_per_s": config.batch / latency,
            "throughput_tokens_per_s": config.tokens / latency,
            "peak_memory_bytes": activations,
            "latency_interval_s": [lo, hi],
            "breakdown_s": breakdown,
            "parallelism": par.to_dict(),
            "extrapolated": bool(extrapolated),
            "extrapolated_axes": {k: round(v, 3) for k, v in extrapolated.items()},
            "flops": acc.total_flops,
            "bytes_moved": acc.bytes_moved,
            "arithmetic_intensity_flops_per_byte": acc.arithmetic_intensity_flops_per_byte,
            "memory_bytes": {"weights": acc.weight_bytes, "inputs": acc.input_bytes,
                             "activations": activations,
                             "total": acc.weight_bytes + acc.input_bytes + activations},
            "profile": self.profile.summary(),
        }

    def predict_many(self, configs: list[GruConfig]) -> list[dict[str, Any]]:
        """Records for many configs, with the coarser graph of the grid path."""
        return [self.predict(c, max_chunks=GRID_MAX_CHUNKS) for c in configs]


__all__ = ["Predictor"]
