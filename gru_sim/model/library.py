"""Which profile describes this machine: the profiles gru-sim can find, matched against this
machine's fingerprint (CPU model, ISA extensions, the environment settings that choose kernels, cores,
caches, torch version; GPU name on CUDA).

A profile matches when every identity field known on both sides agrees. Without a match the nearest
profile is taken — the one whose differences weigh least (another CPU vendor or ISA weighs most,
another core count or cache size less, another torch version least) — and every prediction made
with it says so (``profile_match: false`` and what differs) and carries a wider interval.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProfileError
from ..locations import file_slug, profile_search_dirs
from ..machine import host_facts, kernel_env_text, label_of, machine_label
from ..units import fmt_bytes

# Identity fields compared, with the weight a difference adds to the distance between machines.
MATCH_WEIGHTS = {"device": 100.0, "gpu_name": 50.0, "cpu_vendor": 20.0, "isa": 10.0, "kernel_env": 10.0,
                 "cpu_model": 5.0, "cpu_signature": 5.0, "caches": 3.0, "logical_cores": 2.0, "torch": 1.0}
# How much wider (as a factor on each side) the 90 % interval of a prediction from a profile of
# another machine is: the cross-machine error of a profile used on another CPU kind (see README,
# "Profiles for more than one machine"): 31-42 % median error on an Intel Xeon; the Zen 4 AMD EPYC pool
# 36 % on a Zen 5 and the Zen 5 pool 24 % on the Zen 4 (every measurement inside, both ways); on the
# emulated machine the Zen 4 pool needs its own interval stretched 2.04x for 80 % and 2.14x for 90 % of
# the measurements to fall inside (2.0 covered 75 %).
FOREIGN_INTERVAL_FACTOR = 2.5


def here_fingerprint(device: str) -> dict[str, Any]:
    """This machine's identity fields, read without torch."""
    return {"device": device, **host_facts()}


def _vendor(cpu_model: str | None) -> str | None:
    if not cpu_model:
        return None
    text = cpu_model.lower()
    for vendor in ("amd", "intel", "arm", "apple", "ampere", "graviton"):
        if vendor in text:
            return vendor
    return text.split()[0]


def _identity(fp: dict[str, Any]) -> dict[str, Any]:
    caches = fp.get("caches")
    torch = fp.get("torch")
    return {
        "device": fp.get("device"),
        "gpu_name": fp.get("gpu_name") if fp.get("device") == "cuda" else None,
        "cpu_vendor": _vendor(fp.get("cpu_model")),
        "isa": sorted(fp["isa"]) if fp.get("isa") is not None else None,
        # Kernel-choosing settings (machine.KERNEL_ENV_VARS): a fingerprint from before they were
        # recorded was taken without any.
        "kernel_env": dict(sorted((fp.get("kernel_env") or {}).items())),
        "cpu_model": fp.get("cpu_model"),
        # Family and model numbers; a fingerprint from before they were recorded leaves them unknown.
        "cpu_signature": list(fp["cpu_signature"]) if fp.get("cpu_signature") else None,
        "caches": [[c["level"], c["size_bytes"]] for c in caches] if caches else None,
        "logical_cores": fp.get("logical_cores"),
        "torch": torch.split("+")[0] if isinstance(torch, str) else None,
    }


def mismatch(profile_fp: dict[str, Any], here: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [profile's value, this machine's value]}`` for the identity fields known on both
    sides that differ (empty: the profile matches)."""
    a, b = _identity(profile_fp), _identity(here)
    return {k: [a[k], b[k]] for k in MATCH_WEIGHTS if a[k] is not None and b[k] is not None and a[k] != b[k]}


def _one_difference(key: str, theirs: Any, ours: Any) -> str:
    if key == "isa":
        parts = [f"{', '.join(sorted(set(ours) - set(theirs)))} here only" if set(ours) - set(theirs) else "",
                 f"{', '.join(sorted(set(theirs) - set(ours)))} there only" if set(theirs) - set(ours) else ""]
        return f"ISA ({'; '.join(p for p in parts if p)})"
    if key == "caches":
        a, b = dict((int(lv), int(n)) for lv, n in theirs), dict((int(lv), int(n)) for lv, n in ours)
        levels = [lv for lv in sorted(set(a) | set(b)) if a.get(lv) != b.get(lv)]
        return "caches (" + "; ".join(
            f"L{lv} {fmt_bytes(a[lv]) if lv in a else 'none'} there, {fmt_bytes(b[lv]) if lv in b else 'none'} here"
            for lv in levels) + ")"
    if key == "cpu_signature":
        return f"family/model ({theirs[0]}/{theirs[1]} there, {ours[0]}/{ours[1]} here)"
    return f"{key.replace('_', ' ')} ({theirs} there, {ours} here)"


def mismatch_text(diff: dict[str, list[Any]]) -> str:
    """What differs between a profile's machine and this one, in words: ``ISA (avx_vnni here only),
    caches (L1 32 KiB there, 48 KiB here)``."""
    return ", ".join(_one_difference(k, theirs, ours) for k, (theirs, ours) in diff.items())


def distance(profile_fp: dict[str, Any], here: dict[str, Any]) -> float:
    """How unlike this machine the profile's is: the weights of the differing fields."""
    return sum(MATCH_WEIGHTS[k] for k in mismatch(profile_fp, here))


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a command uses and how it relates to this machine."""

    path: Path
    match: bool
    mismatch: dict[str, list[Any]] = field(default_factory=dict)
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        """The keys every prediction record carries about it."""
        out: dict[str, Any] = {"profile_match": self.match}
        if not self.match:
            out["profile_mismatch"] = self.mismatch
        return out


def profile_dirs() -> list[Path]:
    """Where gru-sim looks for profiles, first found first: the project's ``calibration/profiles/``
    in a source checkout, the user's data folder, the profiles shipped in the package."""
    return profile_search_dirs()


