"""Where gru-sim keeps its files: the profiles and job specs it ships, a source checkout's
``calibration/`` folder, and the user's own data folder.

The shipped profiles and default job specs live inside the package (``gru_sim/data/``), so an
install from a wheel (``pip install``, ``pipx``) finds them. In a source checkout ``calibration/profiles``
and ``calibration/jobs`` are links to those same folders: the repository keeps ``calibration/`` as the
place people look, and a profile calibrated there lands next to the shipped one. Outside a checkout new
profiles go to the user's data folder (``platformdirs.user_data_dir("gru-sim")``, e.g.
``~/.local/share/gru-sim/profiles`` on Linux), never into the installed package.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "gru-sim"
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"
PACKAGE_PROFILES_DIR = PACKAGE_DATA_DIR / "profiles"
PACKAGE_JOBS_DIR = PACKAGE_DATA_DIR / "jobs"
# The folder above the package: the repository's root when gru-sim runs from a source checkout
# (an editable install), site-packages when it was installed from a wheel.
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def checkout_root() -> Path | None:
    """The source checkout gru-sim runs from (the folder holding ``pyproject.toml`` and
    ``calibration/profiles/``), or None when it runs from an installed package."""
    root = _SOURCE_ROOT
    if (root / "pyproject.toml").is_file() and (root / "calibration" / "profiles").is_dir():
        return root
    return None


def project_profiles_dir() -> Path | None:
    """The checkout's ``calibration/profiles/``, or None outside a checkout."""
    root = checkout_root()
    return root / "calibration" / "profiles" if root else None


def user_profiles_dir() -> Path:
    """The user's own profiles: ``<user data folder>/profiles`` (it may not exist yet)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "profiles"


def shipped_profiles_dir() -> Path:
    """The profiles that ship with gru-sim, under the name people know them by: the checkout's
    ``calibration/profiles/`` in a checkout (the same files), else the package's own folder."""
    return project_profiles_dir() or PACKAGE_PROFILES_DIR


def profiles_write_dir() -> Path:
    """Where a new profile goes when no ``--out`` is given: the checkout's ``calibration/profiles/``,
    else the user's data folder."""
    return project_profiles_dir() or user_profiles_dir()


def profile_search_dirs() -> list[Path]:
    """Where profiles are looked for, first found first: the checkout's ``calibration/profiles/``,
    the user's data folder, the package's shipped profiles; a folder that is another's link once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for d in (project_profiles_dir(), user_profiles_dir(), PACKAGE_PROFILES_DIR):
        if d is None:
            continue
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def jobs_dir() -> Path:
    """Where the default job specs are: the checkout's ``calibration/jobs/``, else the package's."""
    root = checkout_root()
    if root is not None and (root / "calibration" / "jobs").is_dir():
        return root / "calibration" / "jobs"
    return PACKAGE_JOBS_DIR


def file_slug(text: str) -> str:
    """``text`` as a piece of a file name: lower case, runs of other characters as one ``-``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug or "unknown"
