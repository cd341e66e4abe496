"""How much pooling calibration runs helps (``gru-sim calibrate --pool``): for k = 1 … n runs, pool
random k-subsets of the runs in a folder and judge each pooled profile against the recorded
measurements of shapes no calibration drew (``benchmarks/accuracy.py --measured``). Measures nothing.

    .venv/bin/python benchmarks/pool_gain.py [--runs 'calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz']
                                             [--subsets 8] [--measured CSV ...]

Prints, per k and per file of recorded runs, the mean over the subsets of the median APE, of the
median signed error's size, and of the median APE once each profile's common level is divided out,
with the worst subset's median APE.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from accuracy import ROOT, judge_recorded
from gru_sim.calibrate.pool import pool_profile
from gru_sim.machine import machine_label

DEFAULT_RUNS = "calibration/runs/cpu-amd-epyc-2c/*.sqlite.gz"
DEFAULT_MEASURED = ["benchmarks/data/typical_measured.csv", "benchmarks/data/deepbench_measured.csv",
                    "benchmarks/data/large_measured.csv"]


def _single(path: str, out: Path) -> tuple[float, float] | None:
    """One run's own profile, built the way a pool is (so that k = 1 differs from k > 1 by pooling only);
    returns when the run measured its first and last unit or call."""
    from gru_sim.calibrate.build import build_profile
    from gru_sim.calibrate.jobs import JobSpec
    from gru_sim.calibrate.pool import open_runs
    from gru_sim.model.profile import save_profile

    with open_runs([path], minimum=1) as stores:  # checked and decompressed as a pool's runs are
        store = stores[0]
        save_profile(build_profile(JobSpec.model_validate(store.get_meta("job")), store,
                                   store.get_meta("fingerprint")), out)
        return store.measured_span()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"glob of calibration runs (default {DEFAULT_RUNS})")
    ap.add_argument("--subsets", type=int, default=8, help="random subsets judged per k (default 8)")
    ap.add_argument("--measured", nargs="+", default=DEFAULT_MEASURED, help="files of recorded runs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    runs = sorted(glob.glob(str(ROOT / args.runs) if not Path(args.runs).is_absolute() else args.runs))
    if len(runs) < 2:
        sys.exit(f"{args.runs}: fewer than two calibration runs to pool")
    cpu = machine_label()
    rng = random.Random(args.seed)
    print(f"CPU: {cpu}; {len(runs)} runs in {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(1, len(runs) + 1):
            combos = list(itertools.combinations(runs, k))
            rng.shuffle(combos)
            figures: dict[str, list[tuple[float, float, float]]] = {m: [] for m in args.measured}
            for n, combo in enumerate(combos[: args.subsets]):
                out = Path(tmp) / f"k{k}-{n}.json"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if k == 1:
                        _single(combo[0], out)
                    else:
                        pool_profile(list(combo), out)
                for m in args.measured:
                    f = judge_recorded(out, ROOT / m, cpu)["all"]
                    figures[m].append((f["median_ape"], abs(f["median_signed_error"]), f["median_ape_after_level"]))
            cells = []
            for m, rows in figures.items():
                a = np.array(rows)
                cells.append(f"{Path(m).stem.replace('_measured', '')}: {a[:, 0].mean():5.1f}% (worst {a[:, 0].max():5.1f}%) "
                             f"|signed| {a[:, 1].mean():4.1f}% after level {a[:, 2].mean():4.1f}%")
            print(f"k={k} ({len(figures[args.measured[0]])} subsets)  " + "  |  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
