"""The search for the cheapest deployment that serves the traffic within the SLO.

A deployment is a hardware kind, threads per replica, a batcher setting and a replica count; replicas
are packed onto machines (as many as the cores and the memory hold), and a deployment costs machines x
the machine's price. At a given number of machines, more replicas cost nothing and only shorten the
queues, so each machine count is represented by the most replicas the space allows on it.

For every hardware kind and thread count (a *group*) the search first rules the group out where it
can without simulating: threads beyond the machine's cores, a replica that does not fit in the
machine's memory, or a request that alone — at batch 1, with no queueing — already takes longer than
the SLO at its percentile. Then, for every batcher setting, feasibility is monotone in the machine
count (more replicas never lengthen the queue), so:

1. a capacity bound (replicas x the most requests per second one replica can finish) skips counts
   that cannot keep up, and counts costing more than the best deployment found so far are skipped
   (branch and bound: settings are tried in order of capacity, so a cheap one is found early);
2. the most replicas still within budget is simulated; if it fails, the setting cannot beat the best;
3. otherwise bisection finds the fewest machines that meet the SLO.

Every candidate is simulated with :func:`gru_sim.sim.serving.simulate_serving` once per seed, with
``requests`` requests each, and is feasible only when every seed's run keeps up (:func:`is_stable`),
has its percentile within the SLO and enough requests within it — so the verdict does not hang on one
draw of the arrivals. Seeds run until one fails; the figures reported are pooled over the seeds run.
:func:`plan_serving` with ``exhaustive=True`` simulates every deployment instead (the tests' yardstick).

With a :data:`SeedRunner` (``gru-sim plan --workers N``, a Dask cluster: :mod:`gru_sim.study.plan`) the
seeds of a candidate are simulated at once, elsewhere, and the verdict is read from them in seed order,
stopping at the first failure as here; the first two deployments a bisection tries are started together.
The search itself, and so every candidate and the order they are listed in, is the serial one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..sim.serving import (BatchingSpec, ServingSpec, generate_requests, is_stable, simulate_serving)
from ..units import fmt_bytes
from .result import Candidate, Deployment, RuledOut, ScheduledRate, ServingPlan
from .spec import Batching, Hardware, PlanSpec

# The capacity bound is loosened by this factor: a finite run counts as keeping up while its backlog
# stays small (is_stable), so a deployment a little short of the bound may still pass.
CAPACITY_SLACK = 0.9
# Headroom: the rate is bisected until the highest passing and lowest failing rates are this close.
HEADROOM_REL_TOLERANCE = 0.02
HEADROOM_DOUBLINGS = 4


@dataclass(frozen=True)
class ReplicaModel:
    """How one hardware kind runs the model. ``service_time_s(batch, seq_len, threads)``: seconds of one
    batch padded to ``seq_len`` steps; ``memory_bytes(batch, seq_len)``: bytes a replica holds while it
    runs that batch (weights, inputs, activations); ``weight_bytes``: the weights alone."""

    service_time_s: Callable[[int, int, int], float]
    memory_bytes: Callable[[int, int], int]
    weight_bytes: int


@dataclass(frozen=True)
class _Level:
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
:meth:`_Evaluator.simulate_seed` gives here."""


class _Evaluator:
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
        if (hardware, threads) not in self._service:
            model, factor = self.models[hardware], self.spec.service_time_factor

            @lru_cache(maxsize=None)
            def service_time_s(batch: int, seq_len: int) -> float:
                return factor * float(model.service_time_s(batch, seq_len, threads))

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

    def levels(self, hw: Hardware, threads: int, batching: Batching) -> list[_Level]:
        """One replica count per machine count: the most the space allows on that many machines."""
        per = self.per_machine(hw, threads, batching)
        if per == 0:
            return []
        most: dict[int, int] = {}
        for r in self.spec.space.replicas:
            m = math.ceil(r / per)
            most[m] = max(most.get(m, 0), r)
        return [_Level(m, most[m]) for m in sorted(most)]

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


def _key(c: Candidate, order: int) -> tuple[float, float, int, int, int]:
    """Cheapest first; at the same cost the lower p99 latency (more headroom)."""
    return (round(c.cost_per_hour, 9), c.latency_p99_s, c.deployment.machines, c.deployment.replicas, order)


