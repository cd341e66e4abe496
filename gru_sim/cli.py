"""The ``gru-sim`` command line: parses arguments, hands them to the subcommand, turns errors into exit codes.

Exit codes (CONTRACT.md): 0 success, 1 the job ran but failed its own threshold, 2 bad input.
Data goes to stdout, progress and messages to stderr. What each subcommand does lives in
``gru_sim.commands`` (one module each); those modules import the stages that need heavy libraries
(torch for measuring, plotly for reports) inside the command that needs them, so that ``predict``
never pays for torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .commands.calibrate import add_fleet_flags, cmd_calibrate
from .commands.common import positive_int
from .commands.gradients import cmd_gradients
from .commands.measure import cmd_measure
from .commands.plan import cmd_plan
from .commands.predict import cmd_predict
from .commands.run import cmd_run
from .commands.schema import cmd_schema
from .commands.validate import cmd_validate
from .config import DEVICES, DTYPES, IMPLS, MODES
from .errors import GruSimError
from .locations import jobs_dir, profile_search_dirs, profiles_write_dir, project_profiles_dir, user_profiles_dir

__all__ = ["build_parser", "main", "cmd_calibrate", "cmd_gradients", "cmd_measure", "cmd_plan", "cmd_predict",
           "cmd_run", "cmd_schema", "cmd_validate"]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"gru-sim: error: {message} (see '{self.prog} --help')\n")


def _add_shape_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("shape")
    g.add_argument("--batch", type=positive_int, required=required, help="sequences per call (B)")
    g.add_argument("--seq-len", type=positive_int, required=required, help="time steps (T)")
    g.add_argument("--input-size", type=positive_int, required=required, help="input features (I)")
    g.add_argument("--hidden-size", type=positive_int, required=required, help="hidden units (H)")
    g.add_argument("--layers", type=positive_int, default=1, help="stacked layers (default 1)")
    g.add_argument("--bidirectional", action="store_true", help="run both directions")
    g.add_argument("--mode", choices=MODES, default="inference",
                   help="inference = forward; training = forward + backward (default inference)")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="default float32")
    g.add_argument("--impl", choices=IMPLS, default="torch-gru", help="default torch-gru")
    g.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    g.add_argument("--threads", type=positive_int, default=1,
                   help="intra-op threads (default 1: the most repeatable timings)")


def _positive_int_list(text: str) -> list[int]:
    return [positive_int(part.strip()) for part in text.split(",") if part.strip()]


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (the optional extra gru-sim[dask])")
    g.add_argument("--workers", type=positive_int, metavar="N", help="spread the work over a local Dask cluster "
                                                                      "of N processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="spread the work over an existing Dask cluster "
                                                          "(e.g. tcp://10.0.0.5:8786)")


# ------------------------------------------------------------------------------- the parser and main
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
    p.add_argument("--profile", help="calibration profile (default: the cpu profile matching this machine among "
                                     "the known ones, else the nearest)")
    p.add_argument("--sample", type=int, help="random configs inside the calibrated ranges (default 20); "
                   "one config beyond the range per axis is added")
    p.add_argument("--configs", help="CSV of configurations to validate instead (shape-flag columns)")
    p.add_argument("--apps", action=argparse.BooleanOptionalAction, default=None,
                   help="also measure the application shapes shipped with gru-sim (20 shapes of keyword spotting, "
                        "speech, NLP, translation, time series and recommendation, at each thread count of the "
                        "profile), which the random sample, drawn like the calibration's design, rarely resembles: "
                        "reported apart (default: on, unless --configs is given; --no-apps saves about two "
                        "minutes on 2 cores)")
    p.add_argument("--max-median-ape", type=float, help="exit 1 when the median APE exceeds this percentage")
    p.add_argument("--quick", action="store_true", help="re-measure the profile's canaries: is it still valid here?")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample (default 0)")
    p.add_argument("--rounds", type=int, default=2,
                   help="measure every configuration this many times, each round in its own order (default 2; "
                        "how far apart the rounds lie is reported as the machine's own spread; 1 halves the time)")
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
    p.add_argument("--pool", nargs="+", metavar="RUN", help="measure nothing: pool finished calibration runs of "
                   "one job on one kind of machine (their profiles, .sqlite stores or .sqlite.gz) into the "
                   "--out profile; each unit the median of the runs, the residual fitted on all their whole calls "
                   "(runs taken at different times average out a shared machine's slow spells)")
    p.add_argument("--recent", type=int, metavar="N", help="with --pool: pool only the N runs that measured last "
                   "(a shared machine's speed moves over days; the latest runs describe it as it runs now)")
    prior = p.add_mutually_exclusive_group()
    prior.add_argument("--prior", metavar="PROFILE", help="a full calibration: read each unit table against this "
                       "pooled profile of the same job (default: the known pool whose fingerprint matches this "
                       "machine, if any): the run gives this machine's level, table by table, the pool the shape "
                       "where the run's scatter about that level is no more than one pooled run's by chance")
    prior.add_argument("--no-prior", action="store_true", help="a full calibration: judge the run alone, "
                       "even where a pool of this machine kind is known")
    add_fleet_flags(p)
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
    _add_cluster_flags(p)
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
