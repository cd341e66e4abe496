"""What a plan found: every deployment it simulated (a :class:`Candidate`), the one it recommends,
the cost-vs-latency front, why the cheaper deployments fail, and the training choice — the contents of
``plan.json`` (CONTRACT.md, "Planning")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .spec import Batching, Hardware, Slo

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Deployment:
    """One way to serve: ``replicas`` replicas of ``threads_per_replica`` threads behind the batcher
    ``batching``, packed onto ``machines`` machines of kind ``hardware``."""

    hardware: str
    threads_per_replica: int
    batching: Batching
    replicas: int
    machines: int

    def describe(self) -> str:
        return (f"{self.replicas} replica{'s' * (self.replicas != 1)} x {self.threads_per_replica} "
                f"thread{'s' * (self.threads_per_replica != 1)} on {self.machines} {self.hardware} "
                f"machine{'s' * (self.machines != 1)}, {self.batching.describe()}")


@dataclass(frozen=True)
class Candidate:
    """A deployment simulated at ``rate_per_s``, pooled over the seeds run: latency percentiles (s),
    the share of requests within the SLO, utilization, mean batch size, the memory one replica holds
    (bytes), and the verdict (feasible: every seed met the SLO; seeds stop at the first that fails).
    ``stable`` is False when the replicas fell behind in a seed's run (the queue grows without bound,
    so its percentiles say nothing); ``reason`` says why an infeasible candidate fails, and in which
    seed."""

    deployment: Deployment
    rate_per_s: float
    cost_per_hour: float
    replicas_per_machine: int
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latency_p99_by_seed_s: tuple[float, ...]
    slo_attainment: float
    utilization: float
    mean_batch_size: float
    memory_bytes_per_replica: int
    stable: bool
    feasible: bool
    reason: str | None

    def latency_at(self, percentile: int) -> float:
        return self.latency_p99_s if percentile == 99 else self.latency_p95_s

    def to_dict(self) -> dict[str, Any]:
        d = self.deployment
        return {"hardware": d.hardware, "machines": d.machines, "replicas": d.replicas,
                "threads_per_replica": d.threads_per_replica, "max_batch": d.batching.max_batch,
                "max_wait_s": d.batching.max_wait_s, "padding": d.batching.padding,
                "bucket_edges": None if d.batching.bucket_edges is None else list(d.batching.bucket_edges),
                "cost_per_hour": self.cost_per_hour,
                "latency_s": {"mean": self.latency_mean_s, "p50": self.latency_p50_s, "p95": self.latency_p95_s,
                              "p99": self.latency_p99_s},
                "latency_p99_by_seed_s": list(self.latency_p99_by_seed_s),
                "slo_attainment": self.slo_attainment, "utilization": self.utilization,
                "mean_batch_size": self.mean_batch_size, "memory_bytes": self.memory_bytes_per_replica,
                "replicas_per_machine": self.replicas_per_machine, "rate_per_s": self.rate_per_s,
                "stable": self.stable, "feasible": self.feasible, "reason": self.reason}


@dataclass(frozen=True)
class RuledOut:
    """A hardware kind and thread count no deployment of which can meet the constraints, and why."""

    hardware: str
    threads_per_replica: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": self.hardware, "threads_per_replica": self.threads_per_replica, "reason": self.reason}


@dataclass(frozen=True)
class ScheduledRate:
    """The recommended deployment's setting resized for one of the plan's rates."""

    rate_per_s: float
    candidate: Candidate | None

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"rate_per_s": self.rate_per_s, "machines": None if c is None else c.deployment.machines,
                "replicas": None if c is None else c.deployment.replicas,
                "cost_per_hour": None if c is None else c.cost_per_hour,
                "latency_p99_s": None if c is None else c.latency_p99_s}


@dataclass(frozen=True)
class TrainingOption:
    """One device count and batch per device for a training epoch."""

    devices: int
    batch_per_device: int
    step_time_s: float
    steps_per_epoch: int
    epoch_time_s: float
    cost_per_hour: float
    cost: float
    scaling_efficiency: float
    peak_memory_bytes_per_device: int
    feasible: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TrainingPlan:
    """The cheapest option meeting the target epoch time (None: none does), and every option tried.
    ``cost`` is per epoch: devices x price per device-hour x epoch time."""

    target_epoch_time_s: float
    sequences_per_epoch: int
    chosen: TrainingOption | None
    options: tuple[TrainingOption, ...]
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        c = self.chosen
        return {"devices": None if c is None else c.devices,
                "batch_per_device": None if c is None else c.batch_per_device,
                "epoch_time_s": None if c is None else c.epoch_time_s, "cost": None if c is None else c.cost,
                "cost_per_hour": None if c is None else c.cost_per_hour,
                "step_time_s": None if c is None else c.step_time_s,
                "target_epoch_time_s": self.target_epoch_time_s, "sequences_per_epoch": self.sequences_per_epoch,
                "feasible": c is not None, "reason": self.reason, "options": [o.to_dict() for o in self.options]}


@dataclass(frozen=True)
class ServingPlan:
    """The serving search's outcome. ``recommended`` is the cheapest feasible candidate (ties: the lower
    latency at the SLO's percentile), None with a one-line ``reason`` when none is; ``headroom_rate_per_s``
    the highest rate it still meets the SLO at; ``cheaper_neighbours`` the nearest cheaper deployments
    simulated, each with why it fails; ``evaluations`` the deployments the search simulated at the
    peak rate, ``space_size`` those a brute-force search would simulate, and ``simulations`` every
    deployment and rate simulated (the search, the headroom, the neighbours and the schedule).
    ``hardware``: the machine kinds planned with (their limits); ``service_time_margin`` and
    ``service_time_factor``: how every batch's service time was priced."""

    slo: Slo
    rate_per_s: float
    memory_cap_bytes: int | None
    recommended: Candidate | None
    headroom_rate_per_s: float | None
    headroom_bounded: bool
    candidates: tuple[Candidate, ...]
    pareto: tuple[Candidate, ...]
    cheaper_neighbours: tuple[Candidate, ...]
    ruled_out: tuple[RuledOut, ...]
    schedule: tuple[ScheduledRate, ...]
    reason: str | None
    evaluations: int
    simulations: int
    space_size: int
    requests_per_run: int
    seeds: tuple[int, ...]
    hardware: tuple[Hardware, ...] = ()
    service_time_margin: str = "factor"
    service_time_factor: float = 1.0


