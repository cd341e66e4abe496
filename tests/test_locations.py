"""Where gru-sim looks for profiles and job specs, and where it writes new profiles: in a source
checkout and as an installed package (the package's folder above the checkout faked away)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gru_sim import locations
from gru_sim.calibrate.jobs import default_job_path
from gru_sim.model.library import profile_dirs
from gru_sim.model.profile import default_profile_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if gru_sim lay in site-packages: no pyproject.toml, no calibration/ above it."""
    monkeypatch.setattr(locations, "_SOURCE_ROOT", tmp_path / "site-packages")


def test_the_checkouts_calibration_folders_are_the_packages_shipped_data() -> None:
    assert (ROOT / "calibration" / "profiles").resolve() == locations.PACKAGE_PROFILES_DIR
    assert (ROOT / "calibration" / "jobs").resolve() == locations.PACKAGE_JOBS_DIR


def test_git_stores_the_calibration_folders_as_links() -> None:
    proc = subprocess.run(["git", "ls-files", "-s", "calibration/profiles", "calibration/jobs"], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout:
        pytest.skip("not a git checkout")
    modes = {line.split()[-1]: line.split()[0] for line in proc.stdout.splitlines()}
    assert modes == {"calibration/profiles": "120000", "calibration/jobs": "120000"}


def test_the_shipped_default_profile_and_job_are_inside_the_package() -> None:
    assert (locations.PACKAGE_PROFILES_DIR / "cpu-default.json").is_file()
    assert (locations.PACKAGE_JOBS_DIR / "cpu-default.yaml").is_file()
    assert (locations.PACKAGE_JOBS_DIR / "cuda-default.yaml").is_file()


def test_in_a_checkout_the_project_folder_comes_first_then_the_users_without_duplicates(data_home: Path) -> None:
    # The package's folder is the checkout's, behind the link: listed once.
    assert profile_dirs() == [ROOT / "calibration" / "profiles", data_home / "gru-sim" / "profiles"]


def test_in_a_checkout_new_profiles_go_to_the_projects_calibration_folder(data_home: Path) -> None:
    assert locations.profiles_write_dir() == ROOT / "calibration" / "profiles"
    assert default_profile_path("cpu") == ROOT / "calibration" / "profiles" / "cpu-default.json"
    assert default_job_path("cpu") == ROOT / "calibration" / "jobs" / "cpu-default.yaml"


def test_installed_looks_in_the_users_folder_then_the_shipped_profiles(data_home: Path, installed: None) -> None:
    assert locations.checkout_root() is None
    assert locations.profile_search_dirs() == [data_home / "gru-sim" / "profiles", locations.PACKAGE_PROFILES_DIR]


def test_installed_writes_new_profiles_to_the_users_data_folder(data_home: Path, installed: None) -> None:
    assert locations.profiles_write_dir() == data_home / "gru-sim" / "profiles"
    assert locations.shipped_profiles_dir() == locations.PACKAGE_PROFILES_DIR
    assert locations.jobs_dir() == locations.PACKAGE_JOBS_DIR


def test_help_says_where_profiles_and_job_specs_are(data_home: Path) -> None:
    from gru_sim.cli import build_parser

    text = build_parser().format_help()
    assert f"{ROOT / 'calibration' / 'profiles'}  (this checkout, with the shipped ones; new ones are written here)" in text
    assert f"{data_home / 'gru-sim' / 'profiles'}  (your data folder)" in text
    assert f"default job specs: {ROOT / 'calibration' / 'jobs'}" in text