def _fingerprint_of(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    fp = doc.get("fingerprint") if isinstance(doc, dict) else None
    return fp if isinstance(fp, dict) else None


def known_profiles(device: str, dirs: list[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable profile of ``device`` in ``dirs`` (default :func:`profile_dirs`)."""
    out = []
    for d in dirs or profile_dirs():
        for path in sorted(Path(d).glob("*.json")):
            fp = _fingerprint_of(path)
            if fp is not None and fp.get("device", "cpu") == device:
                out.append((path, fp))
    return out


def describe(fp: dict[str, Any]) -> str:
    """A machine in a few words: its CPU (or GPU) model, family and model numbers where known, and core
    count; where the two machines' model names are alike, :func:`mismatch` says what differs."""
    if fp.get("device") == "cuda" and fp.get("gpu_name"):
        return str(fp["gpu_name"])
    cores = fp.get("logical_cores")
    # The machine's label (machine.label_of) with the core count before the kernel-choosing settings.
    return (label_of({**fp, "kernel_env": None}) + (f", {cores} cores" if cores else "")
            + kernel_env_text(fp.get("kernel_env")))


def choose_profile(device: str, here: dict[str, Any] | None = None, explicit: str | Path | None = None,
                   dirs: list[Path] | None = None) -> ProfileChoice:
    """The profile to use for ``device``: ``explicit`` when given, else the one matching this machine,
    else the nearest; with how it relates to this machine. A ProfileError when there is none."""
    here = here or here_fingerprint(device)
    if explicit is not None:
        path = Path(explicit)
        fp = _fingerprint_of(path) or {}
        diff = mismatch(fp, here) if fp else {}
        return ProfileChoice(path, not diff, diff, "given with --profile")
    candidates = known_profiles(device, dirs)
    if not candidates:
        where = ", ".join(str(d) for d in (dirs or profile_dirs()))
        raise ProfileError(f"no {device} profile in {where}: run 'gru-sim calibrate --device {device}' "
                           "(or 'gru-sim calibrate --quick' from another machine's profile), or pass --profile")
    # Nearest first; among equals the shipped default, then by name (deterministic).
    ranked = sorted(candidates, key=lambda pf: (distance(pf[1], here), not pf[0].stem.endswith("-default"),
                                                pf[0].name))
    path, fp = ranked[0]
    diff = mismatch(fp, here)
    if not diff:
        return ProfileChoice(path, True, {}, f"matches this machine ({describe(here)})")
    return ProfileChoice(path, False, diff, f"the nearest to this machine ({describe(here)}): it was made on "
                                            f"{describe(fp)}; differs in {mismatch_text(diff)}")


def own_profile_path(device: str, directory: Path) -> Path:
    """This machine's own profile in ``directory``: ``<device>-<machine>-<cores>c.json``, the machine
    named by its CPU model and any kernel-choosing settings in force (``machine.machine_label``)."""
    return directory / f"{device}-{file_slug(machine_label())}-{os.cpu_count() or 1}c.json"


def calibration_out_path(device: str, directory: Path) -> Path:
    """Where a full calibration goes without ``--out``: ``<device>-default.json``, unless that file
    describes another machine (then it stays, and this machine gets its own, :func:`own_profile_path`),
    so that a checkout's library keeps every machine kind calibrated in it. A pool of this machine
    there is replaced: ``predict`` and the others then use the user's own calibration, and the run
    was read against the pool before it was written (``calibrate.prior``)."""
    default = directory / f"{device}-default.json"
    fp = _fingerprint_of(default) if default.is_file() else None
    if fp is not None and mismatch(fp, here_fingerprint(device)):
        return own_profile_path(device, directory)
    return default
