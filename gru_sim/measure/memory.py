"""Peak memory of one GRU call: what the call needs beyond what was allocated before it.

On CUDA the caching allocator tells exactly: ``max_memory_allocated()`` after
``reset_peak_memory_stats()``, minus what was allocated before. On CPU torch tensors come from malloc,
which tracemalloc does not see, so we read the kernel's view instead: in a fresh subprocess (imports,
model and inputs created, one warm-up call), every large allocation forced onto mmap and freed memory
returned to the OS, the peak resident set (VmHWM, reset through /proc/self/clear_refs) of one call
minus the resident set just before it.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from typing import Any

from ..config import GruConfig
from ..errors import GruSimError

# mallopt(M_MMAP_THRESHOLD, 64 KiB): allocations above it are mmapped and go back to the OS on free,
# so the resident set follows live memory. Fixing the threshold also stops glibc raising it.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise GruSimError(f"/proc/self/status has no {field}: peak memory cannot be read on this system")


def _probe_cpu(config: GruConfig, seed: int) -> dict[str, Any]:
    """Runs inside the fresh subprocess."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    import torch

    from .kernels import build_kernel

    torch.set_num_threads(config.threads)
    kernel = build_kernel(config, seed)
    kernel.call()  # warm-up: one-time allocations (thread pools, BLAS buffers) are not the call's
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
    before = _status_bytes("VmRSS")
    kernel.call()
    peak = _status_bytes("VmHWM")
    return {"peak_memory_bytes": max(0, peak - before), "baseline_rss_bytes": before}


def peak_memory_cpu(config: GruConfig, seed: int = 0, timeout_s: float = 600.0) -> int:
    """Peak resident-set growth of one call of ``config``, measured in a fresh subprocess."""
    proc = subprocess.run([sys.executable, "-m", "gru_sim.measure.memory", json.dumps(config.to_dict()),
                           str(seed)], capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise GruSimError(f"memory probe for {config} failed: {tail[0]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_memory_bytes"])


def peak_memory_cuda(call: Any) -> int:
    """Peak bytes allocated by ``call()`` beyond those allocated before it (CUDA caching allocator)."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    call()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - before)


if __name__ == "__main__":
    cfg = GruConfig(**json.loads(sys.argv[1]))
    print(json.dumps(_probe_cpu(cfg, int(sys.argv[2]))))
