"""The serving and training objects of results.json as frozen records: made by their studies
(:mod:`gru_sim.study.serving`, :mod:`gru_sim.study.training`), written to JSON by their ``to_dict``
alone, and read back by their ``from_dict`` for the report — so the report reads the shape the
studies write, and a change of shape breaks the report's tests rather than leaving it reading keys that
no longer exist. They hold the simulators' own records (:class:`~gru_sim.sim.serving.Percentiles`,
:class:`~gru_sim.sim.load_sweep.LoadSweep`, :class:`~gru_sim.sim.training.TrainingPoint`) where those
fit; results.json writes a non-finite number as null, so a figure read back may be None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..sim.load_sweep import LoadPoint, LoadSweep
from ..sim.serving import Percentiles, ServingResult
from ..sim.training import TrainingPoint, TrainingResult


@dataclass(frozen=True)
class Cdf:
    """An empirical distribution at a few quantiles: ``fraction[i]`` of the sample is at most
    ``value_s[i]``."""

    value_s: tuple[float, ...]
    fraction: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"value_s": list(self.value_s), "fraction": list(self.fraction)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Cdf":
        return cls(value_s=tuple(data["value_s"]), fraction=tuple(data["fraction"]))


@dataclass(frozen=True)
class LoadSweepRecord:
    """The load sweep of a serving study and the requests simulated at each of its rates."""

    sweep: LoadSweep
    requests_per_point: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.sweep.to_dict(), "requests_per_point": self.requests_per_point}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoadSweepRecord":
        sweep = LoadSweep(slo_p99_latency_s=data["slo_p99_latency_s"],
                          capacity_estimate_per_s=data["capacity_estimate_per_s"],
                          points=tuple(LoadPoint(**p) for p in data["points"]),
                          max_rate_meeting_slo_per_s=data["max_rate_meeting_slo_per_s"], bounded=data["bounded"])
        return cls(sweep=sweep, requests_per_point=int(data["requests_per_point"]))


@dataclass(frozen=True)
class ServingRecord:
    """The ``serving`` object of results.json: a serving run's figures (those of
    :class:`~gru_sim.sim.serving.ServingResult` but its per-request sample), the rate offered, the
    latency and queue-wait distributions, and the load sweep."""

    throughput_req_per_s: float
    latency_s: Percentiles
    queue_wait_s: Percentiles
    service_time_mean_s: float
    utilization: float
    mean_batch_size: float
    slo_attainment: float | None
    requests: int
    batches: int
    replicas: int
    slo_p99_latency_s: float | None
    slo_met: bool | None
    batch_size_histogram: tuple[tuple[int, int], ...]
    padding_share: float
    useful_tokens: int
    padded_tokens: int
    queue_length_timeline: tuple[tuple[float, int], ...]
    utilization_timeline: tuple[tuple[float, float], ...]
    offered_rate_per_s: float | None
    latency_cdf: Cdf
    queue_wait_cdf: Cdf
    load_sweep: LoadSweepRecord

    @classmethod
    def of(cls, result: ServingResult, offered_rate_per_s: float | None, latency_cdf: Cdf, queue_wait_cdf: Cdf,
           load_sweep: LoadSweepRecord) -> "ServingRecord":
        r = result
        return cls(throughput_req_per_s=r.throughput_req_per_s, latency_s=r.latency_s, queue_wait_s=r.queue_wait_s,
                   service_time_mean_s=r.service_time_mean_s, utilization=r.utilization,
                   mean_batch_size=r.mean_batch_size, slo_attainment=r.slo_attainment, requests=r.requests,
                   batches=r.batches, replicas=r.replicas, slo_p99_latency_s=r.slo_p99_latency_s, slo_met=r.slo_met,
                   batch_size_histogram=r.batch_size_histogram, padding_share=r.padding_share,
                   useful_tokens=r.useful_tokens, padded_tokens=r.padded_tokens,
                   queue_length_timeline=r.queue_length_timeline, utilization_timeline=r.utilization_timeline,
                   offered_rate_per_s=offered_rate_per_s, latency_cdf=latency_cdf, queue_wait_cdf=queue_wait_cdf,
                   load_sweep=load_sweep)

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
            "offered_rate_per_s": self.offered_rate_per_s,
            "latency_cdf": self.latency_cdf.to_dict(),
            "queue_wait_cdf": self.queue_wait_cdf.to_dict(),
            "load_sweep": self.load_sweep.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServingRecord":
        """Read the ``serving`` object of results.json back (a key missing raises KeyError)."""
        return cls(
            throughput_req_per_s=data["throughput_req_per_s"], latency_s=Percentiles(**data["latency_s"]),
            queue_wait_s=Percentiles(**data["queue_wait_s"]), service_time_mean_s=data["service_time_s"]["mean"],
            utilization=data["utilization"], mean_batch_size=data["mean_batch_size"],
            slo_attainment=data["slo_attainment"], requests=data["requests"], batches=data["batches"],
            replicas=data["replicas"], slo_p99_latency_s=data["slo_p99_latency_s"], slo_met=data["slo_met"],
            batch_size_histogram=tuple((int(size), count) for size, count in data["batch_size_histogram"].items()),
            padding_share=data["padding_share"], useful_tokens=data["useful_tokens"],
            padded_tokens=data["padded_tokens"],
            queue_length_timeline=tuple((t, q) for t, q in data["queue_length_timeline"]),
            utilization_timeline=tuple((t, u) for t, u in data["utilization_timeline"]),
            offered_rate_per_s=data["offered_rate_per_s"], latency_cdf=Cdf.from_dict(data["latency_cdf"]),
            queue_wait_cdf=Cdf.from_dict(data["queue_wait_cdf"]),
            load_sweep=LoadSweepRecord.from_dict(data["load_sweep"]))


@dataclass(frozen=True)
class TrainingRecord:
    """One object of the ``training`` list of results.json: one device count's simulated step, and the
    optimizer step's time within it."""

    point: TrainingPoint
    optimizer_step_s: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.point.to_dict(), "optimizer_step_s": self.optimizer_step_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingRecord":
        """Read one object of the ``training`` list back (a key missing or unknown raises TypeError)."""
        values = dict(data)
        optimizer_step_s = values.pop("optimizer_step_s")
        return cls(point=TrainingPoint(**values), optimizer_step_s=optimizer_step_s)

    @classmethod
    def all_of(cls, result: TrainingResult, optimizer_step_s: float) -> tuple["TrainingRecord", ...]:
        """One record per device count of ``result``, in its order."""
        return tuple(cls(point, optimizer_step_s) for point in result.points)

    @staticmethod
    def read_all(data: Sequence[Mapping[str, Any]]) -> tuple["TrainingRecord", ...]:
        """The ``training`` list of results.json read back."""
        return tuple(TrainingRecord.from_dict(r) for r in data)


__all__ = ["Cdf", "LoadSweepRecord", "ServingRecord", "TrainingRecord"]
