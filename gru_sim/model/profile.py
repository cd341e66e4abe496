"""Calibration profiles: everything a calibration learned about one machine, as versioned JSON.

A profile holds the fingerprint of the machine and stack it was made on, the job spec, the calibrated
range of every axis, the fitted cost-model and memory-model parameters, the roofline ceilings, the
self-check errors and the canary configurations of the drift check. It carries a SHA-256 checksum of
its content: a profile edited by hand is refused rather than trusted. No pickles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProfileError
from ..locations import shipped_profiles_dir
from .costmodel import GruCostModel
from .memory_model import MemoryModel

SCHEMA_VERSION = 2
# The shipped profiles: a checkout's calibration/profiles/ (a link to gru_sim/data/profiles/), or the
# installed package's own copy (see gru_sim.locations).
PROFILES_DIR = shipped_profiles_dir()


def default_profile_path(device: str) -> Path:
    """The shipped default profile of ``device`` (``calibration/profiles/<device>-default.json`` in a
    checkout, ``gru_sim/data/profiles/`` in the installed package)."""
    return PROFILES_DIR / f"{device}-default.json"


def shipped_default_profile(device: str) -> Path:
    """The default profile of ``device``; a ProfileError saying how to make one if none ships."""
    path = default_profile_path(device)
    if not path.exists():
        raise ProfileError(f"no default profile for device {device} ({path}): run 'gru-sim calibrate "
                           f"--device {device}' on a machine with one, or pass --profile")
    return path


def _checksum(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Profile:
    """A loaded, verified profile."""

    path: Path | None
    fingerprint: dict[str, Any]
    job: dict[str, Any]
    ranges: dict[str, Any]
    ceilings: dict[str, Any]
    self_check: dict[str, Any]
    cost_model: GruCostModel
    memory_model: MemoryModel
    canaries: list[dict[str, Any]]
    created_at: str
    measurements: list[dict[str, Any]]
    # A profile adapted from another machine's: that profile's path and fingerprint.
    adapted_from: dict[str, Any] | None = None
    # A pool's: how far one of its runs' units lie from the pool's by chance (log sd, per table part;
    # see calibrate.prior), so that a fresh calibration on this machine kind can be read against it.
    unit_scatter_log_sd: dict[str, float] | None = None

    @property
    def device(self) -> str:
        return str(self.fingerprint.get("device", "cpu"))

    def summary(self) -> dict[str, Any]:
        """What a prediction record says about the profile it came from."""
        fp = self.fingerprint
        return {"path": str(self.path) if self.path else None, "created_at": self.created_at,
                "device": fp.get("device"), "cpu_model": fp.get("cpu_model"), "gpu_name": fp.get("gpu_name"),
                "torch": fp.get("torch"), "self_check_median_ape": self.self_check.get("holdout", {}).get("median_ape")}

    def to_content(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "fingerprint": self.fingerprint,
            "job": self.job,
            "ranges": self.ranges,
            "ceilings": self.ceilings,
            "self_check": self.self_check,
            "cost_model": self.cost_model.to_dict(),
            "memory_model": self.memory_model.to_dict(),
            "canaries": self.canaries,
            "measurements": self.measurements,
            **({"adapted_from": self.adapted_from} if self.adapted_from else {}),
            **({"unit_scatter_log_sd": self.unit_scatter_log_sd} if self.unit_scatter_log_sd else {}),
        }


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write ``profile`` as JSON with its checksum; returns the path."""
    path = Path(path)
    content = profile.to_content()
    doc = {**content, "checksum_sha256": _checksum(content)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    profile.path = path
    return path


def load_profile(path: str | Path) -> Profile:
    """Read and verify a profile: it must exist, be JSON of this schema version and match its checksum."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile not found (make one with 'gru-sim calibrate --out {path}')") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ProfileError(f"{path}: not a readable JSON profile: {err}") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"{path}: a profile is a JSON object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ProfileError(f"{path}: schema_version {version!r}, this gru-sim reads {SCHEMA_VERSION}: "
                           "recalibrate with this version")
    stored = doc.pop("checksum_sha256", None)
    if stored != _checksum(doc):
        raise ProfileError(f"{path}: checksum mismatch: the profile was changed after calibration; "
                           "recalibrate instead of editing it")
    try:
        return Profile(path=path, fingerprint=doc["fingerprint"], job=doc["job"], ranges=doc["ranges"],
                       ceilings=doc["ceilings"], self_check=doc["self_check"],
                       cost_model=GruCostModel.from_dict(doc["cost_model"]),
                       memory_model=MemoryModel.from_dict(doc["memory_model"]), canaries=doc["canaries"],
                       created_at=doc["created_at"], measurements=doc["measurements"],
                       adapted_from=doc.get("adapted_from"), unit_scatter_log_sd=doc.get("unit_scatter_log_sd"))
    except (KeyError, TypeError, ValueError) as err:
        raise ProfileError(f"{path}: malformed profile ({err!r}): recalibrate") from None
