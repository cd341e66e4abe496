"""Which calibration profile a command uses, and what to tell the user about it: the one named, else
the shipped default of the device; and whether it was made on another machine or software stack, in
which case its predictions may not hold here."""

from __future__ import annotations

from pathlib import Path

from .machine import differences, host_facts, torch_version_matches
from .model.profile import Profile, load_profile, shipped_default_profile


def load_profile_for(path: str | Path | None, device: str | None) -> tuple[Profile, list[str]]:
    """The profile at ``path``, or the shipped default of ``device`` (cpu when None), and the notes to
    show: which default was taken, and how the profile's machine differs from this one."""
    notes = []
    if path is None:
        path = shipped_default_profile(device or "cpu")
        notes.append(f"using the shipped default profile {path}")
    profile = load_profile(path)
    here = {"device": device or profile.device, **host_facts()}
    diff = differences(profile.fingerprint, here, ("device", "cpu_model", "physical_cores"))
    if not torch_version_matches(profile.fingerprint.get("torch"), here.get("torch")):
        diff.append(f"torch: {profile.fingerprint.get('torch')!r} here {here.get('torch')!r}")
    if diff:
        notes.append(f"warning: profile {path} was made on another machine or stack "
                     f"(profile {'; '.join(diff)}); its predictions may not hold here")
    return profile, notes
