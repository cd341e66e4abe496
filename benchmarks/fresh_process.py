"""Large calls measured in a process of their own and, right after, in one long process that has run
every shape before them: whether a call's fresh memory costs a dedicated process more than the long
process the profile was timed in.

glibc's malloc maps a request of 32 MiB or more (the ceiling of its dynamic mmap threshold on 64-bit,
``mallopt(3)``) afresh and unmaps it on free, unless a freed block of the heap fits it, so a call with
such buffers faults their pages in on every call. A process that ran other shapes before may hold freed
blocks that fit and pay less. The profile's tables and whole calls were timed in such a long process; a
serving worker, a batch job or ``gru-sim measure`` runs one shape in a process of its own.

For each of ``--shapes`` (default: the large calls of ``benchmarks/data/big_shapes.csv``) at each thread
count: the call's median latency as ``gru-sim measure`` times it, in a fresh process, then in this
(long) process, each with the minor page faults of one more call, beside the pages of the buffers of
32 MiB or more the call allocates by ATen's CPU path (:func:`fresh_buffer_bytes`). The two timings of a
shape are taken back to back, so the machine's slow and fast spells, which move a large call by 10-20%
over an hour on a shared VM, fall on both alike. The machine's cost of a fresh page is timed too (writing
a 96 MiB buffer allocated afresh, less writing one in use, in a process of its own), to say what share of
each call its faults are. Printed: the fresh process against the long one, and the profile against each
(and against the median of ``--recorded`` runs of the same shapes where there are some). Measures about
eleven minutes with the default shapes.

    .venv/bin/python benchmarks/fresh_process.py [--profile calibration/profiles/cpu-default.json]
        [--shapes benchmarks/data/big_shapes.csv] [--recorded benchmarks/data/big_measured.csv]
        [--threads 1 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from accuracy import recorded_runs, typical_shapes
from gru_sim.config import GATES, GruConfig
from gru_sim.model.fresh_memory import MMAP_CEILING_BYTES, fresh_bytes

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = "calibration/profiles/cpu-default.json"
DEFAULT_SHAPES = "benchmarks/data/big_shapes.csv"
DEFAULT_RECORDED = "benchmarks/data/big_measured.csv"
PAGE_BYTES = 4096
PROBE_BYTES = 96 * 2**20

CHILD = r"""
import json, resource, sys, time
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
if args.get("probe_bytes"):  # the calibration's probe, in a process that has freed nothing large yet
    from gru_sim.measure.units import fresh_memory_s_per_byte
    print(json.dumps({"s_per_byte": fresh_memory_s_per_byte(args["threads"], args["probe_bytes"], rounds=15)}))
    sys.exit()
sys.path.insert(0, args["benchmarks"])
from fresh_process import measure_here
print(json.dumps(measure_here(args["config"])))
"""


def measure_here(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` timed in this process as ``gru-sim measure`` times it, and the minor page faults of one
    more call."""
    import resource

    from gru_sim.config import GruConfig
    from gru_sim.measure import measure_gru
    from gru_sim.measure.kernels import build_call

    shape = GruConfig(**config)
    m = measure_gru(shape, probe_memory=False, check_error=False)
    call = build_call(shape)
    call()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    call()
    return {"latency_s": m.latency_s, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}


def fresh_buffer_bytes(config: dict[str, Any]) -> int:
    """Bytes of the buffers of at least ``MMAP_CEILING_BYTES`` one call of ``config`` (torch-gru on the
    CPU, float32) allocates: the cost model's list (:func:`gru_sim.model.fresh_memory.fresh_bytes`: per
    layer and direction the input projection's ``[T, B, 3H]`` output and the stacked ``[T, B, H]``
    outputs, per bidirectional layer their ``[T, B, 2H]`` concatenation; in training also the projection
    output's gradient and the gradient of each upper layer's input) and, in training, the weights'
    gradients (``p.grad`` is cleared before each call; the model prices those with the call's fixed cost
    at each hidden size, which the calibration measures)."""
    c = GruConfig(**{k: config[k] for k in ("batch", "seq_len", "input_size", "hidden_size", "num_layers")},
                  bidirectional=config.get("bidirectional") in (True, "true", "True"),
                  mode=config.get("mode", "inference"))
    weight_grads = 0
    if c.mode == "training":
        for layer in range(c.num_layers):
            sizes = (GATES * c.hidden_size * c.layer_input_size(layer) * 4, GATES * c.hidden_size * c.hidden_size * 4)
            weight_grads += c.directions * sum(s for s in sizes if s >= MMAP_CEILING_BYTES)
    return int(fresh_bytes(c)) + weight_grads


