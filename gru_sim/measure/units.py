"""Timing the units a GRU call is composed of (see :mod:`gru_sim.model.units`): the recurrent step
inside a real call, the recurrent matmul alone, the input-projection GEMM, and the copy bandwidth of
each memory level.

The step is timed as the real thing, not rebuilt from ops: a call of the group's implementation with
``input_size = 1`` (its input projection is then negligible) over ``steps`` time steps, minus the
fixed cost of a call, divided by ``steps``. That keeps what a step really pays — ATen's dispatch of
each gate op, the allocations and page faults of its outputs, the weight matrix's cache state after
the previous step — which timing the ops one by one in Python misses (its per-op floor alone exceeds
a whole small step).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..config import GATES, GruConfig
from .kernels import build_call, make_gru, make_inputs, torch_call
from .primitives import matmul_s, memory_bandwidth
from .timing import TimingPolicy, time_calls, wall_clock_timer
from .run import cuda_event_timer

# Short, repeated timings: a unit is one point of a grid of hundreds. The cold first call, one warm-up,
# then five samples of at least a millisecond each; their median is the unit's time.
UNIT_POLICY = TimingPolicy(min_sample_s=0.001, warmup_s=0.0, min_warmups=1, min_samples=5, max_samples=5,
                           budget_s=0.0)
# The second look at a unit, seconds after the first (see gru_sim.calibrate.unit_grid): three samples.
SECOND_PASS_POLICY = TimingPolicy(min_sample_s=0.001, warmup_s=0.0, min_warmups=1, min_samples=3,
                                  max_samples=3, budget_s=0.0)


def _timer(device: str):  # type: ignore[no-untyped-def]
    return cuda_event_timer() if device == "cuda" else wall_clock_timer()


_MODULES: dict[tuple, torch.nn.GRU] = {}
# The modules kept at once hold at most this many parameter bytes (the largest step-table row, H = 2048,
# holds 50 MB; a whole inference table about 100 MB).
MODULE_CACHE_BYTES = 1 << 30


def _module(config: GruConfig) -> torch.nn.GRU:
    """The GRU module of ``config``'s weights, kept while a table is timed (its rows take turns, so the
    same hidden sizes come back again and again): initialising a large one costs more than timing it.
    The least recently used go first once the cache holds ``MODULE_CACHE_BYTES``."""
    key = (config.input_size, config.hidden_size, config.num_layers, config.bidirectional, config.dtype,
           config.device)
    if key in _MODULES:
        _MODULES[key] = _MODULES.pop(key)  # most recently used last
        return _MODULES[key]
    module = make_gru(config, 0)
    held = sum(map(_parameter_bytes, _MODULES.values()))
    while _MODULES and held + _parameter_bytes(module) > MODULE_CACHE_BYTES:
        held -= _parameter_bytes(_MODULES.pop(next(iter(_MODULES))))
    _MODULES[key] = module
    return module


def _parameter_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def time_gru_call_s(config: GruConfig, policy: TimingPolicy = UNIT_POLICY) -> tuple[float, bool]:
    """Median seconds of one call of ``config`` and whether its spread was too wide to trust."""
    torch.set_num_threads(config.threads)
    if config.impl == "numpy-reference":
        call = build_call(config)
    else:
        call = torch_call(config, _module(config), make_inputs(config, 0))[0]
    result = time_calls(call, _timer(config.device), policy)
    return result.median_s, result.is_noisy(policy.noisy_iqr_ratio)


def step_probe(batch: int, hidden: int, steps: int, mode: str, dtype: str, impl: str, device: str,
               threads: int) -> GruConfig:
    """The call whose time per step is the step unit: one layer, one direction, ``input_size`` 1."""
    return GruConfig(batch=batch, seq_len=steps, input_size=1, hidden_size=hidden, mode=mode, dtype=dtype,
                     impl=impl, device=device, threads=threads)


def recurrent_matmul_s(batch: int, hidden: int, dtype: str, device: str, threads: int,
                       policy: TimingPolicy = UNIT_POLICY) -> float:
    """Seconds of the step's ``[B,H]×[H,3H]`` matmul with bias, alone (the same weights every call)."""
    torch.set_num_threads(threads)
    return float(matmul_s(batch, hidden, GATES * hidden, dtype, policy, device)["seconds"])


