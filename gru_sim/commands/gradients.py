"""``gru-sim gradients``: how the gradient of a loss on the last step reaches earlier steps,
measured at one or more sequence lengths and printed as a record or a table."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import GruSimError


def cmd_gradients(args: argparse.Namespace) -> int:
    from ..gradient_flow import ERROR_DTYPES, GradientSetup, gradient_record

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

    from ..measure.gradients import measure_gradients

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

    from ..gradient_flow import SATURATED_Z, fmt_ratio

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
