"""``gru-sim calibrate``: run a calibration job (resumable) or adapt a known profile to this machine
(``--quick``), and write the profile; with ``--out-dir`` and a Dask cluster (``--scheduler`` or
``--workers``), run the job once per kind of machine among the workers (:mod:`gru_sim.calibrate.fleet`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..console import print_self_check
from ..errors import GruSimError
from ..locations import profiles_write_dir
from .common import positive_int

if TYPE_CHECKING:
    from ..calibrate.jobs import JobSpec
    from ..calibrate.prior import UnitPrior


def add_fleet_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a fleet calibration, on the ``calibrate`` parser."""
    g = p.add_argument_group("fleet calibration (the optional extra gru-sim[dask])")
    g.add_argument("--out-dir", metavar="DIR", help="with --scheduler or --workers: calibrate once per kind of "
                   "machine among the cluster's workers and write one profile per kind into DIR "
                   "(<device>-<cpu model>-<cores>c-<hash>.json, its store beside it); the workers write there "
                   "themselves, so DIR must be a shared filesystem path that every worker can write; "
                   "re-running with the same flags resumes every kind's store")
    g.add_argument("--workers", type=positive_int, metavar="N", help="with --out-dir: a local Dask cluster of N "
                   "worker processes (this machine: one kind, one profile)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="with --out-dir: an existing Dask cluster (e.g. "
                   "tcp://10.0.0.5:8786); each kind is calibrated on one of its workers, one job per host at a time")


def _load_spec(args: argparse.Namespace) -> "JobSpec":
    from ..calibrate.jobs import default_job_path, load_job

    spec = load_job(args.job or default_job_path(args.device))
    if spec.device != args.device:
        raise GruSimError(f"job {spec.name} is for device {spec.device}, not --device {args.device}")
    if args.budget is not None:
        if not args.budget > 0:
            raise GruSimError(f"--budget(={args.budget}) must be > 0 seconds")
        spec = spec.model_copy(update={"budget_s": args.budget})
    return spec


def _check_fleet_flags(args: argparse.Namespace) -> bool:
    """Whether this is a fleet calibration; flags that do not go together are refused (before any work)."""
    out_dir = getattr(args, "out_dir", None)
    cluster = getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None
    if out_dir is None and not cluster:
        return False
    if out_dir is None:
        raise GruSimError("--scheduler and --workers calibrate a fleet: give --out-dir DIR for its profiles")
    if not cluster:
        raise GruSimError("--out-dir is where a fleet calibration writes: give --scheduler ADDRESS or --workers N")
    if args.out is not None:
        raise GruSimError("--out names one profile, --out-dir a fleet's folder of profiles: give one of them")
    if args.quick or args.source is not None:
        raise GruSimError("--quick and --from adapt a profile to this machine: not with --out-dir")
    if getattr(args, "pool", None) is not None:
        raise GruSimError("--pool builds one profile from finished runs: not with --out-dir")
    if getattr(args, "prior", None) is not None:
        raise GruSimError("--prior names one pool for this machine: a fleet calibrates each kind alone (not with --out-dir)")
    if args.workers is not None and args.scheduler is not None:
        raise GruSimError("give --workers or --scheduler, not both")
    return True


def cmd_calibrate(args: argparse.Namespace) -> int:
    if getattr(args, "recent", None) is not None and getattr(args, "pool", None) is None:
        raise GruSimError("--recent chooses among pooled runs: give it with --pool RUN ...")
    if _check_fleet_flags(args):
        return _calibrate_fleet(args)
    from ..calibrate.progress import BudgetProgress
    from ..calibrate.runner import calibrate, store_path_for
    from ..model.library import calibration_out_path

    if (getattr(args, "prior", None) is not None or getattr(args, "no_prior", False)) and (args.pool or args.quick):
        raise GruSimError("--prior and --no-prior belong to a full calibration: not with --pool or --quick")
    if args.pool is not None:
        return _calibrate_pool(args)
    if args.quick:
        return _calibrate_quick(args)
    if args.source is not None:
        raise GruSimError("--from names the profile a quick adaptation starts from: use it with --quick")
    spec = _load_spec(args)
    out = args.out or calibration_out_path(args.device, profiles_write_dir())
    print(f"gru-sim calibrate: job {spec.name}, budget {spec.budget_s:.0f} s, store {store_path_for(out)}",
          file=sys.stderr)
    prior = _prior_for(args, spec)
    try:
        with BudgetProgress(spec.budget_s) as progress:
            profile = calibrate(spec, out, progress, prior)
    except KeyboardInterrupt:
        print(f"gru-sim calibrate: interrupted; every point measured so far is in {store_path_for(out)}: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    if prior is not None:
        print(f"gru-sim calibrate: {prior.describe()}", file=sys.stderr)
    print_self_check(profile.self_check)
    print(f"profile written to {out}")
    return 0


def _prior_for(args: argparse.Namespace, spec: "JobSpec") -> "UnitPrior | None":
    """The pool a full calibration reads its units against: ``--prior``, else the known profile that
    matches this machine when it is a pool of the same job; None with ``--no-prior`` or when there is none.
    Loaded before measuring: the run may replace that profile's file."""
    from ..calibrate.jobs import job_differences
    from ..calibrate.prior import UnitPrior
    from ..errors import ProfileError
    from ..model.library import describe, here_fingerprint, known_profiles, mismatch
    from ..model.profile import load_profile

    if getattr(args, "no_prior", False):
        return None
    explicit = getattr(args, "prior", None)
    job = spec.model_dump(mode="json")

    def say(line: str) -> None:
        print(f"gru-sim calibrate: {line}", file=sys.stderr)

    if explicit is not None:
        profile = load_profile(explicit)
        if differ := job_differences(profile.job, job):
            raise GruSimError(f"--prior {explicit} pools another job than {spec.name} (they differ in "
                              f"{', '.join(differ)}): give a pool of this job, or --no-prior")
        diff = mismatch(profile.fingerprint, here_fingerprint(spec.device))
        # Another kind of machine may differ cell by cell: its tables are read so (prior.UnitPrior).
        prior = UnitPrior.from_profile(profile, split=not diff)
        if diff:
            say(f"--prior {explicit} was pooled on {describe(profile.fingerprint)} ({', '.join(diff)} differ); "
                "each table keeps the scatter it shows beyond chance, cell by cell")
    else:
        # Every known pool of this job whose fingerprint matches this machine; the one of most runs.
        here = here_fingerprint(spec.device)
        pools = []
        for path, fp in known_profiles(spec.device):
            if mismatch(fp, here):
                continue
            try:
                profile = load_profile(path)
            except ProfileError:
                continue
            if profile.unit_scatter_log_sd and not job_differences(profile.job, job):
                pools.append(profile)
        if not pools:
            return None
        prior = UnitPrior.from_profile(max(pools, key=lambda p: len(p.self_check.get("runs") or [])))
    say(f"reading the units against the pool of {prior.runs} runs in {prior.source} (this machine kind, this job); "
        "--no-prior judges the run alone")
    return prior


def _calibrate_fleet(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..calibrate.fleet import calibrate_fleet
    from ..distributed import cluster_client, import_distributed

    spec = _load_spec(args)
    import_distributed()  # without the extra: one line naming it, before anything is started
    out_dir = Path(args.out_dir)
    where = f"the Dask scheduler at {args.scheduler}" if args.scheduler else f"{args.workers} local workers"

    def say(line: str) -> None:
        print(f"gru-sim calibrate: {line}", file=sys.stderr, flush=True)

    try:
        with cluster_client(workers=args.workers, scheduler=args.scheduler) as client:
            say(f"job {spec.name}, budget {spec.budget_s:.0f} s per kind of machine, on {where}, "
                f"profiles into {out_dir}")
            result = calibrate_fleet(client, spec, out_dir, say)
    except KeyboardInterrupt:
        print(f"gru-sim calibrate: interrupted; every point measured so far is in the stores in {out_dir}: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    written = ", ".join(str(w["profile"]) for w in result.written) or "none"
    print(f"{len(result.written)} profile{'s' * (len(result.written) != 1)} written: {written}")
    if result.failed:
        raise GruSimError(f"{len(result.failed)} kind{'s' * (len(result.failed) != 1)} of machine failed: "
                          + "; ".join(f"{p.host} ({p.name}): {why}" for p, why in result.failed))
    return 0


def _calibrate_pool(args: argparse.Namespace) -> int:
    from ..calibrate.pool import pool_profile

    if args.quick or args.source is not None:
        raise GruSimError("--pool builds a profile from finished runs: --quick and --from adapt one instead")
    if args.job is not None or args.budget is not None:
        raise GruSimError("--pool measures nothing: --job and --budget belong to a calibration run")
    if args.out is None:
        raise GruSimError("--pool needs --out PATH for the pooled profile")
    recent = getattr(args, "recent", None)
    profile = pool_profile(args.pool, args.out, recent=recent)
    check = profile.self_check
    runs = check.get("runs", [])
    left_out = check.get("runs_left_out", 0)
    older = f" (the {left_out} that measured earlier left out: --recent {recent})" if left_out else ""
    print(f"gru-sim calibrate --pool: {len(runs)} runs{older}, {check['measuring_s']:.0f} s of measuring between "
          f"{min(r['first_at'] or '' for r in runs)} and {max(r['last_at'] or '' for r in runs)}", file=sys.stderr)
    print_self_check(check)
    print(f"profile written to {args.out}")
    return 0


def _calibrate_quick(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..calibrate.adapt import adapt_profile
    from ..calibrate.runner import store_path_for
    from ..model.library import choose_profile, describe, own_profile_path
    from ..model.profile import load_profile

    if args.job is not None or args.budget is not None:
        raise GruSimError("--quick adapts an existing profile: --job and --budget belong to a full calibration")
    choice = choose_profile(args.device, explicit=args.source)
    source = load_profile(choice.path)
    out = Path(args.out) if args.out else own_profile_path(args.device, profiles_write_dir())
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
