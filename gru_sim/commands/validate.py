"""``gru-sim validate``: measure configurations a profile never saw, compare them with its
predictions, write validation.json and the report, and hold the ``--max-median-ape`` threshold."""

from __future__ import annotations

import argparse
import sys

from ..config import read_configs_csv
from ..console import console, print_validation
from ..errors import GruSimError, ThresholdFailed
from .common import profile_for


def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import validate as v

    if args.rounds < 1:
        raise GruSimError(f"--rounds(={args.rounds}) must be at least 1")
    profile = profile_for(args, "cpu" if args.profile is None else None)
    if args.quick:
        result = v.quick_check(profile)
        print(result["line"])
        return 0 if result["ok"] else 1
    if args.sample is not None and args.sample < 0:
        raise GruSimError(f"--sample(={args.sample}) must be >= 0")
    configs = (read_configs_csv(args.configs) if args.configs
               else v.choose_configs(profile, 20 if args.sample is None else args.sample, seed=args.seed))
    names: list[str | None] = [None] * len(configs)
    with_apps = not args.configs if args.apps is None else args.apps
    if with_apps:
        apps = v.application_configs(profile)
        configs += [c for _, c in apps]
        names += [name for name, _ in apps]
    if not configs:
        raise GruSimError("no configuration to validate: raise --sample, pass --configs FILE.csv or add --apps")
    out = Path(args.out or Path("reports") / f"validation-{Path(str(profile.path)).stem}")
    from rich.progress import Progress as Bar

    with Bar(console=console(stderr=True)) as bar:
        task = bar.add_task("measuring", total=len(configs) * args.rounds)
        result = v.validate(profile, configs, v.ValidationPolicy(rounds=args.rounds), seed=args.seed,
                            progress=lambda done, total, what: bar.update(task, completed=done, total=total),
                            applications=names)
    json_path, report_path = v.write_validation(result, out)
    print_validation(result)
    print(f"wrote {json_path} and {report_path}")
    if not with_apps and not args.configs:
        print("gru-sim validate: the random sample draws shapes the way the calibration does; without --no-apps "
              "the application shapes people run are measured too (reported apart)", file=sys.stderr)
    worst = result.summary.overall.median_ape
    if args.max_median_ape is not None and worst is None and result.summary.noisy.median_ape is not None:
        worst = result.summary.noisy.median_ape
        print("gru-sim validate: every configuration stayed noisy even when re-measured: --max-median-ape is "
              "checked on those noisy measurements; rerun on a quieter machine to trust it", file=sys.stderr)
    if args.max_median_ape is not None and worst is not None and worst > args.max_median_ape:
        raise ThresholdFailed(f"median APE {worst:.1f}% is above --max-median-ape {args.max_median_ape}%")
    return 0
