"""The ``gru-sim`` command line: parses arguments, shows progress, sets exit codes; holds no logic.

Exit codes (CONTRACT.md): 0 success, 1 the job ran but failed its own threshold, 2 bad input.
Data goes to stdout, progress and messages to stderr. Stages that import heavy libraries (torch for
measuring, plotly for reports) are imported inside the command that needs them, so that ``predict``
never pays for torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from .config import DEVICES, DTYPES, IMPLS, MODES, GruConfig, read_configs_csv
from .console import console as _console
from .console import print_self_check, print_validation
from .console import print_table as _print_table
from .errors import GruSimError, ThresholdFailed
from .locations import jobs_dir, profile_search_dirs, profiles_write_dir, project_profiles_dir, user_profiles_dir
from .units import fmt_bytes, fmt_rate, fmt_seconds


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"gru-sim: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def _add_shape_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("shape")
    g.add_argument("--batch", type=_positive_int, required=required, help="sequences per call (B)")
    g.add_argument("--seq-len", type=_positive_int, required=required, help="time steps (T)")
    g.add_argument("--input-size", type=_positive_int, required=required, help="input features (I)")
    g.add_argument("--hidden-size", type=_positive_int, required=required, help="hidden units (H)")
    g.add_argument("--layers", type=_positive_int, default=1, help="stacked layers (default 1)")
    g.add_argument("--bidirectional", action="store_true", help="run both directions")
    g.add_argument("--mode", choices=MODES, default="inference",
                   help="inference = forward; training = forward + backward (default inference)")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="default float32")
    g.add_argument("--impl", choices=IMPLS, default="torch-gru", help="default torch-gru")
    g.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    g.add_argument("--threads", type=_positive_int, default=1,
                   help="intra-op threads (default 1: the most repeatable timings)")


def _config_from(args: argparse.Namespace) -> GruConfig:
    return GruConfig(batch=args.batch, seq_len=args.seq_len, input_size=args.input_size,
                     hidden_size=args.hidden_size, num_layers=args.layers,
                     bidirectional=args.bidirectional, mode=args.mode, dtype=args.dtype,
                     impl=args.impl, device=args.device, threads=args.threads)


def _describe(c: GruConfig) -> str:
    return (f"{c.impl} {c.mode} on {c.device} ({c.dtype}, {c.threads} thread{'s' * (c.threads > 1)}): "
            f"B={c.batch} T={c.seq_len} I={c.input_size} H={c.hidden_size} L={c.num_layers}"
            f"{' bidirectional' if c.bidirectional else ''}")


# ----------------------------------------------------------------------------------------- measure
def cmd_measure(args: argparse.Namespace) -> int:
    config = _config_from(args)  # checked before torch is imported: bad input is refused at once
    if not args.budget >= 0:  # 0: just the minimum number of samples
        raise GruSimError(f"--budget(={args.budget}) must be >= 0 seconds")
    from .measure import measure_gru
    from .measure.timing import TimingPolicy

    policy = TimingPolicy(budget_s=args.budget)
    m = measure_gru(config, policy=policy, probe_memory=not args.no_memory)
    rec = m.to_record()
    if m.oversubscribed:
        print(f"gru-sim measure: warning: --threads {config.threads} is more than this machine's "
              f"{m.fingerprint.get('logical_cores')} cores: the threads were timed sharing cores "
              "(oversubscribed in the record)", file=sys.stderr)
    if args.json:
        print(json.dumps(rec))
        return 0
    print(_describe(config))
    _print_table([
        ("latency (median)", fmt_seconds(m.latency_s)),
        ("spread (IQR)", f"{fmt_seconds(m.latency_iqr_s)} ({m.latency_iqr_s / m.latency_s:.1%} of median)"
                         + ("  NOISY: rerun on a quieter machine" if m.noisy else "")),
        ("samples", f"{len(m.samples_s)} × {m.loops} call{'s' * (m.loops > 1)}"),
        ("first call (cold)", fmt_seconds(m.first_call_s)),
        ("throughput", f"{fmt_rate(rec['throughput_seq_per_s'], 'seq/s')}, "
                       f"{fmt_rate(rec['throughput_tokens_per_s'], 'tokens/s')}"),
        ("peak memory", f"below {fmt_bytes(m.peak_memory_resolution_bytes)}, what the probe resolves"
                         if m.peak_memory_below_resolution else fmt_bytes(m.peak_memory_bytes)),
        ("max rel. error", "-" if m.max_rel_error is None else f"{m.max_rel_error:.2e} vs float64 reference"),
        ("machine", f"{m.fingerprint.get('cpu_model')}, torch {m.fingerprint.get('torch')}"),
    ])
    return 0


# ----------------------------------------------------------------------------------------- predict
def _load_profile_for(args: argparse.Namespace, device: str | None) -> Any:
    """The profile named by --profile, or the shipped default of ``device``; what to know about it on stderr."""
    from .profile_choice import load_profile_for

    profile, notes = load_profile_for(args.profile, device)
    for note in notes:
        print(f"gru-sim: {note}", file=sys.stderr)
    return profile


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import Predictor

    _check_cluster_flags(args)
    if args.grid:
        return _predict_grid(args, Predictor(_load_profile_for(args, args.device or "cpu")))
    if args.workers is not None or args.scheduler is not None:
        raise GruSimError("--workers and --scheduler spread a --grid FILE.csv; one prediction runs here")
    missing = [f"--{n.replace('_', '-')}" for n in ("batch", "seq_len", "input_size", "hidden_size")
               if getattr(args, n) is None]
    if missing:
        raise GruSimError(f"predict needs {', '.join(missing)} (or --grid FILE.csv)")
    args.device = args.device or "cpu"
    config = _config_from(args)
    predictor = Predictor(_load_profile_for(args, config.device))
    prediction = predictor.predict(config)
    rec = prediction.to_dict()
    if not prediction.fits_in_memory:
        need = prediction.memory_bytes["total"]
        print(f"gru-sim predict: warning: this call needs about {fmt_bytes(need)}, more than this machine's "
              f"{fmt_bytes(predictor.memory_limit_bytes)} of memory (fits_in_memory: false)", file=sys.stderr)
    if prediction.oversubscribed:
        print(f"gru-sim predict: warning: --threads {config.threads} is more than this machine's {predictor.cores} "
              "cores (oversubscribed: true)", file=sys.stderr)
    if args.trace:
        from .sim.executors import simulate_call
        from .sim.trace import write_chrome_trace

        sim = simulate_call(predictor.call_times(config))
        write_chrome_trace(sim, args.trace)
        print(f"gru-sim: wrote {args.trace} (open in https://ui.perfetto.dev or chrome://tracing)",
              file=sys.stderr)
    if args.json:
        print(json.dumps(rec))
        return 0
    lo, hi = rec["latency_interval_s"]
    par = rec["parallelism"]
    mem = rec["memory_bytes"]
    rows = [
        ("latency", f"{fmt_seconds(rec['latency_s'])}  (90% interval {fmt_seconds(lo)} – {fmt_seconds(hi)})"
                    + ("  EXTRAPOLATED beyond the calibrated " + ", ".join(rec["extrapolated_axes"])
                       if rec["extrapolated"] else "")),
        ("throughput", f"{fmt_rate(rec['throughput_seq_per_s'], 'seq/s')}, "
                       f"{fmt_rate(rec['throughput_tokens_per_s'], 'tokens/s')}"),
        ("peak memory", f"{fmt_bytes(rec['peak_memory_bytes'])} beyond weights {fmt_bytes(mem['weights'])} "
                        f"and input {fmt_bytes(mem['inputs'])}"),
        ("parallelism", f"work {fmt_seconds(par['work_s'])}, critical path {fmt_seconds(par['critical_path_s'])}, "
                        f"average concurrency {par['avg_concurrency']:.2f}"),
    ]
    for term, secs in rec["breakdown_s"].items():
        label = "  of which backward" if term == "backward_s" else f"  {term[:-2].replace('_', ' ')}"
        rows.append((label, f"{fmt_seconds(secs)} ({secs / rec['latency_s']:.0%})"))
    print(_describe(config))
    _print_table(rows)
    return 0


def _predict_grid(args: argparse.Namespace, predictor: Any) -> int:
    defaults = {"num_layers": args.layers, "bidirectional": args.bidirectional, "mode": args.mode,
                "dtype": args.dtype, "impl": args.impl, "device": args.device or "cpu", "threads": args.threads}
    configs = read_configs_csv(args.grid, defaults)
    if args.workers is not None or args.scheduler is not None:
        from .distributed import cluster_client, predict_records_on
        from .predict import GRID_MAX_CHUNKS

        with cluster_client(args.workers, args.scheduler) as client:
            for rec in predict_records_on(client, configs, predictor.profile.path, predictor.here, GRID_MAX_CHUNKS):
                sys.stdout.write(json.dumps(rec) + "\n")
        return 0
    for prediction in predictor.predict_many(configs):
        sys.stdout.write(json.dumps(prediction.to_dict()) + "\n")
    return 0


def _check_cluster_flags(args: argparse.Namespace) -> None:
    """Before any work: the cluster flags need the optional extra (one line naming it, exit 2)."""
    if getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None:
        from .distributed import import_distributed

        if args.workers is not None and args.scheduler is not None:
            raise GruSimError("give --workers or --scheduler, not both")
        import_distributed()


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (the optional extra gru-sim[dask])")
    g.add_argument("--workers", type=_positive_int, metavar="N", help="spread the work over a local Dask cluster "
                                                                      "of N processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="spread the work over an existing Dask cluster "
                                                          "(e.g. tcp://10.0.0.5:8786)")


# --------------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate.jobs import default_job_path, load_job
    from .calibrate.progress import BudgetProgress
    from .calibrate.runner import calibrate, store_path_for

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

    from .calibrate.adapt import adapt_profile, quick_profile_path
    from .calibrate.runner import store_path_for
    from .model.library import choose_profile, describe
    from .model.profile import load_profile

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


# --------------------------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .distributed import cluster_client
    from .scenario import MAX_CLUSTER_SWEEP_CONFIGS, MAX_SWEEP_CONFIGS, load_scenario
    from .study import choose_profile_path, default_out_dir, run_scenario

    _check_cluster_flags(args)
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


def cmd_plan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .scenario import load_scenario
    from .study import choose_profile_path, default_out_dir
    from .study.plan import plan_scenario

    scenario = load_scenario(args.scenario)
    profile_path, source = choose_profile_path(scenario, args.profile)
    print(f"gru-sim plan: profile {profile_path} ({source})", file=sys.stderr)
    out_dir = Path(args.out) if args.out else default_out_dir(scenario)
    with _console(stderr=True).status("searching deployments with the simulators"):
        output = plan_scenario(scenario, profile_path, out_dir, profile_source=source)
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


def cmd_schema(args: argparse.Namespace) -> int:
    from .scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


# ---------------------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import validate as v

    profile = _load_profile_for(args, "cpu" if args.profile is None else None)
    if args.quick:
        result = v.quick_check(profile)
        print(result["line"])
        return 0 if result["ok"] else 1
    if args.sample is not None and args.sample < 0:
        raise GruSimError(f"--sample(={args.sample}) must be >= 0")
    configs = (read_configs_csv(args.configs) if args.configs
               else v.choose_configs(profile, 20 if args.sample is None else args.sample, seed=args.seed))
    if not configs:
        raise GruSimError("no configuration to validate: raise --sample or pass --configs FILE.csv")
    out = Path(args.out or Path("reports") / f"validation-{Path(str(profile.path)).stem}")
    from rich.progress import Progress as Bar

    with Bar(console=_console(stderr=True)) as bar:
        task = bar.add_task("measuring", total=len(configs))
        result = v.validate(profile, configs, progress=lambda done, total, what: bar.update(task, completed=done))
    json_path, report_path = v.write_validation(result, out)
    print_validation(result)
    print(f"wrote {json_path} and {report_path}")
    worst = result.summary.overall.median_ape
    if args.max_median_ape is not None and worst is None and result.summary.noisy.median_ape is not None:
        worst = result.summary.noisy.median_ape
        print("gru-sim validate: every configuration stayed noisy even when re-measured: --max-median-ape is "
              "checked on those noisy measurements; rerun on a quieter machine to trust it", file=sys.stderr)
    if args.max_median_ape is not None and worst is not None and worst > args.max_median_ape:
        raise ThresholdFailed(f"median APE {worst:.1f}% is above --max-median-ape {args.max_median_ape}%")
    return 0


# --------------------------------------------------------------------------------------- gradients
def _positive_int_list(text: str) -> list[int]:
    return [_positive_int(part.strip()) for part in text.split(",") if part.strip()]


def cmd_gradients(args: argparse.Namespace) -> int:
    from .gradient_flow import ERROR_DTYPES, GradientSetup, gradient_record

    missing = [f"--{n.replace('_', '-')}" for n in ("input_size", "hidden_size") if getattr(args, n) is None]
    if args.seq_len is None and not args.seq_lens:
        missing.append("--seq-len (or --seq-lens)")
    if missing:
        raise GruSimError(f"gradients needs {', '.join(missing)}")
    if args.device != "cpu":
        raise GruSimError(f"device(={args.device}): gradients are measured on the cpu; drop --device")
    if args.impl != "torch-gru":  # --mode does not matter: measuring gradients is always a backward pass
        raise GruSimError(f"impl(={args.impl}): gradients are measured with torch (nn.GRU's equations step by "
                          "step, nn.GRU itself for the forward error); drop --impl")
    setup = GradientSetup(
        input_size=args.input_size, hidden_size=args.hidden_size, num_layers=args.layers,
        bidirectional=args.bidirectional, dtype=args.dtype, init=args.init,
        seq_lens=tuple(args.seq_lens or ()) + ((args.seq_len,) if args.seq_len else ()),
        inputs=args.batch or 4, seed=args.seed, threads=args.threads,
        error_dtypes=() if args.no_error else ERROR_DTYPES)
    from rich.console import Console
    from rich.progress import Progress as Bar

    from .measure.gradients import measure_gradients

    with Bar(console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("measuring", total=len(setup.sorted_seq_lens))
        m = measure_gradients(setup, progress=lambda done, total: bar.update(task, completed=done))
    rec = gradient_record(m)
    if args.json:
        print(json.dumps(rec))
        return 0
    _print_gradients(rec)
    return 0


def _print_gradients(rec: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from .gradient_flow import SATURATED_Z, fmt_ratio

    c = rec["config"]
    print(f"gradient flow of a GRU I={c['input_size']} H={c['hidden_size']} L={c['num_layers']}"
          f"{' bidirectional' if c['bidirectional'] else ''}, {c['dtype']}, init {c['init']}: "
          f"loss on the last step, {c['batch']} random input{'s' * (c['batch'] > 1)}, "
          f"{c['threads']} thread{'s' * (c['threads'] > 1)}, {rec['wall_s']:.1f} s")
    dtypes = sorted({d for r in rec["by_seq_len"] for d in r["forward_rel_error"]})
    table = Table("T", "‖∂L/∂h_0‖ / ‖∂L/∂h_T‖", "decay per step", "horizon (steps)", f"z > {SATURATED_Z}",
                  *(f"{d} fwd error" for d in dtypes), box=None, padding=(0, 2, 0, 0))
    for r in rec["by_seq_len"]:
        ratio, decay = r["step0_grad_ratio"], r["decay_per_step"]
        table.add_row(f"{r['seq_len']:,}", "-" if ratio is None else fmt_ratio(ratio),
                      "-" if decay is None else f"{decay:.4g}",
                      "beyond T" if r["horizon_steps"] is None else f"{r['horizon_steps']:,}",
                      f"{r['update_gate_saturation']:.1%}",
                      *("-" if r["forward_rel_error"].get(d) is None else f"{r['forward_rel_error'][d]:.2e}"
                        for d in dtypes))
    Console(file=sys.stdout, width=160, highlight=False).print(table)
    norms = rec["grad_norm_by_steps_back"]
    marks = sorted({k for k in (0, 1, 10, 100, 1000, len(norms) - 1) if k < len(norms)})
    print(f"‖∂L/∂h_(T−k)‖ at T = {c['seq_len']:,}: "
          + ", ".join(f"k={k:,} {'-' if norms[k] is None else format(norms[k], '.3g')}" for k in marks))
    print(rec["summary"])


# -------------------------------------------------------------------------------------------- main
def _locations_epilog() -> str:
    """The --help epilog: where gru-sim looks for profiles and job specs, and where new profiles go."""
    lines = ["profiles (without --profile: the one made on this machine, else the nearest), looked for in:"]
    for d in profile_search_dirs():
        role = ("this checkout, with the shipped ones" if d == project_profiles_dir() else
                "your data folder" if d == user_profiles_dir() else "shipped with gru-sim")
        if d == profiles_write_dir():
            role += "; new ones are written here"
        lines.append(f"  {d}  ({role})")
    lines.append(f"default job specs: {jobs_dir()}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    where = _locations_epilog()
    parser = _ArgumentParser(prog="gru-sim", description="Measure, calibrate, predict and simulate GRU "
                             "performance.", epilog=where, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    p = sub.add_parser("measure", help="time the real kernel on this machine now")
    _add_shape_flags(p)
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timed samples (default 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe (a subprocess)")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("predict", help="predict from a calibration profile without running a kernel",
                       epilog=where, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_shape_flags(p, required=False)
    p.set_defaults(device=None)
    p.add_argument("--profile", help="calibration profile (default: the one matching this machine among the "
                                     "known ones, listed below)")
    p.add_argument("--grid", help="CSV whose columns are shape-flag names (batch, seq_len, ...): "
                   "one JSON record per row on stdout")
    p.add_argument("--trace", help="also write the simulated kernels as a Chrome trace JSON")
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    _add_cluster_flags(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("validate", help="measure configurations the profile never saw and compare")
    p.add_argument("--profile", help="calibration profile (default: the shipped cpu profile)")
    p.add_argument("--sample", type=int, help="random configs inside the calibrated ranges (default 20); "
                   "one config beyond the range per axis is added")
    p.add_argument("--configs", help="CSV of configurations to validate instead (shape-flag columns)")
    p.add_argument("--max-median-ape", type=float, help="exit 1 when the median APE exceeds this percentage")
    p.add_argument("--quick", action="store_true", help="re-measure the profile's canaries: is it still valid here?")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample (default 0)")
    p.add_argument("--out", help="output folder (default reports/validation-<profile name>/)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="run a calibration job and write a profile (resumable)",
                       epilog=where, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--job", help="job spec YAML (default: <device>-default.yaml among the default job specs, "
                                 "below)")
    p.add_argument("--budget", type=float, help="seconds of measuring (default: the job's budget_s)")
    p.add_argument("--out", help="profile path (default: <device>-default.json, with --quick "
                   "<device>-<cpu model>-<cores>c.json, where new profiles are written: the checkout's "
                   "calibration/profiles/, else your data folder, below); re-running with the same --out resumes")
    p.add_argument("--quick", action="store_true", help="adapt the nearest profile (or --from) to this machine "
                   "in about a minute of measuring, instead of a full calibration")
    p.add_argument("--from", dest="source", metavar="PROFILE", help="with --quick: the profile to adapt "
                   "(default: the nearest to this machine among the known ones)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("run", help="forecast a scenario file and write results.json and report.html")
    p.add_argument("scenario", metavar="SCENARIO.yaml", help="the scenario file (see 'gru-sim schema')")
    p.add_argument("--profile", help="calibration profile (default: the scenario's, else the shipped one)")
    p.add_argument("--out", help="output folder (default: reports/<scenario name>/)")
    _add_cluster_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="the cheapest deployment meeting the scenario's SLO, found by simulation")
    p.add_argument("scenario", metavar="SCENARIO.yaml", help="a scenario file with a plan section")
    p.add_argument("--profile", help="calibration profile (default: the scenario's, else the shipped one); a "
                                     "hardware entry's own profile prices that kind")
    p.add_argument("--out", help="output folder for plan.json and report.html (default: reports/<scenario name>/)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the scenario file's JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("gradients", help="how the gradient of a loss on the last step reaches earlier steps")
    _add_shape_flags(p, required=False)
    p.add_argument("--seq-lens", type=_positive_int_list, metavar="T1,T2,...",
                   help="measure at each of these sequence lengths too (with or instead of --seq-len)")
    p.add_argument("--init", default="default", metavar="default|orthogonal|STATE_DICT.pt",
                   help="PyTorch's default initialisation, orthogonal recurrent weights, or trained weights "
                        "from an nn.GRU's state_dict file (default: default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, inputs and loss (default 0)")
    p.add_argument("--no-error", action="store_true",
                   help="skip the float16/bfloat16 forward error against the float64 reference")
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    p.set_defaults(func=cmd_gradients)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except GruSimError as err:
        print(f"gru-sim {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"gru-sim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
