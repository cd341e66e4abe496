"""``measure_gru``: build a config's kernel, check it fits, time it, probe its memory and its error."""

from __future__ import annotations

import torch

from ..accounting import footprint_bytes
from ..config import GruConfig
from ..errors import DeviceUnavailableError, OutOfMemoryError
from .fingerprint import fingerprint
from .kernels import build_kernel, max_rel_error
from .memory import MMAP_THRESHOLD_BYTES, peak_memory_cpu, peak_memory_cuda
from .record import Measurement
from .timing import LoopTimer, TimingPolicy, time_calls, wall_clock_timer

# The CUDA caching allocator rounds every block up to 512 bytes (c10/cuda/CUDACachingAllocator.cpp,
# kMinBlockSize): smaller differences are invisible to max_memory_allocated().
CUDA_ALLOCATION_GRANULE_BYTES = 512
# Refuse a shape whose estimated footprint exceeds this share of the memory available now.
MEMORY_HEADROOM = 0.8


def available_memory_bytes(device: str) -> int:
    """Memory free for a new call right now: MemAvailable on CPU, free device memory on CUDA."""
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OutOfMemoryError("cannot read MemAvailable from /proc/meminfo")


def check_device(config: GruConfig) -> None:
    """Raise a clear error when ``config`` asks for a device this machine lacks."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "device(=cuda) is not available here: torch sees no CUDA device"
            f" (torch {torch.__version__}); use --device cpu")


def check_fits(config: GruConfig) -> None:
    """Raise OutOfMemoryError when ``config`` would not fit in the memory available now."""
    need = footprint_bytes(config)
    have = available_memory_bytes(config.device)
    if need > MEMORY_HEADROOM * have:
        raise OutOfMemoryError(
            f"{config.device} memory: this shape needs about {need / 2**30:.2f} GiB, "
            f"more than {MEMORY_HEADROOM:.0%} of the {have / 2**30:.2f} GiB available; "
            "reduce batch, seq_len, hidden_size or num_layers")


def cuda_event_timer() -> LoopTimer:
    """Times calls on the GPU with CUDA events, after synchronising, so that queued work is counted."""

    def timer(fn, loops: int) -> float:  # type: ignore[no-untyped-def]
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(loops):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    return timer


def measure_gru(config: GruConfig, policy: TimingPolicy = TimingPolicy(), seed: int = 0,
                probe_memory: bool = True, check_error: bool = True) -> Measurement:
    """Measure ``config`` on this machine now (see :mod:`.timing` for the method)."""
    check_device(config)
    check_fits(config)
    threads_before = torch.get_num_threads()
    try:
        return _measure(config, policy, seed, probe_memory, check_error)
    finally:
        torch.set_num_threads(threads_before)


def _measure(config: GruConfig, policy: TimingPolicy, seed: int, probe_memory: bool,
             check_error: bool) -> Measurement:
    torch.set_num_threads(config.threads)
    _set_numpy_threads(config)
    kernel = build_kernel(config, seed)
    timer = cuda_event_timer() if config.device == "cuda" else wall_clock_timer()
    result = time_calls(kernel.call, timer, policy)
    peak = None
    if probe_memory:
        peak = (peak_memory_cuda(kernel.call) if config.device == "cuda"
                else peak_memory_cpu(config, seed))
    error = max_rel_error(kernel) if check_error else None
    return Measurement(
        config=config,
        latency_s=result.median_s,
        latency_iqr_s=result.iqr_s,
        samples_s=result.samples_s,
        first_call_s=result.first_call_s,
        noisy=result.is_noisy(policy.noisy_iqr_ratio),
        loops=result.loops,
        peak_memory_bytes=peak,
        max_rel_error=error,
        fingerprint=fingerprint(config.device, torch.get_num_threads()),  # what was in force
        peak_memory_resolution_bytes=None if peak is None else (
            CUDA_ALLOCATION_GRANULE_BYTES if config.device == "cuda" else MMAP_THRESHOLD_BYTES),
    )


def _set_numpy_threads(config: GruConfig) -> None:
    if config.impl == "numpy-reference":
        from threadpoolctl import threadpool_limits

        threadpool_limits(config.threads)  # stays in force for this process: numpy has no "restore"