def _child(args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"a measuring process failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fresh_page_s(threads: int) -> float:
    """Seconds a fresh 4 KiB page costs a write at ``threads`` threads on this machine."""
    return _child({"threads": threads, "probe_bytes": PROBE_BYTES})["s_per_byte"] * PAGE_BYTES


def recorded_medians(path: Path, cpu: str) -> dict[tuple[str, int], float]:
    """(name, threads) → median seconds over every run recorded in ``path`` on this CPU kind."""
    if not path.is_file():
        return {}
    by: dict[tuple[str, int], list[float]] = {}
    for run in recorded_runs(path, cpu).values():
        for key, seconds in run.items():
            by.setdefault(key, []).append(seconds)
    return {k: float(np.median(v)) for k, v in by.items()}


def _figures(log_errors: list[float]) -> str:
    e = np.asarray(log_errors)
    return f"{100 * np.median(np.abs(np.expm1(e))):5.1f}% / {100 * np.expm1(np.median(e)):+5.1f}%"


def main() -> None:
    from gru_sim.machine import machine_label
    from gru_sim.model.profile import load_profile
    from gru_sim.predict import Predictor

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=DEFAULT_PROFILE, help=f"the profile judged (default {DEFAULT_PROFILE})")
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"CSV of shapes (default {DEFAULT_SHAPES})")
    ap.add_argument("--recorded", default=DEFAULT_RECORDED,
                    help=f"runs of the same shapes recorded in one long process (default {DEFAULT_RECORDED})")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    ap.add_argument("--json", type=Path, help="also write every row here")
    args = ap.parse_args()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else ROOT / p  # noqa: E731
    if not resolve(args.shapes).is_file():
        sys.exit(f"{args.shapes}: no such file of shapes (a name column, then shape flags by name)")
    predictor = Predictor(load_profile(resolve(args.profile)))
    cpu = machine_label()
    recorded = recorded_medians(resolve(args.recorded), cpu)
    print(f"CPU: {cpu}; profile {args.profile}; each call in a fresh process, then in this long one")
    rows: list[dict[str, Any]] = []
    for threads in args.threads:
        page_s = fresh_page_s(threads)
        print(f"{threads} thread(s): a fresh 4 KiB page costs {page_s * 1e6:.2f} µs "
              f"({page_s * 2**20 / PAGE_BYTES * 1e3:.2f} ms a MiB)")
        for name, shape in typical_shapes([threads], resolve(args.shapes)):
            config = shape.to_dict()
            fresh = _child({"threads": threads, "config": config, "benchmarks": str(ROOT / "benchmarks")})
            long_ = measure_here(config)
            predicted = predictor.predict(shape).latency_s
            pages = fresh_buffer_bytes(config) / PAGE_BYTES
            row = {"name": name, "config": config, "fresh_s": fresh["latency_s"], "fresh_faults": fresh["faults"],
                   "long_s": long_["latency_s"], "long_faults": long_["faults"], "fresh_buffer_pages": pages,
                   "page_s": page_s, "predicted_s": predicted, "recorded_s": recorded.get((name, threads))}
            rows.append(row)
            rec = (f"  recorded {100 * (predicted / row['recorded_s'] - 1):+6.1f}%" if row["recorded_s"] else "")
            print(f"  {name:28s} t{threads}  fresh {row['fresh_s'] * 1e3:8.1f} ms, faults {row['fresh_faults']:7d}"
                  f" ({100 * row['fresh_faults'] * page_s / row['fresh_s']:4.1f}% of it)  long {row['long_s'] * 1e3:8.1f} ms,"
                  f" faults {row['long_faults']:7d}  (buffers >= 32 MiB: {pages:7.0f} pages)"
                  f"  fresh/long {row['fresh_s'] / row['long_s']:5.2f}x  predicted: fresh"
                  f" {100 * (predicted / row['fresh_s'] - 1):+6.1f}%  long {100 * (predicted / row['long_s'] - 1):+6.1f}%{rec}")
    for threads in args.threads:
        sel = [r for r in rows if r["config"]["threads"] == threads]
        ratio = [r["fresh_s"] / r["long_s"] for r in sel]
        faults = [r["fresh_faults"] / max(r["long_faults"], 1) for r in sel]
        line = (f"{threads} thread(s), n={len(sel)}: the fresh process {np.median(ratio):.2f}x the long one "
                f"({min(ratio):.2f}-{max(ratio):.2f}x), its faults {np.median(faults):.2f}x; the profile against the fresh "
                f"process {_figures([float(np.log(r['predicted_s'] / r['fresh_s'])) for r in sel])}, against the long one "
                f"{_figures([float(np.log(r['predicted_s'] / r['long_s'])) for r in sel])}")
        with_rec = [r for r in sel if r["recorded_s"]]
        if with_rec:
            line += (f", against the recorded runs' median "
                     f"{_figures([float(np.log(r['predicted_s'] / r['recorded_s'])) for r in with_rec])}")
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"cpu_model": cpu, "profile": args.profile, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
