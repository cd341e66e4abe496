"""Micro-benchmarks that pin the hardware down: the two roofline ceilings (peak matmul FLOP/s and
memory bandwidth), the GEMMs a GRU is made of, its pointwise gate work, and the fixed cost of a call
and of a step. Each returns per-call seconds timed by the same harness as whole GRU calls."""

from __future__ import annotations

from typing import Any

import torch

from ..config import GATES
from .kernels import TORCH_DTYPES
from .run import cuda_event_timer
from .timing import TimingPolicy, time_calls, wall_clock_timer

QUICK = TimingPolicy(min_sample_s=0.002, warmup_s=0.02, min_samples=5, max_samples=15, budget_s=0.15)


def _time(fn: Any, policy: TimingPolicy, device: str = "cpu") -> tuple[float, bool]:
    timer = cuda_event_timer() if device == "cuda" else wall_clock_timer()
    result = time_calls(fn, timer, policy)
    return result.median_s, result.is_noisy(policy.noisy_iqr_ratio)


def matmul_s(m: int, k: int, n: int, dtype: str = "float32", policy: TimingPolicy = QUICK,
             device: str = "cpu") -> dict[str, Any]:
    """``[m,k]×[k,n]`` GEMM with a bias (addmm, as ATen's GRU calls it)."""
    opts = {"dtype": TORCH_DTYPES[dtype], "device": device}
    a, w, bias = torch.randn(m, k, **opts), torch.randn(n, k, **opts), torch.randn(n, **opts)
    wt = w.t()
    seconds, noisy = _time(lambda: torch.addmm(bias, a, wt), policy, device)
    return {"kind": "matmul", "m": m, "k": k, "n": n, "seconds": seconds, "noisy": noisy,
            "flops_per_s": 2.0 * m * k * n / seconds}


def pointwise_gates_s(batch: int, hidden: int, dtype: str = "float32", policy: TimingPolicy = QUICK,
                      device: str = "cpu") -> dict[str, Any]:
    """One step's gate work as ATen's CPU path runs it (chunks, two sigmoids, tanh, blend)."""
    opts = {"dtype": TORCH_DTYPES[dtype], "device": device}
    gi, gh = torch.randn(batch, GATES * hidden, **opts), torch.randn(batch, GATES * hidden, **opts)
    h = torch.randn(batch, hidden, **opts)

    def gates() -> torch.Tensor:
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r = (i_r + h_r).sigmoid_()
        z = (i_z + h_z).sigmoid_()
        n = (i_n + r * h_n).tanh_()
        return (h - n) * z + n

    seconds, noisy = _time(gates, policy, device)
    return {"kind": "pointwise", "batch": batch, "hidden": hidden, "seconds": seconds, "noisy": noisy}


def peak_flops(dtype: str = "float32", size: int = 1024, policy: TimingPolicy = QUICK,
               device: str = "cpu") -> dict[str, Any]:
    """Matmul FLOP/s of a large square GEMM: the roofline's compute ceiling (4096³ on a GPU)."""
    out = matmul_s(*(3 * [4096 if device == "cuda" else size]), dtype, policy, device)
    return {**out, "kind": "peak_flops"}


def memory_bandwidth(dtype: str = "float32", bytes_: int = 256 * 2**20, policy: TimingPolicy = QUICK,
                     device: str = "cpu") -> dict[str, Any]:
    """Bytes/s of copying a tensor far larger than any cache (read + write): the memory ceiling."""
    dt = TORCH_DTYPES[dtype]
    n = bytes_ // torch.tensor([], dtype=dt).element_size()
    src, dst = torch.randn(n, dtype=dt, device=device), torch.empty(n, dtype=dt, device=device)
    seconds, noisy = _time(lambda: dst.copy_(src), policy, device)
    return {"kind": "bandwidth", "bytes": 2 * bytes_, "seconds": seconds, "noisy": noisy,
            "bytes_per_s": 2 * bytes_ / seconds}


def gru_overheads(dtype: str = "float32", policy: TimingPolicy = QUICK, device: str = "cpu") -> dict[str, Any]:
    """The fixed cost of an nn.GRU call (a 1-step, 8-unit GRU) and of one step (slope from 1 to 65
    steps), where the arithmetic is negligible."""
    dt = TORCH_DTYPES[dtype]
    gru = torch.nn.GRU(8, 8).to(device=device, dtype=dt)
    x1, x65 = torch.randn(1, 1, 8, dtype=dt, device=device), torch.randn(65, 1, 8, dtype=dt, device=device)
    with torch.inference_mode():
        call_s, noisy1 = _time(lambda: gru(x1), policy, device)
        long_s, noisy2 = _time(lambda: gru(x65), policy, device)
    return {"kind": "overheads", "call_s": call_s, "step_s": (long_s - call_s) / 64.0, "noisy": noisy1 or noisy2}


def run_primitives(dtype: str, threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """The micro-benchmark set of a calibration job, for one dtype, thread count and device."""
    torch.set_num_threads(threads)
    out = [peak_flops(dtype, device=device), memory_bandwidth(dtype, device=device),
           gru_overheads(dtype, device=device)]
    for b in (1, 16, 128):
        for h in (64, 256, 1024):
            out.append(matmul_s(b, h, GATES * h, dtype, device=device))          # recurrent step
            out.append(pointwise_gates_s(b, h, dtype, device=device))
    for tb, i, h in ((1024, 128, 256), (4096, 512, 512), (8192, 256, 1024)):
        out.append(matmul_s(tb, i, GATES * h, dtype, device=device))             # input projection
    return [{**p, "dtype": dtype, "threads": threads} for p in out]


def quick_ceilings(dtype: str, threads: int, device: str = "cpu") -> list[dict[str, Any]]:
    """Only the two roofline ceilings (peak matmul FLOP/s, memory bandwidth), for a quick adaptation."""
    torch.set_num_threads(threads)
    out = [peak_flops(dtype, device=device), memory_bandwidth(dtype, 64 * 2**20, device=device)]
    return [{**p, "dtype": dtype, "threads": threads} for p in out]
