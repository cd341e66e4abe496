"""A load sweep: the same serving study at several arrival rates — p99 latency against load — and the
highest rate at which the p99 meets the SLO in a stable run, found by bisection."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .serving import MemoryBytes, ServiceTime, is_stable, simulate_serving
from .serving_spec import ServingSpec, generate_requests


@dataclass(frozen=True)
class LoadPoint:
    """One arrival rate of a load sweep and what it gave."""

    rate_per_s: float
    throughput_req_per_s: float
    latency_mean_s: float
    latency_p50_s: float
    latency_p99_s: float
    utilization: float
    mean_batch_size: float
    stable: bool
    meets_slo: bool | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LoadSweep:
    """p99 latency against arrival rate, and the highest rate found to meet the SLO — a p99 within
    it, in a stable run (see :func:`is_stable`). None: no rate met it; ``bounded`` is False when even
    the highest rate tried met it."""

    slo_p99_latency_s: float | None
    capacity_estimate_per_s: float
    points: tuple[LoadPoint, ...]
    max_rate_meeting_slo_per_s: float | None
    bounded: bool

    def to_dict(self) -> dict[str, Any]:
        return {"slo_p99_latency_s": self.slo_p99_latency_s,
                "capacity_estimate_per_s": self.capacity_estimate_per_s,
                "max_rate_meeting_slo_per_s": self.max_rate_meeting_slo_per_s, "bounded": self.bounded,
                "points": [p.to_dict() for p in self.points]}


def estimate_capacity_per_s(spec: ServingSpec, service_time_s: ServiceTime,
                            memory_bytes: MemoryBytes | None = None) -> float:
    """Requests per second the replicas sustain running full batches: replicas × batch / service time,
    with the batch's padded length taken as the expected longest of ``max_batch`` draws."""
    lengths = generate_requests(replace(spec, requests=min(spec.requests, 10_000))).seq_len
    k = spec.batching.max_batch
    longest = int(np.quantile(lengths, k / (k + 1)))
    if spec.memory_cap_bytes is not None and memory_bytes is not None:
        while k > 1 and memory_bytes(k, longest) > spec.memory_cap_bytes:
            k -= 1
    service = float(service_time_s(k, longest))
    return spec.replicas * k / service if service > 0 else math.inf


def sweep_load(spec: ServingSpec, service_time_s: ServiceTime, memory_bytes: MemoryBytes | None = None, *,
               rates_per_s: Sequence[float] | None = None, slo_p99_latency_s: float | None = None,
               points: int = 8, requests: int | None = None, rel_tolerance: float = 0.02,
               max_bisections: int = 12) -> LoadSweep:
    """Simulate ``spec`` at several arrival rates (``rates_per_s``, else ``spec.load_sweep_rates_per_s``,
    else ``points`` rates from 10% to 100% of the estimated capacity) and, given an SLO (argument or
    spec), bisect between the highest rate meeting it and the lowest failing one until they are within
    ``rel_tolerance``. All runs share the seed, so they see the same gaps scaled (common random numbers).
    """
    slo = slo_p99_latency_s if slo_p99_latency_s is not None else spec.slo_p99_latency_s
    if requests is not None:
        spec = replace(spec, requests=requests)
    capacity = estimate_capacity_per_s(spec, service_time_s, memory_bytes)
    if rates_per_s is None:
        rates_per_s = spec.load_sweep_rates_per_s
    if rates_per_s is None:
        if not math.isfinite(capacity):
            raise ConfigError("service times of 0 give an unbounded capacity: give rates_per_s")
        rates_per_s = [capacity * f for f in np.linspace(0.1, 1.0, max(points, 2))]
    if not rates_per_s or min(rates_per_s) <= 0:
        raise ConfigError(f"rates_per_s(={list(rates_per_s)}) must be rates > 0")
    results: dict[float, LoadPoint] = {}

    def run(rate: float) -> LoadPoint:
        if rate not in results:
            r = simulate_serving(spec.with_rate(rate), service_time_s, memory_bytes, timeline_points=1,
                                 sample_requests=0)
            stable = is_stable(r, spec.batching.max_batch)
            results[rate] = LoadPoint(rate, r.throughput_req_per_s, r.latency_s.mean, r.latency_s.p50,
                                      r.latency_s.p99, r.utilization, r.mean_batch_size, stable,
                                      None if slo is None else stable and r.latency_s.p99 <= slo)
        return results[rate]

    for rate in sorted(float(r) for r in rates_per_s):
        run(rate)
    best: float | None = None
    bounded = True
    if slo is not None:
        ordered = [results[r] for r in sorted(results)]
        failing = [p.rate_per_s for p in ordered if not p.meets_slo]
        if not failing:
            # Push past the highest rate until the SLO breaks (or give up: it is then not bounded).
            hi = ordered[-1].rate_per_s
            for _ in range(4):
                hi *= 2
                if not run(hi).meets_slo:
                    break
            failing = [hi] if not results[hi].meets_slo else []
        if failing:
            hi = failing[0]
            passing = [r for r in sorted(results) if r < hi and results[r].meets_slo]
            lo = passing[-1] if passing else 0.0
            for _ in range(max_bisections):
                if hi - lo <= rel_tolerance * hi:
                    break
                mid = 0.5 * (lo + hi) if lo > 0 else hi / 4
                if run(mid).meets_slo:
                    lo = mid
                else:
                    hi = mid
            best = lo if lo > 0 else None
        else:
            best, bounded = max(results), False
    return LoadSweep(slo_p99_latency_s=slo, capacity_estimate_per_s=capacity,
                     points=tuple(results[r] for r in sorted(results)), max_rate_meeting_slo_per_s=best,
                     bounded=bounded)
