"""Check a capacity plan against real serving on this CPU: the plan's recommendation meets the SLO
when it runs for real, and the next-cheaper deployment does not (or misses only within the model's
error).

The plan is made as ``gru-sim plan`` makes it: the calibration profile's cost model prices every
batch (no measurement of this model), and :func:`gru_sim.plan.plan_serving` searches replicas (one per
core, a core costing 1 per hour), batch sizes and batcher waits. Then the recommended deployment and
the same setting on one core fewer are served for real with ``torch.nn.GRU`` calls by
``serving_vs_real.py``'s loop (the same Poisson arrivals as the simulation's first seed), and their
real p99 is compared with the SLO and with the simulated p99. ``serving_vs_real.py`` found the real
batches 5–22% slower than the cost model's times on this machine, so the plan is made with a
``--service-time-factor`` (default 1.15) on every predicted time.

    .venv/bin/python benchmarks/plan_vs_real.py                      # about a minute
    .venv/bin/python benchmarks/plan_vs_real.py --dry-run            # the plan alone, no GRU calls
    .venv/bin/python benchmarks/plan_vs_real.py --requests 200 --rate 200   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gru_sim.config import GruConfig  # noqa: E402
from gru_sim.model.profile import load_profile, shipped_default_profile  # noqa: E402
from gru_sim.plan import (Candidate, Hardware, PlanSpec, SearchSpace, Slo, plan_serving,  # noqa: E402
                          replica_model)
from gru_sim.predict import Predictor  # noqa: E402
from gru_sim.sim.serving import ArrivalSpec, SeqLenSpec, ServingSpec, generate_requests  # noqa: E402

# The simulator's stated error on this machine (README, serving loop vs simulation: mean and p50
# within 15%, issue 5's target): a neighbour simulated to miss the SLO by less may meet it for real.
STATED_ERROR = 0.15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=500.0, help="arrival rate in requests/s (default 500)")
    p.add_argument("--slo-p99-s", type=float, default=0.015, help="p99 latency SLO in seconds (default 0.015)")
    p.add_argument("--requests", type=int, default=2000, help="requests per real run (default 2000)")
    p.add_argument("--max-replicas", type=int, default=None, help="default: this process's cores")
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--max-wait-s", type=float, nargs="+", default=[0.0, 0.001, 0.003])
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--service-time-factor", type=float, default=1.15)
    p.add_argument("--profile", type=Path, default=None, help="default: the shipped CPU profile")
    p.add_argument("--calib-repeats", type=int, default=20, help="timed calls per batch size, for the table")
    p.add_argument("--dry-run", action="store_true", help="make the plan and stop")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> tuple[PlanSpec, object]:
    cores = args.max_replicas or len(os.sched_getaffinity(0))
    spec = PlanSpec(arrival=ArrivalSpec("poisson", rate_per_s=args.rate),
                    seq_len=SeqLenSpec("fixed", value=args.seq_len), slo=Slo(args.slo_p99_s),
                    hardware=(Hardware("core", cost_per_hour=1.0, cores=1),),
                    space=SearchSpace(replicas=tuple(range(1, cores + 1)), max_batch=tuple(args.max_batch),
                                      max_wait_s=tuple(args.max_wait_s), padding=("pad",), threads_per_replica=(1,)),
                    requests=args.requests, seeds=(1, 2, 3), service_time_factor=args.service_time_factor)
    predictor = Predictor(load_profile(args.profile or shipped_default_profile("cpu")))

    def config(batch: int, seq_len: int, threads: int) -> GruConfig:
        return GruConfig(batch=batch, seq_len=seq_len, input_size=args.input_size, hidden_size=args.hidden_size,
                         threads=threads)

    return spec, plan_serving(spec, {"core": replica_model(predictor, config)})


def describe(c: Candidate) -> str:
    return f"{c.deployment.describe()}: simulated p50 {c.latency_p50_s * 1e3:.2f} ms, p99 {c.latency_p99_s * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec, plan = make_plan(args)
    print(f"plan: {args.rate:g} req/s, p99 <= {args.slo_p99_s * 1e3:g} ms, {plan.evaluations} candidates "
          f"simulated of {plan.space_size}")
    if plan.recommended is None:
        print(f"no deployment is feasible: {plan.reason}")
        return 1
    rec = plan.recommended
    # The cheaper deployment that came closest to the SLO: the one most likely to meet it for real.
    same = sorted(plan.cheaper_neighbours, key=lambda c: (not c.stable, c.latency_p99_s))[:1]
    print(f"recommended: {describe(rec)}")
    print("next cheaper: " + (f"{describe(same[0])} ({same[0].reason})" if same else "none (one core is the least)"))
    if args.dry_run:
        return 0

    import torch

    from serving_vs_real import measure_service_times, serve_for_real, summary

    torch.set_num_threads(1)
    torch.manual_seed(1)
    gru = torch.nn.GRU(args.input_size, args.hidden_size, 1).eval()
    gen = torch.Generator().manual_seed(1)
    largest = max(args.max_batch)
    inputs = {b: torch.randn(args.seq_len, b, args.input_size, generator=gen) for b in range(1, largest + 1)}
    table = measure_service_times(gru, inputs, args.calib_repeats)
    print("measured service time per batch size (ms): " + ", ".join(f"{b}: {t * 1e3:.3f}" for b, t in table.items()))

    runs = []
    for label, c in [("recommended", rec)] + [("next cheaper", same[0])] * bool(same):
        d = c.deployment
        arrivals = generate_requests(ServingSpec(arrival=spec.arrival, seq_len=spec.seq_len, requests=args.requests,
                                                 seed=spec.seeds[0])).arrival_s
        pin = len(os.sched_getaffinity(0)) >= d.replicas + 1
        real = serve_for_real(gru, inputs, arrivals, d.batching.max_batch, d.batching.max_wait_s, d.replicas, pin)
        latency = summary(real["finish_s"] - real["arrival_s"])
        service = real["finish_s"] - real["dispatch_s"]
        meets = latency["p99"] <= args.slo_p99_s
        runs.append({"label": label, "deployment": c.to_dict(), "pinned": pin, "real_latency_s": latency,
                     "real_service_mean_s": float(service.mean()), "real_mean_batch": float(real["batch_size"].mean()),
                     "real_meets_slo": meets})
        print(f"{label}: real p50 {latency['p50'] * 1e3:.2f} ms, p99 {latency['p99'] * 1e3:.2f} ms "
              f"(simulated {c.latency_p99_s * 1e3:.2f} ms, {(c.latency_p99_s - latency['p99']) / latency['p99']:+.1%}); "
              f"mean batch {real['batch_size'].mean():.2f} real vs {c.mean_batch_size:.2f} simulated; "
              f"threads pinned: {'yes' if pin else 'no'}; {'meets' if meets else 'misses'} the SLO")
    ok = runs[0]["real_meets_slo"]
    if same:
        near = same[0].latency_p99_s <= (1 + STATED_ERROR) * args.slo_p99_s
        ok = ok and (not runs[1]["real_meets_slo"] or near)
    print(f"recommendation meets the SLO for real and the next cheaper one misses it (or was a near miss within "
          f"{STATED_ERROR:.0%}): {'yes' if ok else 'no'}")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                                      for k, v in vars(args).items()},
                                         "measured_service_time_s": table, "runs": runs}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
