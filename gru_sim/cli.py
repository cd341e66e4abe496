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

from .config import DEVICES, DTYPES, IMPLS, MODES, GruConfig
from .errors import GruSimError
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


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# ----------------------------------------------------------------------------------------- measure
def cmd_measure(args: argparse.Namespace) -> int:
    from .measure import measure_gru
    from .measure.timing import TimingPolicy

    config = _config_from(args)
    policy = TimingPolicy(budget_s=args.budget)
    m = measure_gru(config, policy=policy, probe_memory=not args.no_memory)
    rec = m.to_record()
    if args.json:
        print(json.dumps(rec))
        return 0
    print(_describe(config))
    print(_table([
        ("latency (median)", fmt_seconds(m.latency_s)),
        ("spread (IQR)", f"{fmt_seconds(m.latency_iqr_s)} ({m.latency_iqr_s / m.latency_s:.1%} of median)"
                         + ("  NOISY: rerun on a quieter machine" if m.noisy else "")),
        ("samples", f"{len(m.samples_s)} × {m.loops} call{'s' * (m.loops > 1)}"),
        ("first call (cold)", fmt_seconds(m.first_call_s)),
        ("throughput", f"{fmt_rate(rec['throughput_seq_per_s'], 'seq/s')}, "
                       f"{fmt_rate(rec['throughput_tokens_per_s'], 'tokens/s')}"),
        ("peak memory", fmt_bytes(m.peak_memory_bytes)),
        ("max rel. error", "-" if m.max_rel_error is None else f"{m.max_rel_error:.2e} vs float64 reference"),
        ("machine", f"{m.fingerprint.get('cpu_model')}, torch {m.fingerprint.get('torch')}"),
    ]))
    return 0


# -------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="gru-sim", description="Measure, calibrate, predict and simulate GRU "
                             "performance.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    p = sub.add_parser("measure", help="time the real kernel on this machine now")
    _add_shape_flags(p)
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timed samples (default 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe (a subprocess)")
    p.set_defaults(func=cmd_measure)
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
