"""A whole call against the units it is composed of, all timed together in one process: a check of
the composition that the machine's pace cannot move.

The cost model prices a call as its step units (one recurrent step, timed as the calibration times it:
a one-layer call of ``input_size`` 1 over n and 4n steps, its slope), its projection GEMMs and the
call's fixed cost. Judged against calls measured at another hour, a shape's error carries that hour's
pace (on a shared 2-core VM, 10-30% between spells). Here the call, its step unit's two calls and its
projection GEMMs take turns in every round, so their ratio is the composition's own error:

    composed = layers · directions · T · step + Σ projection GEMMs (a training call's backward: one
               more for the weight gradient, and one for the input's gradient above the first layer)
               + the step unit's intercept (the call's fixed cost)

and it prints the call over the composed, and the call's excess per step and layer in µs. Each shape
is ``B,T,I,H,L,MODE[,bi]``:

    .venv/bin/python benchmarks/call_vs_units.py --threads 1 64,96,12,100,2,training 32,100,64,512,2,training
                                                 [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch

from gru_sim.calibrate.unit_grid import unit_call_steps
from gru_sim.config import GruConfig
from gru_sim.errors import GruSimError
from gru_sim.machine import machine_label
from gru_sim.measure.kernels import build_call
from gru_sim.measure.units import step_probe


def parse_shape(text: str, threads: int) -> GruConfig:
    """``B,T,I,H,L,MODE[,bi]`` as a config at ``threads`` threads (a GruSimError names a bad one)."""
    parts = text.split(",")
    if len(parts) not in (6, 7) or (len(parts) == 7 and parts[6] != "bi"):
        raise GruSimError(f"{text!r}: a shape is B,T,I,H,L,MODE or B,T,I,H,L,MODE,bi")
    try:
        b, t, i, h, layers = (int(p) for p in parts[:5])
    except ValueError:
        raise GruSimError(f"{text!r}: B, T, I, H and L are whole numbers") from None
    return GruConfig(batch=b, seq_len=t, input_size=i, hidden_size=h, num_layers=layers,
                     bidirectional=len(parts) == 7, mode=parts[5], threads=threads)


def fastest_s(call: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls after one untimed one."""
    call()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return min(out)


def unit_config(config: GruConfig, steps: int) -> GruConfig:
    """The calibration's step-unit call (:func:`gru_sim.measure.units.step_probe`) of ``config``."""
    return step_probe(config.batch, config.hidden_size, steps, config.mode, config.dtype, config.impl,
                      config.device, config.threads)


def compare(config: GruConfig, rounds: int) -> dict[str, float]:
    """Seconds of the call and of its parts (medians over ``rounds`` rounds in turns), and the composed."""
    torch.set_num_threads(config.threads)
    per_step = fastest_s(build_call(unit_config(config, 8))) / 8
    steps = unit_call_steps(per_step, config.mode)
    whole = build_call(config)
    short, long_ = (build_call(unit_config(config, n)) for n in (steps, 4 * steps))
    gemms = []
    for layer in range(config.num_layers):
        a = torch.randn(config.seq_len * config.batch, config.layer_input_size(layer))
        w, bias = torch.randn(3 * config.hidden_size, a.shape[1]), torch.randn(3 * config.hidden_size)
        gemms.append(lambda a=a, w=w, bias=bias: torch.addmm(bias, a, w.t()))
    timings: dict[str, list[float]] = {"whole": [], "short": [], "long": []}
    gemm_s: list[list[float]] = [[] for _ in gemms]
    for _ in range(rounds):
        for name, call in (("whole", whole), ("short", short), ("long", long_)):
            timings[name].append(fastest_s(call))
        for k, g in enumerate(gemms):
            gemm_s[k].append(fastest_s(g))
    med = {k: statistics.median(v) for k, v in timings.items()}
    step_s = (med["long"] - med["short"]) / (3 * steps)
    fixed_s = med["short"] - steps * step_s
    training = config.mode == "training"
    projection_s = sum(config.directions * statistics.median(g) * (1 + training + (training and k > 0))
                       for k, g in enumerate(gemm_s))
    layer_steps = config.num_layers * config.directions * config.seq_len
    composed_s = layer_steps * step_s + projection_s + fixed_s
    return {"whole_s": med["whole"], "step_s": step_s, "unit_steps": steps, "fixed_s": fixed_s,
            "projection_s": projection_s, "composed_s": composed_s,
            "excess_per_step_s": (med["whole"] - composed_s) / layer_steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes", nargs="+", help="B,T,I,H,L,MODE[,bi]")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    try:
        configs = [parse_shape(s, args.threads) for s in args.shapes]
    except GruSimError as exc:
        print(f"call_vs_units.py: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"CPU: {machine_label()}; {args.threads} thread(s), {args.rounds} rounds in turns")
    for text, config in zip(args.shapes, configs):
        r = compare(config, args.rounds)
        print(f"{text:30s} call {r['whole_s'] * 1e3:9.2f} ms  step {r['step_s'] * 1e6:8.1f} µs "
              f"(unit of {r['unit_steps']} and {4 * r['unit_steps']} steps)  projection {r['projection_s'] * 1e3:7.2f} ms  "
              f"composed {r['composed_s'] * 1e3:9.2f} ms  call/composed {r['whole_s'] / r['composed_s']:5.3f}  "
              f"excess {r['excess_per_step_s'] * 1e6:+7.1f} µs a step and layer", flush=True)


if __name__ == "__main__":
    main()
