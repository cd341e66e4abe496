"""How accurate ``gru-sim calibrate --quick`` is, over every stored quick adaptation instead of the one
at hand: each store in ``benchmarks/data/quick_runs/`` is derived again into an adapted profile with
this gru-sim (measures nothing: every timing is in the store) and judged against the typical shapes
(never fitted) measured right after it (``benchmarks/data/quick_measured.csv``: the first run recorded
within ``--within`` minutes of the adaptation's last measurement, on the machine it adapted to).

Each adaptation is derived two ways, from the same timings: its step units' two passes taken as one
timing (their geometric mean: what ``calibrate --quick`` does, matching a source whose units were
timed once) and as the faster of the two (what it did before). A store made under kernel-choosing
settings (the README's emulated second machine) is derived again under the same settings, in a
process of its own. A step unit that the derivation would now time once more (slower than a bigger
neighbour) keeps its first estimate: nothing is measured.

    .venv/bin/python benchmarks/quick_runs.py [--source calibration/profiles/cpu-default.json]
                                              [--runs 'benchmarks/data/quick_runs/*.sqlite.gz'] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from accuracy import ROOT, add_cpu_flag, judge_recorded, one_run, recorded_runs
from fresh_runs import FIGURES, right_after, short
from gru_sim.calibrate.pool import readable_store
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.machine import KERNEL_ENV_VARS, kernel_env_text, label_of, machine_label

DEFAULT_RUNS = "benchmarks/data/quick_runs/*.sqlite.gz"
DEFAULT_MEASURED = "benchmarks/data/quick_measured.csv"
DEFAULT_SOURCE = "calibration/profiles/cpu-default.json"
ESTIMATES = {"one timing": True, "faster of two": False}  # name → UnitTimer's passes_as_one


def fingerprint_of(store_path: Path) -> dict[str, Any]:
    """The fingerprint of the machine the store was measured on."""
    with MeasurementStore(store_path) as store:
        return store.get_meta("fingerprint") or {}


def kernel_env_of(store_path: Path) -> dict[str, str]:
    """The kernel-choosing settings the store was measured under (from its fingerprint)."""
    return dict(fingerprint_of(store_path).get("kernel_env") or {})


def cpu_of(fp: dict[str, Any], default: str) -> str:
    """The machine kind a store of fingerprint ``fp`` was measured on, as the records name it: its
    label where the fingerprint has the CPU's family and model numbers, else ``default`` (a store from
    before they were recorded) with the store's kernel-choosing settings."""
    return label_of(fp) if fp.get("cpu_signature") else default + kernel_env_text(fp.get("kernel_env"))


