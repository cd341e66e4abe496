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

A hardware kind may cap the machines of a deployment (``max_machines``): machine counts above it are not
part of the space. A group whose every batcher setting fails at the most machines allowed, where the
space holds more, is ruled out as needing more than ``max_machines`` machines, with its closest miss
(it joins ``ruled_out``, and the one-line verdict when nothing is feasible).

Every candidate is simulated once per seed and is feasible only when every seed's run meets the SLO
(:mod:`gru_sim.plan.evaluate`: the evaluation of one deployment). :func:`plan_serving` with
``exhaustive=True`` simulates every deployment instead (the tests' yardstick).

With a :data:`~gru_sim.plan.evaluate.SeedRunner` (``gru-sim plan --workers N``) the seeds of a candidate
are simulated at once, elsewhere; the first two deployments a bisection tries are started together.
The search itself, and so every candidate and the order they are listed in, is the serial one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from ..units import fmt_bytes
from .evaluate import Evaluator, Level, ReplicaModel, SeedRun, SeedRunner, simulate_seed_task
from .result import Candidate, Deployment, RuledOut, ScheduledRate, ServingPlan
from .spec import Batching, Hardware, PlanSpec

__all__ = ["CAPACITY_SLACK", "HEADROOM_DOUBLINGS", "HEADROOM_REL_TOLERANCE", "ReplicaModel", "SeedRun",
           "SeedRunner", "pareto_front", "plan_serving", "simulate_seed_task"]

# The capacity bound is loosened by this factor: a finite run counts as keeping up while its backlog
# stays small (is_stable), so a deployment a little short of the bound may still pass.
CAPACITY_SLACK = 0.9
# Headroom: the rate is bisected until the highest passing and lowest failing rates are this close.
HEADROOM_REL_TOLERANCE = 0.02
HEADROOM_DOUBLINGS = 4


def _key(c: Candidate, order: int) -> tuple[float, float, int, int, int]:
    """Cheapest first; at the same cost the lower p99 latency (more headroom)."""
    return (round(c.cost_per_hour, 9), c.latency_p99_s, c.deployment.machines, c.deployment.replicas, order)


def _group_reason(ev: Evaluator, hw: Hardware, threads: int) -> str | None:
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


def _bisect_fewest(ev: Evaluator, make: Callable[[Level], Deployment], levels: list[Level],
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
    ev = Evaluator(spec, models, runner)
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
    limited: set[tuple[str, int]] = set()  # groups that need more machines than their kind's max_machines
    order = 0
    for hw in spec.hardware if global_reason is None else ():
        for threads in sorted(set(spec.space.threads_per_replica)):
            group_levels = {b: ev.levels(hw, threads, b) for b in batchings}
            space_size += sum(len(v) for v in group_levels.values())
            reason = _group_reason(ev, hw, threads)
            if reason is not None:
                ruled_out.append(RuledOut(hw.name, threads, reason))
                continue
            # Per setting: True a deployment meets the SLO; False even the most machines allowed fail;
            # None not known (the budget of the best deployment so far cut the search short).
            verdicts: list[bool | None] = []
            capped, limit_note = False, None
            ranked = sorted(batchings, key=lambda b: -ev.capacity_per_replica(hw.name, threads, b))
            for batching in ranked:
                order += 1
                levels = group_levels[batching]
                capped = capped or ev.capped(hw, threads, batching)
                if not levels:
                    verdicts.append(False)
                    first = ev.levels(hw, threads, batching, limited=False)[:1]
                    if first:  # the fewest replicas searched already need more machines than allowed
                        limit_note = limit_note or (f"the fewest replicas searched, {first[0].replicas}, need "
                                                    f"{first[0].machines} machines")
                    else:
                        ruled_out.append(RuledOut(hw.name, threads, f"{batching.describe()}: a replica does not "
                                                                    f"fit on a machine"))
                    continue

                def make(level: Level, batching: Batching = batching, threads: int = threads) -> Deployment:
                    return Deployment(hw.name, threads, batching, level.replicas, level.machines)

                if exhaustive:
                    for level in levels:
                        ev.start(make(level), rate)
                    feasible = False
                    for level in levels:
                        c = ev.evaluate(make(level), rate)
                        feasible = feasible or c.feasible
                        if c.feasible and (best is None or _key(c, order) < best[0]):
                            best = (_key(c, order), c)
                    verdicts.append(feasible)
                    _note_failure(failures, ev.evaluate(make(levels[-1]), rate))
                    continue
                need = CAPACITY_SLACK * rate / ev.capacity_per_replica(hw.name, threads, batching)
                budget = math.inf if best is None else best[1].cost_per_hour
                usable = [lv for lv in levels
                          if lv.replicas >= need and round(lv.machines * hw.cost_per_hour, 9) <= round(budget, 9)]
                found = _bisect_fewest(ev, make, usable, rate)
                if found is None:
                    verdicts.append(False if levels[-1].replicas < need or (usable and usable[-1] == levels[-1])
                                    else None)
                    if usable:
                        _note_failure(failures, ev.evaluate(make(usable[-1]), rate))
                    elif levels[-1].replicas < need:
                        most = levels[-1].replicas
                        bound = most * ev.capacity_per_replica(hw.name, threads, batching)
                        text = (f"even {most} replica{'s' * (most != 1)} finish at most {bound:.4g} req/s "
                                f"({batching.describe()}, full batches of the shortest requests)")
                        limit_note = limit_note or text
                        if best is None:
                            shortfalls.setdefault((hw.name, threads), text)
                    continue
                verdicts.append(True)
                if best is None or _key(found, order) < best[0]:
                    best = (_key(found, order), found)
            if capped and verdicts and all(v is False for v in verdicts):
                limited.add((hw.name, threads))
                ruled_out.append(RuledOut(hw.name, threads, _limit_reason(hw, rate, failures.get((hw.name, threads)),
                                                                          limit_note)))
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
        reason = global_reason or _infeasible_reason(spec, rate, ruled_out, failures, shortfalls, limited)
    return ServingPlan(slo=spec.slo, rate_per_s=rate, memory_cap_bytes=spec.memory_cap_bytes,
                       recommended=recommended, headroom_rate_per_s=headroom, headroom_bounded=bounded,
                       candidates=tuple(c for c in candidates if c.rate_per_s == rate),
                       pareto=pareto_front(c for c in candidates if c.rate_per_s == rate),
                       cheaper_neighbours=neighbours, ruled_out=tuple(ruled_out), schedule=schedule, reason=reason,
                       evaluations=searched, simulations=len(ev.cache), space_size=space_size,
                       requests_per_run=spec.requests, seeds=tuple(ev.seeds), hardware=spec.hardware,
                       service_time_margin=spec.service_time_margin, service_time_factor=spec.service_time_factor)


def _note_failure(failures: dict[tuple[str, int], Candidate], candidate: Candidate) -> None:
    """Keep, per hardware kind and thread count, the failing candidate that came closest."""
    if candidate.feasible:
        return
    group = (candidate.deployment.hardware, candidate.deployment.threads_per_replica)
    prev = failures.get(group)
    if prev is None or (candidate.stable, -candidate.latency_p99_s) > (prev.stable, -prev.latency_p99_s):
        failures[group] = candidate


def _limit_reason(hw: Hardware, rate: float, closest: Candidate | None, note: str | None) -> str:
    """Why a hardware kind (at one thread count) fails within its ``max_machines``: the closest miss."""
    text = f"needs more than max_machines(={hw.max_machines}) {hw.name} machines at {rate:.4g} req/s"
    if closest is not None:
        d = closest.deployment
        return (f"{text} (on {d.machines} machine{'s' * (d.machines != 1)}, {d.replicas} "
                f"replica{'s' * (d.replicas != 1)}, {d.batching.describe()}: {closest.reason})")
    return f"{text} ({note})" if note else text


def _infeasible_reason(spec: PlanSpec, rate: float, ruled_out: list[RuledOut],
                       failures: dict[tuple[str, int], Candidate], shortfalls: dict[tuple[str, int], str],
                       limited: set[tuple[str, int]]) -> str:
    def group(name: str, threads: int) -> str:
        return f"{name} x {threads} thread{'s' * (threads != 1)}"

    parts = [f"{group(r.hardware, r.threads_per_replica)}: {r.reason}" for r in ruled_out]
    for (name, threads), c in failures.items():
        if (name, threads) in limited:  # said by its max_machines entry among ruled_out
            continue
        parts.append(f"{group(name, threads)}: even {c.deployment.replicas} "
                     f"replica{'s' * (c.deployment.replicas != 1)} ({c.deployment.batching.describe()}): {c.reason}")
    parts += [f"{group(*g)}: {text}" for g, text in shortfalls.items() if g not in failures and g not in limited]
    return (f"no deployment meets {spec.slo.describe()} at {rate:.4g} req/s: "
            + ("; ".join(dict.fromkeys(parts)) or "the search space is empty"))


def _headroom(ev: Evaluator, deployment: Deployment, rate: float) -> tuple[float, bool]:
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


def _same_setting_levels(ev: Evaluator, d: Deployment) -> tuple[Hardware, list[Level]]:
    hw = ev.hardware[d.hardware]
    return hw, ev.levels(hw, d.threads_per_replica, d.batching)


def _cheaper_neighbours(ev: Evaluator, recommended: Candidate) -> tuple[Candidate, ...]:
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


def _schedule(ev: Evaluator, recommended: Candidate) -> tuple[ScheduledRate, ...]:
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
