"""Check a capacity plan against real serving on this CPU: the plan's recommendation meets the SLO
when it runs for real, and what the plan rejected misses it (or misses it only within the model's
stated error).

Layout. One core is reserved for the request generator and this script (the first core of the
process's affinity); the served deployment gets the others, one replica per core, each pinned
(``serving_vs_real.serve_for_real`` with an explicit core layout). The plan is only offered hardware
that fits what the check can run: machines of 1 core (price 1 per hour, one replica of 1 thread each)
and at most as many replicas as there are cores left — on a 2-core machine that is one machine, so
the plan's decision is the batcher (batch size and wait); with 3 or more cores, also the machine count.
The search space bounds the replicas, and with 1-core machines that bounds the machines (the planner has
no max-machines knob); the recommendation is checked to fit before anything runs.

The plan is made as ``gru-sim plan`` makes it (:func:`gru_sim.plan.plan_serving`, 3 seeds): the
calibration profile's cost model prices every batch (nothing of this model is measured first), with a
margin on every predicted service time: ``--service-time-factor`` (default 1.15: serving_vs_real found
real batches 5–22% slower than the cost model on this machine), or ``--margin interval``, the upper end
of the profile's own 90% interval for each batch (wider: for this shape about 1.5x).

Then, with real ``torch.nn.GRU`` calls and the same Poisson arrivals as the plan's first seed:

(a) the recommendation at the planned rate: its real p99 must meet the SLO;
(b) what the plan rejected: its cheaper neighbours (``cheaper_neighbours``: e.g. one machine fewer),
    and on the same machines the weaker batcher settings it rejects — no batching (max_batch 1), and
    the rejected setting with a smaller batch or shorter wait that came closest to the SLO: each
    real p99 must miss the SLO;
(c) the recommendation at 1.25x its predicted headroom (``headroom_rate_per_s``): it must miss.

A run expected to miss passes the check also when its real p99 is within the model's stated error
of the SLO (``STATED_ERROR``: the serving simulator's 15%), as issue 13 asks. The table shows each
run's simulated figures (with the margin, and at the profile's own times) beside the real ones.

    .venv/bin/python benchmarks/plan_vs_real.py                  # 1-2 minutes, on a quiet machine
    .venv/bin/python benchmarks/plan_vs_real.py --dry-run        # the plan and the runs, no GRU calls
    .venv/bin/python benchmarks/plan_vs_real.py --requests 200 --calib-repeats 3   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gru_sim.config import GruConfig  # noqa: E402
from gru_sim.model.profile import load_profile, shipped_default_profile  # noqa: E402
from gru_sim.plan import (Candidate, Deployment, Hardware, PlanSpec, ReplicaModel, SearchSpace, ServingPlan,  # noqa: E402
                          Slo, plan_serving, replica_model)
from gru_sim.predict import Predictor  # noqa: E402
from gru_sim.sim.serving import (ArrivalSpec, BatchingSpec, SeqLenSpec, ServingSpec,  # noqa: E402
                                 generate_requests, simulate_serving)

# The simulator's stated error on this machine (README, serving loop vs simulation: mean and p50
# within 15%, issue 5's target): a run expected to miss whose real p99 is this close below the SLO is
# a near miss the model cannot resolve, and passes the check.
STATED_ERROR = 0.15
HEADROOM_STEP = 1.25
HARDWARE = "core"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=300.0, help="arrival rate to plan for, requests/s (default 300)")
    p.add_argument("--slo-p99-s", type=float, default=0.030, help="p99 latency SLO in seconds (default 0.030)")
    p.add_argument("--requests", type=int, default=3000, help="requests per real run (default 3000)")
    p.add_argument("--sim-requests", type=int, default=4000, help="requests per simulation (default 4000)")
    p.add_argument("--seeds", type=int, default=3, help="simulations per candidate (default 3)")
    p.add_argument("--serving-cores", type=int, default=None,
                   help="cores the deployment may use (default: this process's cores but one, which the "
                        "request generator keeps)")
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--max-wait-s", type=float, nargs="+", default=[0.0, 0.002, 0.005])
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--service-time-factor", type=float, default=1.15,
                   help="margin on every predicted service time (default 1.15)")
    p.add_argument("--margin", choices=["factor", "interval"], default="factor",
                   help="factor: the predicted time x --service-time-factor; interval: the upper end of the "
                        "profile's 90%% interval for each batch")
    p.add_argument("--profile", type=Path, default=None, help="default: the shipped CPU profile")
    p.add_argument("--calib-repeats", type=int, default=20, help="timed calls per batch size, for the table")
    p.add_argument("--dry-run", action="store_true", help="make the plan, list the runs, and stop")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    return p.parse_args(argv)


@dataclass(frozen=True)
class Run:
    """One deployment to serve for real at one rate, with what the plan expects of it."""

    label: str
    part: str  # a, b or c
    candidate: Candidate  # simulated with the plan's margin
    nominal: Candidate  # simulated at the profile's own times (no margin)
    expect_meet: bool
    why: str


class Planner:
    """The plan of the check and the simulations beside it, with the plan's own evaluation."""

    def __init__(self, args: argparse.Namespace, serving_cores: int) -> None:
        self.args = args
        self.predictor = Predictor(load_profile(args.profile or shipped_default_profile("cpu")))
        self.spec = PlanSpec(
            arrival=ArrivalSpec("poisson", rate_per_s=args.rate), seq_len=SeqLenSpec("fixed", value=args.seq_len),
            slo=Slo(args.slo_p99_s), hardware=(Hardware(HARDWARE, cost_per_hour=1.0, cores=1),),
            space=SearchSpace(replicas=tuple(range(1, serving_cores + 1)), max_batch=tuple(sorted(set(args.max_batch))),
                              max_wait_s=tuple(sorted(set(args.max_wait_s))), padding=("pad",),
                              threads_per_replica=(1,)),
            requests=args.sim_requests, seeds=tuple(range(1, args.seeds + 1)),
            service_time_factor=args.service_time_factor if args.margin == "factor" else 1.0)
        self.model = replica_model(self.predictor, self.config)
        self.margin_model = self.model if args.margin == "factor" else self.interval_model()

    def config(self, batch: int, seq_len: int, threads: int) -> GruConfig:
        a = self.args
        return GruConfig(batch=batch, seq_len=seq_len, input_size=a.input_size, hidden_size=a.hidden_size,
                         threads=threads)

    def interval_model(self) -> ReplicaModel:
        """The replica model with every service time at the upper end of the profile's 90% interval."""
        def service_time_s(batch: int, seq_len: int, threads: int) -> float:
            return float(self.predictor.predict(self.config(batch, seq_len, threads)).latency_interval_s[1])
        return replace(self.model, service_time_s=service_time_s)

    def plan(self) -> ServingPlan:
        return plan_serving(self.spec, {HARDWARE: self.margin_model})

    def simulate(self, d: Deployment, rate: float, margin: bool = True) -> Candidate:
        """``d`` at ``rate``, judged as the plan judges a candidate (every seed keeps up and meets the
        SLO); ``margin=False``: at the profile's own service times."""
        space = SearchSpace(replicas=(d.replicas,), max_batch=(d.batching.max_batch,),
                            max_wait_s=(d.batching.max_wait_s,), padding=(d.batching.padding,),
                            threads_per_replica=(d.threads_per_replica,))
        spec = replace(self.spec, arrival=replace(self.spec.arrival, rate_per_s=rate), space=space,
                       service_time_factor=self.spec.service_time_factor if margin else 1.0)
        plan = plan_serving(spec, {HARDWARE: self.margin_model if margin else self.model}, exhaustive=True)
        return next(c for c in plan.candidates if c.deployment == d)

    def predicted_s(self, batch: int) -> tuple[float, float, float]:
        """The profile's time for one batch of the check's shape: (predicted, low, high) of its 90% interval."""
        pr = self.predictor.predict(self.config(batch, self.args.seq_len, 1))
        return pr.latency_s, *pr.latency_interval_s


