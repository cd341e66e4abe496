"""What fresh memory costs a real call, against what the cost model charges for it.

glibc maps every block of 32 MiB or more afresh and hands it back when freed, so a large call faults
in and zeroes its big tensors on every call (``gru_sim.model.fresh_memory``). Each shape of ``--shapes``
(default: the large calls) is timed at each thread count in two processes of its own: as glibc runs
by default ("fresh"), and with its mapping of large blocks turned off (``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` past any block: "held", the big tensors reuse heap memory the process
already touched). The difference is the seconds fresh memory costs the call; with the minor page faults
of each (4 KiB each) it gives the cost per faulted byte, set beside the calibration's probe
(``fresh_memory_s_per_byte``, in the profile) and the profile's ``fresh_memory`` term. The profile's
prediction is also set against the held time, where the rest of the model shows without fresh memory.

    .venv/bin/python benchmarks/fresh_memory.py [--profile calibration/profiles/cpu-default.json]
                                                [--shapes benchmarks/data/big_shapes.csv] [--threads 1 2]
                                                [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from gru_sim.config import read_named_configs_csv
from gru_sim.machine import machine_label
from gru_sim.model.fresh_memory import fresh_bytes
from gru_sim.model.profile import load_profile
from gru_sim.model.residual import RESIDUAL_TERMS

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "benchmarks" / "data" / "big_shapes.csv"
PROFILE = ROOT / "calibration" / "profiles" / "cpu-default.json"
# glibc's tunables: blocks below this are never mapped afresh, and the heap is never trimmed below this.
HELD_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**40), "MALLOC_TRIM_THRESHOLD_": str(2**41)}
FRESH = RESIDUAL_TERMS.index("fresh_memory")

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from gru_sim.config import GruConfig
from gru_sim.measure.kernels import build_call
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
call = build_call(GruConfig(**args["config"]))
call(); call()
seconds, faults = [], []
for _ in range(args["repeats"]):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - t0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({"seconds": statistics.median(seconds), "faulted_bytes": 4096 * statistics.median(faults)}))
"""


def timed(config: dict, threads: int, held: bool, repeats: int) -> dict:
    # glibc's own defaults, whatever this process inherited (a Dask nanny sets MALLOC_TRIM_THRESHOLD_).
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **(HELD_ENV if held else {})}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"config": config, "threads": threads,
                                                                   "repeats": repeats})],
                         capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", type=Path, default=PROFILE)
    ap.add_argument("--shapes", type=Path, default=SHAPES)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per process (after two warm-ups)")
    ap.add_argument("--json", type=Path, help="also write every row here")
    args = ap.parse_args(argv)
    model = load_profile(args.profile).cost_model
    rows = []
    print(f"CPU: {machine_label()}; profile {args.profile}")
    print(f"{'shape':26s} thr  fresh ms   held ms   paid ms  faulted MiB  ns/B  listed MiB  "
          "charged ms  pred/held")
    for threads in args.threads:
        for name, config in read_named_configs_csv(args.shapes, what="shapes"):
            c = replace(config, threads=threads)
            fresh, held = (timed(c.to_dict(), threads, h, args.repeats) for h in (False, True))
            paid = fresh["seconds"] - held["seconds"]
            faulted = fresh["faulted_bytes"] - held["faulted_bytes"]
            terms = model.term_seconds(c)
            predicted = model.predict_one(c)
            row = {"name": name, "threads": threads, "fresh_s": fresh["seconds"], "held_s": held["seconds"],
                   "paid_s": paid, "faulted_bytes": faulted, "fresh_faulted_bytes": fresh["faulted_bytes"],
                   "held_faulted_bytes": held["faulted_bytes"], "listed_bytes": fresh_bytes(c),
                   "s_per_faulted_byte": paid / faulted if faulted > 0 else None,
                   "charged_s": float(terms[FRESH]), "predicted_s": predicted,
                   "predicted_without_fresh_s": predicted - float(terms[FRESH])}
            rows.append(row)
            per_byte = f"{row['s_per_faulted_byte'] * 1e9:5.2f}" if row["s_per_faulted_byte"] else "    -"
            print(f"{name:26s} t{threads}  {fresh['seconds'] * 1e3:8.1f}  {held['seconds'] * 1e3:8.1f}  "
                  f"{paid * 1e3:8.1f}  {faulted / 2**20:11.1f}  {per_byte}  {row['listed_bytes'] / 2**20:10.1f}  "
                  f"{row['charged_s'] * 1e3:10.1f}  {row['predicted_without_fresh_s'] / held['seconds']:9.3f}")
    print()
    for threads in args.threads:
        mine = [r for r in rows if r["threads"] == threads]
        rates = [r["s_per_faulted_byte"] for r in mine if r["s_per_faulted_byte"]]
        charged = [r["charged_s"] / r["paid_s"] for r in mine if r["paid_s"] > 0]
        if not rates or not charged:
            print(f"t{threads}: nothing fresh")
            continue
        keys = [k for k in model.step_tables_ if k.endswith(f"/t{threads}|inference")]
        probe = model.step_tables_[keys[0]].fresh_s_per_byte() if keys else 0.0
        held_err = [abs(r["predicted_without_fresh_s"] / r["held_s"] - 1) for r in mine]
        whole_err = [abs(r["predicted_s"] / r["fresh_s"] - 1) for r in mine]
        print(f"t{threads}: fresh memory paid a median {statistics.median(rates) * 1e9:.2f} ns per faulted byte "
              f"(range {min(rates) * 1e9:.2f}-{max(rates) * 1e9:.2f}; the profile's probe {probe * 1e9:.2f}); "
              f"charged / paid median {statistics.median(charged):.2f}; the prediction without it against the "
              f"held time {100 * statistics.median(held_err):.1f}% median APE, the whole prediction against the "
              f"fresh time {100 * statistics.median(whole_err):.1f}%")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
