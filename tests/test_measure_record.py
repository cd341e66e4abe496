"""The measure record says what the numbers cannot: a peak below what the probe resolves, threads
beyond the machine's cores."""

from __future__ import annotations

from gru_sim.config import GruConfig
from gru_sim.measure.record import Measurement


def _m(threads: int = 1, peak: int | None = 1 << 20, resolution: int | None = 1 << 16) -> Measurement:
    return Measurement(config=GruConfig(batch=1, seq_len=2, input_size=3, hidden_size=4, threads=threads),
                       latency_s=1e-4, latency_iqr_s=1e-6, samples_s=(1e-4,), first_call_s=2e-4, noisy=False,
                       loops=1, peak_memory_bytes=peak, max_rel_error=None, fingerprint={"logical_cores": 2},
                       peak_memory_resolution_bytes=resolution)


def test_a_peak_below_the_probes_resolution_is_flagged_not_reported_as_nothing() -> None:
    assert _m(peak=4096).to_record()["peak_memory_below_resolution"] is True
    assert _m(peak=1 << 20).to_record()["peak_memory_below_resolution"] is False
    assert _m(peak=None, resolution=None).to_record()["peak_memory_below_resolution"] is False


def test_more_threads_than_cores_is_marked_oversubscribed() -> None:
    assert _m(threads=2).to_record()["oversubscribed"] is False
    assert _m(threads=99).to_record()["oversubscribed"] is True