def child_env(kernel_env: dict[str, str]) -> dict[str, str]:
    """This process's environment with exactly ``kernel_env``'s kernel-choosing settings."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV_VARS}
    return {**env, **kernel_env}


def derive(store_path: Path, source: Path, out: Path, passes_as_one: bool) -> None:
    """``out``: the adaptation of ``source`` that a copy of the store gives, its step units derived
    afresh with ``passes_as_one``, nothing timed."""
    from gru_sim.calibrate import adapt, unit_grid
    from gru_sim.model.profile import load_profile

    copy = out.with_suffix(".sqlite")
    shutil.copyfile(store_path, copy)
    con = sqlite3.connect(copy)
    con.execute("delete from units where kind in ('step', 'fixed', 'intercept')")  # derived: derive them again
    con.commit()
    con.close()

    class Stored(unit_grid.UnitTimer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "passes_as_one": passes_as_one})

        def _timed(self, group, table, kind, params, run):  # type: ignore[no-untyped-def]
            have = self.store.get_unit(table, kind, params)
            return None if have is None else have.value  # never measure

    def stored_point(store, group, role, config):  # type: ignore[no-untyped-def]
        have = [p for p in store.points(group, role) if p.config == config]
        return have[0].latency_s if have else None  # a check call not measured then is left out

    real = adapt.UnitTimer, adapt._measure_point
    adapt.UnitTimer, adapt._measure_point = Stored, stored_point  # type: ignore[misc]
    try:
        adapt.adapt_profile(load_profile(source), out)
    finally:
        adapt.UnitTimer, adapt._measure_point = real  # type: ignore[misc]


def judge_one(run: str, source: Path, measured: Path, within_min: float, cpu: str) -> dict[str, Any]:
    """One stored adaptation, derived both ways and judged against the run recorded right after it
    (run in the process whose settings the store was measured under)."""
    row: dict[str, Any] = {"run": Path(run).name, "cpu_model": cpu}
    with tempfile.TemporaryDirectory() as tmp:
        store_path = readable_store(Path(run), Path(tmp))
        with MeasurementStore(store_path) as store:
            span = store.measured_span()
        if span is None:
            return {**row, "error": "an empty store"}
        row["measured_from"], row["measured_to"] = span
        pairs = right_after({run: span[1]}, list(recorded_runs(measured, cpu)), within_min)
        if run not in pairs:
            return {**row, "error": f"no typical run recorded on a {cpu!r} within {within_min:g} min after it"}
        row["after_run_at"] = pairs[run]
        after = one_run(measured, pairs[run], cpu, Path(tmp) / "after.csv")
        for name, as_one in ESTIMATES.items():
            profile = Path(tmp) / f"adapted-{int(as_one)}.json"
            derive(store_path, source, profile, as_one)
            judged = judge_recorded(profile, after, cpu)
            row[name] = {label: {k: judged[label][k] for k in FIGURES} for label in ("all", "t1", "t2")
                         if label in judged}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of quick-adaptation stores (default {DEFAULT_RUNS})")
    ap.add_argument("--measured", default=DEFAULT_MEASURED, help=f"recorded typical runs (default {DEFAULT_MEASURED})")
    ap.add_argument("--source", default=DEFAULT_SOURCE, help=f"the profile they adapted (default {DEFAULT_SOURCE})")
    ap.add_argument("--within", type=float, default=15.0,
                    help="minutes after an adaptation within which a recorded run counts as right after it (15)")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a single store, in this process (the parent's child)
    add_cpu_flag(ap)
    args = ap.parse_args()
    resolve = lambda p: Path(p) if Path(p).is_absolute() else ROOT / p  # noqa: E731
    measured, source = resolve(args.measured), resolve(args.source)
    if args.one:
        print(json.dumps(judge_one(args.one, source, measured, args.within, args.cpu or machine_label())))
        return
    runs = sorted(glob.glob(str(resolve(args.runs))))
    if not runs:
        sys.exit(f"{args.runs}: no quick-adaptation stores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            fp = fingerprint_of(readable_store(Path(run), Path(tmp)))
            settings, cpu = dict(fp.get("kernel_env") or {}), cpu_of(fp, args.cpu or machine_label(settings=False))
            proc = subprocess.run([sys.executable, __file__, "--one", run, "--measured", str(measured),
                                   "--source", str(source), "--within", str(args.within), "--cpu", cpu],
                                  env=child_env(settings), capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{run}: {proc.stderr.strip()[-2000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            if "error" in row:
                print(f"{row['run']}: {row['error']}")
                continue
            print(f"{row['run']} ({row['cpu_model']}), the typical shapes measured at {row['after_run_at'][11:16]}:")
            for name in ESTIMATES:
                f = row[name]
                print(f"   {name:13s}  {short(f['all'])}  | t1 {f['t1']['median_ape']:4.1f}% / "
                      f"{f['t1']['median_signed_error']:+5.1f}%  t2 {f['t2']['median_ape']:4.1f}% / "
                      f"{f['t2']['median_signed_error']:+5.1f}%")
    judged = [r for r in rows if "error" not in r]
    print(f"source profile: {args.source}; {len(judged)} of {len(rows)} adaptations with a typical run right after")
    for name in ESTIMATES:
        a = np.array([[r[name]["all"][k] for k in FIGURES[:3]] for r in judged]).reshape(-1, 3)
        if len(a):
            print(f"   {name:13s}  median over the adaptations: APE {np.median(a[:, 0]):5.1f}% "
                  f"(mean {a[:, 0].mean():5.1f}%)  signed {np.median(a[:, 1]):+5.1f}% (mean {a[:, 1].mean():+5.1f}%)  after the level "
                  f"{np.median(a[:, 2]):5.1f}%")
    if args.json:
        args.json.write_text(json.dumps({"source": args.source, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