def _group_reason(ev: _Evaluator, hw: Hardware, threads: int) -> str | None:
    """Why no deployment of this hardware kind and thread count can meet the constraints, if that can
    be told without simulating a queue."""
    spec, model = ev.spec, ev.models[hw.name]
    if threads > hw.cores:
        return f"{threads} threads per replica do not fit on its {hw.cores} cores"
    need = ev.replica_memory_bytes(hw.name, Batching(1, 0.0, "pad"))
    if need is None:
        assert spec.memory_cap_bytes is not None
        return (f"one request of {spec.longest_seq_len} steps needs {fmt_bytes(model.memory_bytes(1, spec.longest_seq_len))}, "
                f"over the memory cap of {fmt_bytes(spec.memory_cap_bytes)}")
    if hw.memory_bytes is not None and need > hw.memory_bytes:
        return f"one replica needs {fmt_bytes(need)}, more than the machine's {fmt_bytes(hw.memory_bytes)}"
    # Every request takes at least its own length's service time at batch 1 (no queue, no padding).
    service = ev.service(hw.name, threads)
    alone = np.array([service(1, int(n)) for n in ev.lengths])
    floor = float(np.percentile(alone, spec.slo.percentile))
    if floor > spec.slo.latency_s:
        return (f"a request served alone (batch 1, no queueing) already takes {floor:.4g} s at "
                f"p{spec.slo.percentile}, over the {spec.slo.latency_s:.4g} s SLO")
    return None


