"""Requests arriving at a deployed GRU model: they queue, a dynamic batcher groups them, replicas run
the batches, and latency is what each request waited plus what its batch took.

The model (the ``serving:`` study of CONTRACT.md):

* **arrivals** — Poisson (exponential gaps), constant rate, or the replay of a trace of
  ``(time_s, seq_len)``; **lengths** — fixed, uniform on ``[low, high]``, or lognormal with a median,
  a sigma and a cap.
* **the batcher** — as Triton's and TorchServe's dynamic batchers do: when a replica is free, a batch
  leaves as soon as ``max_batch`` requests are queued or the oldest has waited ``max_wait_s``, taking
  up to ``max_batch`` of the oldest queued requests (fewer if the batch would not fit under the memory
  cap). ``padding="pad"``: one queue, a batch padded to its longest request; ``padding="bucket"``: one
  queue per length bucket, requests batched only with their bucket, the oldest ready bucket first.
* **replicas** — each runs one batch at a time; its service time comes from an injected
  ``service_time_s(batch, seq_len)`` (seq_len = the padded length), so this module needs no cost model.

The event loop is SimPy; arrivals are drawn up front from a seeded generator, so the same spec and seed
give the same results, and the batcher wakes only when something can change (a replica frees, a batch
fills, a wait expires) rather than once per request.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import numpy as np
import simpy

from ..errors import ConfigError, OutOfMemoryError
from .serving_spec import (ARRIVAL_PROCESSES, PADDINGS, SEQ_LEN_DISTRIBUTIONS, ArrivalSpec, BatchingSpec,
                           Requests, SeqLenSpec, ServingSpec, default_bucket_edges, generate_requests)

ServiceTime = Callable[[int, int], float]
MemoryBytes = Callable[[int, int], int]

# The study's spec is defined in serving_spec.py; its names are also reachable from here.
__all__ = ["ARRIVAL_PROCESSES", "PADDINGS", "SEQ_LEN_DISTRIBUTIONS", "ArrivalSpec", "BatchingSpec", "MemoryBytes",
           "Percentiles", "RequestLog", "Requests", "SeqLenSpec", "ServiceTime", "ServingResult", "ServingSpec",
           "default_bucket_edges", "generate_requests", "is_stable", "simulate_serving"]


# ----------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Percentiles:
    """Mean and percentiles of a sample, in the sample's unit."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Percentiles":
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(float(values.mean()), float(p50), float(p90), float(p99))

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99}


@dataclass(frozen=True, eq=False)
class RequestLog:
    """Per request (in arrival order): arrival, dispatch and finish times, length, padded length,
    batch index and replica; per batch: size, padded length, replica, start and finish."""

    arrival_s: np.ndarray
    dispatch_s: np.ndarray
    finish_s: np.ndarray
    seq_len: np.ndarray
    padded_len: np.ndarray
    batch: np.ndarray
    replica: np.ndarray
    batch_size: np.ndarray
    batch_padded_len: np.ndarray
    batch_replica: np.ndarray
    batch_start_s: np.ndarray
    batch_finish_s: np.ndarray

    @property
    def latency_s(self) -> np.ndarray:
        return self.finish_s - self.arrival_s

    @property
    def queue_wait_s(self) -> np.ndarray:
        return self.dispatch_s - self.arrival_s


@dataclass(frozen=True)
class ServingResult:
    """What a serving run gives. Times in seconds; ``utilization`` is busy replica-time over
    replicas × (last finish − first arrival); ``service_time_s`` is per request (its batch's time);
    ``slo_attainment`` the share of requests within the SLO latency (None without an SLO);
    ``padding_share`` the share of processed time steps that were padding."""

    requests: int
    batches: int
    replicas: int
    throughput_req_per_s: float
    latency_s: Percentiles
    queue_wait_s: Percentiles
    service_time_mean_s: float
    utilization: float
    mean_batch_size: float
    slo_p99_latency_s: float | None
    slo_attainment: float | None
    slo_met: bool | None
    batch_size_histogram: tuple[tuple[int, int], ...]
    padding_share: float
    useful_tokens: int
    padded_tokens: int
    queue_length_timeline: tuple[tuple[float, int], ...]
    utilization_timeline: tuple[tuple[float, float], ...]
    request_sample: tuple[dict[str, float | int], ...]
    log: RequestLog = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``serving`` object of results.json (CONTRACT.md keys first, then extras)."""
        return {
            "throughput_req_per_s": self.throughput_req_per_s,
            "latency_s": self.latency_s.to_dict(),
            "queue_wait_s": self.queue_wait_s.to_dict(),
            "service_time_s": {"mean": self.service_time_mean_s},
            "utilization": self.utilization,
            "mean_batch_size": self.mean_batch_size,
            "slo_attainment": self.slo_attainment,
            "requests": self.requests,
            "batches": self.batches,
            "replicas": self.replicas,
            "slo_p99_latency_s": self.slo_p99_latency_s,
            "slo_met": self.slo_met,
            "batch_size_histogram": {str(size): count for size, count in self.batch_size_histogram},
            "padding_share": self.padding_share,
            "useful_tokens": self.useful_tokens,
            "padded_tokens": self.padded_tokens,
            "queue_length_timeline": [list(p) for p in self.queue_length_timeline],
            "utilization_timeline": [list(p) for p in self.utilization_timeline],
            "request_sample": [dict(r) for r in self.request_sample],
        }


# -------------------------------------------------------------------------------------- simulation
class _Bucket:
    """One batcher queue: the requests of one length bucket, in arrival order."""

    def __init__(self, ids: np.ndarray, arrival_s: np.ndarray, seq_len: np.ndarray) -> None:
        self.ids = ids
        self.arrival = arrival_s[ids]
        self.arrival_list = self.arrival.tolist()
        self.lengths = seq_len[ids]
        self.head = 0

    def ready_time(self, max_batch: int, max_wait_s: float) -> float:
        """When this queue may send a batch: its oldest request's wait expires or the batch fills."""
        if self.head >= len(self.arrival_list):
            return math.inf
        t = self.arrival_list[self.head] + max_wait_s
        fill = self.head + max_batch - 1
        if fill < len(self.arrival_list):
            t = min(t, self.arrival_list[fill])
        return t


