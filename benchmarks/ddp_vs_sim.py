"""Check the data-parallel training simulator against real DistributedDataParallel training on this machine.

Two processes (gloo backend, CPU) each train an ``nn.GRU`` on their own batch. Each rank, at the same
time as the other (so that both see the same contention for cores and memory):

1. calibrates the interconnect: times gloo all-reduces of several sizes and fits the ring α–β model
   ``t = 2(N−1)/N · bytes / bandwidth + 2(N−1) · latency`` by least squares;
2. times the plain model (no DDP): forward, backward — with the moment each parameter's gradient is
   final, from ``register_post_accumulate_grad_hook`` — and the optimizer step;
3. times real DDP training steps.

The script then feeds (1) and (2) to :func:`gru_sim.sim.simulate_training` and prints the measured DDP
step time against the simulated one (issue 5's target: within 20%).

Run on a quiet machine (the default takes well under two minutes):

    .venv/bin/python benchmarks/ddp_vs_sim.py
    .venv/bin/python benchmarks/ddp_vs_sim.py --batch 32 --seq-len 100 --hidden-size 512 --layers 2
    .venv/bin/python benchmarks/ddp_vs_sim.py --steps 2 --warmup 1 --seq-len 5 --hidden-size 16 --sizes 4096  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gru_sim.accounting import footprint_bytes  # noqa: E402
from gru_sim.config import GruConfig  # noqa: E402
from gru_sim.sim.training import (BackwardPiece, DeviceStepTimes, Interconnect, TrainingSpec,  # noqa: E402
                                  ddp_buckets, ring_allreduce_s, simulate_training)

DEFAULT_SIZES = (4 * 1024, 64 * 1024, 512 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, default=2, help="processes (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process (default 1)")
    p.add_argument("--batch", type=int, default=16, help="sequences per process and step")
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--steps", type=int, default=15, help="timed steps of each kind (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                   help="all-reduce sizes in bytes for the interconnect calibration")
    p.add_argument("--reduce-repeats", type=int, default=10, help="timed all-reduces per size (default 10)")
    p.add_argument("--ifname", default="lo", help="network interface gloo uses (default lo, loopback)")
    p.add_argument("--json", type=Path, default=None, help="also write the comparison to this file")
    return p.parse_args(argv)


def calibrate_allreduce(sizes: list[int], repeats: int, warmup: int) -> list[tuple[int, float]]:
    """Median seconds of a float32 all-reduce of each size (every rank starts together)."""
    out = []
    for nbytes in sizes:
        x = torch.ones(max(nbytes // 4, 1))
        for _ in range(max(warmup, 1)):
            dist.all_reduce(x)
        samples = []
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(x)
            samples.append(time.perf_counter() - start)
        out.append((x.numel() * 4, statistics.median(samples)))
    return out


def make_model(args: argparse.Namespace) -> tuple[torch.nn.GRU, torch.Tensor]:
    torch.manual_seed(0)
    gru = torch.nn.GRU(args.input_size, args.hidden_size, args.layers, bidirectional=args.bidirectional)
    x = torch.randn(args.seq_len, args.batch, args.input_size, generator=torch.Generator().manual_seed(1))
    return gru, x


def time_plain_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Forward, backward and optimizer times of the model without DDP, and for every parameter (in
    reverse parameters() order, as DDP buckets them) its size and when in backward its gradient was final."""
    gru, x = make_model(args)
    opt = torch.optim.SGD(gru.parameters(), lr=1e-3)
    params = list(gru.parameters())
    ready_at: dict[int, float] = {}
    for index, p in enumerate(params):
        p.register_post_accumulate_grad_hook(lambda _p, index=index: ready_at.__setitem__(index, time.perf_counter()))
    forward, backward, optimizer, ready = [], [], [], []
    for step in range(args.warmup + args.steps):
        opt.zero_grad(set_to_none=True)
        ready_at.clear()
        dist.barrier()
        t0 = time.perf_counter()
        out = gru(x)[0]
        t1 = time.perf_counter()
        out.sum().backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if step >= args.warmup:
            forward.append(t1 - t0)
            backward.append(t2 - t1)
            optimizer.append(t3 - t2)
            ready.append([ready_at[i] - t1 for i in range(len(params))])
    order = list(reversed(range(len(params))))
    return {"forward_s": statistics.median(forward), "backward_s": statistics.median(backward),
            "optimizer_s": statistics.median(optimizer),
            "param_bytes": [params[i].numel() * params[i].element_size() for i in order],
            "param_ready_s": [float(np.median([r[i] for r in ready])) for i in order]}


def time_ddp_steps(args: argparse.Namespace) -> list[float]:
    """Seconds of each timed DDP step: forward, backward with its all-reduces, optimizer step."""
    gru, x = make_model(args)
    model = DistributedDataParallel(gru)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for step in range(args.warmup + args.steps):
        opt.zero_grad(set_to_none=True)
        dist.barrier()
        t0 = time.perf_counter()
        out = model(x)[0]
        out.sum().backward()
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times


