"""``gru-sim run``: forecast a scenario file on a profile and write results.json and report.html."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import check_cluster_flags


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..distributed import cluster_client
    from ..scenario import MAX_CLUSTER_SWEEP_CONFIGS, MAX_SWEEP_CONFIGS, load_scenario
    from ..study import choose_profile_path, default_out_dir, run_scenario

    check_cluster_flags(args)
    on_cluster = args.workers is not None or args.scheduler is not None
    scenario = load_scenario(args.scenario, MAX_CLUSTER_SWEEP_CONFIGS if on_cluster else MAX_SWEEP_CONFIGS)
    profile_path, source = choose_profile_path(scenario, args.profile)
    print(f"gru-sim run: profile {profile_path} ({source})", file=sys.stderr)
    if scenario.plan is not None:
        print("gru-sim run: the plan section is for 'gru-sim plan'; run leaves it alone", file=sys.stderr)
    out_dir = Path(args.out) if args.out else default_out_dir(scenario)
    with Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        with cluster_client(args.workers, args.scheduler) as client:
            output = run_scenario(scenario, profile_path, out_dir, progress, profile_source=source, client=client)
    if output.results.get("profile_match") is False:
        print(f"gru-sim run: warning: {output.results['profile_note']}", file=sys.stderr)
    for warning in output.results.get("warnings", []):
        print(f"gru-sim run: warning: {warning}", file=sys.stderr)
    print(f"gru-sim run: results in {output.results_path}", file=sys.stderr)
    print(f"report written to {output.report_path}")
    return 0
