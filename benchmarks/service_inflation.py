"""Why a real serving loop's batches run slower than the same batches timed back to back.

Times nn.GRU batches (1–3 sequences) three ways and prints each against the back-to-back table
(measured before and after, averaged, so machine drift cancels):
  1. back to back (the table itself, what calibration measures);
  2. in a worker thread after random idle gaps (what a replica at utilization < 1 sees);
  3. the same, with a second Python thread waking at random (what a request generator or an RPC
     thread does in a real server).

    .venv/bin/python benchmarks/service_inflation.py [--hidden-size 256] [--seq-len 100] [--calls 400]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch
from serving_vs_real import measure_service_times  # the back-to-back table, timed the same way


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--mean-idle-s", type=float, default=0.003)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gru = torch.nn.GRU(args.input_size, args.hidden_size).eval()
    inputs = {b: torch.randn(args.seq_len, b, args.input_size) for b in (1, 2, 3)}

    rng = np.random.default_rng(0)
    ratios: dict[str, list[float]] = {"after idle gaps": [], "after idle gaps, second thread waking": []}
    before = measure_service_times(gru, inputs, 30)
    stop = threading.Event()

    def waker() -> None:
        while not stop.is_set():
            time.sleep(rng.exponential(0.004))

    def work(label: str, timings: list[tuple[int, float]]) -> None:
        with torch.inference_mode():
            for _ in range(args.calls):
                time.sleep(rng.exponential(args.mean_idle_s))
                b = int(rng.integers(1, 4))
                start = time.perf_counter()
                gru(inputs[b])
                timings.append((b, time.perf_counter() - start))

    raw: dict[str, list[tuple[int, float]]] = {k: [] for k in ratios}
    for label in ratios:
        helper = threading.Thread(target=waker) if "second" in label else None
        stop.clear()
        if helper:
            helper.start()
        worker = threading.Thread(target=work, args=(label, raw[label]))
        worker.start()
        worker.join()
        stop.set()
        if helper:
            helper.join()
    after = measure_service_times(gru, inputs, 30)
    reference = {b: (before[b] + after[b]) / 2 for b in before}
    print("back-to-back (ms): " + ", ".join(f"batch {b}: {t * 1e3:.2f}" for b, t in reference.items()))
    for label, timings in raw.items():
        r = [t / reference[b] for b, t in timings]
        print(f"{label}: median {statistics.median(r):.3f}× back-to-back over {len(r)} calls")


if __name__ == "__main__":
    main()