def worker(rank: int, args: argparse.Namespace, init_file: str, result_file: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", args.ifname)
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=args.world_size)
    try:
        reduce_times = calibrate_allreduce(args.sizes, args.reduce_repeats, args.warmup)
        plain = time_plain_steps(args)
        ddp = time_ddp_steps(args)
        if rank == 0:
            Path(result_file).write_text(json.dumps({"allreduce": reduce_times, "plain": plain, "ddp_steps_s": ddp}))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def fit_interconnect(samples: list[tuple[int, float]], devices: int) -> Interconnect:
    """Least-squares fit of t = a + b·bytes, read as the ring model's latency and bandwidth."""
    nbytes = np.array([s for s, _ in samples], dtype=float)
    seconds = np.array([t for _, t in samples])
    if len(samples) >= 2:
        b, a = np.polyfit(nbytes, seconds, 1)
    else:
        a, b = 0.0, seconds[0] / nbytes[0]
    a, b = max(float(a), 0.0), max(float(b), 1e-15)
    return Interconnect(bandwidth_bytes_per_s=2 * (devices - 1) / devices / b, latency_s=a / (2 * (devices - 1)))


def device_step(plain: dict[str, Any], config: GruConfig) -> DeviceStepTimes:
    """The measured plain step as backward pieces: a piece ends whenever a gradient becomes final."""
    pieces: list[BackwardPiece] = []
    previous = 0.0
    group: list[int] = []
    ready = plain["param_ready_s"]
    for k, (nbytes, t) in enumerate(zip(plain["param_bytes"], ready)):
        group.append(nbytes)
        last_of_group = k + 1 == len(ready) or ready[k + 1] != t
        if last_of_group:
            pieces.append(BackwardPiece(max(t - previous, 0.0), tuple(group)))
            previous, group = max(t, previous), []
    pieces.append(BackwardPiece(max(plain["backward_s"] - previous, 0.0), ()))
    return DeviceStepTimes(forward_s=plain["forward_s"], backward=tuple(pieces),
                           optimizer_step_s=plain["optimizer_s"], peak_memory_bytes=footprint_bytes(config))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.world_size < 2:
        raise SystemExit("--world-size must be >= 2")
    with tempfile.TemporaryDirectory() as tmp:
        init_file, result_file = os.path.join(tmp, "init"), os.path.join(tmp, "result.json")
        mp.spawn(worker, args=(args, init_file, result_file), nprocs=args.world_size, join=True)
        measured = json.loads(Path(result_file).read_text())

    n = args.world_size
    link = fit_interconnect([tuple(s) for s in measured["allreduce"]], n)
    config = GruConfig(batch=args.batch, seq_len=args.seq_len, input_size=args.input_size,
                       hidden_size=args.hidden_size, num_layers=args.layers, bidirectional=args.bidirectional,
                       mode="training", threads=args.threads)
    step = device_step(measured["plain"], config)
    spec = TrainingSpec(batch_per_device=args.batch, seq_len=args.seq_len, devices=(1, n), interconnect=link,
                        steps=args.steps)
    simulated = simulate_training(step, spec)
    real_step = statistics.median(measured["ddp_steps_s"])
    sim_n = simulated.points[1]

    print(f"gloo all-reduce over {n} processes (size: measured / fitted):")
    for nbytes, t in measured["allreduce"]:
        print(f"  {nbytes:>10d} B: {t * 1e3:8.3f} ms / {ring_allreduce_s(nbytes, n, link) * 1e3:8.3f} ms")
    print(f"fitted interconnect: bandwidth {link.bandwidth_bytes_per_s / 1e9:.3f} GB/s, latency "
          f"{link.latency_s * 1e6:.1f} µs")
    plain = measured["plain"]
    print(f"one device without DDP: forward {plain['forward_s'] * 1e3:.2f} ms, backward "
          f"{plain['backward_s'] * 1e3:.2f} ms, optimizer {plain['optimizer_s'] * 1e3:.2f} ms; "
          f"gradients {step.gradient_bytes} B in {len(ddp_buckets(step.backward))} DDP bucket(s)")
    print(f"{'':28} {'measured':>10} {'simulated':>10} {'diff':>7}")
    print(f"{'step time, ' + str(n) + ' processes':28} {real_step * 1e3:8.2f}ms {sim_n.step_time_s * 1e3:8.2f}ms "
          f"{(sim_n.step_time_s - real_step) / real_step:+7.1%}")
    print(f"simulated: all-reduce {sim_n.allreduce_s * 1e3:.2f} ms per step, exposed {sim_n.exposed_comm_s * 1e3:.2f} ms "
          f"({sim_n.comm_share:.1%} of the step), scaling efficiency {sim_n.scaling_efficiency:.3f}")
    ok = abs(sim_n.step_time_s - real_step) / real_step <= 0.20
    print(f"step time within 20%: {'yes' if ok else 'no'} (issue 5's target)")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                         "measured": measured, "simulated": simulated.to_dict(),
                                         "interconnect": link.__dict__}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
