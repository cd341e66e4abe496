"""Where a profile errs along the axes of a GRU call: the profile's prediction of every whole call its
calibration runs measured (fitted, held-out and beyond-range points of each stored run), each run's own
level divided out (per thread count: the run's speed against the profile's), grouped by mode, thread
count, alignment of the hidden and input sizes, batch (and whether it lies on the step tables' batch
grid or between its points), hidden size, sequence length, input size, layers and direction. Measures
nothing.

A model error tied to one of these axes shows as a group's median signed error away from 0; what is
left in every group alike is the spread of single measurements on this machine. The fitted points are
in-sample for the residual's handful of coefficients per group and mode (the ``role`` line compares
them with the held-out ones).

    .venv/bin/python benchmarks/design_errors.py [--profile calibration/profiles/cpu-default.json]
                                                 [--runs 'calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz']
"""

from __future__ import annotations

import argparse
import glob
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from accuracy import ROOT
from pool_gain import DEFAULT_RUNS
from gru_sim.calibrate.pool import open_runs
from gru_sim.config import GruConfig
from gru_sim.machine import machine_label
from gru_sim.model.library import describe
from gru_sim.model.profile import load_profile
from gru_sim.predict import Predictor

DEFAULT_PROFILE = "calibration/profiles/cpu-default.json"
ROLES = ("train", "holdout", "beyond")


def _band(value: int, edges: tuple[int, ...], name: str) -> tuple[int, str]:
    """``value``'s band among ``edges`` (each the first value of the next band): its lower end (to sort
    by) and its name, e.g. (9, "B 9–64")."""
    lo = 1
    for edge in edges:
        if value < edge:
            return lo, (f"{name} {lo}–{edge - 1}" if edge - 1 > lo else f"{name} {lo}")
        lo = edge
    return lo, f"{name} ≥{lo}"


AXES: dict[str, Callable[[GruConfig], object]] = {
    "mode": lambda c: c.mode,
    "threads": lambda c: c.threads,
    "H a multiple of 16": lambda c: c.hidden_size % 16 == 0,
    "I a multiple of 16": lambda c: c.input_size % 16 == 0,
    "batch": lambda c: _band(c.batch, (2, 9, 65), "B"),
    "hidden": lambda c: _band(c.hidden_size, (64, 256, 1024), "H"),
    "steps": lambda c: _band(c.seq_len, (8, 64), "T"),
    "input": lambda c: _band(c.input_size, (16, 256), "I"),
    "layers": lambda c: c.num_layers,
    "bidirectional": lambda c: c.bidirectional,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=DEFAULT_PROFILE, help=f"the profile judged (default {DEFAULT_PROFILE})")
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of calibration runs (default {DEFAULT_RUNS})")
    args = ap.parse_args()
    runs = sorted(glob.glob(str(ROOT / args.runs) if not Path(args.runs).is_absolute() else args.runs))
    if not runs:
        sys.exit(f"{args.runs}: no calibration runs")
    profile = ROOT / args.profile if not Path(args.profile).is_absolute() else Path(args.profile)
    loaded = load_profile(profile)
    predictor = Predictor(loaded)
    # The batch sizes the step tables were timed at: a call's batch on that grid, or between its points.
    grid = {b for table in loaded.cost_model.step_tables_.values() for b in table.batch}
    dense = max((b for b in range(1, max(grid, default=0) + 1) if all(x in grid for x in range(1, b + 1))), default=0)
    axes = {**AXES, "batch on step grid": lambda c: ("within the dense start" if c.batch <= dense else
                                                     "on a grid point" if c.batch in grid else "between grid points")}
    points: list[tuple[str, str, GruConfig, float]] = []  # run, role, config, log(predicted / measured)
    made_on = None  # the machine the runs were measured on (one kind: open_runs checks)
    for run in runs:
        with warnings.catch_warnings(), open_runs([run], minimum=1) as stores:
            warnings.simplefilter("ignore")
            made_on = made_on or describe(stores[0].get_meta("fingerprint") or {})
            for p in stores[0].points():
                if p.role in ROLES and p.status == "ok" and p.latency_s and not p.noisy:
                    points.append((run, p.role, p.config,
                                   float(np.log(predictor.predict(p.config).latency_s / p.latency_s))))
    if not points:
        sys.exit(f"{args.runs}: no measured whole calls in these runs")
    levels: dict[tuple[str, int], list[float]] = defaultdict(list)
    for run, _, c, e in points:
        levels[(run, c.threads)].append(e)
    level = {k: float(np.median(v)) for k, v in levels.items()}
    after = [(role, c, e - level[(run, c.threads)]) for run, role, c, e in points]

    def line(groups: dict[object, list[float]]) -> str:
        return "   ".join(f"{k[1] if isinstance(k, tuple) else k}: n={len(v)} signed {100 * np.expm1(np.median(v)):+4.1f}% APE "
                           f"{100 * np.median(np.abs(np.expm1(v))):4.1f}%" for k, v in groups.items())

    every = [e for _, _, e in after]
    print(f"runs made on {made_on} (this machine: {machine_label()}); profile {args.profile}; {len(points)} "
          f"whole calls of {len(runs)} runs; "
          f"after each run's level: median APE {100 * np.median(np.abs(np.expm1(every))):.1f}%, "
          f"signed {100 * np.expm1(np.median(every)):+.1f}%")
    by_role: dict[object, list[float]] = {r: [e for role, _, e in after if role == r] for r in ROLES}
    print(f"{'role':20s} {line({k: v for k, v in by_role.items() if v})}")
    for name, key in axes.items():
        groups: dict[object, list[float]] = defaultdict(list)
        for _, c, e in after:
            groups[key(c)].append(e)
        print(f"{name:20s} {line(dict(sorted(groups.items(), key=lambda kv: (str(type(kv[0])), kv[0]))))}")


if __name__ == "__main__":
    main()
