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


def cpu_signature() -> tuple[int, int] | None:
    """The CPU's family and model numbers (``/proc/cpuinfo``: ``cpu family``, ``model``), which tell
    apart parts that share a model name: a KVM guest may show only "AMD EPYC" for a Zen 4 (family 25)
    and a Zen 5 (family 26) alike. None where the OS does not say (not x86)."""
    family = model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "cpu family" and family is None:
                family = int(value)
            elif key == "model" and model is None:
                model = int(value)
            elif not line.strip() and (family is not None or model is not None):
                break
    return (family, model) if family is not None and model is not None else None


def signature_text(signature: Any) -> str:
    """A CPU signature as it is named beside the model name: `` (family 26, model 2)`` ('' when unknown)."""
    if not signature or len(signature) != 2:
        return ""
    return f" (family {signature[0]}, model {signature[1]})"


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


# The ISA extensions that change which GEMM and pointwise kernels a CPU runs (oneDNN/MKL dispatch on
# these): two CPUs that differ in them run different code.
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "sve", "asimd")


def isa_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has (from ``/proc/cpuinfo``)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [flag for flag in ISA_FLAGS if flag in have]
    return []


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, … from ``/proc/cpuinfo`` ('' when it does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def simd_bytes(flags: list[str] | None = None, vendor: str | None = None) -> int:
    """The vector width in bytes the GEMMs of a GRU run at on this CPU: 64 with AVX-512 on Intel; 32
    with AVX2 — also on AMD CPUs that have AVX-512, where MKL (torch's BLAS on x86) runs its AVX2
    kernels and Zen 4 executes 512-bit operations as two 256-bit halves; 16 otherwise (SSE, NEON)."""
    have = set(isa_flags() if flags is None else flags)
    intel = (cpu_vendor() if vendor is None else vendor) == "GenuineIntel"
    if "avx512f" in have and intel:
        return 64
    return 32 if have & {"avx", "avx2", "avx512f"} else 16


def memory_total_bytes() -> int | None:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)


def cache_levels(cpu: int = 0) -> list[dict[str, Any]]:
    """The data and unified caches of ``cpu`` as the OS reports them (``/sys/devices/system/cpu``):
    ``{"level", "size_bytes", "shared_by_cpus"}``, smallest level first. Empty where unreadable."""
    base = f"/sys/devices/system/cpu/cpu{cpu}/cache"
    out = []
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith("index"):
            continue
        path = os.path.join(base, entry)
        try:
            with open(os.path.join(path, "type")) as f:
                kind = f.read().strip()
            if kind == "Instruction":
                continue
            with open(os.path.join(path, "level")) as f:
                level = int(f.read())
            with open(os.path.join(path, "size")) as f:
                size = _size_bytes(f.read())
            with open(os.path.join(path, "shared_cpu_list")) as f:
                shared = f.read().strip()
        except (OSError, ValueError):
            continue
        out.append({"level": level, "size_bytes": size, "shared_by_cpus": shared})
    return sorted(out, key=lambda c: c["level"])


# Environment settings that choose which kernels BLAS and ATen run, whatever the CPU offers: a
# profile timed under one set describes other kernels than one timed under another (with MKL held to its
# SSE2 path, MKL_CBWR=COMPATIBLE, a 512x256x768 GEMM ran 2.5x slower on the AMD EPYC of the README).
KERNEL_ENV_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
                   "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def kernel_env() -> dict[str, str]:
    """The kernel-choosing settings of ``KERNEL_ENV_VARS`` set in this process's environment."""
    return {name: os.environ[name] for name in KERNEL_ENV_VARS if os.environ.get(name)}


def kernel_env_text(settings: dict[str, str] | None) -> str:
    """Kernel-choosing settings as they are named beside a CPU: `` [A=x B=y]`` (empty when none)."""
    text = " ".join(f"{k}={v}" for k, v in sorted((settings or {}).items()))
    return f" [{text}]" if text else ""


def label_of(fp: dict[str, Any]) -> str:
    """A fingerprint's machine as figures and records name it: the CPU model, its family and model
    numbers where known, and any kernel-choosing settings: ``AMD EPYC (family 26, model 2)``."""
    return (f"{fp.get('cpu_model') or 'unknown CPU'}{signature_text(fp.get('cpu_signature'))}"
            f"{kernel_env_text(fp.get('kernel_env'))}")


def machine_label(settings: bool = True) -> str:
    """This machine as figures name it (:func:`label_of`), with the kernel-choosing settings in force
    unless ``settings`` is False."""
    return label_of({"cpu_model": safe(cpu_model), "cpu_signature": safe(cpu_signature),
                     "kernel_env": kernel_env() if settings else {}})


def host_facts() -> dict[str, Any]:
    """The torch-free part of a fingerprint."""
    return {
        "cpu_model": safe(cpu_model),
        "cpu_signature": (lambda sig: list(sig) if sig else None)(safe(cpu_signature)),
        "kernel_env": kernel_env(),
        "physical_cores": safe(physical_cores),
        "logical_cores": safe(os.cpu_count),
        "memory_total_bytes": safe(memory_total_bytes),
        "caches": safe(cache_levels),
        "isa": safe(isa_flags),
        "os": safe(platform.platform),
        "python": platform.python_version(),
        "torch": safe(lambda: metadata.version("torch")),
    }


# Fields whose difference means a profile may not describe this machine.
IDENTITY_FIELDS = ("device", "cpu_model", "cpu_signature", "kernel_env", "physical_cores", "torch", "blas",
                   "cpu_capability", "gpu_name", "cuda", "cudnn", "driver")


def differences(expected: dict[str, Any], actual: dict[str, Any], fields: tuple[str, ...] = IDENTITY_FIELDS) -> list[str]:
    """Human-readable differences in the identity ``fields`` present in both fingerprints."""
    return [f"{k}: {expected.get(k)!r} here {actual.get(k)!r}" for k in fields
            if k in expected and k in actual and expected.get(k) != actual.get(k)]


def torch_version_matches(profile_version: str | None, installed: str | None) -> bool:
    """Compare ``2.13.0+cpu`` with ``2.13.0``: the local build tag is not in package metadata."""
    if profile_version is None or installed is None:
        return True
    return profile_version.split("+")[0] == installed.split("+")[0]
