"""Predictions for configurations never measured: the record ``gru-sim predict`` prints.

A :class:`Predictor` joins a profile's cost model (latency, its interval and breakdown), its memory
model (peak memory) and the kernel-graph simulator (parallelism) into one CONTRACT.md record: it
sits after both stages of the pipeline, which know nothing of it. It
imports numpy, scipy and simpy — never torch — so one prediction starts and returns fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .accounting import account_call, compulsory_bytes
from .config import GruConfig
from .model.kernel_times import CallTimes
from .model.library import FOREIGN_INTERVAL_FACTOR, here_fingerprint, mismatch
from .model.profile import Profile
from .sim.executors import Parallelism, parallelism

# The grid path merges steps so that every layer-direction has at most this many kernels: the
# critical path then differs from the step-by-step one by at most one chunk per layer.
GRID_MAX_CHUNKS = 32


@dataclass(frozen=True)
class Prediction:
    """What the profile predicts for one configuration, never run: latency (s) with its 90% interval
    and per-term breakdown, throughput, peak memory beyond weights and inputs (bytes), parallelism of
    the simulated kernels, and whether (and along which axes, by what factor) it extrapolates."""

    config: GruConfig
    latency_s: float
    throughput_seq_per_s: float
    throughput_tokens_per_s: float
    peak_memory_bytes: int
    latency_interval_s: tuple[float, float]
    breakdown_s: dict[str, float]
    parallelism: Parallelism
    extrapolated: bool
    extrapolated_axes: dict[str, float]
    flops: int
    bytes_moved: int
    arithmetic_intensity_flops_per_byte: float
    memory_bytes: dict[str, int]
    profile: dict[str, Any]
    # Whether the profile's machine is this one (else what differs: {field: [profile's, this one's]}),
    # whether the call's memory fits this machine's, and whether it asks for more threads than cores.
    profile_match: bool = True
    profile_mismatch: dict[str, list[Any]] | None = None
    fits_in_memory: bool = True
    oversubscribed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The ``predict`` record of CONTRACT.md, as ``gru-sim predict --json`` prints it."""
        return {
            "config": self.config.to_dict(),
            "latency_s": self.latency_s,
            "throughput_seq_per_s": self.throughput_seq_per_s,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "latency_interval_s": list(self.latency_interval_s),
            "breakdown_s": dict(self.breakdown_s),
            "parallelism": self.parallelism.to_dict(),
            "extrapolated": self.extrapolated,
            "extrapolated_axes": dict(self.extrapolated_axes),
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "arithmetic_intensity_flops_per_byte": self.arithmetic_intensity_flops_per_byte,
            "memory_bytes": dict(self.memory_bytes),
            "profile": self.profile,
            "profile_match": self.profile_match,
            **({"profile_mismatch": self.profile_mismatch} if not self.profile_match else {}),
            "fits_in_memory": self.fits_in_memory,
            "oversubscribed": self.oversubscribed,
        }


class Predictor:
    """Predicts :class:`Prediction` s (CONTRACT.md ``predict`` records) from one loaded :class:`Profile`."""

    def __init__(self, profile: Profile, here: dict[str, Any] | None = None) -> None:
        """``here`` is the fingerprint of the machine predicted for (default: this one, read without
        torch): a profile made elsewhere is flagged in every record and its interval widened."""
        self.profile = profile
        self.model = profile.cost_model
        self.memory = profile.memory_model
        self.here = here if here is not None else here_fingerprint(profile.device)
        self.mismatch = mismatch(profile.fingerprint, self.here)
        self.cores = self.here.get("logical_cores")
        if profile.device == "cuda":
            self.memory_limit_bytes = profile.fingerprint.get("gpu_memory_bytes")
        else:
            self.memory_limit_bytes = self.here.get("memory_total_bytes")

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

    def predict(self, config: GruConfig, max_chunks: int | None = None) -> Prediction:
        """The prediction of ``config`` (its ``to_dict()`` is the ``predict`` record). ``max_chunks``
        coarsens the kernel graph used for the parallelism figures (None: the simulator's default
        granularity)."""
        composition = self.model.compose(config)  # composed once, read by the three below
        secs = self.model.term_seconds(config, composition)
        breakdown = self.model.breakdown(config, composition)
        acc = account_call(config)
        latency = max(float(secs.sum()), self.roofline_floor_s(config, acc.total_flops, compulsory_bytes(config)))
        lo, hi = self.model.interval_s(config, latency)
        if self.mismatch:  # another machine's profile: as wrong as profiles carried across machines are
            lo, hi = lo / FOREIGN_INTERVAL_FACTOR, hi * FOREIGN_INTERVAL_FACTOR
        chunk = None if max_chunks is None else max(1, math.ceil(config.seq_len / max_chunks))
        par = parallelism(self.model.kernel_times(config, composition), chunk_steps=chunk)
        activations = self.memory.predict_one(config)
        extrapolated = self.model.extrapolation(config)
        return Prediction(
            config=config,
            latency_s=latency,
            throughput_seq_per_s=config.batch / latency,
            throughput_tokens_per_s=config.tokens / latency,
            peak_memory_bytes=activations,
            latency_interval_s=(lo, hi),
            breakdown_s=breakdown,
            parallelism=par,
            extrapolated=bool(extrapolated),
            extrapolated_axes={k: round(v, 3) for k, v in extrapolated.items()},
            flops=acc.total_flops,
            bytes_moved=acc.bytes_moved,
            arithmetic_intensity_flops_per_byte=acc.arithmetic_intensity_flops_per_byte,
            memory_bytes={"weights": acc.weight_bytes, "inputs": acc.input_bytes, "activations": activations,
                          "total": acc.weight_bytes + acc.input_bytes + activations},
            profile=self.profile.summary(),
            profile_match=not self.mismatch,
            profile_mismatch=self.mismatch or None,
            fits_in_memory=(self.memory_limit_bytes is None
                            or acc.weight_bytes + acc.input_bytes + activations <= self.memory_limit_bytes),
            oversubscribed=bool(self.cores and config.threads > self.cores),
        )

    def predict_many(self, configs: list[GruConfig]) -> list[Prediction]:
        """Records for many configs, with the coarser graph of the grid path."""
        return [self.predict(c, max_chunks=GRID_MAX_CHUNKS) for c in configs]


__all__ = ["Prediction", "Predictor"]
