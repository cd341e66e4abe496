"""The evaluation of one deployment: simulating it once per seed and reading the verdict on the SLO.

Every candidate is simulated with :func:`gru_sim.sim.serving.simulate_serving` once per seed, with
``requests`` requests each, and is feasible only when every seed's run keeps up (:func:`is_stable`),
has its percentile within the SLO and enough requests within it — so the verdict does not hang on one
draw of the arrivals. Seeds run until one fails; the figures reported are pooled over the seeds run.
The :class:`Evaluator` also knows, per hardware kind, what a replica costs in service time (the point
prediction x ``service_time_factor``, or with ``service_time_margin: interval`` the upper end of the
prediction interval) and memory, how many fit on a machine, and how many machines the kind allows; it
keeps every candidate it simulated, in order, for the search (:mod:`gru_sim.plan.search`) to read.

With a :data:`SeedRunner` (``gru-sim plan --workers N``, a Dask cluster: :mod:`gru_sim.study.plan`) the
seeds of a candidate are simulated at once, elsewhere (:func:`simulate_seed_task` on a worker), and the
verdict is read from them in seed order, stopping at the first failure as here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..sim.serving import (BatchingSpec, ServingSpec, generate_requests, is_stable, simulate_serving)
from .result import Candidate, Deployment
from .spec import Batching, Hardware, PlanSpec


@dataclass(frozen=True)
class ReplicaModel:
    """How one hardware kind runs the model. ``service_time_s(batch, seq_len, threads)``: seconds of one
    batch padded to ``seq_len`` steps; ``memory_bytes(batch, seq_len)``: bytes a replica holds while it
    runs that batch (weights, inputs, activations); ``weight_bytes``: the weights alone;
    ``service_time_upper_s`` (same arguments as ``service_time_s``): the upper end of the service
    time's 90% prediction interval (None: the model states no error; ``service_time_margin: interval``
    then cannot be planned)."""

    service_time_s: Callable[[int, int, int], float]
    memory_bytes: Callable[[int, int], int]
    weight_bytes: int
    service_time_upper_s: Callable[[int, int, int], float] | None = None


@dataclass(frozen=True)
class Level:
    """One machine count and the most replicas the space allows on it."""


    machines: int
    replicas: int


@dataclass(frozen=True)
class SeedRun:
    """What the verdict on a deployment needs from its simulation with one seed."""

    seed: int
    latency_s: np.ndarray
    p99_s: float
    utilization: float
    mean_batch_size: float
    stable: bool


SeedRunner = Callable[[Deployment, float, Sequence[int]], Callable[[], Sequence[SeedRun]]]
"""``runner(deployment, rate, seeds)`` starts simulating every seed (elsewhere: on a cluster) and returns
a function that waits for their :class:`SeedRun`, in the order of ``seeds``; each must be what
:meth:`Evaluator.simulate_seed` gives here."""


class Evaluator:
    """Simulates deployments (each once) and keeps every candidate in the order it was simulated."""

    def __init__(self, spec: PlanSpec, models: Mapping[str, ReplicaModel], runner: SeedRunner | None = None) -> None:
        self.spec = spec
        self.models = models
        self.hardware = {h.name: h for h in spec.hardware}
        self.cache: dict[tuple[Deployment, float], Candidate] = {}
        self.runner = runner
        self.started: dict[tuple[Deployment, float], Callable[[], Sequence[SeedRun]]] = {}
        self.seeds = spec.seeds[:1] if spec.arrival.process == "trace" else spec.seeds  # a trace has no randomness
        self._service: dict[tuple[str, int], Callable[[int, int], float]] = {}
        self._memory: dict[str, Callable[[int, int], int]] = {}
        lengths = [generate_requests(self._serving_spec(Batching(1, 0.0, "pad"), 1, 1, seed)).seq_len
                   for seed in self.seeds]
        self.lengths = np.concatenate(lengths)

    def service(self, hardware: str, threads: int) -> Callable[[int, int], float]:
        """The service time a batch gets in the simulations: the point prediction x the factor, or (margin
        ``interval``) the upper end of its prediction interval, never below the point prediction."""
        if (hardware, threads) not in self._service:
            model, factor = self.models[hardware], self.spec.service_time_factor
            upper = model.service_time_upper_s if self.spec.service_time_margin == "interval" else None
            if self.spec.service_time_margin == "interval" and upper is None:
                raise ConfigError(f"service_time_margin: interval: hardware {hardware}'s cost model states no "
                                  "prediction interval")

            @lru_cache(maxsize=None)
            def service_time_s(batch: int, seq_len: int) -> float:
                point = float(model.service_time_s(batch, seq_len, threads))
                if upper is None:
                    return factor * point
                return factor * max(point, float(upper(batch, seq_len, threads)))

            self._service[(hardware, threads)] = service_time_s
        return self._service[(hardware, threads)]

    def memory(self, hardware: str) -> Callable[[int, int], int]:
        if hardware not in self._memory:
            self._memory[hardware] = lru_cache(maxsize=None)(self.models[hardware].memory_bytes)
        return self._memory[hardware]

    def replica_memory_bytes(self, hardware: str, batching: Batching) -> int | None:
        """What one replica holds at its largest batch of the longest requests (the batcher shrinks a
        batch to fit under the memory cap); None when not even one request fits under the cap."""
        memory, longest, cap = self.memory(hardware), self.spec.longest_seq_len, self.spec.memory_cap_bytes
        k = batching.max_batch
        while cap is not None and k > 1 and memory(k, longest) > cap:
            k -= 1
        need = int(memory(k, longest))
        return None if cap is not None and need > cap else need

    def per_machine(self, hw: Hardware, threads: int, batching: Batching) -> int:
        need = self.replica_memory_bytes(hw.name, batching)
        by_cores = hw.cores // threads
        if need is None:
            return 0
        return by_cores if hw.memory_bytes is None else min(by_cores, hw.memory_bytes // max(need, 1))

    def levels(self, hw: Hardware, threads: int, batching: Batching, limited: bool = True) -> list[Level]:
        """One replica count per machine count: the most the space allows on that many machines, up to the
        kind's ``max_machines`` (``limited`` False: whatever the limit)."""
        per = self.per_machine(hw, threads, batching)
        if per == 0:
            return []
        most: dict[int, int] = {}
        for r in self.spec.space.replicas:
            m = math.ceil(r / per)
            if limited and hw.max_machines is not None and m > hw.max_machines:
                continue
            most[m] = max(most.get(m, 0), r)
        return [Level(m, most[m]) for m in sorted(most)]

    def capped(self, hw: Hardware, threads: int, batching: Batching) -> bool:
        """Whether the kind's ``max_machines`` leaves out machine counts the search space holds."""
        return hw.max_machines is not None and len(self.levels(hw, threads, batching, limited=False)) > len(
            self.levels(hw, threads, batching))

    def _serving_spec(self, batching: Batching, replicas: int, threads: int, seed: int,
                      rate: float | None = None) -> ServingSpec:
        arrival = self.spec.arrival if rate is None else replace(self.spec.arrival, rate_per_s=rate)
        if arrival.rate_per_s is None and arrival.process != "trace":
            arrival = replace(arrival, rate_per_s=self.spec.peak_rate_per_s)
        return ServingSpec(arrival=arrival, seq_len=self.spec.seq_len,
                           batching=BatchingSpec(batching.max_batch, batching.max_wait_s, batching.padding,
                                                 batching.bucket_edges),
                           replicas=replicas, threads_per_replica=threads, requests=self.spec.requests, seed=seed,
                           memory_cap_bytes=self.spec.memory_cap_bytes)

    def simulate_seed(self, deployment: Deployment, rate: float, seed: int) -> SeedRun:
        """``deployment`` serving ``rate`` requests per second, simulated with ``seed``."""
        d = deployment
        service, memory = self.service(d.hardware, d.threads_per_replica), self.memory(d.hardware)
        spec = self._serving_spec(d.batching, d.replicas, d.threads_per_replica, seed, rate)
        run = simulate_serving(spec, service, memory if self.spec.memory_cap_bytes is not None else None,
                               timeline_points=1, sample_requests=0)
        return SeedRun(seed=seed, latency_s=run.log.latency_s, p99_s=float(run.latency_s.p99),
                       utilization=float(run.utilization), mean_batch_size=float(run.mean_batch_size),
                       stable=bool(is_stable(run, d.batching.max_batch)))

    def start(self, deployment: Deployment, rate: float) -> None:
        """With a runner, start simulating ``deployment`` (every seed) before :meth:`evaluate` asks for it.
        Without one, nothing: here the seeds run one by one, when asked, until one fails."""
        key = (deployment, rate)
        if self.runner is not None and key not in self.cache and key not in self.started:
            self.started[key] = self.runner(deployment, rate, self.seeds)

    def _seed_runs(self, deployment: Deployment, rate: float) -> Iterator[SeedRun]:
        if self.runner is None:
            return (self.simulate_seed(deployment, rate, seed) for seed in self.seeds)
        self.start(deployment, rate)
        return iter(self.started.pop((deployment, rate))())

    def evaluate(self, deployment: Deployment, rate: float) -> Candidate:
        key = (deployment, rate)
        if key in self.cache:
            return self.cache[key]
        d, slo, hw = deployment, self.spec.slo, self.hardware[deployment.hardware]
        latencies, p99s, utilization, batch_sizes = [], [], [], []
        reason = None
        stable = True
        for run in self._seed_runs(d, rate):
            seed = run.seed
            latency = run.latency_s
            latencies.append(latency)
            p99s.append(run.p99_s)
            utilization.append(run.utilization)
            batch_sizes.append(run.mean_batch_size)
            # The verdict needs every seed: the first that fails decides it, so the rest are not run
            # (on a cluster they ran at once, and the rest are left out).
            at_percentile = float(np.percentile(latency, slo.percentile))
            attainment = float((latency <= slo.latency_s).mean())
            seed_note = f" (seed {seed})" if len(self.seeds) > 1 else ""
            if not run.stable:
                stable = False  # the queue grows without bound, so its percentiles say nothing
                reason = (f"overloaded: {d.replicas} replica{'s' * (d.replicas != 1)} "
                          f"fall{'s' * (d.replicas == 1)} behind {rate:.4g} req/s (utilization "
                          f"{run.utilization:.2f}; the queue grows){seed_note}")
            elif at_percentile > slo.latency_s:
                reason = f"p{slo.percentile} {at_percentile:.4g} s is over the {slo.latency_s:.4g} s SLO{seed_note}"
            elif attainment < slo.attainment:
                reason = (f"{attainment:.2%} of requests within {slo.latency_s:.4g} s, below the "
                          f"{slo.attainment:.2%} required{seed_note}")
            if reason is not None:
                break
        pooled = np.concatenate(latencies)
        p50, p95, p99 = (float(v) for v in np.percentile(pooled, [50, 95, 99]))
        attainment = float((pooled <= slo.latency_s).mean())
        candidate = Candidate(
            deployment=d, rate_per_s=rate, cost_per_hour=d.machines * hw.cost_per_hour,
            replicas_per_machine=self.per_machine(hw, d.threads_per_replica, d.batching),
            latency_mean_s=float(pooled.mean()), latency_p50_s=p50, latency_p95_s=p95, latency_p99_s=p99,
            latency_p99_by_seed_s=tuple(p99s), slo_attainment=attainment,
            utilization=float(np.mean(utilization)), mean_batch_size=float(np.mean(batch_sizes)),
            memory_bytes_per_replica=self.replica_memory_bytes(d.hardware, d.batching) or 0,
            stable=stable, feasible=reason is None, reason=reason)
        self.cache[key] = candidate
        return candidate

    def capacity_per_replica(self, hardware: str, threads: int, batching: Batching) -> float:
        """An upper bound on the requests per second one replica finishes: its best batch size, every
        batch padded only to the shortest request."""
        service, shortest = self.service(hardware, threads), int(self.lengths.min())
        best = 0.0
        for k in range(1, batching.max_batch + 1):
            t = service(k, shortest)
            best = max(best, k / t) if t > 0 else math.inf
        return best


_WORKER_EVALUATORS: dict[str, Evaluator] = {}


def simulate_seed_task(payload: tuple[str, PlanSpec, Mapping[str, ReplicaModel]], deployment: Deployment,
                       rate: float, seed: int) -> SeedRun:
    """A cluster task: :meth:`Evaluator.simulate_seed` on a worker. ``payload`` is (a token naming the
    plan, its spec, its replica models), sent to every worker once; each worker keeps one evaluator per
    plan, so its service times are computed once, as here."""
    token, spec, models = payload
    if token not in _WORKER_EVALUATORS:
        _WORKER_EVALUATORS.clear()  # one plan at a time: a worker keeps only the latest
        _WORKER_EVALUATORS[token] = Evaluator(spec, models)
    return _WORKER_EVALUATORS[token].simulate_seed(deployment, rate, seed)
