"""``gru-sim predict``: predict one call, or a grid of calls, from a calibration profile without
running a kernel; optionally the simulated kernels as a Chrome trace."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import read_configs_csv
from ..console import print_table
from ..errors import GruSimError
from ..units import fmt_bytes, fmt_rate, fmt_seconds
from .common import check_cluster_flags, config_from, describe, profile_for


def cmd_predict(args: argparse.Namespace) -> int:
    from ..predict import Predictor

    check_cluster_flags(args)
    if args.grid:
        return _predict_grid(args, Predictor(profile_for(args, args.device or "cpu")))
    if args.workers is not None or args.scheduler is not None:
        raise GruSimError("--workers and --scheduler spread a --grid FILE.csv; one prediction runs here")
    missing = [f"--{n.replace('_', '-')}" for n in ("batch", "seq_len", "input_size", "hidden_size")
               if getattr(args, n) is None]
    if missing:
        raise GruSimError(f"predict needs {', '.join(missing)} (or --grid FILE.csv)")
    args.device = args.device or "cpu"
    config = config_from(args)
    predictor = Predictor(profile_for(args, config.device))
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
        from ..sim.executors import simulate_call
        from ..sim.trace import write_chrome_trace

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
    print(describe(config))
    print_table(rows)
    return 0


def _predict_grid(args: argparse.Namespace, predictor: Any) -> int:
    defaults = {"num_layers": args.layers, "bidirectional": args.bidirectional, "mode": args.mode,
                "dtype": args.dtype, "impl": args.impl, "device": args.device or "cpu", "threads": args.threads}
    configs = read_configs_csv(args.grid, defaults)
    if args.workers is not None or args.scheduler is not None:
        from ..distributed import cluster_client, predict_records_on
        from ..predict import GRID_MAX_CHUNKS

        with cluster_client(args.workers, args.scheduler) as client:
            for rec in predict_records_on(client, configs, predictor.profile.path, predictor.here, GRID_MAX_CHUNKS):
                sys.stdout.write(json.dumps(rec) + "\n")
        return 0
    for prediction in predictor.predict_many(configs):
        sys.stdout.write(json.dumps(prediction.to_dict()) + "\n")
    return 0