@dataclass(frozen=True)
class PlanResult:
    """A whole plan: the serving search (None when the plan asks only about training) and the
    training choice (None when it does not ask)."""

    serving: ServingPlan | None
    training: TrainingPlan | None

    @property
    def feasible(self) -> bool:
        """Whether every part asked for found a deployment meeting its constraints."""
        return ((self.serving is None or self.serving.recommended is not None)
                and (self.training is None or self.training.chosen is not None))

    @property
    def reason(self) -> str | None:
        """Why the plan is infeasible, in one line (None when it is feasible)."""
        reasons = [r for r in (self.serving and self.serving.reason, self.training and self.training.reason) if r]
        return "; ".join(reasons) or None

    def to_dict(self) -> dict[str, Any]:
        """plan.json (CONTRACT.md's keys first, then extras)."""
        s = self.serving
        out: dict[str, Any] = {"schema_version": PLAN_SCHEMA_VERSION}
        if s is not None:
            recommended = None
            if s.recommended is not None:
                recommended = {**s.recommended.to_dict(), "headroom_rate_per_s": s.headroom_rate_per_s,
                               "headroom_bounded": s.headroom_bounded}
            out.update({
                "slo": {**s.slo.to_dict(), "memory_cap_bytes": s.memory_cap_bytes},
                "rate_per_s": s.rate_per_s,
                "recommended": recommended,
                "candidates": [c.to_dict() for c in s.candidates],
                "pareto": [c.to_dict() for c in s.pareto],
                "cheaper_neighbours": [c.to_dict() for c in s.cheaper_neighbours],
                "ruled_out": [r.to_dict() for r in s.ruled_out],
                "schedule": [r.to_dict() for r in s.schedule],
                "search": {"evaluations": s.evaluations, "simulations": s.simulations, "space_size": s.space_size,
                           "requests_per_run": s.requests_per_run, "seeds": list(s.seeds)},
                "hardware": [h.to_dict() for h in s.hardware],
                "service_time_margin": s.service_time_margin,
                "service_time_factor": s.service_time_factor,
            })
        out["training"] = None if self.training is None else self.training.to_dict()
        out["feasible"] = self.feasible
        out["reason"] = self.reason
        return out
