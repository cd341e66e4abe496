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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Sequence

import numpy as np
import simpy

from ..csvfiles import read_arrival_trace as load_arrival_trace  # noqa: F401  (callers not yet moved to csvfiles)
from ..errors import ConfigError, OutOfMemoryError

ARRIVAL_PROCESSES = ("poisson", "constant", "trace")
SEQ_LEN_DISTRIBUTIONS = ("fixed", "uniform", "lognormal")
PADDINGS = ("pad", "bucket")

ServiceTime = Callable[[int, int], float]
MemoryBytes = Callable[[int, int], int]


# ------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ArrivalSpec:
    """How requests arrive. ``poisson`` and ``constant`` need ``rate_per_s``; ``trace`` needs ``trace``
    (``(time_s, seq_len)`` pairs, times non-decreasing), and a ``rate_per_s``, if given, rescales the
    trace's times to that mean rate (how a load sweep replays one trace at other loads)."""

    process: str = "poisson"
    rate_per_s: float | None = None
    trace: tuple[tuple[float, int], ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.process not in ARRIVAL_PROCESSES:
            raise ConfigError(f"process(={self.process!r}) must be one of "
                                f"{', '.join(ARRIVAL_PROCESSES)}")
        if self.rate_per_s is not None and not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ConfigError(f"rate_per_s(={self.rate_per_s}) must be > 0")
        if self.process != "trace" and self.rate_per_s is None:
            raise ConfigError(f"rate_per_s is required for process {self.process}")
        if self.process == "trace":
            if not self.trace:
                raise ConfigError("process trace needs at least one (time_s, seq_len) row")
            times = [t for t, _ in self.trace]
            if any(b < a for a, b in zip(times, times[1:])) or any(not math.isfinite(t) or t < 0 for t in times):
                raise ConfigError("trace times must be finite, >= 0 and non-decreasing")
            if any(int(n) != n or n < 1 for _, n in self.trace):
                raise ConfigError("every seq_len of a trace must be a whole number >= 1")
            if len(self.trace) > 1 and times[-1] == times[0] and self.rate_per_s is not None:
                raise ConfigError("a trace with all requests at one instant cannot be rescaled "
                                    "to a rate")


@dataclass(frozen=True)
class SeqLenSpec:
    """Request lengths in time steps: ``fixed`` (``value``), ``uniform`` (``low``..``high`` inclusive)
    or ``lognormal`` (``median``, ``sigma`` of log length, draws above ``max`` cut to ``max``)."""

    distribution: str = "fixed"
    value: int | None = None
    low: int | None = None
    high: int | None = None
    median: float | None = None
    sigma: float | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        needs = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("median", "sigma", "max")}
        if self.distribution not in needs:
            raise ConfigError(f"distribution(={self.distribution!r}) must be one of "
                                f"{', '.join(SEQ_LEN_DISTRIBUTIONS)}")
        for name in needs[self.distribution]:
            value = getattr(self, name)
            if value is None or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name}(={value}) must be > 0 for {self.distribution}")
        if self.distribution == "uniform" and self.low > self.high:  # type: ignore[operator]
            raise ConfigError(f"low(={self.low}) must be <= high(={self.high})")

    @property
    def longest(self) -> int:
        """The longest length this distribution can give."""
        return int({"fixed": self.value, "uniform": self.high, "lognormal": self.max}[self.distribution])


@dataclass(frozen=True)
class BatchingSpec:
    """The dynamic batcher. ``bucket_edges``: upper bounds (inclusive) of the length buckets for
    ``padding="bucket"``; None: powers of two from 8 up to the longest request."""

    max_batch: int = 1
    max_wait_s: float = 0.0
    padding: str = "pad"
    bucket_edges: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ConfigError(f"max_batch(={self.max_batch!r}) must be a whole number >= 1")
        if not math.isfinite(self.max_wait_s) or self.max_wait_s < 0:
            raise ConfigError(f"max_wait_s(={self.max_wait_s}) must be >= 0")
        if self.padding not in PADDINGS:
            raise ConfigError(f"padding(={self.padding!r}) must be one of {', '.join(PADDINGS)}")
        if self.bucket_edges is not None and (not self.bucket_edges or list(self.bucket_edges) != sorted(set(self.bucket_edges))
                                              or self.bucket_edges[0] < 1):
            raise ConfigError(f"bucket_edges(={self.bucket_edges}) must be increasing "
                                "whole numbers >= 1")


