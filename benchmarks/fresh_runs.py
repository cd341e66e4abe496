"""How accurate one fresh calibration is, over every recorded calibration run instead of the one
``accuracy.py`` makes: each run in a folder of runs built into a profile of its own (measures
nothing) and judged on the typical shapes (never fitted) two ways —

* against **the typical-shape run recorded right after it** (``benchmarks/data/typical_measured.csv``:
  the first run recorded within ``--within`` minutes of the calibration's last measurement, with no
  other calibration in between) — what ``accuracy.py`` reports for a fresh calibration, the machine
  in one spell for both;
* against **the median of all recorded runs** — the machine at its typical speed.

Beside them the floor no profile made in one spell can beat: one recorded run of the shapes against
the median of the others.

With ``--prior`` each run is read against the pool of all the other runs (``gru_sim.calibrate.prior``),
as ``gru-sim calibrate`` reads a fresh run against the shipped pool of its machine kind; with ``--prior
earlier``, against the pool of the runs made before it (the pool as it stood: a run with fewer than two
before it stands alone); without it, each run stands alone (``gru-sim calibrate --no-prior``).

    .venv/bin/python benchmarks/fresh_runs.py [--runs 'calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz']
                                              [--measured benchmarks/data/typical_measured.csv]
                                              [--prior [others|earlier]] [--prior-recent N]
                                              [--json OUT]
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

from accuracy import ROOT, add_cpu_flag, judge_recorded, one_run, recorded_runs, run_to_run
from pool_gain import DEFAULT_RUNS, _single
from gru_sim.machine import machine_label

DEFAULT_MEASURED = "benchmarks/data/typical_measured.csv"
FIGURES = ("median_ape", "median_signed_error", "median_ape_after_level", "interval_coverage")


def right_after(ends: dict[str, float], runs: list[str], within_min: float) -> dict[str, str]:
    """Calibration run → the recorded typical run taken right after it: the first that ended within
    ``within_min`` minutes of the calibration's end with no other calibration ending in between."""
    pairs: dict[str, str] = {}
    for at in sorted(runs):
        t = dt.datetime.fromisoformat(at).timestamp()
        before = [(end, run) for run, end in ends.items() if end < t]
        if not before:
            continue
        end, run = max(before)
        if t - end <= 60.0 * within_min and run not in pairs:
            pairs[run] = at
    return pairs


def short(f: dict[str, Any]) -> str:
    return (f"APE {f['median_ape']:5.1f}%  signed {f['median_signed_error']:+5.1f}%  after the level "
            f"{f['median_ape_after_level']:5.1f}%  coverage {100 * f['interval_coverage']:3.0f}%")


def summary(rows: list[dict[str, Any]]) -> str:
    a = np.array([[r[k] for k in FIGURES] for r in rows])
    return (f"median APE {np.median(a[:, 0]):5.1f}% (mean {a[:, 0].mean():5.1f}%)  signed {np.median(a[:, 1]):+5.1f}% "
            f"(mean {a[:, 1].mean():+5.1f}%)  after the level {np.median(a[:, 2]):5.1f}% (mean {a[:, 2].mean():5.1f}%)  "
            f"coverage {100 * a[:, 3].mean():3.0f}%  (n = {len(rows)} runs)")


def prior_runs(spans: list[tuple[float, float]], i: int, earlier: bool, recent: int | None = None) -> list[int]:
    """The runs run ``i`` is read against: every other one, or with ``earlier`` those that ended
    before it began (``spans``: each run's first and last measurement); with ``recent``, only the
    ``recent`` of those that ended last (as ``gru-sim calibrate --pool --recent`` builds a pool)."""
    from gru_sim.calibrate.pool import latest

    use = [j for j in range(len(spans)) if j != i and (not earlier or spans[j][1] < spans[i][0])]
    return [use[k] for k in latest([spans[j][1] for j in use], recent)]


