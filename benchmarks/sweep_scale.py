"""How fast a design-space sweep goes, here and on a local Dask cluster of 2 worker processes:
10,000 and 1,000,000 configurations priced with the vectorised predictor from the shipped CPU profile,
in chunks, each written to Parquet as it comes back (what ``gru-sim run --workers`` does for a grid
above 200,000).

Each measurement runs in a fresh process, so that its peak resident memory is the client's own (the
workers' memory is theirs). Printed side by side: configurations per second, wall time of the sweep
(and of starting the cluster, apart) and the client's peak memory. Machines here are shared: run it
twice and read the ratios more than the absolute figures.

    .venv/bin/python benchmarks/sweep_scale.py
    .venv/bin/python benchmarks/sweep_scale.py --sizes 10000 --workers 2   # smoke
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The grid's axes but batch: 1,000 combinations; batch takes sizes 1, 2, ... up to size / 1,000.
BASE_AXES = {"mode": ["inference", "training"], "seq_len": [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
             "hidden_size": [64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536], "input_size": [16, 64, 256, 512, 1024]}


def grid_of(size: int):  # -> GridSweep
    """A grid of ``size`` configurations (rounded up to a multiple of 1,000)."""
    from gru_sim.study.large_sweep import GridSweep

    return GridSweep.of({**BASE_AXES, "batch": list(range(1, -(-size // 1000) + 1))},
                        {"num_layers": 2, "bidirectional": False})


def one(size: int, workers: int) -> dict[str, float]:
    """One measurement in this process: the sweep of ``size`` configurations on ``workers`` (0: here)."""
    from gru_sim.distributed import cluster_client
    from gru_sim.model.library import here_fingerprint
    from gru_sim.model.profile import default_profile_path
    from gru_sim.study.large_sweep import run_large_sweep

    grid = grid_of(size)
    here = here_fingerprint("cpu")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with cluster_client(workers or None) as client:
            ready = time.perf_counter()
            summary = run_large_sweep(grid, default_profile_path("cpu"), here, Path(out), client)
            done = time.perf_counter()
    return {"configurations": summary["configurations"], "workers": workers, "startup_s": ready - start,
            "sweep_s": done - ready, "per_s": summary["configurations"] / (done - ready),
            "client_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2, help="workers of the local cluster (default 2)")
    parser.add_argument("--one", nargs=2, type=int, metavar=("SIZE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    rows = []
    for size in args.sizes:
        for workers in (0, args.workers):
            proc = subprocess.run([sys.executable, __file__, "--one", str(size), str(workers)], capture_output=True,
                                  text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'configurations':>15} {'executor':>18} {'configs/s':>12} {'sweep':>9} {'cluster start':>14} "
          f"{'client peak RSS':>16}")
    for r in rows:
        executor = "serial" if r["workers"] == 0 else f"{r['workers']} Dask workers"
        start = "-" if r["workers"] == 0 else f"{r['startup_s']:.1f} s"
        print(f"{r['configurations']:>15,} {executor:>18} {r['per_s']:>12,.0f} {r['sweep_s']:>7.1f} s "
              f"{start:>14} {r['client_peak_rss_bytes'] / 2**20:>13.0f} MiB")


if __name__ == "__main__":
    main()