def projection_gemm_s(m: int, k: int, n: int, dtype: str, device: str, threads: int,
                      policy: TimingPolicy = UNIT_POLICY) -> tuple[float, bool]:
    """Seconds of the input projection ``[m,k]×[k,n]`` + bias, and whether it was noisy."""
    torch.set_num_threads(threads)
    out = matmul_s(m, k, n, dtype, policy, device)
    return float(out["seconds"]), bool(out["noisy"])


def copy_bandwidth_bytes_per_s(size_bytes: int, dtype: str, device: str, threads: int) -> float:
    """Bytes/s (read + write) copying a ``size_bytes`` tensor: the bandwidth of the level it fits in."""
    torch.set_num_threads(threads)
    policy = TimingPolicy(min_sample_s=0.002, warmup_s=0.01, min_samples=5, max_samples=9, budget_s=0.03)
    return float(memory_bandwidth(dtype, max(size_bytes, 4096), policy, device)["bytes_per_s"])


# The fresh-memory probe writes a tensor this large: past glibc's mmap ceiling (see
# gru_sim.model.fresh_memory), so each one is mapped afresh, and long enough (~25 ms on an AMD EPYC
# thread) that the clock's grain does not matter.
FRESH_PROBE_BYTES = 64 * 2**20
FRESH_PROBE_ROUNDS = 7


def fresh_memory_s_per_byte(threads: int, size_bytes: int = FRESH_PROBE_BYTES,
                            rounds: int = FRESH_PROBE_ROUNDS) -> float:
    """Seconds per byte that writing a new ``size_bytes`` CPU tensor takes beyond writing one already
    held (the page faults and zeroing of memory the system maps afresh): the medians of ``rounds``
    fills of each, taken in turns. Never negative."""
    from statistics import median
    from time import perf_counter

    torch.set_num_threads(threads)
    n = max(size_bytes // 4, 1)
    held = torch.empty(n, dtype=torch.float32)
    held.fill_(1.0)
    fresh_s, held_s = [], []
    for _ in range(rounds):
        t0 = perf_counter()
        torch.empty(n, dtype=torch.float32).fill_(1.0)
        t1 = perf_counter()
        held.fill_(1.0)
        t2 = perf_counter()
        fresh_s.append(t1 - t0)
        held_s.append(t2 - t1)
    return max(median(fresh_s) - median(held_s), 0.0) / (4 * n)


_REFERENCE: dict[tuple, Callable[[], object]] = {}


def reference_call_s(batch: int, hidden: int, steps: int, dtype: str, impl: str, device: str, threads: int,
                     policy: TimingPolicy = UNIT_POLICY) -> float:
    """Median seconds of a fixed reference call (one inference layer, ``input_size`` 1), built once per
    process and kept apart from the unit tables' modules: the probe of the machine's current speed."""
    torch.set_num_threads(threads)
    config = step_probe(batch, hidden, steps, "inference", dtype, impl, device, threads)
    key = (batch, hidden, steps, dtype, impl, device)
    if key not in _REFERENCE:
        _REFERENCE[key] = (build_call(config) if impl == "numpy-reference"
                           else torch_call(config, make_gru(config, 0), make_inputs(config, 0))[0])
    return time_calls(_REFERENCE[key], _timer(device), policy).median_s


__all__ = ["FRESH_PROBE_BYTES", "UNIT_POLICY", "copy_bandwidth_bytes_per_s", "fresh_memory_s_per_byte",
           "projection_gemm_s", "recurrent_matmul_s", "reference_call_s", "step_probe", "time_gru_call_s"]