def weaker_settings(planner: Planner, plan: ServingPlan) -> list[Candidate]:
    """On the recommended machines, the batcher settings the plan rejects that are weaker than the
    recommended one (batch no larger, wait no longer): no batching at all, and the rejected one that
    came closest to the SLO (the likeliest to meet it for real)."""
    rec = plan.recommended
    assert rec is not None
    d, rate = rec.deployment, rec.rate_per_s
    simulated = {c.deployment: c for c in plan.candidates}
    rejected = []
    for b in planner.spec.space.batchings():
        if (b.max_batch > d.batching.max_batch or b.max_wait_s > d.batching.max_wait_s or b == d.batching
                or b.padding != d.batching.padding):
            continue
        other = replace(d, batching=b)
        c = simulated.get(other) or planner.simulate(other, rate)
        if not c.feasible:
            rejected.append(c)
    out = [c for c in rejected if c.deployment.batching.max_batch == 1][:1]
    closest = sorted((c for c in rejected if c not in out), key=lambda c: (not c.stable, c.latency_p99_s))
    return out + closest[:1]


def runs_of(planner: Planner, plan: ServingPlan) -> list[Run]:
    rec = plan.recommended
    assert rec is not None and plan.headroom_rate_per_s is not None
    runs = [Run("recommended", "a", rec, planner.simulate(rec.deployment, rec.rate_per_s, margin=False), True,
                "the plan's choice")]
    seen = {rec.deployment}
    for c in list(plan.cheaper_neighbours) + weaker_settings(planner, plan):
        if c.deployment in seen:
            continue
        seen.add(c.deployment)
        label = "cheaper" if c.cost_per_hour < rec.cost_per_hour else "weaker batcher"
        runs.append(Run(label, "b", c, planner.simulate(c.deployment, c.rate_per_s, margin=False), False,
                        c.reason or "rejected"))
    rate = HEADROOM_STEP * plan.headroom_rate_per_s
    over = planner.simulate(rec.deployment, rate)
    runs.append(Run(f"recommended at {HEADROOM_STEP:g}x headroom", "c", over,
                    planner.simulate(rec.deployment, rate, margin=False), False,
                    f"{HEADROOM_STEP:g} x the headroom {plan.headroom_rate_per_s:.4g} req/s"
                    + ("" if plan.headroom_bounded else " (unbounded: met the SLO at every rate tried)")))
    return runs


