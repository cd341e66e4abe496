"""What several subcommands share: the GRU call the shape flags describe, the profile a command
reads (with what to know about it on stderr), and the check of the cluster flags before any work."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import GruConfig
from ..errors import GruSimError


def positive_int(text: str) -> int:
    """An argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def config_from(args: argparse.Namespace) -> GruConfig:
    """The GRU call the shape flags describe, validated by GruConfig (bad input raises before any work)."""
    return GruConfig(batch=args.batch, seq_len=args.seq_len, input_size=args.input_size,
                     hidden_size=args.hidden_size, num_layers=args.layers,
                     bidirectional=args.bidirectional, mode=args.mode, dtype=args.dtype,
                     impl=args.impl, device=args.device, threads=args.threads)


def describe(c: GruConfig) -> str:
    """One line naming the call, printed above a measure or predict table."""
    return (f"{c.impl} {c.mode} on {c.device} ({c.dtype}, {c.threads} thread{'s' * (c.threads > 1)}): "
            f"B={c.batch} T={c.seq_len} I={c.input_size} H={c.hidden_size} L={c.num_layers}"
            f"{' bidirectional' if c.bidirectional else ''}")


def profile_for(args: argparse.Namespace, device: str | None) -> Any:
    """The profile named by --profile, or the shipped default of ``device``; what to know about it on stderr."""
    from ..profile_choice import load_profile_for

    profile, notes = load_profile_for(args.profile, device)
    for note in notes:
        print(f"gru-sim: {note}", file=sys.stderr)
    return profile


def check_cluster_flags(args: argparse.Namespace) -> None:
    """Before any work: the cluster flags need the optional extra (one line naming it, exit 2)."""
    if getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None:
        from ..distributed import import_distributed

        if args.workers is not None and args.scheduler is not None:
            raise GruSimError("give --workers or --scheduler, not both")
        import_distributed()
