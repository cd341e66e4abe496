"""Which calibration profile a command uses, and what to tell the user about it: the one named, else
the profile of this machine among those gru-sim knows (``gru_sim.model.library``), else the nearest;
and, when it was made on another machine, which one, how it differs, and the command that fixes it."""

from __future__ import annotations

from pathlib import Path

from .model.library import ProfileChoice, choose_profile, describe, here_fingerprint, mismatch_text
from .model.profile import Profile, load_profile


def foreign_note(choice: ProfileChoice, profile: Profile, device: str) -> str:
    """One line for a profile of another machine: both machines, what differs, and the remedy."""
    here = here_fingerprint(device)
    return (f"warning: profile {choice.path} was made on another machine ({describe(profile.fingerprint)}), not on "
            f"this one ({describe(here)}; differs in {mismatch_text(choice.mismatch)}): its intervals are widened; "
            f"run 'gru-sim calibrate --quick' (about a minute) for this machine's numbers")


def load_profile_for(path: str | Path | None, device: str | None) -> tuple[Profile, list[str]]:
    """The profile at ``path``, or the best of the known profiles of ``device`` (cpu when None), and
    the notes to show: which profile was taken and why, and how its machine differs from this one."""
    device = device or "cpu"
    notes = []
    choice = choose_profile(device, explicit=path)
    if path is None:
        notes.append(f"using profile {choice.path}: {choice.reason}")
    profile = load_profile(choice.path)
    if not choice.match:
        notes.append(foreign_note(choice, profile, device))
    return profile, notes

