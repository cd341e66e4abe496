"""The result of measuring one configuration, as plain data and as the contract's JSON record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import GruConfig


@dataclass(frozen=True)
class Measurement:
    """One configuration measured on this machine. Times are per call, in seconds."""

    config: GruConfig
    latency_s: float                 # median of samples_s
    latency_iqr_s: float
    samples_s: tuple[float, ...]
    first_call_s: float              # the first call after the model was built: cold start
    noisy: bool                      # IQR / median above the harness's threshold
    loops: int                       # calls per timed sample
    peak_memory_bytes: int | None    # None when not probed
    max_rel_error: float | None      # None when not checked
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # The smallest peak the memory probe can tell from nothing (None when not probed).
    peak_memory_resolution_bytes: int | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``measure --json`` record of CONTRACT.md."""
        c = self.config
        return {
            "config": c.to_dict(),
            "latency_s": self.latency_s,
            "throughput_seq_per_s": c.batch / self.latency_s,
            "throughput_tokens_per_s": c.tokens / self.latency_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "samples_s": list(self.samples_s),
            "latency_iqr_s": self.latency_iqr_s,
            "first_call_s": self.first_call_s,
            "noisy": self.noisy,
            "loops": self.loops,
            "max_rel_error": self.max_rel_error,
            "fingerprint": self.fingerprint,
            "peak_memory_resolution_bytes": self.peak_memory_resolution_bytes,
            "peak_memory_below_resolution": self.peak_memory_below_resolution,
            "oversubscribed": self.oversubscribed,
        }

    @property
    def peak_memory_below_resolution(self) -> bool:
        """True when the probe saw less than it can resolve: the peak is small, not zero."""
        return (self.peak_memory_bytes is not None and self.peak_memory_resolution_bytes is not None
                and self.peak_memory_bytes < self.peak_memory_resolution_bytes)

    @property
    def oversubscribed(self) -> bool:
        """True when the call ran more threads than the machine has cores: it was timed sharing them."""
        cores = self.fingerprint.get("logical_cores")
        return bool(cores and self.config.threads > cores)