def short(d: Deployment) -> str:
    b = d.batching
    return f"{d.replicas}x{d.threads_per_replica}t, b<={b.max_batch}, wait {b.max_wait_s * 1e3:g} ms"


def ms(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1e3:,.0f}" if x >= 1 else f"{x * 1e3:.1f}")


def verdict(meets: bool | None) -> str:
    return "-" if meets is None else ("meets" if meets else "misses")


def print_table(runs: list[Run], real: list[dict[str, Any] | None], slo_s: float) -> None:
    head = (f"{'':3} {'deployment':32} {'rate/s':>7} {'sim p50':>8} {'sim p99':>8} {'p99@1.0':>8} "
            f"{'p99@meas':>8} {'real p50':>9} {'real p99':>9} {'SLO sim':>8} {'SLO real':>8} {'batch sim':>9} "
            f"{'real':>5}  expected")
    print(head)
    for run, r in zip(runs, real):
        c = run.candidate
        rl = r["latency_s"] if r else None
        print(f"{run.part:3} {short(c.deployment):32} {c.rate_per_s:7.1f} {ms(c.latency_p50_s):>8} "
              f"{ms(c.latency_p99_s):>8} {ms(run.nominal.latency_p99_s):>8} {ms(r and r['sim_measured_p99_s']):>8} "
              f"{ms(rl and rl['p50']):>9} "
              f"{ms(rl and rl['p99']):>9} {verdict(c.feasible):>8} {verdict(r and r['meets_slo']):>8} "
              f"{c.mean_batch_size:9.2f} {('-' if not r else format(r['mean_batch'], '.2f')):>5}  "
              f"{'meet' if run.expect_meet else 'miss'} ({run.label}: {run.why})")
    print(f"(latencies in ms; SLO p99 <= {slo_s * 1e3:g} ms; sim: the plan's simulation with its margin, pooled "
          f"over the seeds; p99@1.0: simulated at the profile's own times; p99@meas: the real run's arrivals "
          f"simulated with the batch times measured here, before and after the runs)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    serving = args.serving_cores if args.serving_cores is not None else len(cores) - 1
    if args.dry_run:
        serving = max(serving, 1)  # the plan alone runs anywhere
    if not 1 <= serving <= len(cores) - 1 and not args.dry_run:
        print(f"plan_vs_real: needs a core for the request generator and at least one for the deployment; "
              f"this process has {len(cores)} core(s) and --serving-cores is {serving}", file=sys.stderr)
        return 2
    generator_core, replica_cores = cores[0], cores[1:1 + serving]  # (a dry run may plan for more than are here)
    planner = Planner(args, serving)
    started = time.perf_counter()
    plan = planner.plan()
    margin = (f"service times x {args.service_time_factor:g}" if args.margin == "factor"
              else "service times at the profile's 90% interval upper end")
    print(f"plan: {args.rate:g} req/s, p99 <= {args.slo_p99_s * 1e3:g} ms, H={args.hidden_size} I={args.input_size} "
          f"T={args.seq_len}, hardware: 1-core machines at 1/h, up to {serving} (cores left after the generator's), "
          f"{margin}; {plan.evaluations} candidates simulated of {plan.space_size} "
          f"({time.perf_counter() - started:.1f} s)")
    print("profile's time per batch (ms, predicted [90% interval]): " + ", ".join(
        f"{b}: {ms(t)} [{ms(lo)}, {ms(hi)}]" for b in sorted(set(args.max_batch))
        for t, lo, hi in [planner.predicted_s(b)]))
    if plan.recommended is None:
        print(f"no deployment is feasible, nothing to check: {plan.reason}")
        return 1
    rec = plan.recommended
    d = rec.deployment
    if d.replicas > serving or d.threads_per_replica != 1 or d.machines != d.replicas:
        print(f"plan_vs_real: the recommendation ({d.describe()}) does not fit the {serving} core(s) "
              f"the check can serve on; nothing run", file=sys.stderr)
        return 2
    print(f"recommended: {d.describe()}, cost {rec.cost_per_hour:g}/h; simulated p50 {ms(rec.latency_p50_s)} ms, "
          f"p99 {ms(rec.latency_p99_s)} ms; meets the SLO up to {plan.headroom_rate_per_s:.4g} req/s")
    if not plan.cheaper_neighbours:
        print("cheaper neighbours: none (one machine is the least; the plan's choice is the batcher)")
    for c in plan.cheaper_neighbours:
        print(f"cheaper neighbour: {c.deployment.describe()}: {c.reason}")
    runs = runs_of(planner, plan)
    print(f"runs ({time.perf_counter() - started:.1f} s of planning and simulation):")
    if args.dry_run:
        print_table(runs, [None] * len(runs), args.slo_p99_s)
        write_json(args, plan, runs, [None] * len(runs), {}, generator_core, replica_cores, None)
        return 0

    import torch

    from serving_vs_real import measure_service_times, serve_for_real, summary

    torch.set_num_threads(1)
    torch.manual_seed(1)
    os.sched_setaffinity(0, {generator_core})  # this thread and the generator: off the replicas' cores
    gru = torch.nn.GRU(args.input_size, args.hidden_size, 1).eval()
    gen = torch.Generator().manual_seed(1)
    largest = max(args.max_batch)
    inputs = {b: torch.randn(args.seq_len, b, args.input_size, generator=gen) for b in range(1, largest + 1)}
    # Time every batch size where a replica runs, to tell a slow machine from a wrong model.
    os.sched_setaffinity(0, {replica_cores[0]})
    table = measure_service_times(gru, inputs, args.calib_repeats)
    os.sched_setaffinity(0, {generator_core})
    print(f"measured on core {replica_cores[0]} (ms, and x the profile's time): " + ", ".join(
        f"{b}: {t * 1e3:.2f} ({t / planner.predicted_s(b)[0]:.2f}x)" for b, t in table.items()
        if b in set(args.max_batch)))

    results: list[dict[str, Any] | None] = []
    for run in runs:
        c = run.candidate
        dep = c.deployment
        arrivals = generate_requests(ServingSpec(arrival=replace(planner.spec.arrival, rate_per_s=c.rate_per_s),
                                                 seq_len=planner.spec.seq_len, requests=args.requests,
                                                 seed=planner.spec.seeds[0])).arrival_s
        real = serve_for_real(gru, inputs, arrivals, dep.batching.max_batch, dep.batching.max_wait_s, dep.replicas,
                              generator_core=generator_core, replica_cores=replica_cores[:dep.replicas])
        latency = summary(real["finish_s"] - real["arrival_s"])
        span = real["finish_s"].max() - real["arrival_s"].min()
        meets = latency["p99"] <= args.slo_p99_s
        # Expected to miss but met: still passes when the real p99 is within the stated error of the SLO.
        near = not run.expect_meet and meets and latency["p99"] >= args.slo_p99_s / (1 + STATED_ERROR)
        ok = meets if run.expect_meet else (not meets or near)
        results.append({"latency_s": latency, "meets_slo": meets, "near_miss": near, "check_passed": ok,
                        "arrivals_spec": ServingSpec(
                            arrival=replace(planner.spec.arrival, rate_per_s=c.rate_per_s),
                            seq_len=planner.spec.seq_len,
                            batching=BatchingSpec(dep.batching.max_batch, dep.batching.max_wait_s,
                                                  dep.batching.padding, dep.batching.bucket_edges),
                            replicas=dep.replicas, threads_per_replica=1, requests=args.requests,
                            seed=planner.spec.seeds[0]),
                        "mean_batch": float(real["batch_size"].mean()),
                        "service_mean_s": float((real["finish_s"] - real["dispatch_s"]).mean()),
                        "utilization": float(real["busy_s"].sum() / (dep.replicas * span)),
                        "attainment": float(((real["finish_s"] - real["arrival_s"]) <= args.slo_p99_s).mean())})
        print(f"  ({run.part}) {short(dep)} at {c.rate_per_s:.1f} req/s: real p99 {ms(latency['p99'])} ms, "
              f"{verdict(meets)}" + (" (within the stated error)" if near else ""), flush=True)
    # Time the batches again: on a shared machine the speed drifts. The simulation of each run with the
    # measured times (the mean of both tables) separates the cost model's error from the queueing model's.
    os.sched_setaffinity(0, {replica_cores[0]})
    after = measure_service_times(gru, inputs, args.calib_repeats)
    os.sched_setaffinity(0, {generator_core})
    print("measured again after the runs (ms): " + ", ".join(
        f"{b}: {t * 1e3:.2f}" for b, t in after.items() if b in set(args.max_batch)))
    measured = {b: (table[b] + after[b]) / 2 for b in table}
    for r in results:
        assert r is not None
        sim = simulate_serving(r.pop("arrivals_spec"), lambda batch, seq_len: measured[batch], timeline_points=1,
                               sample_requests=0)
        r["sim_measured_p99_s"] = float(sim.latency_s.p99)
        r["sim_measured_p50_s"] = float(sim.latency_s.p50)
        r["sim_measured_mean_batch"] = float(sim.mean_batch_size)
    print_table(runs, results, args.slo_p99_s)
    ok = all(r is not None and r["check_passed"] for r in results)
    failed = [f"({run.part}) {run.label}" for run, r in zip(runs, results) if r is not None and not r["check_passed"]]
    slower = max(max(table[b], after[b]) / planner.predicted_s(b)[0] for b in set(args.max_batch))
    print(f"verdict: {'PASS' if ok else 'FAIL'}: the recommendation "
          f"{'meets' if results[0] and results[0]['meets_slo'] else 'misses'} the SLO for real; of the "
          f"{len(runs) - 1} runs expected to miss, {sum(1 for r in results[1:] if r and not r['meets_slo'])} missed"
          f"{', ' + str(sum(1 for r in results[1:] if r and r['near_miss'])) + ' met it within the stated error' if any(r and r['near_miss'] for r in results[1:]) else ''}"
          + (f"; failed: {', '.join(failed)}" if failed else "")
          + (f" (batches ran up to {slower:.2f}x the profile's times, beyond the plan's margin of "
             f"{args.service_time_factor:g}x)" if args.margin == "factor" and slower > args.service_time_factor else ""))
    write_json(args, plan, runs, results, {"before": table, "after": after}, generator_core, replica_cores, ok)
    return 0 if ok else 1


def write_json(args: argparse.Namespace, plan: ServingPlan, runs: list[Run], results: list[dict[str, Any] | None],
               table: dict[str, dict[int, float]], generator_core: int, replica_cores: list[int], ok: bool | None) -> None:
    if args.json is None:
        return
    rec = plan.recommended
    doc = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "stated_error": STATED_ERROR, "generator_core": generator_core, "replica_cores": replica_cores,
           "plan": {"rate_per_s": plan.rate_per_s, "slo": plan.slo.to_dict(),
                    "recommended": None if rec is None else rec.to_dict(),
                    "headroom_rate_per_s": plan.headroom_rate_per_s, "headroom_bounded": plan.headroom_bounded,
                    "cheaper_neighbours": [c.to_dict() for c in plan.cheaper_neighbours],
                    "candidates": [c.to_dict() for c in plan.candidates], "evaluations": plan.evaluations,
                    "space_size": plan.space_size},
           "measured_service_time_s": table,
           "runs": [{"part": run.part, "label": run.label, "why": run.why, "expected": "meet" if run.expect_meet
                     else "miss", "simulated": run.candidate.to_dict(), "simulated_at_profile_times": run.nominal.to_dict(),
                     "real": r} for run, r in zip(runs, results)],
           "passed": ok}
    args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