def _bisect_fewest(ev: _Evaluator, make: Callable[[_Level], Deployment], levels: list[_Level],
                   rate: float) -> Candidate | None:
    """The candidate with the fewest machines among ``levels`` that is feasible, assuming feasibility
    is monotone in machines; None when even the last level fails."""
    if not levels:
        return None
    ev.start(make(levels[-1]), rate)
    if len(levels) > 1:
        ev.start(make(levels[(len(levels) - 2) // 2]), rate)  # the first bisection step, if the top passes
    top = ev.evaluate(make(levels[-1]), rate)
    if not top.feasible:
        return None
    lo, hi = -1, len(levels) - 1  # levels[hi] feasible; levels[lo] (if any) not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ev.evaluate(make(levels[mid]), rate).feasible:
            hi = mid
        else:
            lo = mid
    return ev.evaluate(make(levels[hi]), rate)


def plan_serving(spec: PlanSpec, models: Mapping[str, ReplicaModel], *, exhaustive: bool = False,
                 runner: SeedRunner | None = None) -> ServingPlan:
    """Find the cheapest deployment of ``spec`` meeting its SLO at its peak rate, given a
    :class:`ReplicaModel` per hardware name. ``exhaustive``: simulate every deployment of the space
    (slow; for checking the search). ``runner``: simulate the seeds elsewhere (a Dask cluster); the
    plan is the same."""
    missing = [h.name for h in spec.hardware if h.name not in models]
    if missing:
        raise ConfigError(f"plan: no replica model for hardware {', '.join(missing)}")
    ev = _Evaluator(spec, models, runner)
    rate = spec.peak_rate_per_s
    ruled_out: list[RuledOut] = []
    best: tuple[tuple[float, float, int, int, int], Candidate] | None = None
    batchings = spec.space.batchings()
    space_size = 0
    global_reason = None
    weights = min(models[h.name].weight_bytes for h in spec.hardware)
    if spec.memory_cap_bytes is not None and weights > spec.memory_cap_bytes:
        global_reason = (f"memory_cap_bytes(={spec.memory_cap_bytes}) is below the model's weights "
                         f"({weights} bytes, {fmt_bytes(weights)})")
    failures: dict[tuple[str, int], Candidate] = {}  # per group, the closest miss at the most replicas tried
    shortfalls: dict[tuple[str, int], str] = {}  # per group, why the capacity bound ruled out every count
    order = 0
    for hw in spec.hardware if global_reason is None else ():
        for threads in sorted(set(spec.space.threads_per_replica)):
            group_levels = {b: ev.levels(hw, threads, b) for b in batchings}
            space_size += sum(len(v) for v in group_levels.values())
            reason = _group_reason(ev, hw, threads)
            if reason is not None:
                ruled_out.append(RuledOut(hw.name, threads, reason))
                continue
            ranked = sorted(batchings, key=lambda b: -ev.capacity_per_replica(hw.name, threads, b))
            for batching in ranked:
                order += 1
                levels = group_levels[batching]
                if not levels:
                    ruled_out.append(RuledOut(hw.name, threads, f"{batching.describe()}: a replica does not fit "
                                                                f"on a machine"))
                    continue

                def make(level: _Level, batching: Batching = batching, threads: int = threads) -> Deployment:
                    return Deployment(hw.name, threads, batching, level.replicas, level.machines)

                if exhaustive:
                    for level in levels:
                        ev.start(make(level), rate)
                    for level in levels:
                        c = ev.evaluate(make(level), rate)
                        if c.feasible and (best is None or _key(c, order) < best[0]):
                            best = (_key(c, order), c)
                    _note_failure(failures, ev.evaluate(make(levels[-1]), rate))
                    continue
                need = CAPACITY_SLACK * rate / ev.capacity_per_replica(hw.name, threads, batching)
                budget = math.inf if best is None else best[1].cost_per_hour
                usable = [lv for lv in levels
                          if lv.replicas >= need and round(lv.machines * hw.cost_per_hour, 9) <= round(budget, 9)]
                found = _bisect_fewest(ev, make, usable, rate)
                if found is None:
                    if usable:
                        _note_failure(failures, ev.evaluate(make(usable[-1]), rate))
                    elif best is None:
                        most = levels[-1].replicas
                        bound = most * ev.capacity_per_replica(hw.name, threads, batching)
                        shortfalls.setdefault((hw.name, threads), (
                            f"even {most} replica{'s' * (most != 1)} finish at most {bound:.4g} req/s "
                            f"({batching.describe()}, full batches of the shortest requests)"))
                    continue
                if best is None or _key(found, order) < best[0]:
                    best = (_key(found, order), found)
    searched = len(ev.cache)
    candidates = tuple(ev.cache.values())
    recommended = None if best is None else best[1]
    headroom, bounded, neighbours, schedule = None, True, (), ()
    if recommended is not None:
        headroom, bounded = _headroom(ev, recommended.deployment, rate)
        neighbours = _cheaper_neighbours(ev, recommended)
        schedule = _schedule(ev, recommended)
        candidates = tuple(ev.cache.values())
    reason = None
    if recommended is None:
        reason = global_reason or _infeasible_reason(spec, rate, ruled_out, failures, shortfalls)
    return ServingPlan(slo=spec.slo, rate_per_s=rate, memory_cap_bytes=spec.memory_cap_bytes,
                       recommended=recommended, headroom_rate_per_s=headroom, headroom_bounded=bounded,
                       candidates=tuple(c for c in candidates if c.rate_per_s == rate),
                       pareto=pareto_front(c for c in candidates if c.rate_per_s == rate),
                       cheaper_neighbours=neighbours, ruled_out=tuple(ruled_out), schedule=schedule, reason=reason,
                       evaluations=searched, simulations=len(ev.cache), space_size=space_size,
                       requests_per_run=spec.requests,
                       seeds=tuple(ev.seeds))


_WORKER_EVALUATORS: dict[str, _Evaluator] = {}


def simulate_seed_task(payload: tuple[str, PlanSpec, Mapping[str, ReplicaModel]], deployment: Deployment,
                       rate: float, seed: int) -> SeedRun:
    """A cluster task: :meth:`_Evaluator.simulate_seed` on a worker. ``payload`` is (a token naming the
    plan, its spec, its replica models), sent to every worker once; each worker keeps one evaluator per
    plan, so its service times are computed once, as here."""
    token, spec, models = payload
    if token not in _WORKER_EVALUATORS:
        _WORKER_EVALUATORS.clear()  # one plan at a time: a worker keeps only the latest
        _WORKER_EVALUATORS[token] = _Evaluator(spec, models)
    return _WORKER_EVALUATORS[token].simulate_seed(deployment, rate, seed)


def _note_failure(failures: dict[tuple[str, int], Candidate], candidate: Candidate) -> None:
    """Keep, per hardware kind and thread count, the failing candidate that came closest."""
    if candidate.feasible:
        return
    group = (candidate.deployment.hardware, candidate.deployment.threads_per_replica)
    prev = failures.get(group)
    if prev is None or (candidate.stable, -candidate.latency_p99_s) > (prev.stable, -prev.latency_p99_s):
        failures[group] = candidate


def _infeasible_reason(spec: PlanSpec, rate: float, ruled_out: list[RuledOut],
                       failures: dict[tuple[str, int], Candidate], shortfalls: dict[tuple[str, int], str]) -> str:
    def group(name: str, threads: int) -> str:
        return f"{name} x {threads} thread{'s' * (threads != 1)}"

    parts = [f"{group(r.hardware, r.threads_per_replica)}: {r.reason}" for r in ruled_out]
    for (name, threads), c in failures.items():
        parts.append(f"{group(name, threads)}: even {c.deployment.replicas} "
                     f"replica{'s' * (c.deployment.replicas != 1)} ({c.deployment.batching.describe()}): {c.reason}")
    parts += [f"{group(*g)}: {text}" for g, text in shortfalls.items() if g not in failures]
    return (f"no deployment meets {spec.slo.describe()} at {rate:.4g} req/s: "
            + ("; ".join(dict.fromkeys(parts)) or "the search space is empty"))


def _headroom(ev: _Evaluator, deployment: Deployment, rate: float) -> tuple[float, bool]:
    """The highest rate ``deployment`` still meets the SLO at (bisected to HEADROOM_REL_TOLERANCE), and
    whether a failing rate was found above it (False: it met the SLO up to 2**HEADROOM_DOUBLINGS x)."""
    lo, hi = rate, 2 * rate
    for _ in range(HEADROOM_DOUBLINGS):
        if not ev.evaluate(deployment, hi).feasible:
            break
        lo, hi = hi, 2 * hi
    else:
        return lo, False
    while hi - lo > HEADROOM_REL_TOLERANCE * hi:
        mid = 0.5 * (lo + hi)
        if ev.evaluate(deployment, mid).feasible:
            lo = mid
        else:
            hi = mid
    return lo, True


def _same_setting_levels(ev: _Evaluator, d: Deployment) -> tuple[Hardware, list[_Level]]:
    hw = ev.hardware[d.hardware]
    return hw, ev.levels(hw, d.threads_per_replica, d.batching)


def _cheaper_neighbours(ev: _Evaluator, recommended: Candidate) -> tuple[Candidate, ...]:
    """The recommended setting on one machine fewer, and per hardware kind and thread count the most
    expensive deployment simulated that is still cheaper than the recommendation."""
    d, rate = recommended.deployment, recommended.rate_per_s
    out: list[Candidate] = []
    _, levels = _same_setting_levels(ev, d)
    below = [lv for lv in levels if lv.machines < d.machines]
    if below:
        out.append(ev.evaluate(replace(d, replicas=below[-1].replicas, machines=below[-1].machines), rate))
    nearest: dict[tuple[str, int], Candidate] = {}
    for c in list(ev.cache.values()):
        if c.rate_per_s != rate or c.cost_per_hour >= recommended.cost_per_hour or c in out:
            continue
        group = (c.deployment.hardware, c.deployment.threads_per_replica)
        prev = nearest.get(group)
        if prev is None or (c.cost_per_hour, -c.latency_p99_s) > (prev.cost_per_hour, -prev.latency_p99_s):
            nearest[group] = c
    return tuple(out + [c for c in nearest.values() if c not in out])


def _schedule(ev: _Evaluator, recommended: Candidate) -> tuple[ScheduledRate, ...]:
    """The recommended setting resized (fewest machines meeting the SLO) for each of the plan's rates."""
    rates = sorted(set(ev.spec.rates_per_s))
    if len(rates) < 2:
        return ()
    d = recommended.deployment
    _, levels = _same_setting_levels(ev, d)
    out = []
    for r in rates:
        if r == recommended.rate_per_s:
            out.append(ScheduledRate(r, recommended))
            continue
        usable = [lv for lv in levels if lv.machines <= d.machines] if r <= recommended.rate_per_s else levels
        found = _bisect_fewest(ev, lambda lv: replace(d, replicas=lv.replicas, machines=lv.machines), usable, r)
        out.append(ScheduledRate(r, found))
    return tuple(out)


def pareto_front(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """The candidates (that kept up with the traffic) no other beats on both cost and p99 latency,
    cheapest first."""
    ordered = sorted((c for c in candidates if c.stable), key=lambda c: (c.cost_per_hour, c.latency_p99_s))
    front: list[Candidate] = []
    for c in ordered:
        if not front or c.latency_p99_s < front[-1].latency_p99_s:
            front.append(c)
    return tuple(front)
