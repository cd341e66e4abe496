"""``gru-sim calibrate``: run a calibration job (resumable) or adapt a known profile to this machine
(``--quick``), and write the profile."""

from __future__ import annotations

import argparse
import sys

from ..console import print_self_check
from ..errors import GruSimError
from ..locations import profiles_write_dir


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibrate.jobs import default_job_path, load_job
    from ..calibrate.progress import BudgetProgress
    from ..calibrate.runner import calibrate, store_path_for

    if args.quick:
        return _calibrate_quick(args)
    if args.source is not None:
        raise GruSimError("--from names the profile a quick adaptation starts from: use it with --quick")
    spec = load_job(args.job or default_job_path(args.device))
    if spec.device != args.device:
        raise GruSimError(f"job {spec.name} is for device {spec.device}, not --device {args.device}")
    if args.budget is not None:
        if not args.budget > 0:
            raise GruSimError(f"--budget(={args.budget}) must be > 0 seconds")
        spec = spec.model_copy(update={"budget_s": args.budget})
    out = args.out or profiles_write_dir() / f"{args.device}-default.json"
    print(f"gru-sim calibrate: job {spec.name}, budget {spec.budget_s:.0f} s, store {store_path_for(out)}",
          file=sys.stderr)
    try:
        with BudgetProgress(spec.budget_s) as progress:
            profile = calibrate(spec, out, progress)
    except KeyboardInterrupt:
        print(f"gru-sim calibrate: interrupted; every point measured so far is in {store_path_for(out)}: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    print_self_check(profile.self_check)
    print(f"profile written to {out}")
    return 0


def _calibrate_quick(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..calibrate.adapt import adapt_profile, quick_profile_path
    from ..calibrate.runner import store_path_for
    from ..model.library import choose_profile, describe
    from ..model.profile import load_profile

    if args.job is not None or args.budget is not None:
        raise GruSimError("--quick adapts an existing profile: --job and --budget belong to a full calibration")
    choice = choose_profile(args.device, explicit=args.source)
    source = load_profile(choice.path)
    out = Path(args.out) if args.out else quick_profile_path(args.device, profiles_write_dir())
    print(f"gru-sim calibrate --quick: adapting {choice.path} (made on {describe(source.fingerprint)}) to this "
          f"machine; store {store_path_for(out)}", file=sys.stderr)
    try:
        profile = adapt_profile(source, out, lambda what: print(f"  {what}", file=sys.stderr))
    except KeyboardInterrupt:
        print(f"gru-sim calibrate: interrupted; every unit timed so far is in {store_path_for(out)}: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    check = profile.self_check
    s = check.get("adapt_check") or {}
    print(f"measured {check['measuring_s']:.0f} s ({check['wall_s']:.0f} s in all)")
    if s.get("n"):
        print(f"check on {s['n']} whole calls the source held out, measured here: median APE {s['median_ape']:.1f}%, "
              f"90% interval coverage {s['interval_coverage']:.0%}")
    print(f"profile written to {out}")
    return 0
