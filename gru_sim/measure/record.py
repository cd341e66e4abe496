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
        }
