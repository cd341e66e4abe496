"""What a serving study is: how requests arrive (Poisson, constant rate or a replayed trace), how long
they are (fixed, uniform or lognormal), the dynamic batcher in front of each replica, how many replicas,
the latency target — and the requests such a study draws, seeded, so the same spec gives the same run.
Every value is checked where the spec is made, and a message names the field and repeats the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError

ARRIVAL_PROCESSES = ("poisson", "constant", "trace")
SEQ_LEN_DISTRIBUTIONS = ("fixed", "uniform", "lognormal")
PADDINGS = ("pad", "bucket")


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
    ``load_sweep_rates_per_s``: rates for :func:`gru_sim.sim.load_sweep.sweep_load` (None: spread up to capacity).
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
