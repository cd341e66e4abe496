"""How far a calibration's kernels follow its reference call (``gru_sim.calibrate.drift``): over the
calibration runs of one machine kind, each run's level — the geometric median, over its step units,
of the unit against the median of every run that timed the same cell — against the median time of
its reference call, both in log. The slope is ``drift.KERNEL_ELASTICITY``: a kernel is slowed by the
reference call's slowdown to that power. Measures nothing.

    .venv/bin/python benchmarks/drift_elasticity.py [--runs 'calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz']
                                                    [--json OUT]

Prints, per thread count (hardware group), the Theil–Sen and least-squares slopes with the Theil–Sen
95 % band, the correlation and how many runs tracked their speed; then the same slope by kind of unit
(the recurrent step, the projection GEMM) and the unit's time (a small call feels a busy neighbour more
than a long GEMM does); then the same slope **within a run**, moment by moment — what the build's
correction does (``SpeedModel.corrector`` divides each timing by the run's smoothed reference-call
slowdown at the moment it was taken, relative to the run's median): each step unit, GEMM and whole call
against the median of the runs that timed the same cell, less its run's median, on the run's log
slowdown at its moment, less its median; then each run's two levels.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import theilslopes

from accuracy import ROOT
from pool_gain import DEFAULT_RUNS
from gru_sim.calibrate.drift import GEMM_ELASTICITY, KERNEL_ELASTICITY, MIN_READINGS, SpeedModel
from gru_sim.calibrate.pool import open_runs

# A cell counts towards the runs' levels where at least this many runs timed it.
MIN_RUNS_PER_CELL = 3


# Kernel sizes (a unit's median time over the runs, seconds) the slopes are also given for.
SIZE_BINS_S = ((0.0, 2e-5), (2e-5, 1e-4), (1e-4, 1e-3), (1e-3, 1e-2), (1e-2, float("inf")))
KINDS = ("step", "gemm")


def read_runs(stores: list[Any]) -> list[dict[str, Any]]:
    """What the levels need of each store, read once: its file name, the reference call's median
    seconds per speed-tracked group (the step tables' groups, where it was timed) and its timed units
    of each kind in :data:`KINDS`, keyed by table and parameters."""
    out = []
    for store in stores:
        groups = sorted({u.table.split("|")[0] for u in store.units(kind="step")})
        references = {g: float(np.median(r)) for g in groups if (r := [s for _, s in store.drift(g)])}
        units = {kind: {(u.table, tuple(sorted(u.params.items()))): float(u.value)
                        for u in store.units(kind=kind) if u.value is not None and u.value > 0} for kind in KINDS}
        out.append({"name": Path(store.path).name, "reference_s": references, "units": units})
    return out


def run_levels(runs: list[dict[str, Any]], kind: str = "step", size_s: tuple[float, float] | None = None
               ) -> dict[str, list[tuple[str, float, float]]]:
    """Per hardware group: (run, reference call's median seconds, units' level) of every run
    (:func:`read_runs`) that timed the reference call. The level is the geometric median over the
    run's units of ``kind`` (``step`` or ``gemm``; a GEMM table serves the group of its thread count)
    of each unit against the median of the runs that timed the same cell; 1 for a run whose units are
    the median run's. ``size_s``: only the cells whose median time lies in ``[low, high)`` seconds."""
    counts: dict[tuple[str, tuple[tuple[str, Any], ...]], list[float]] = {}
    for run in runs:
        for key, v in run["units"][kind].items():
            counts.setdefault(key, []).append(np.log(v))
    median = {key: float(np.median(v)) for key, v in counts.items() if len(v) >= MIN_RUNS_PER_CELL}
    if size_s is not None:
        median = {key: v for key, v in median.items() if size_s[0] <= np.exp(v) < size_s[1]}
    out: dict[str, list[tuple[str, float, float]]] = {}
    for run in runs:
        # The speed-tracked groups are the step tables'; a unit belongs to the one of its thread count.
        for group, reference_s in run["reference_s"].items():
            threads = group.rsplit("/", 1)[-1]
            logs = [np.log(v) - median[key] for key, v in run["units"][kind].items()
                    if key in median and key[0].split("|")[0].rsplit("/", 1)[-1] == threads]
            if logs:
                out.setdefault(group, []).append((run["name"], reference_s, float(np.exp(np.median(logs)))))
    return out


def size_slopes(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slope of each kind of unit (:data:`KINDS`) in each size band (:data:`SIZE_BINS_S`) per group,
    where at least ten runs give it a level."""
    out = []
    for kind in KINDS:
        for low, high in SIZE_BINS_S:
            for group, rows in run_levels(runs, kind, (low, high)).items():
                if len(rows) >= 10:
                    out.append({"kind": kind, "group": group, "size_s": [low, high], **slopes(rows)})
    return out


# Within a run: the kinds of timing (a whole call is a stored design point), and at most this many
# (timing, moment) pairs per slope (Theil-Sen holds every pair of them in memory).
MOMENT_KINDS = ("step", "gemm", "call")
MOMENT_MAX_PAIRS = 3000


def read_moments(stores: list[Any]) -> list[dict[tuple[str, str], list[tuple[Any, float, float]]]]:
    """Per store: every step unit, GEMM and whole call (a design point measured ok) as (cell, log seconds,
    log slowdown of its thread count's speed-tracked group at the moment it was taken, relative to the
    run's median, :class:`SpeedModel` at power 1), by kind and thread count; timings of a group that did
    not track its speed are left out."""
    out = []
    for store in stores:
        groups = sorted({u.table.split("|")[0] for u in store.units(kind="step")})
        speed = SpeedModel.from_store(store, groups)
        by_threads = {g.rsplit("/", 1)[-1]: g for g in groups if len(store.drift(g)) >= MIN_READINGS}
        rows: dict[tuple[str, str], list[tuple[Any, float, float]]] = {}

        def add(kind: str, table: str, cell: Any, seconds: float | None, at: float) -> None:
            threads = table.split("|")[0].rsplit("/", 1)[-1]
            group = by_threads.get(threads)
            if group is not None and seconds is not None and seconds > 0 and at > 0:
                rows.setdefault((kind, threads), []).append(
                    ((table, cell), float(np.log(seconds)), float(np.log(speed.slowdown(group, at, 1.0)))))

        for kind in ("step", "gemm"):
            for u in store.units(kind=kind):
                add(kind, u.table, tuple(sorted(u.params.items())), u.value, u.at)
        for p in store.points():
            if p.role in ("train", "holdout") and p.status == "ok":
                add("call", p.group, json.dumps(p.config.to_dict(), sort_keys=True), p.latency_s, p.at)
        out.append(rows)
    return out


def moment_slopes(runs: list[dict[tuple[str, str], list[tuple[Any, float, float]]]], seed: int = 0
                  ) -> list[dict[str, Any]]:
    """Per kind and thread count: the Theil–Sen slope (95% band) and correlation of each timing's log
    deviation from its cell's median over the runs (cells timed by at least ``MIN_RUNS_PER_CELL`` runs),
    less its run's median deviation, on its moment's log slowdown, less its run's median (at most
    ``MOMENT_MAX_PAIRS`` timings drawn at random; at least ten needed)."""
    out = []
    rng = np.random.default_rng(seed)
    for kind in MOMENT_KINDS:
        for threads in sorted({t for run in runs for k, t in run if k == kind}):
            cells: dict[Any, list[float]] = {}
            for run in runs:
                for cell, v, _ in run.get((kind, threads), []):
                    cells.setdefault(cell, []).append(v)
            median = {c: float(np.median(v)) for c, v in cells.items() if len(v) >= MIN_RUNS_PER_CELL}
            dev, moment = [], []
            for run in runs:
                rows = [(v - median[c], s) for c, v, s in run.get((kind, threads), []) if c in median]
                if len(rows) < 2:
                    continue
                d, s = np.array(rows).T
                dev.extend(d - np.median(d))
                moment.extend(s - np.median(s))
            d, s = np.array(dev), np.array(moment)
            use = np.flatnonzero(np.abs(s) > 1e-12)
            if use.size < 10:
                continue
            pick = rng.choice(use, size=min(MOMENT_MAX_PAIRS, use.size), replace=False)
            ts = theilslopes(d[pick], s[pick])
            out.append({"kind": kind, "threads": threads, "timings": int(use.size), "theil_sen": float(ts[0]),
                        "theil_sen_low": float(ts[2]), "theil_sen_high": float(ts[3]),
                        "correlation": float(np.corrcoef(d[use], s[use])[0, 1])})
    return out


def slopes(rows: list[tuple[str, float, float]]) -> dict[str, float]:
    x = np.log([r[1] for r in rows])
    y = np.log([r[2] for r in rows])
    ts = theilslopes(y, x)
    return {"runs": len(rows), "theil_sen": float(ts[0]), "theil_sen_low": float(ts[2]),
            "theil_sen_high": float(ts[3]), "least_squares": float(np.polyfit(x, y, 1)[0]),
            "correlation": float(np.corrcoef(x, y)[0, 1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of calibration runs (default {DEFAULT_RUNS})")
    ap.add_argument("--json", type=Path, help="also write the slopes and every run's levels here")
    args = ap.parse_args()
    runs = sorted(glob.glob(str(ROOT / args.runs) if not Path(args.runs).is_absolute() else args.runs))
    if len(runs) < MIN_RUNS_PER_CELL:
        sys.exit(f"{args.runs}: {len(runs)} calibration runs; the levels need at least {MIN_RUNS_PER_CELL}")
    with open_runs(runs, minimum=MIN_RUNS_PER_CELL) as stores:
        runs_read = read_runs(stores)
        moments = moment_slopes(read_moments(stores))
    levels = run_levels(runs_read)
    by_size = size_slopes(runs_read)
    out: dict[str, Any] = {"kernel_elasticity": KERNEL_ELASTICITY, "groups": {}}
    print(f"{len(runs)} calibration runs in {args.runs}; drift.KERNEL_ELASTICITY = {KERNEL_ELASTICITY}")
    for group, rows in levels.items():
        if len(rows) < 3:
            print(f"{group}: {len(rows)} runs tracked their speed; too few for a slope")
            continue
        s = slopes(rows)
        levels_out = [{"run": r, "reference_s": ref, "units_level": lv} for r, ref, lv in rows]
        out["groups"][group] = {**s, "levels": levels_out}
        print(f"{group}: slope {s['theil_sen']:.2f} (Theil–Sen; 95% {s['theil_sen_low']:.2f}–"
              f"{s['theil_sen_high']:.2f}), {s['least_squares']:.2f} least squares, "
              f"correlation {s['correlation']:.2f}, over {s['runs']} runs")
    out["by_kind_and_size"] = by_size
    print("by kind of unit and its time (the median over the runs):")
    for row in by_size:
        low, high = row["size_s"]
        band = f"{1e6 * low:.0f}–{1e6 * high:.0f} µs" if np.isfinite(high) else f"≥ {1e6 * low:.0f} µs"
        print(f"  {row['kind']:4s} {row['group']}  {band:>14s}: slope {row['theil_sen']:.2f} (95% "
              f"{row['theil_sen_low']:.2f}–{row['theil_sen_high']:.2f}), correlation {row['correlation']:.2f}, "
              f"{row['runs']} runs")
    out["within_run"] = moments
    print(f"within a run, moment by moment (the build corrects steps and whole calls at the power "
          f"{KERNEL_ELASTICITY}, GEMMs at {GEMM_ELASTICITY}):")
    for row in moments:
        print(f"  {row['kind']:4s} {row['threads']}: slope {row['theil_sen']:.2f} (95% {row['theil_sen_low']:.2f}–"
              f"{row['theil_sen_high']:.2f}), correlation {row['correlation']:.2f}, {row['timings']} timings")
    for group, rows in levels.items():
        for run, ref, lv in rows:
            print(f"  {group}  {run:44s} reference {1e6 * ref:7.1f} µs   step units {lv:5.2f}x the median run")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