@dataclass(frozen=True)
class ServingSpec:
    """A serving study: arrivals, lengths (ignored for a trace, which has its own), batcher, replicas.

    ``threads_per_replica`` is carried for the caller that builds ``service_time_s`` (a replica's
    service time is the cost model's at that thread count). ``slo_p99_latency_s``: the latency target
    (None: none). ``memory_cap_bytes``: a batch must fit under it (needs a ``memory_bytes`` function).
    ``load_sweep_rates_per_s``: rates for :func:`sweep_load` (None: spread up to capacity).
    """

    arrival: ArrivalSpec
    seq_len: SeqLenSpec | None = None
    batching: BatchingSpec = BatchingSpec()
    replicas: int = 1
    threads_per_replica: int = 1
    requests: int = 10_000
    seed: int = 0
    slo_p99_latency_s: float | None = None
    memory_cap_bytes: int | None = None
    load_sweep_rates_per_s: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("replicas", "threads_per_replica", "requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}(={value!r}) must be a whole number >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed(={self.seed!r}) must be a whole number >= 0")
        if self.seq_len is None and self.arrival.process != "trace":
            raise ConfigError("seq_len is required unless the arrival process is trace")
        if self.slo_p99_latency_s is not None and not self.slo_p99_latency_s > 0:
            raise ConfigError(f"slo_p99_latency_s(={self.slo_p99_latency_s}) must be > 0")
        if self.memory_cap_bytes is not None and self.memory_cap_bytes <= 0:
            raise ConfigError(f"memory_cap_bytes(={self.memory_cap_bytes}) must be > 0")
        if self.load_sweep_rates_per_s is not None and (
                not self.load_sweep_rates_per_s or min(self.load_sweep_rates_per_s) <= 0):
            raise ConfigError(f"load_sweep_rates_per_s(={self.load_sweep_rates_per_s}) must be "
                                "rates > 0")

    def with_rate(self, rate_per_s: float) -> "ServingSpec":
        """The same study at another mean arrival rate."""
        return replace(self, arrival=replace(self.arrival, rate_per_s=float(rate_per_s)))


# ---------------------------------------------------------------------------------------- requests
@dataclass(frozen=True, eq=False)
class Requests:
    """The requests of a run, sorted by arrival: ``arrival_s[i]`` and ``seq_len[i]``."""

    arrival_s: np.ndarray
    seq_len: np.ndarray


def generate_requests(spec: ServingSpec) -> Requests:
    """Draw the arrivals and lengths of ``spec`` (seeded: arrivals and lengths from separate streams,
    so a change of rate keeps the same lengths and scales the same gaps)."""
    arrival_rng, length_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(2))
    a = spec.arrival
    if a.process == "trace":
        assert a.trace is not None
        rows = a.trace[:spec.requests]
        times = np.array([t for t, _ in rows], dtype=float)
        lengths = np.array([n for _, n in rows], dtype=np.int64)
        if a.rate_per_s is not None and len(rows) > 1:
            native_rate = (len(rows) - 1) / (times[-1] - times[0])
            times = times[0] + (times - times[0]) * (native_rate / a.rate_per_s)
        return Requests(times, lengths)
    n = spec.requests
    assert a.rate_per_s is not None
    if a.process == "poisson":
        times = np.cumsum(arrival_rng.exponential(1.0, n)) / a.rate_per_s
    else:
        times = np.arange(1, n + 1, dtype=float) / a.rate_per_s
    assert spec.seq_len is not None
    return Requests(times, _draw_lengths(spec.seq_len, n, length_rng))


def _draw_lengths(s: SeqLenSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    if s.distribution == "fixed":
        return np.full(n, int(s.value), dtype=np.int64)  # type: ignore[arg-type]
    if s.distribution == "uniform":
        return rng.integers(int(s.low), int(s.high) + 1, size=n, dtype=np.int64)  # type: ignore[arg-type]
    draws = np.rint(float(s.median) * np.exp(float(s.sigma) * rng.standard_normal(n)))  # type: ignore[arg-type]
    return np.clip(draws, 1, int(s.max)).astype(np.int64)  # type: ignore[arg-type]


def default_bucket_edges(longest: int) -> tuple[int, ...]:
    """Powers of two from 8 up to the first one that holds ``longest``."""
    edges = [8]
    while edges[-1] < longest:
        edges.append(edges[-1] * 2)
    return tuple(edges)


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


# -------------------------------------------------------------------------------------- load sweep
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


def is_stable(result: ServingResult, max_batch: int) -> bool:
    """Whether the replicas kept up with the arrivals: by the last arrival, all but a backlog of
    max(3% of the requests, two full batches per replica) had been served. An overloaded run's queue
    grows without bound, so a finite run's p99 says nothing about the SLO there."""
    log = result.log
    served = int((log.finish_s <= log.arrival_s.max()).sum())
    allowed = max(0.03 * result.requests, 2 * result.replicas * max_batch)
    return result.requests - served <= allowed


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
