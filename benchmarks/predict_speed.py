"""How fast `gru-sim predict` answers: one prediction (a whole process, as a user runs it) and a
10,000-row `--grid`, each timed over a few repeats; prints medians. Run on a quiet machine:

    .venv/bin/python benchmarks/predict_speed.py [--rows 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRU_SIM = str(Path(sys.executable).parent / "gru-sim")


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.csv"
        with grid.open("w") as f:
            f.write("batch,seq_len,input_size,hidden_size,layers,bidirectional,mode\n")
            for _ in range(args.rows):
                f.write(f"{rng.integers(1, 129)},{rng.integers(1, 1001)},{rng.integers(16, 1025)},"
                        f"{rng.integers(16, 1025)},{rng.integers(1, 4)},{bool(rng.integers(0, 2))},"
                        f"{['inference', 'training'][rng.integers(0, 2)]}\n")
        one = [_time([GRU_SIM, "predict", "--batch", "8", "--seq-len", "128", "--input-size", "256",
                      "--hidden-size", "256", "--layers", "2", "--bidirectional", "--json"])
               for _ in range(args.repeats)]
        many = [_time([GRU_SIM, "predict", "--grid", str(grid)]) for _ in range(max(1, args.repeats // 2))]
    print(f"one prediction (whole process): median {statistics.median(one):.3f} s over {len(one)} runs "
          f"(min {min(one):.3f}, max {max(one):.3f})")
    print(f"{args.rows}-row grid (whole process): median {statistics.median(many):.2f} s over {len(many)} runs "
          f"({statistics.median(many) / args.rows * 1e6:.0f} µs per row)")


if __name__ == "__main__":
    main()
