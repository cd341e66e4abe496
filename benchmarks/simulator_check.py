"""The execution simulator's speed and its predictions of stacked bidirectional GRUs against real runs.

1. Simulation speed: kernels simulated per second for a 4-layer bidirectional T=1000 training call,
   step by step and at the default merging (median of repeats).
2. Predicted vs measured latency of a 2-layer bidirectional GRU for three shapes on this CPU, from the
   shipped default profile (or --profile).

    .venv/bin/python benchmarks/simulator_check.py [--profile PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gru_sim.config import GruConfig
from gru_sim.measure import measure_gru
from gru_sim.measure.timing import TimingPolicy
from gru_sim.predict import Predictor
from gru_sim.model.profile import default_profile_path, load_profile
from gru_sim.sim.executors import simulate_call

SHAPES = [dict(batch=4, seq_len=100, input_size=80, hidden_size=256),
          dict(batch=16, seq_len=200, input_size=128, hidden_size=512),
          dict(batch=32, seq_len=50, input_size=256, hidden_size=128)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=str(default_profile_path("cpu")))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    predictor = Predictor(load_profile(args.profile))

    big = GruConfig(batch=32, seq_len=1000, input_size=256, hidden_size=256, num_layers=4, bidirectional=True,
                    mode="training")
    times = predictor.call_times(big)
    for label, chunk in (("step by step", 1), ("default merging", None)):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            sim = simulate_call(times, chunk_steps=chunk)
            runs.append(time.perf_counter() - start)
        wall = statistics.median(runs)
        print(f"4-layer bidirectional T=1000 training, {label}: {sim.kernels_simulated} kernels in "
              f"{wall:.3f} s (median of {args.repeats}) = {sim.kernels_simulated / wall:,.0f} kernels/s")

    policy = TimingPolicy(min_sample_s=0.005, budget_s=1.0, min_samples=9)
    print(f"\n2-layer bidirectional GRU, 1 thread, profile {args.profile}")
    print(f"{'mode':9} {'B':>3} {'T':>4} {'I':>4} {'H':>4}  {'measured':>10} {'predicted':>10} {'90% interval':>21} {'APE':>6}")
    for mode in ("inference", "training"):
        for shape in SHAPES:
            c = GruConfig(**shape, num_layers=2, bidirectional=True, mode=mode)
            m = measure_gru(c, policy=policy, probe_memory=False, check_error=False)
            rec = predictor.predict(c)
            lo, hi = rec.latency_interval_s
            ape = 100 * abs(rec.latency_s - m.latency_s) / m.latency_s
            print(f"{mode:9} {c.batch:>3} {c.seq_len:>4} {c.input_size:>4} {c.hidden_size:>4}  "
                  f"{m.latency_s * 1e3:>8.2f}ms {rec.latency_s * 1e3:>8.2f}ms "
                  f"[{lo * 1e3:>8.2f}, {hi * 1e3:>8.2f}]ms {ape:>5.1f}%{'  noisy' if m.noisy else ''}")


if __name__ == "__main__":
    main()
