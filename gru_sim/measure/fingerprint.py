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
        fp.update(_cuda_fingerprint())
    return fp


def _cuda_fingerprint() -> dict[str, Any]:
    """CUDA facts, each read on its own so that one unreadable field is None, not all of them."""
    props = safe(lambda: torch.cuda.get_device_properties(0))

    def driver() -> str | None:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        return out or None

    return {
        "gpu_name": safe(lambda: props.name),
        "gpu_sm_count": safe(lambda: props.multi_processor_count),
        "gpu_memory_bytes": safe(lambda: props.total_memory),
        "gpu_compute_capability": safe(lambda: f"{props.major}.{props.minor}"),
        "driver": safe(driver),
        "cuda": safe(lambda: torch.version.cuda),
        "cudnn": safe(torch.backends.cudnn.version),
        "cudnn_benchmark": safe(lambda: torch.backends.cudnn.benchmark),
        "tf32_matmul": safe(lambda: torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": safe(lambda: torch.backends.cudnn.allow_tf32),
    }


__all__ = ["fingerprint", "differences"]
