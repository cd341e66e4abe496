"""How a recurrent step's time grows with the batch between the step tables' grid points: the step
unit (a one-layer call of ``input_size`` 1, as the calibration times it, over a few steps, divided by
them) at B = 32 … 64, in five shuffled rounds, on one thread. Prints each batch's median microseconds
per step and its time per sequence against B = 32's: a kernel that ran in blocks of 16 rows would
cost B = 33 what it costs B = 48; one that runs blocks of four rows and a remainder in narrower passes
costs B = 33–35 more than B = 36 per sequence (the step tables' monotone fit links batch sizes four
apart, ``gru_sim.model.units.BATCH_BLOCK_ROWS``).

    .venv/bin/python benchmarks/odd_batch_steps.py [--hidden 128 256 512] [--mode inference] [--batches 32 33 ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from gru_sim.machine import machine_label
from gru_sim.measure.units import step_probe, time_gru_call_s

BATCHES = (32, 33, 34, 35, 36, 40, 44, 47, 48, 49, 56, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--mode", choices=("inference", "training"), default="inference")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="batch sizes (32 among them)")
    args = ap.parse_args()
    if 32 not in args.batches:
        ap.error("--batches must include 32, the batch the others are compared with")
    batches = tuple(args.batches)
    torch.set_num_threads(1)
    steps = 16 if args.mode == "inference" else 8
    print(f"CPU: {machine_label()}; {args.mode}, 1 thread, {steps} steps a call, {args.rounds} rounds")
    for hidden in args.hidden:
        taken: dict[int, list[float]] = {b: [] for b in batches}
        for r in range(args.rounds):
            for b in np.random.default_rng(r).permutation(batches):
                config = step_probe(int(b), hidden, steps, args.mode, "float32", "torch-gru", "cpu", 1)
                taken[int(b)].append(time_gru_call_s(config)[0] / steps)
        med = {b: float(np.median(v)) for b, v in taken.items()}
        print(f"H={hidden}: " + "  ".join(f"B{b} {med[b] * 1e6:.1f} µs" for b in batches))
        print("  per sequence against B32: " + "  ".join(f"{b}: {med[b] / med[32] * 32 / b:.2f}" for b in batches))


if __name__ == "__main__":
    main()
