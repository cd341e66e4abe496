"""Where a measurement was taken: the machine and the software stack, so that profiles and results
from different machines are told apart rather than mixed. Anything unreadable is None, never a crash."""

from __future__ import annotations

import os
import platform
import re
from typing import Any, Callable

import torch


def _safe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:  # a fingerprint field we cannot read is None, by design
        return None


def _cpu_model() -> str | None:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _physical_cores() -> int | None:
    cores = set()
    phys = core = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("physical id"):
                phys = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                core = line.split(":", 1)[1].strip()
            elif not line.strip() and core is not None:
                cores.add((phys, core))
                phys = core = None
    if core is not None:
        cores.add((phys, core))
    return len(cores) or None


def _build_setting(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1).strip() if match else None


def _memory_total_bytes() -> int | None:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The machine and stack a measurement ran on, as plain JSON-able data."""
    fp: dict[str, Any] = {
        "device": device,
        "cpu_model": _safe(_cpu_model),
        "physical_cores": _safe(_physical_cores),
        "logical_cores": _safe(os.cpu_count),
        "memory_total_bytes": _safe(_memory_total_bytes),
        "threads": threads if threads is not None else _safe(torch.get_num_threads),
        "os": _safe(platform.platform),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "blas": _safe(lambda: _build_setting(r"BLAS_INFO=(\w+)")),
        "openmp": _safe(lambda: _build_setting(r"OpenMP ([\d.]+)")),
        "mkldnn": _safe(lambda: bool(torch.backends.mkldnn.is_available())),
        "cpu_capability": _safe(lambda: _build_setting(r"CPU capability usage: (\w+)")),
    }
    if device == "cuda":
        fp.update(_safe(_cuda_fingerprint) or {})
    return fp


def _cuda_fingerprint() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    driver = None
    try:
        import subprocess
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception:  # no nvidia-smi: the driver stays unknown
        pass
    return {
        "gpu_name": props.name,
        "gpu_sm_count": props.multi_processor_count,
        "gpu_memory_bytes": props.total_memory,
        "gpu_compute_capability": f"{props.major}.{props.minor}",
        "driver": driver,
        "cuda": torch.version.cuda,
        "cudnn": _safe(torch.backends.cudnn.version),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


# Fields whose difference means a profile may not describe this machine.
IDENTITY_FIELDS = ("device", "cpu_model", "physical_cores", "torch", "blas", "cpu_capability",
                   "gpu_name", "cuda", "cudnn", "driver")


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences in the identity fields of two fingerprints."""
    return [f"{k}: {expected.get(k)!r} vs {actual.get(k)!r}" for k in IDENTITY_FIELDS
            if (k in expected or k in actual) and expected.get(k) != actual.get(k)]