def simulate_serving(spec: ServingSpec, service_time_s: ServiceTime, memory_bytes: MemoryBytes | None = None,
                     *, timeline_points: int = 500, sample_requests: int = 200) -> ServingResult:
    """Simulate ``spec`` with SimPy.

    ``service_time_s(batch, seq_len)``: seconds a replica takes for ``batch`` sequences padded to
    ``seq_len`` steps (called once per batch, so it may be random — wrap a costly deterministic one in
    ``functools.lru_cache``). ``memory_bytes(batch, seq_len)``: memory a batch needs, required when
    ``spec.memory_cap_bytes`` is set. ``timeline_points``: resolution of the queue-length and
    utilization timelines; ``sample_requests``: requests kept for a Gantt chart.
    """
    cap = spec.memory_cap_bytes
    if cap is not None and memory_bytes is None:
        raise ConfigError("memory_cap_bytes is set: simulate_serving needs a memory_bytes function")
    reqs = generate_requests(spec)
    n = reqs.arrival_s.shape[0]
    arrival, lengths = reqs.arrival_s, reqs.seq_len
    if cap is not None:
        assert memory_bytes is not None
        longest = int(lengths.max())
        if memory_bytes(1, longest) > cap:
            raise OutOfMemoryError(f"a single request of {longest} steps needs {memory_bytes(1, longest)} bytes, "
                                   f"over memory_cap_bytes(={cap})")
    b = spec.batching
    if b.padding == "bucket":
        edges = np.asarray(b.bucket_edges or default_bucket_edges(int(lengths.max())))
        bucket_of = np.minimum(np.searchsorted(edges, lengths, side="left"), edges.shape[0])
    else:
        bucket_of = np.zeros(n, dtype=np.int64)
    buckets = [_Bucket(np.flatnonzero(bucket_of == k), arrival, lengths) for k in np.unique(bucket_of)]

    dispatch = np.empty(n)
    finish = np.empty(n)
    padded = np.empty(n, dtype=np.int64)
    batch_of = np.empty(n, dtype=np.int64)
    replica_of = np.empty(n, dtype=np.int64)
    batches: list[tuple[int, int, int, float, float]] = []  # size, padded_len, replica, start, finish

    env = simpy.Environment()
    free_replicas = list(range(spec.replicas))
    waiting: list[simpy.Event | None] = [None]

    def replica_done(replica: int) -> Callable[[simpy.Event], None]:
        def done(_: simpy.Event) -> None:
            heapq.heappush(free_replicas, replica)
            if waiting[0] is not None:
                event, waiting[0] = waiting[0], None
                event.succeed()
        return done

    def batch_size(bucket: _Bucket, clock: float) -> tuple[int, int]:
        queued = int(np.searchsorted(bucket.arrival, clock, side="right")) - bucket.head
        k = min(b.max_batch, queued)
        longest = np.maximum.accumulate(bucket.lengths[bucket.head:bucket.head + k])
        if cap is not None:
            assert memory_bytes is not None
            while k > 1 and memory_bytes(k, int(longest[k - 1])) > cap:
                k -= 1
        return k, int(longest[k - 1])

    def batcher() -> Generator[simpy.Event, Any, None]:
        sent = 0
        target = -math.inf
        while sent < n:
            if not free_replicas:
                waiting[0] = env.event()
                yield waiting[0]
                continue
            # A timeout lands on now + (target − now), which rounding may leave an ulp short of target.
            clock = max(env.now, target)
            ready = [(bk.ready_time(b.max_batch, b.max_wait_s), bk) for bk in buckets]
            due = [(bk.arrival_list[bk.head], i) for i, (t, bk) in enumerate(ready) if t <= clock]
            if not due:
                target = min(t for t, _ in ready)
                yield env.timeout(target - env.now)
                continue
            bucket = ready[min(due)[1]][1]
            k, padded_len = batch_size(bucket, clock)
            service = float(service_time_s(k, padded_len))
            if not math.isfinite(service) or service < 0:
                raise ConfigError(f"service_time_s({k}, {padded_len}) returned {service}: it must be a finite "
                                  "duration >= 0")
            replica = heapq.heappop(free_replicas)
            ids = bucket.ids[bucket.head:bucket.head + k]
            bucket.head += k
            now = env.now
            dispatch[ids] = now
            finish[ids] = now + service
            padded[ids] = padded_len
            batch_of[ids] = len(batches)
            replica_of[ids] = replica
            batches.append((k, padded_len, replica, now, now + service))
            env.timeout(service).callbacks.append(replica_done(replica))
            sent += k

    env.process(batcher())
    env.run()
    sizes, batch_padded, batch_replica, starts, ends = (np.asarray(c) for c in zip(*batches))
    log = RequestLog(arrival_s=arrival, dispatch_s=dispatch, finish_s=finish, seq_len=lengths, padded_len=padded,
                     batch=batch_of, replica=replica_of, batch_size=sizes.astype(np.int64),
                     batch_padded_len=batch_padded.astype(np.int64), batch_replica=batch_replica.astype(np.int64),
                     batch_start_s=starts.astype(float), batch_finish_s=ends.astype(float))
    return _summarise(spec, log, timeline_points, sample_requests)


