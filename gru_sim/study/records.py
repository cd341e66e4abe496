"""The sweep, serving and training objects of results.json as frozen records: made by their studies
(:mod:`gru_sim.study.serving`, :mod:`gru_sim.study.training`; a sweep's by the predictor), written to JSON by their ``to_dict``
alone, and read back by their ``from_dict`` for the report — so the report reads the shape the
studies write, and a change of shape breaks the report's tests rather than leaving it reading keys that
no longer exist. They hold the stages' own records (:class:`~gru_sim.predict.Prediction`,
:class:`~gru_sim.sim.serving.ServingResult`,
:class:`~gru_sim.sim.load_sweep.LoadSweep`, :class:`~gru_sim.sim.training.TrainingPoint`), whose
``to_dict`` writes their part; results.json writes a non-finite number as null, so a figure read back
may be None.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import GruConfig
from ..predict import Prediction
from ..sim.executors import Parallelism
from ..sim.load_sweep import LoadPoint, LoadSweep
from ..sim.serving import Percentiles, RequestLog, ServingResult
from ..sim.training import TrainingPoint, TrainingResult

# The log of a run read back from results.json, which keeps no per-request log.
_NO_LOG = RequestLog(*(np.empty(0) for _ in fields(RequestLog)))


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
    """The ``serving`` object of results.json: a serving run's figures (its
    :class:`~gru_sim.sim.serving.ServingResult`, written but its per-request sample), the rate offered,
    the latency and queue-wait distributions, and the load sweep. Read back from results.json, the run
    has no per-request sample and an empty log: results.json keeps neither."""

    run: ServingResult
    offered_rate_per_s: float | None
    latency_cdf: Cdf
    queue_wait_cdf: Cdf
    load_sweep: LoadSweepRecord

    def to_dict(self) -> dict[str, Any]:
        """The ``serving`` object of results.json (CONTRACT.md keys first, then extras)."""
        out = self.run.to_dict()
        out.pop("request_sample")
        out["offered_rate_per_s"] = self.offered_rate_per_s
        out["latency_cdf"] = self.latency_cdf.to_dict()
        out["queue_wait_cdf"] = self.queue_wait_cdf.to_dict()
        out["load_sweep"] = self.load_sweep.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServingRecord":
        """Read the ``serving`` object of results.json back (a key missing raises KeyError)."""
        run = ServingResult(
            requests=data["requests"], batches=data["batches"], replicas=data["replicas"],
            throughput_req_per_s=data["throughput_req_per_s"], latency_s=Percentiles(**data["latency_s"]),
            queue_wait_s=Percentiles(**data["queue_wait_s"]), service_time_mean_s=data["service_time_s"]["mean"],
            utilization=data["utilization"], mean_batch_size=data["mean_batch_size"],
            slo_p99_latency_s=data["slo_p99_latency_s"], slo_attainment=data["slo_attainment"],
            slo_met=data["slo_met"],
            batch_size_histogram=tuple((int(size), count) for size, count in data["batch_size_histogram"].items()),
            padding_share=data["padding_share"], useful_tokens=data["useful_tokens"],
            padded_tokens=data["padded_tokens"],
            queue_length_timeline=tuple((t, q) for t, q in data["queue_length_timeline"]),
            utilization_timeline=tuple((t, u) for t, u in data["utilization_timeline"]),
            request_sample=(), log=_NO_LOG)
        return cls(run=run, offered_rate_per_s=data["offered_rate_per_s"],
                   latency_cdf=Cdf.from_dict(data["latency_cdf"]), queue_wait_cdf=Cdf.from_dict(data["queue_wait_cdf"]),
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


@dataclass(frozen=True)
class SweepRecord:
    """One object of the ``sweep`` list of results.json: the prediction of one configuration (the
    ``predict`` record of CONTRACT.md) and the bytes the call must move at least once (weights, input
    and output; None when the run did not count them)."""

    prediction: Prediction
    compulsory_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.prediction.to_dict()
        if self.compulsory_bytes is not None:
            out["compulsory_bytes"] = self.compulsory_bytes
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepRecord":
        """Read one object of the ``sweep`` list back (a key missing raises KeyError)."""
        prediction = Prediction(
            config=GruConfig.from_mapping(data["config"]), latency_s=data["latency_s"],
            throughput_seq_per_s=data["throughput_seq_per_s"], throughput_tokens_per_s=data["throughput_tokens_per_s"],
            peak_memory_bytes=data["peak_memory_bytes"], latency_interval_s=tuple(data["latency_interval_s"]),
            breakdown_s=dict(data["breakdown_s"]), parallelism=Parallelism(**data["parallelism"]),
            extrapolated=data["extrapolated"], extrapolated_axes=dict(data["extrapolated_axes"]), flops=data["flops"],
            bytes_moved=data["bytes_moved"],
            arithmetic_intensity_flops_per_byte=data["arithmetic_intensity_flops_per_byte"],
            memory_bytes=dict(data["memory_bytes"]), profile=data["profile"], profile_match=data["profile_match"],
            profile_mismatch=data.get("profile_mismatch"), fits_in_memory=data["fits_in_memory"],
            oversubscribed=data["oversubscribed"])
        return cls(prediction=prediction, compulsory_bytes=data.get("compulsory_bytes"))

    @staticmethod
    def read_all(data: Sequence[Mapping[str, Any]]) -> tuple["SweepRecord", ...]:
        """The ``sweep`` list of results.json read back."""
        return tuple(SweepRecord.from_dict(r) for r in data)


__all__ = ["Cdf", "LoadSweepRecord", "ServingRecord", "SweepRecord", "TrainingRecord"]
