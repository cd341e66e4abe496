"""A call's fixed cost at each hidden size, and how it depends on the state of the process's memory
allocator. For each hidden size: the step unit's call (a one-layer training call of ``input_size``
1 at B = 1, as the calibration times it) over n and 4n steps, the intercept of the line through them
— the seconds a call pays once, whatever its length — and the slope, one step's seconds. Each hidden
size is timed in a process of its own twice: as started ("fresh": glibc returns freed blocks above
its small starting thresholds to the OS, and the next call faults them in again) and after a 30 MiB
block was allocated and freed ("warm": glibc's mmap and trim thresholds then sit near their maximum and
freed gradient buffers are reused, as in any process that has run a large call — the calibration's,
the benchmarks', a training loop's). Then ``--shapes`` (default: the typical shapes) whole, each in a
fresh and a warm process: how much of the difference a user's call sees.

    .venv/bin/python benchmarks/call_intercepts.py [--hidden 256 512 768 1024] [--steps 4] [--threads 1]
                                                   [--mode training] [--shapes CSV | --no-shapes]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "benchmarks" / "data" / "typical_shapes.csv"
# Freed, a block at most glibc's largest mmap threshold (32 MiB on 64-bit) raises that threshold (and
# the trim threshold, to twice it) to its size; a larger block leaves them where they were.
WARM_BLOCK_BYTES = 30 * 2**20

CHILD = r"""
import json, sys
import torch
from gru_sim.config import GruConfig
from gru_sim.measure import measure_gru
from gru_sim.measure.timing import TimingPolicy
from gru_sim.measure.units import step_probe, time_gru_call_s
args = json.loads(sys.argv[1])
if args["warm"]:
    block = torch.empty(args["warm_bytes"] // 4)
    block.fill_(1.0)
    del block
policy = TimingPolicy(min_sample_s=0.002, budget_s=0.4, min_samples=9, max_samples=40)
if "hidden" in args:
    n, h = args["steps"], args["hidden"]
    short, long_ = (time_gru_call_s(step_probe(1, h, s, args["mode"], "float32", "torch-gru", "cpu",
                                               args["threads"]), policy)[0] for s in (n, 4 * n))
    per_step = (long_ - short) / (3 * n)
    print(json.dumps({"short_s": short, "long_s": long_, "per_step_s": per_step, "intercept_s": short - n * per_step}))
else:
    c = GruConfig(**args["config"])
    print(json.dumps({"latency_s": measure_gru(c, policy=policy, probe_memory=False, check_error=False).latency_s}))
"""


def child(args: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({**args, "warm_bytes": WARM_BLOCK_BYTES})],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from gru_sim.machine import machine_label

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512, 768, 1024])
    ap.add_argument("--steps", type=int, default=4, help="n: the short call's steps (the long one has 4n)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("inference", "training"), default="training")
    ap.add_argument("--shapes", default=str(SHAPES), help="whole calls to time fresh and warm (CSV)")
    ap.add_argument("--no-shapes", action="store_true", help="only the intercepts")
    args = ap.parse_args()
    print(f"CPU: {machine_label()}; {args.mode}, {args.threads} thread(s), B = 1, {args.steps} and "
          f"{4 * args.steps} steps")
    for h in args.hidden:
        row = []
        for warm in (False, True):
            r = child({"hidden": h, "steps": args.steps, "mode": args.mode, "threads": args.threads, "warm": warm})
            row.append(f"{'warm' if warm else 'fresh'}: intercept {r['intercept_s'] * 1e3:7.3f} ms, "
                       f"step {r['per_step_s'] * 1e3:6.3f} ms ({args.steps} steps {r['short_s'] * 1e3:7.2f} ms)")
        print(f"  H = {h:5d}   " + "   ".join(row))
    if args.no_shapes:
        return
    with open(args.shapes, newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"whole calls ({Path(args.shapes).name}), {args.threads} thread(s), fresh against warm:")
    for r in rows:
        config = {"batch": int(r["batch"]), "seq_len": int(r["seq_len"]), "input_size": int(r["input_size"]),
                  "hidden_size": int(r["hidden_size"]), "num_layers": int(r["num_layers"]),
                  "bidirectional": r["bidirectional"].lower() == "true", "mode": r["mode"], "threads": args.threads}
        fresh, warm = (child({"config": config, "warm": w})["latency_s"] for w in (False, True))
        print(f"  {r['name']:22s} fresh {fresh * 1e3:9.3f} ms   warm {warm * 1e3:9.3f} ms   fresh/warm {fresh / warm:5.2f}")


if __name__ == "__main__":
    main()
