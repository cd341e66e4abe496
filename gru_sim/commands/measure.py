"""``gru-sim measure``: time the real kernel on this machine now and print the record or a table."""

from __future__ import annotations

import argparse
import json
import sys

from ..console import print_table
from ..errors import GruSimError
from ..units import fmt_bytes, fmt_rate, fmt_seconds
from .common import config_from, describe


def cmd_measure(args: argparse.Namespace) -> int:
    config = config_from(args)  # checked before torch is imported: bad input is refused at once
    if not args.budget >= 0:  # 0: just the minimum number of samples
        raise GruSimError(f"--budget(={args.budget}) must be >= 0 seconds")
    from ..measure import measure_gru
    from ..measure.timing import TimingPolicy

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
    print(describe(config))
    print_table([
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
