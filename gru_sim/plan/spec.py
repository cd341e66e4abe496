"""What a capacity plan asks: the traffic to serve, the latency it must be served within, the
deployments that may serve it (machines, replicas, batcher settings, threads) and, for training, the
dataset to get through in a target time.

Traffic is written exactly as in the ``serving:`` study (one vocabulary: :class:`ArrivalSpec` and
:class:`SeqLenSpec` of :mod:`gru_sim.sim.serving`). Every value is checked where it enters, and a
message names the field and repeats the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any, Mapping, Sequence

from ..errors import ScenarioError
from ..sim.serving import PADDINGS, ArrivalSpec, SeqLenSpec, load_arrival_trace
from ..sim.training import Interconnect

PERCENTILES = (95, 99)
DEFAULT_REQUESTS = 4000
DEFAULT_SEEDS = (1, 2, 3)


def _whole(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ScenarioError(f"plan.{name}(={value!r}) must be a whole number >= {low}")
    return value


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ScenarioError(f"plan.{name}(={value!r}) must be a number {'>= 0' if allow_zero else '> 0'}")
    return float(value)


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
            raise ScenarioError(f"plan.slo: percentile(={self.percentile}) must be one of 95, 99")
        if self.min_attainment is not None and not 0 < self.min_attainment <= 1:
            raise ScenarioError(f"plan.slo.min_attainment(={self.min_attainment}) must be in (0, 1]")

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
    """A machine kind replicas may run on: its price, cores and memory (None: not a constraint), and
    the calibration profile that prices a call on it (None: the plan's profile)."""

    name: str
    cost_per_hour: float
    cores: int
    memory_bytes: int | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ScenarioError("plan.hardware: every entry needs a name")
        _positive(f"hardware[{self.name}].cost_per_hour", self.cost_per_hour)
        _whole(f"hardware[{self.name}].cores", self.cores)
        if self.memory_bytes is not None:
            _whole(f"hardware[{self.name}].memory_bytes", self.memory_bytes)


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
                raise ScenarioError(f"plan.search.{name} must list at least one value")
        for name in ("replicas", "max_batch", "threads_per_replica"):
            for value in getattr(self, name):
                _whole(f"search.{name}", value)
        for value in self.max_wait_s:
            _positive("search.max_wait_s", value, allow_zero=True)
        for value in self.padding:
            if value not in PADDINGS:
                raise ScenarioError(f"plan.search.padding(={value!r}) must be one of {', '.join(PADDINGS)}")
        if self.bucket_edges is not None and (not self.bucket_edges or self.bucket_edges[0] < 1
                                              or list(self.bucket_edges) != sorted(set(self.bucket_edges))):
            raise ScenarioError(f"plan.search.bucket_edges(={list(self.bucket_edges)}) must be increasing whole "
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
            raise ScenarioError("plan.training: batch_per_device and devices must list at least one value")
        for value in self.batch_per_device:
            _whole("training.batch_per_device", value)
        for value in self.devices:
            _whole("training.devices", value)
        if self.device_memory_bytes is not None:
            _whole("training.device_memory_bytes", self.device_memory_bytes)


@dataclass(frozen=True)
class PlanSpec:
    """A plan: traffic (arrivals at the peak rate, request lengths), the SLO, an optional memory cap
    per replica, the search space, the hardware candidates, and how hard to simulate each candidate
    (``requests`` per run, one run per seed). ``rates_per_s``: the rates to plan for (e.g. a day's
    hours); the plan is sized for the highest, and the others get a schedule. ``service_time_factor``
    multiplies every predicted service time (a margin for a real loop's slower batches)."""

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

    def __post_init__(self) -> None:
        if self.seq_len is None and self.arrival.process != "trace":
            raise ScenarioError("plan.seq_len is required unless arrival.process is trace")
        if not self.hardware:
            raise ScenarioError("plan.hardware must list at least one machine kind")
        names = [h.name for h in self.hardware]
        if len(set(names)) != len(names):
            raise ScenarioError(f"plan.hardware: names must differ (found {names})")
        for rate in self.rates_per_s:
            _positive("rates_per_s", rate)
        if self.arrival.rate_per_s is None and not self.rates_per_s and self.arrival.process != "trace":
            raise ScenarioError("plan: give arrival.rate_per_s or rates_per_s")
        if self.memory_cap_bytes is not None:
            _whole("memory_cap_bytes", self.memory_cap_bytes)
        _whole("requests", self.requests)
        if not self.seeds:
            raise ScenarioError("plan.seeds must list at least one seed")
        for seed in self.seeds:
            _whole("seeds", seed, low=0)
        _positive("service_time_factor", self.service_time_factor)

    @property
    def peak_rate_per_s(self) -> float:
        """The rate the deployment is sized for: the highest of ``rates_per_s`` and the arrival's rate
        (a trace without a rate: its own mean rate)."""
        rates = [*self.rates_per_s, *([self.arrival.rate_per_s] if self.arrival.rate_per_s else [])]
        if rates:
            return max(rates)
        trace = self.arrival.trace or ()
        if len(trace) < 2 or trace[-1][0] <= trace[0][0]:
            raise ScenarioError("plan: the arrival trace spans no time: give arrival.rate_per_s")
        return (len(trace) - 1) / (trace[-1][0] - trace[0][0])

    @property
    def longest_seq_len(self) -> int:
        """The longest request the traffic can hold."""
        if self.arrival.process == "trace":
            return max(n for _, n in self.arrival.trace or ())
        assert self.seq_len is not None
        return self.seq_len.longest


# -------------------------------------------------------------------------------------- from a mapping
def _values(values: Any, name: str) -> tuple[Any, ...]:
    if isinstance(values, (list, tuple)):
        return tuple(values)
    return (values,)


def _replicas(value: Any) -> tuple[int, ...]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max"})
        if unknown:
            raise ScenarioError(f"plan.search.replicas: unknown key(s) {', '.join(unknown)}")
        low = _whole("search.replicas.min", value.get("min", 1))
        high = _whole("search.replicas.max", value.get("max", 64))
        if high < low:
            raise ScenarioError(f"plan.search.replicas: max(={high}) must be >= min(={low})")
        return tuple(range(low, high + 1))
    return tuple(sorted(set(_values(value, "replicas"))))


def _check_keys(values: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}")


def plan_spec_from_mapping(values: Mapping[str, Any],
                           arrival_trace: Sequence[tuple[float, int]] | None = None) -> PlanSpec:
    """A :class:`PlanSpec` from the ``plan:`` mapping of a scenario (its keys are in the README). For a
    trace, pass the rows already read (``arrival_trace``), else ``arrival.csv`` is read."""
    _check_keys(values, {"arrival", "seq_len", "rates_per_s", "slo", "memory_cap_bytes", "search", "hardware",
                         "requests", "seeds", "service_time_factor", "training"}, "plan")
    arrival = dict(values.get("arrival") or {})
    process = arrival.pop("process", "poisson")
    trace = None
    if process == "trace":
        csv_path = arrival.pop("csv", None)
        if arrival_trace is None:
            if csv_path is None:
                raise ScenarioError("plan.arrival: process trace needs csv")
            arrival_trace = load_arrival_trace(csv_path)
        trace = tuple((float(t), int(n)) for t, n in arrival_trace)
    rate = arrival.pop("rate_per_s", None)
    if arrival:
        raise ScenarioError(f"plan.arrival: unknown key(s) {', '.join(sorted(arrival))}")
    slo_values = dict(values.get("slo") or {})
    _check_keys(slo_values, {"p99_latency_s", "p95_latency_s", "min_attainment"}, "plan.slo")
    given = [p for p in PERCENTILES if f"p{p}_latency_s" in slo_values]
    if len(given) != 1:
        raise ScenarioError("plan.slo: give exactly one of p99_latency_s, p95_latency_s")
    slo = Slo(latency_s=float(slo_values[f"p{given[0]}_latency_s"]), percentile=given[0],
              min_attainment=None if slo_values.get("min_attainment") is None else float(slo_values["min_attainment"]))
    search = dict(values.get("search") or {})
    _check_keys(search, {"replicas", "max_batch", "max_wait_s", "padding", "bucket_edges", "threads_per_replica"},
                "plan.search")
    defaults = SearchSpace()
    space = SearchSpace(
        replicas=_replicas(search["replicas"]) if "replicas" in search else defaults.replicas,
        max_batch=_values(search.get("max_batch", defaults.max_batch), "max_batch"),
        max_wait_s=tuple(float(w) for w in _values(search.get("max_wait_s", defaults.max_wait_s), "max_wait_s")),
        padding=_values(search.get("padding", defaults.padding), "padding"),
        bucket_edges=None if search.get("bucket_edges") is None else tuple(search["bucket_edges"]),
        threads_per_replica=_values(search.get("threads_per_replica", defaults.threads_per_replica), "threads"))
    hardware = []
    for entry in values.get("hardware") or ():
        entry = dict(entry)
        _check_keys(entry, {"name", "cost_per_hour", "cores", "memory_bytes", "profile"}, "plan.hardware")
        memory = entry.get("memory_bytes")
        hardware.append(Hardware(name=str(entry.get("name") or ""), cost_per_hour=entry.get("cost_per_hour"),  # type: ignore[arg-type]
                                 cores=entry.get("cores"),  # type: ignore[arg-type]
                                 memory_bytes=None if memory is None else int(memory),
                                 profile=None if entry.get("profile") is None else str(entry["profile"])))
    if not hardware:
        # No machine kinds named: one replica per machine at a price of 1 per hour, so cost = replicas.
        hardware.append(Hardware(name="replica", cost_per_hour=1.0, cores=max(space.threads_per_replica)))
    seeds = values.get("seeds", DEFAULT_SEEDS)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = tuple(range(1, _whole("seeds", seeds) + 1))
    cap = values.get("memory_cap_bytes")
    seq = values.get("seq_len")
    return PlanSpec(
        arrival=ArrivalSpec(process=str(process), rate_per_s=None if rate is None else float(rate), trace=trace),
        seq_len=SeqLenSpec(**seq) if seq else None, slo=slo, hardware=tuple(hardware), space=space,
        rates_per_s=tuple(float(r) for r in _values(values.get("rates_per_s", ()), "rates_per_s")),
        memory_cap_bytes=None if cap is None else int(cap), requests=values.get("requests", DEFAULT_REQUESTS),
        seeds=tuple(seeds), service_time_factor=float(values.get("service_time_factor", 1.0)),
        training=None if values.get("training") is None else training_plan_from_mapping(values["training"]))


def training_plan_from_mapping(values: Mapping[str, Any]) -> TrainingPlanSpec:
    """A :class:`TrainingPlanSpec` from the ``plan.training`` mapping."""
    _check_keys(values, {"sequences_per_epoch", "seq_len", "target_epoch_time_s", "batch_per_device", "devices",
                         "interconnect", "cost_per_device_hour", "device_memory_bytes", "optimizer"},
                "plan.training")
    link = dict(values.get("interconnect") or {})
    if "bandwidth_bytes_per_s" not in link:
        raise ScenarioError("plan.training.interconnect.bandwidth_bytes_per_s is required")
    memory = values.get("device_memory_bytes")
    return TrainingPlanSpec(
        sequences_per_epoch=values.get("sequences_per_epoch"),  # type: ignore[arg-type]
        seq_len=values.get("seq_len"),  # type: ignore[arg-type]
        target_epoch_time_s=values.get("target_epoch_time_s"),  # type: ignore[arg-type]
        batch_per_device=_values(values.get("batch_per_device", ()), "batch_per_device"),
        devices=_values(values.get("devices", ()), "devices"),
        interconnect=Interconnect(float(link["bandwidth_bytes_per_s"]), float(link.get("latency_s", 0.0))),
        cost_per_device_hour=values.get("cost_per_device_hour", 1.0),
        device_memory_bytes=None if memory is None else int(memory),
        optimizer=str(values.get("optimizer", "adam")))
