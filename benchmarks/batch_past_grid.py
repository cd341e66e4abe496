"""A recurrent step at large batch sizes: measured against what the profile prices it at.

The calibration times step units up to the job's largest batch (256 by default) and, at small hidden
sizes, on to four times it (since 2026-12-05; older profiles stop at 256); past the last timed cell a
table row continues at its last measured slope. The step need not: at one thread its activations
outgrow a cache level as the batch grows, and at more than one ATen splits an elementwise op over the
threads only from 32,768 elements, a size a row at a small hidden size reaches only past 256 sequences
(found with this script, and why the tables now time those cells). For each hidden
size, mode and thread count this times the step unit's call (a one-layer call of ``input_size`` 1, as
the calibration times it) over ``--steps`` and four times as many steps at each batch size, and prints
the slope — its seconds per step — beside the profile's step (``StepTable``, read inside the table or
extrapolated past it) and their ratio.

The script runs itself with glibc's mapping of large blocks off (``fresh_memory.HELD_ENV``): the long
call of a large batch passes 32 MiB, and as glibc runs by default its slope would then carry the page
faults of its fresh projection and output (on AMD EPYC, 2 threads, inference at B = 1,024, H = 64: 749
µs a step so, 502 µs held), which the profile prices in a term of its own
(``gru_sim.model.fresh_memory``), not in the step. The calibration's unit calls stay under that size.

    .venv/bin/python benchmarks/batch_past_grid.py [--profile P] [--hidden 64 128] [--batch 128 256 384 512 768 1024]
                                                   [--threads 1 2] [--mode inference training] [--steps 16]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fresh_memory import HELD_ENV
from gru_sim.errors import GruSimError
from gru_sim.groups import GroupKey
from gru_sim.measure.timing import TimingPolicy
from gru_sim.measure.units import step_probe, time_gru_call_s
from gru_sim.machine import machine_label
from gru_sim.model.costmodel import step_key
from gru_sim.model.profile import default_profile_path, load_profile

POLICY = TimingPolicy(min_sample_s=0.002, budget_s=0.3, min_samples=7, max_samples=25)


def main() -> None:
    if any(os.environ.get(k) != v for k, v in HELD_ENV.items()):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **HELD_ENV}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    try:
        run()
    except GruSimError as exc:  # a missing profile, a size that is no size: one line, exit 2
        print(f"batch_past_grid.py: {exc}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", type=Path, help="profile to compare with (default: the shipped CPU profile)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 256, 384, 512, 768, 1024])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mode", nargs="+", default=["inference", "training"], choices=["inference", "training"])
    ap.add_argument("--steps", type=int, default=16, help="steps of each timed call (default 16)")
    args = ap.parse_args()
    profile = load_profile(args.profile or default_profile_path("cpu"))
    model = profile.cost_model
    print(f"CPU: {machine_label()}; profile {profile.path}; large blocks held (glibc's mapping off)")
    for mode in args.mode:
        for threads in args.threads:
            table = model.step_tables_.get(step_key(str(GroupKey("cpu", "float32", "torch-gru", threads)), mode))
            if table is None:
                print(f"{mode}, {threads} threads: the profile has no step table for it")
                continue
            for h in args.hidden:
                cells = []
                for b in args.batch:
                    short, long_ = (time_gru_call_s(step_probe(b, h, n, mode, "float32", "torch-gru", "cpu", threads),
                                                    POLICY)[0] for n in (args.steps, 4 * args.steps))
                    measured = (long_ - short) / (3 * args.steps)  # the slope: the call's fixed cost out
                    priced = table.step_parts_s(b, h)[0]
                    past = "*" if b > table.batch[-1] else " "
                    cells.append(f"B {b:5d}{past} {measured * 1e6:8.1f} µs (table {priced * 1e6:8.1f}, x{priced / measured:4.2f})")
                print(f"{mode:9s} t{threads} H {h:5d}: " + "; ".join(cells))
    print("(* past the table's largest batch; x: the table's step over the measured one)")


if __name__ == "__main__":
    main()
