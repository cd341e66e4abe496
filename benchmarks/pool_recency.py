"""Which calibration runs a shipped pool should hold, judged forward in time: at each cut, pools of
the runs made before it — all of them (``gru-sim calibrate --pool``) and the last N
(``--pool … --recent N``) — predict every typical-shape run recorded after the cut (until the next
one). Nothing a pool is judged on was measured before it was built, so this is what a user who took
the shipped pool that day would have met. Measures nothing.

A shared machine's speed moves over days and stays moved (other tenants come and go): a pool of
every run then predicts no day's machine, while its shape — how time depends on the call — holds
(the "after the level" column).

    .venv/bin/python benchmarks/pool_recency.py [--runs 'calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz']
                                                [--measured benchmarks/data/typical_measured.csv]
                                                [--recent 10 15 20 25] [--every-h 12] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from accuracy import ROOT, add_cpu_flag, judge_recorded, one_run, recorded_runs
from pool_gain import DEFAULT_RUNS
from gru_sim.machine import machine_label

DEFAULT_MEASURED = "benchmarks/data/typical_measured.csv"


def _time(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def run_ends(runs: list[str]) -> dict[str, float]:
    """Each calibration run's last measurement (``time.time()``)."""
    from gru_sim.calibrate.pool import open_runs

    with open_runs(runs, minimum=1) as stores:
        return {run: span[1] for run, store in zip(runs, stores) if (span := store.measured_span()) is not None}


def cuts_between(first: float, last: float, every_s: float) -> list[float]:
    """Cut times every ``every_s`` from ``first`` + ``every_s`` (a pool needs runs before it) while
    before ``last``."""
    out, t = [], first + every_s
    while t < last:
        out.append(t)
        t += every_s
    return out


def pools_at(ends: dict[str, float], cut: float, recent: list[int]) -> dict[str, list[str]]:
    """The runs each pool holds at ``cut``: every run that ended before it ("all") and the last N
    ("last N", where more than N ended; fewer than two: no pool)."""
    from gru_sim.calibrate.pool import latest

    before = sorted((end, run) for run, end in ends.items() if end < cut)
    runs = [run for _, run in before]
    out = {"all": runs} if len(runs) >= 2 else {}
    for n in recent:
        if len(runs) > n:  # (as many or fewer: the same pool as "all")
            out[f"last {n}"] = [runs[k] for k in latest([end for end, _ in before], n)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of calibration runs (default {DEFAULT_RUNS})")
    ap.add_argument("--measured", default=DEFAULT_MEASURED, help=f"recorded typical runs (default {DEFAULT_MEASURED})")
    ap.add_argument("--recent", type=int, nargs="+", default=[10, 15, 20, 25], help="pool sizes N of the last-N pools")
    ap.add_argument("--every-h", type=float, default=12.0, help="hours between cuts (default 12)")
    ap.add_argument("--json", type=Path, help="also write every judged run's figures here")
    add_cpu_flag(ap)
    args = ap.parse_args()
    from gru_sim.calibrate.pool import pool_profile

    runs = sorted(glob.glob(str(ROOT / args.runs) if not Path(args.runs).is_absolute() else args.runs))
    if len(runs) < 3:
        sys.exit(f"{args.runs}: fewer than three calibration runs")
    measured = ROOT / args.measured if not Path(args.measured).is_absolute() else Path(args.measured)
    cpu = args.cpu or machine_label()
    recorded = sorted(recorded_runs(measured, cpu))
    if not recorded:
        sys.exit(f"{measured}: no run recorded on a {cpu!r}")
    ends = run_ends(runs)
    cuts = cuts_between(min(ends.values()), _time(recorded[-1]), 3600.0 * args.every_h)
    print(f"CPU: {cpu}; {len(runs)} calibration runs in {args.runs}; {len(recorded)} recorded typical runs; "
          f"cuts every {args.every_h:g} h")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, cut in enumerate(cuts):
            until = cuts[k + 1] if k + 1 < len(cuts) else float("inf")
            judged = [at for at in recorded if cut <= _time(at) < until]
            pools = pools_at(ends, cut, args.recent)
            if not judged or not pools:
                continue
            when = dt.datetime.fromtimestamp(cut, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            line = []
            for name, chosen in pools.items():
                profile = Path(tmp) / f"cut{k}-{name.replace(' ', '')}.json"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pool_profile(chosen, profile)
                figures = []
                for at in judged:
                    f = judge_recorded(profile, one_run(measured, at, cpu, Path(tmp) / "one.csv"), cpu)
                    figures.append(f["all"])
                    rows.append({"cut": when, "pool": name, "pool_runs": len(chosen), "run_at": at,
                                 **{key: f["all"][key] for key in ("median_ape", "median_signed_error",
                                                                   "median_ape_after_level", "interval_coverage")},
                                 "single_coverage": f["single_measurements"]["interval_coverage"]})
                line.append(f"{name} {np.median([x['median_ape'] for x in figures]):.1f}%")
            print(f"cut {when} UTC: {len(pools['all'])} runs before it, {len(judged)} typical runs after it: "
                  + ", ".join(line), flush=True)
    if not rows:
        sys.exit("no typical run was recorded after a cut with runs before it")
    print("each typical run against the pool shipped before it (medians over the judged runs):")
    for name in dict.fromkeys(r["pool"] for r in rows):
        sel = [r for r in rows if r["pool"] == name]
        med = {key: float(np.median([r[key] for r in sel])) for key in
               ("median_ape", "median_signed_error", "median_ape_after_level")}
        print(f"  {name:8s} n={len(sel):3d}  median APE {med['median_ape']:5.1f}% (mean "
              f"{np.mean([r['median_ape'] for r in sel]):5.1f}%)  signed {med['median_signed_error']:+5.1f}%  "
              f"after the level {med['median_ape_after_level']:4.1f}%  coverage {100 * np.mean([r['single_coverage'] for r in sel]):3.0f}% "
              f"of single measurements")
    if args.json:
        args.json.write_text(json.dumps({"cpu_model": cpu, "every_h": args.every_h, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