def _against_the_others(runs: list[str], profiles: dict[str, Path], earlier: bool = False,
                        recent: int | None = None) -> dict[str, tuple[float, float]]:
    """Each run's profile read against the pool of the other runs (leave one out), or with ``earlier``
    of the runs that ended before it began (alone where fewer than two did); when each measured."""
    from gru_sim.calibrate.build import _groups, build_profile, run_tables
    from gru_sim.calibrate.drift import SpeedModel
    from gru_sim.calibrate.jobs import JobSpec
    from gru_sim.calibrate.pool import open_runs
    from gru_sim.calibrate.prior import UnitPrior
    from gru_sim.model.profile import save_profile

    with open_runs(runs) as stores:
        spec = JobSpec.model_validate(stores[0].get_meta("job"))
        keys = [key for key, *_ in _groups(spec)]
        steps, gemms = run_tables(spec, stores, [SpeedModel.from_store(store, keys) for store in stores])
        spans = {run: store.measured_span() for run, store in zip(runs, stores)}
        for i, (run, store) in enumerate(zip(runs, stores)):
            use = prior_runs([spans[r] for r in runs], i, earlier, recent)
            prior = UnitPrior.from_runs([steps[j] for j in use], [gemms[j] for j in use]) if len(use) >= 2 else None
            if prior is not None:
                prior.source = f"{len(use)} {'earlier' if earlier else 'other'} runs"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                save_profile(build_profile(spec, store, store.get_meta("fingerprint"), prior=prior), profiles[run])
    return spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of calibration runs (default {DEFAULT_RUNS})")
    ap.add_argument("--measured", default=DEFAULT_MEASURED, help=f"recorded typical runs (default {DEFAULT_MEASURED})")
    ap.add_argument("--within", type=float, default=15.0,
                    help="minutes after a calibration within which a recorded run counts as right after it (15)")
    ap.add_argument("--prior", nargs="?", const="others", choices=("others", "earlier"),
                    help="read each run against the pool of the others (or of the runs made before it: "
                         "'earlier'), as a fresh calibration is read against the shipped pool of its machine kind")
    ap.add_argument("--prior-recent", type=int, metavar="N",
                    help="with --prior: only the N of those runs that measured last (the shipped pool is the "
                         "last 15: `gru-sim calibrate --pool ... --recent 15`)")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    add_cpu_flag(ap)
    args = ap.parse_args()
    if args.prior_recent is not None and not args.prior:
        ap.error("--prior-recent chooses among the runs --prior reads each run against: give --prior too")
    if args.prior_recent is not None and args.prior_recent < 2:
        ap.error("--prior-recent: a pool needs at least two runs")
    runs = sorted(glob.glob(str(ROOT / args.runs) if not Path(args.runs).is_absolute() else args.runs))
    if not runs:
        sys.exit(f"{args.runs}: no calibration runs")
    measured = ROOT / args.measured if not Path(args.measured).is_absolute() else Path(args.measured)
    cpu = args.cpu or machine_label()
    recorded = recorded_runs(measured, cpu)
    if not recorded:
        sys.exit(f"{measured}: no run recorded on a {cpu!r}")
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Each run's own profile, and when it measured (to find the recorded run taken right after it).
        profiles = {run: Path(tmp) / f"run-{k}.json" for k, run in enumerate(runs)}
        spans = {}
        if args.prior:
            spans = _against_the_others(runs, profiles, earlier=args.prior == "earlier", recent=args.prior_recent)
        for run in runs if not args.prior else []:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                span = _single(run, profiles[run])
            if span is None:
                sys.exit(f"{run}: an empty calibration store")
            spans[run] = span
        pairs = right_after({run: end for run, (_, end) in spans.items()}, list(recorded), args.within)
        print(f"CPU: {cpu}; {len(runs)} calibration runs in {args.runs}"
              f"{({'others': ', each read against the pool of the others', 'earlier': ', each read against the pool of the runs before it'}).get(args.prior, ', each alone')}"
              f"{f' (the last {args.prior_recent} of them)' if args.prior_recent else ''}; "
              f"{len(recorded)} recorded typical runs, {len(pairs)} of them right after a calibration")
        for run in runs:
            profile = profiles[run]
            start, end = spans[run]
            row: dict[str, Any] = {"run": Path(run).name, "measured_from": start, "measured_to": end}
            row["record"] = {k: judge_recorded(profile, measured, cpu)["all"][k] for k in FIGURES}
            if run in pairs:
                one = one_run(measured, pairs[run], cpu, Path(tmp) / "after.csv")
                row["after"] = {"run_at": pairs[run], **{k: judge_recorded(profile, one, cpu)["all"][k] for k in FIGURES}}
            out.append(row)
            when = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            after = (f"  | right after ({row['after']['run_at'][11:16]}): {short(row['after'])}" if "after" in row else "")
            print(f"{when} ({(end - start) / 60:4.1f} min)  record: {short(row['record'])}{after}", flush=True)
    paired = [r["after"] for r in out if "after" in r]
    if paired:
        print(f"one fresh calibration vs the typical shapes measured right after it: {summary(paired)}")
    print(f"one fresh calibration vs the median of the recorded runs:             {summary([r['record'] for r in out])}")
    floor = run_to_run(measured, cpu)
    if floor["runs"]:
        print(f"the floor: one recorded run vs the median of the others: median APE {floor['mean_median_ape']:.1f}%, "
              f"after its level {floor['mean_after_level']:.1f}% (means over {floor['runs']} runs)")
    if args.json:
        args.json.write_text(json.dumps({"cpu_model": cpu, "prior": args.prior, "runs": out, "floor": floor},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
