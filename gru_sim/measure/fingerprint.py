"""Where a measurement was taken: the machine and the software stack, so that profiles and results
from different machines are told apart rather than mixed. Anything unreadable is None, never a crash."""

from __future__ import annotations

import re
from typing import Any

import torch

from ..machine import differences, host_facts, safe


def _build_setting(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1).strip() if match else None


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The machine and stack a measurement ran on, as plain JSON-able data."""
    fp: dict[str, Any] = {
        "device": device,
        **host_facts(),
        "threads": threads if threads is not None else safe(torch.get_num_threads),
        "torch": torch.__version__,
        "blas": safe(lambda: _build_setting(r"BLAS_INFO=(\w+)")),
        "openmp": safe(lambda: _build_setting(r"OpenMP ([\d.]+)")),
        "mkldnn": safe(lambda: bool(torch.backends.mkldnn.is_available())),
        "cpu_capability": safe(lambda: _build_setting(r"CPU capability usage: (\w+)")),
    }
    if device == "cuda":
        fp.update(safe(_cuda_fingerprint) or {})
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
        "cudnn": safe(torch.backends.cudnn.version),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


__all__ = ["fingerprint", "differences"]