def _busy_until(t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Busy replica-seconds in [0, t] for each t: Σ (t − start) over started batches − Σ (t − end) over
    finished ones."""
    s, e = np.sort(starts), np.sort(ends)
    cs, ce = np.concatenate([[0.0], np.cumsum(s)]), np.concatenate([[0.0], np.cumsum(e)])
    ns, ne = np.searchsorted(s, t, side="right"), np.searchsorted(e, t, side="right")
    return t * ns - cs[ns] - (t * ne - ce[ne])


def _summarise(spec: ServingSpec, log: RequestLog, timeline_points: int, sample_requests: int) -> ServingResult:
    n = log.arrival_s.shape[0]
    latency, wait = log.latency_s, log.queue_wait_s
    begin, end = float(log.arrival_s.min()), float(log.finish_s.max())
    span = end - begin
    busy = float((log.batch_finish_s - log.batch_start_s).sum())
    slo = spec.slo_p99_latency_s
    latency_pct = Percentiles.of(latency)
    sizes, counts = np.unique(log.batch_size, return_counts=True)
    useful = int(log.seq_len.sum())
    processed = int((log.batch_size * log.batch_padded_len).sum())

    grid = np.linspace(0.0, end, max(timeline_points, 1) + 1)
    queued = np.searchsorted(log.arrival_s, grid, side="right") - np.searchsorted(np.sort(log.dispatch_s), grid,
                                                                                  side="right")
    busy_at = _busy_until(grid, log.batch_start_s, log.batch_finish_s)
    widths = np.diff(grid)
    util = np.divide(np.diff(busy_at), spec.replicas * widths, out=np.zeros_like(widths), where=widths > 0)

    sample = tuple(
        {"request": i, "arrival_s": float(log.arrival_s[i]), "dispatch_s": float(log.dispatch_s[i]),
         "finish_s": float(log.finish_s[i]), "seq_len": int(log.seq_len[i]), "padded_len": int(log.padded_len[i]),
         "batch": int(log.batch[i]), "replica": int(log.replica[i])}
        for i in range(min(sample_requests, n)))
    return ServingResult(
        requests=n, batches=int(log.batch_size.shape[0]), replicas=spec.replicas,
        throughput_req_per_s=n / span if span > 0 else math.inf,
        latency_s=latency_pct, queue_wait_s=Percentiles.of(wait),
        service_time_mean_s=float((log.finish_s - log.dispatch_s).mean()),
        utilization=busy / (spec.replicas * span) if span > 0 else 1.0,
        mean_batch_size=n / log.batch_size.shape[0],
        slo_p99_latency_s=slo,
        slo_attainment=None if slo is None else float((latency <= slo).mean()),
        slo_met=None if slo is None else latency_pct.p99 <= slo,
        batch_size_histogram=tuple((int(s), int(c)) for s, c in zip(sizes, counts)),
        padding_share=1.0 - useful / processed if processed else 0.0,
        useful_tokens=useful, padded_tokens=processed,
        queue_length_timeline=tuple((float(t), int(q)) for t, q in zip(grid, queued)),
        utilization_timeline=tuple((float(t), float(u)) for t, u in zip(grid[:-1], util)),
        request_sample=sample, log=log)


def is_stable(result: ServingResult, max_batch: int) -> bool:
    """Whether the replicas kept up with the arrivals: by the last arrival, all but a backlog of
    max(3% of the requests, two full batches per replica) had been served. An overloaded run's queue
    grows without bound, so a finite run's p99 says nothing about the SLO there."""
    log = result.log
    served = int((log.finish_s <= log.arrival_s.max()).sum())
    allowed = max(0.03 * result.requests, 2 * result.replicas * max_batch)
    return result.requests - served <= allowed
