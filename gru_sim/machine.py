"""What machine this is, read without importing torch: CPU model, cores, memory, installed torch
version. The measuring side adds torch's build details (gru_sim.measure.fingerprint); the predicting
side compares these fields with a profile's to warn when the profile was made elsewhere."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any, Callable


def safe(read: Callable[[], Any]) -> Any:
    """``read()``, or None if it fails: a machine fact we cannot read is unknown, never a crash."""
    try:
        return read()
    except Exception:  # deliberately broad: see docstring
        return None


def cpu_model() -> str | None:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def physical_cores() -> int | None:
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


def memory_total_bytes() -> int | None:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def host_facts() -> dict[str, Any]:
    """The torch-free part of a fingerprint."""
    return {
        "cpu_model": safe(cpu_model),
        "physical_cores": safe(physical_cores),
        "logical_cores": safe(os.cpu_count),
        "memory_total_bytes": safe(memory_total_bytes),
        "os": safe(platform.platform),
        "python": platform.python_version(),
        "torch": safe(lambda: metadata.version("torch")),
    }


# Fields whose difference means a profile may not describe this machine.
IDENTITY_FIELDS = ("device", "cpu_model", "physical_cores", "torch", "blas", "cpu_capability",
                   "gpu_name", "cuda", "cudnn", "driver")


def differences(expected: dict[str, Any], actual: dict[str, Any], fields: tuple[str, ...] = IDENTITY_FIELDS) -> list[str]:
    """Human-readable differences in the identity ``fields`` present in both fingerprints."""
    return [f"{k}: {expected.get(k)!r} here {actual.get(k)!r}" for k in fields
            if k in expected and k in actual and expected.get(k) != actual.get(k)]


def torch_version_matches(profile_version: str | None, installed: str | None) -> bool:
    """Compare ``2.13.0+cpu`` with ``2.13.0``: the local build tag is not in package metadata."""
    if profile_version is None or installed is None:
        return True
    return profile_version.split("+")[0] == installed.split("+")[0]
