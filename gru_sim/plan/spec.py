"""What a capacity plan asks: the traffic to serve, the latency it must be served within, the
deployments that may serve it (machines, replicas, batcher settings, threads) and, for training, the
dataset to get through in a target time.

Traffic is described exactly as for the serving simulator (one vocabulary: :class:`ArrivalSpec` and
:class:`SeqLenSpec` of :mod:`gru_sim.sim.serving`). Every value is checked where it enters, and a
message names the field and repeats the bad value; the scenario loader words them with file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any

from ..errors import ConfigError
from ..sim.serving import PADDINGS, ArrivalSpec, SeqLenSpec
from ..sim.training import Interconnect

PERCENTILES = (95, 99)
DEFAULT_REQUESTS = 4000
DEFAULT_SEEDS = (1, 2, 3)
OPTIMIZERS = ("sgd", "sgd-momentum", "adam")
# How a batch's service time is priced: "factor", the point prediction x service_time_factor; "interval",
# the upper end of the profile's 90% prediction interval (never below the point prediction).
SERVICE_TIME_MARGINS = ("factor", "interval")


def _whole(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}(={value!r}) must be a whole number >= {low}")
    return value


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ConfigError(f"{name}(={value!r}) must be a number {'>= 0' if allow_zero else '> 0'}")
    return float(value)


def interval_and_factor_rule(factor: float) -> str:
    """Why ``service_time_margin: interval`` refuses a ``service_time_factor`` other than 1."""
    return (f"service_time_margin: interval and service_time_factor(={factor!r}) both set the margin on "
            "service times: give one (the interval's upper end is the margin; drop service_time_factor or "
            "set it to 1)")


@dataclass(frozen=True)
class Slo:
    """The latency objective: the ``percentile``-th latency (99 or 95) at most ``latency_s`` seconds,
    and at least ``min_attainment`` of the requests within ``latency_s`` (None: percentile / 100)."""

    latency_s: float
    percentile: int = 99
    min_attainment: float | None = None

    def __post_init__(self) -> None:
        _positive(f"slo.p{self.percentile}_latency_s", self.latency_s)
        if self.percentile not in PERCENTILES:
            raise ConfigError(f"slo: percentile(={self.percentile}) must be one of 95, 99")
        if self.min_attainment is not None and not 0 < self.min_attainment <= 1:
            raise ConfigError(f"slo.min_attainment(={self.min_attainment}) must be in (0, 1]")

    @property
    def attainment(self) -> float:
        """The share of requests that must finish within ``latency_s``."""
        return self.percentile / 100 if self.min_attainment is None else self.min_attainment

    def describe(self) -> str:
        text = f"p{self.percentile} <= {self.latency_s:.4g} s"
        if self.min_attainment is not None:
            text += f" with {self.min_attainment:.4g} of requests within it"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {f"p{self.percentile}_latency_s": self.latency_s, "percentile": self.percentile,
                "latency_s": self.latency_s, "min_attainment": self.attainment}


@dataclass(frozen=True)
class Hardware:
    """A machine kind replicas may run on: its price, cores and memory (None: not a constraint), the
    calibration profile that prices a call on it (None: the plan's profile), and the most machines of
    this kind a deployment may use (None: no limit)."""

    name: str
    cost_per_hour: float
    cores: int
    memory_bytes: int | None = None
    profile: str | None = None
    max_machines: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("hardware: every entry needs a name")
        _positive(f"hardware[{self.name}].cost_per_hour", self.cost_per_hour)
        _whole(f"hardware[{self.name}].cores", self.cores)
        if self.memory_bytes is not None:
            _whole(f"hardware[{self.name}].memory_bytes", self.memory_bytes)
        if self.max_machines is not None:
            _whole(f"hardware[{self.name}].max_machines", self.max_machines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cost_per_hour": self.cost_per_hour, "cores": self.cores,
                "memory_bytes": self.memory_bytes, "max_machines": self.max_machines, "profile": self.profile}


@dataclass(frozen=True)
class Batching:
    """One setting of the dynamic batcher (:class:`gru_sim.sim.serving.BatchingSpec`'s fields)."""

    max_batch: int
    max_wait_s: float
    padding: str
    bucket_edges: tuple[int, ...] | None = None

    def describe(self) -> str:
        return (f"max_batch {self.max_batch}, max_wait {self.max_wait_s * 1e3:.4g} ms, "
                f"{'pad to longest' if self.padding == 'pad' else 'length buckets'}")


@dataclass(frozen=True)
class SearchSpace:
    """The deployments to choose among: replica counts, batcher settings, threads per replica."""

    replicas: tuple[int, ...] = tuple(range(1, 65))
    max_batch: tuple[int, ...] = (1, 4, 16)
    max_wait_s: tuple[float, ...] = (0.0, 0.01)
    padding: tuple[str, ...] = ("pad",)
    bucket_edges: tuple[int, ...] | None = None
    threads_per_replica: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        for name in ("replicas", "max_batch", "max_wait_s", "padding", "threads_per_replica"):
            if not getattr(self, name):
                raise ConfigError(f"search.{name} must list at least one value")
        for name in ("replicas", "max_batch", "threads_per_replica"):
            for value in getattr(self, name):
                _whole(f"search.{name}", value)
        for value in self.max_wait_s:
            _positive("search.max_wait_s", value, allow_zero=True)
        for value in self.padding:
            if value not in PADDINGS:
                raise ConfigError(f"search.padding(={value!r}) must be one of {', '.join(PADDINGS)}")
        if self.bucket_edges is not None and (not self.bucket_edges or self.bucket_edges[0] < 1
                                              or list(self.bucket_edges) != sorted(set(self.bucket_edges))):
            raise ConfigError(f"search.bucket_edges(={list(self.bucket_edges)}) must be increasing whole "
                                "numbers >= 1")

    def batchings(self) -> tuple[Batching, ...]:
        """Every batcher setting of the space, in a fixed order."""
        return tuple(Batching(b, w, p, self.bucket_edges if p == "bucket" else None)
                     for p, b, w in product(dict.fromkeys(self.padding), sorted(set(self.max_batch)),
                                            sorted(set(self.max_wait_s))))


@dataclass(frozen=True)
class TrainingPlanSpec:
    """Get through ``sequences_per_epoch`` sequences of ``seq_len`` steps in at most
    ``target_epoch_time_s``: the device counts and batches per device to choose among, the link
    between devices, the price of one device-hour, and a device's memory (None: not a constraint)."""

    sequences_per_epoch: int
    seq_len: int
    target_epoch_time_s: float
    batch_per_device: tuple[int, ...]
    devices: tuple[int, ...]
    interconnect: Interconnect
    cost_per_device_hour: float = 1.0
    device_memory_bytes: int | None = None
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        _whole("training.sequences_per_epoch", self.sequences_per_epoch)
        _whole("training.seq_len", self.seq_len)
        _positive("training.target_epoch_time_s", self.target_epoch_time_s)
        _positive("training.cost_per_device_hour", self.cost_per_device_hour)
        if not self.batch_per_device or not self.devices:
            raise ConfigError("training: batch_per_device and devices must list at least one value")
        for value in self.batch_per_device:
            _whole("training.batch_per_device", value)
        for value in self.devices:
            _whole("training.devices", value)
        if self.device_memory_bytes is not None:
            _whole("training.device_memory_bytes", self.device_memory_bytes)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"training.optimizer(={self.optimizer!r}) must be one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class PlanSpec:
    """A plan: traffic (arrivals at the peak rate, request lengths), the SLO, an optional memory cap
    per replica, the search space, the hardware candidates, and how hard to simulate each candidate
    (``requests`` per run, one run per seed). ``rates_per_s``: the rates to plan for (e.g. a day's
    hours); the plan is sized for the highest, and the others get a schedule. ``service_time_margin``
    says how a batch's service time is priced: ``"factor"`` (the point prediction x
    ``service_time_factor``, a margin for a real loop's slower batches) or ``"interval"`` (the upper end
    of the profile's 90% prediction interval, which needs ``service_time_factor`` 1: the two margins
    are not stacked)."""

    arrival: ArrivalSpec
    seq_len: SeqLenSpec | None
    slo: Slo
    hardware: tuple[Hardware, ...]
    space: SearchSpace = SearchSpace()
    rates_per_s: tuple[float, ...] = ()
    memory_cap_bytes: int | None = None
    requests: int = DEFAULT_REQUESTS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    service_time_factor: float = 1.0
    training: TrainingPlanSpec | None = None
    service_time_margin: str = "factor"

    def __post_init__(self) -> None:
        if self.seq_len is None and self.arrival.process != "trace":
            raise ConfigError("seq_len is required unless arrival.process is trace")
        if not self.hardware:
            raise ConfigError("hardware must list at least one machine kind")
        names = [h.name for h in self.hardware]
        if len(set(names)) != len(names):
            raise ConfigError(f"hardware: names must differ (found {names})")
        for rate in self.rates_per_s:
            _positive("rates_per_s", rate)
        if self.arrival.rate_per_s is None and not self.rates_per_s and self.arrival.process != "trace":
            raise ConfigError("give arrival.rate_per_s or rates_per_s")
        if self.memory_cap_bytes is not None:
            _whole("memory_cap_bytes", self.memory_cap_bytes)
        _whole("requests", self.requests)
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed")
        for seed in self.seeds:
            _whole("seeds", seed, low=0)
        _positive("service_time_factor", self.service_time_factor)
        if self.service_time_margin not in SERVICE_TIME_MARGINS:
            raise ConfigError(f"service_time_margin(={self.service_time_margin!r}) must be one of "
                              f"{', '.join(SERVICE_TIME_MARGINS)}")
        if self.service_time_margin == "interval" and self.service_time_factor != 1:
            raise ConfigError(interval_and_factor_rule(self.service_time_factor))

    @property
    def peak_rate_per_s(self) -> float:
        """The rate the deployment is sized for: the highest of ``rates_per_s`` and the arrival's rate
        (a trace without a rate: its own mean rate)."""
        rates = [*self.rates_per_s, *([self.arrival.rate_per_s] if self.arrival.rate_per_s else [])]
        if rates:
            return max(rates)
        trace = self.arrival.trace or ()
        if len(trace) < 2 or trace[-1][0] <= trace[0][0]:
            raise ConfigError("the arrival trace spans no time: give arrival.rate_per_s")
        return (len(trace) - 1) / (trace[-1][0] - trace[0][0])

    @property
    def longest_seq_len(self) -> int:
        """The longest request the traffic can hold."""
        if self.arrival.process == "trace":
            return max(n for _, n in self.arrival.trace or ())
        assert self.seq_len is not None
        return self.seq_len.longest
