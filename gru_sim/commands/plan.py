"""``gru-sim plan``: the cheapest deployment meeting a scenario's SLO, found by simulation, and
plan.json and report.html written."""

from __future__ import annotations

import argparse
import sys

from ..console import console
from ..errors import ThresholdFailed
from ..units import fmt_seconds
from .common import check_cluster_flags


def cmd_plan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..distributed import cluster_client
    from ..scenario import load_scenario
    from ..study import choose_profile_path, default_out_dir
    from ..study.plan import plan_scenario

    check_cluster_flags(args)
    scenario = load_scenario(args.scenario)
    profile_path, source = choose_profile_path(scenario, args.profile)
    print(f"gru-sim plan: profile {profile_path} ({source})", file=sys.stderr)
    out_dir = Path(args.out) if args.out else default_out_dir(scenario)
    with cluster_client(args.workers, args.scheduler) as client, \
            console(stderr=True).status("searching deployments with the simulators"):
        output = plan_scenario(scenario, profile_path, out_dir, profile_source=source, client=client)
    for warning in output.plan.get("warnings", []):
        print(f"gru-sim plan: warning: {warning}", file=sys.stderr)
    plan, serving, training = output.plan, output.result.serving, output.result.training
    if serving is not None:
        print(f"planned for {serving.rate_per_s:.4g} req/s, {serving.slo.describe()}: "
              f"{serving.evaluations} of {serving.space_size} deployments simulated")
        rec = plan.get("recommended")
        if rec is not None:
            headroom = rec.get("headroom_rate_per_s")
            print(f"recommended: {serving.recommended.deployment.describe()}; "  # type: ignore[union-attr]
                  f"{rec['cost_per_hour']:.4g} per hour; p50 {fmt_seconds(rec['latency_s']['p50'])}, "
                  f"p99 {fmt_seconds(rec['latency_s']['p99'])}; SLO met up to "
                  f"{'-' if headroom is None else f'{headroom:.4g}'} req/s")
            for c in serving.cheaper_neighbours:
                print(f"  cheaper, fails: {c.deployment.describe()} ({c.cost_per_hour:.4g} per hour): {c.reason}")
    if training is not None and training.chosen is not None:
        c = training.chosen
        print(f"training: {c.devices} device{'s' * (c.devices != 1)} x batch {c.batch_per_device}: epoch "
              f"{fmt_seconds(c.epoch_time_s)} (target {fmt_seconds(training.target_epoch_time_s)}), "
              f"{c.cost:.4g} per epoch")
    print(f"gru-sim plan: plan in {output.plan_path}", file=sys.stderr)
    print(f"report written to {output.report_path}")
    if not output.result.feasible:
        raise ThresholdFailed(output.result.reason or "no deployment meets the constraints")
    return 0
