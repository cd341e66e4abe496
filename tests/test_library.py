"""Choosing the profile that describes this machine: exact match, nearest, none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gru_sim.errors import ProfileError
from gru_sim.model.library import choose_profile, describe, distance, mismatch

AMD = {"device": "cpu", "cpu_model": "AMD EPYC", "logical_cores": 2, "isa": ["avx2", "avx512f"],
       "caches": [{"level": 2, "size_bytes": 1 << 20}, {"level": 3, "size_bytes": 32 << 20}], "torch": "2.13.0+cpu"}
INTEL = {**AMD, "cpu_model": "Intel(R) Xeon(R) Platinum 8481C", "isa": ["avx2", "avx512f", "amx_tile"],
         "caches": [{"level": 2, "size_bytes": 2 << 20}, {"level": 3, "size_bytes": 105 << 20}]}


def _write(folder: Path, name: str, fp: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps({"fingerprint": fp}))
    return path


def test_the_profile_of_this_machine_is_chosen_and_matches(tmp_path: Path) -> None:
    _write(tmp_path, "cpu-intel.json", INTEL)
    amd = _write(tmp_path, "cpu-amd.json", AMD)
    here = {**AMD, "torch": "2.13.0"}  # the local build tag is not part of the identity
    choice = choose_profile("cpu", here, dirs=[tmp_path])
    assert choice.path == amd and choice.match and choice.to_record() == {"profile_match": True}


def test_without_a_match_the_nearest_is_chosen_and_says_what_differs(tmp_path: Path) -> None:
    _write(tmp_path, "cpu-intel.json", INTEL)
    amd = _write(tmp_path, "cpu-amd.json", AMD)
    here = {**AMD, "logical_cores": 8}
    choice = choose_profile("cpu", here, dirs=[tmp_path])
    assert choice.path == amd and not choice.match
    assert choice.to_record()["profile_mismatch"] == {"logical_cores": [2, 8]}
    assert "nearest" in choice.reason


def test_another_vendor_is_farther_than_another_core_count() -> None:
    assert distance(INTEL, AMD) > distance({**AMD, "logical_cores": 64}, AMD)
    assert set(mismatch(INTEL, AMD)) >= {"cpu_vendor", "isa", "cpu_model", "caches"}


def test_no_profile_for_the_device_is_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path, "cpu-amd.json", AMD)
    with pytest.raises(ProfileError, match="calibrate"):
        choose_profile("cuda", {"device": "cuda"}, dirs=[tmp_path])


def test_an_explicit_profile_is_used_and_still_compared(tmp_path: Path) -> None:
    intel = _write(tmp_path, "cpu-intel.json", INTEL)
    choice = choose_profile("cpu", AMD, explicit=intel, dirs=[tmp_path])
    assert choice.path == intel and not choice.match and "cpu_vendor" in choice.mismatch


def test_kernel_choosing_settings_make_another_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from gru_sim.machine import KERNEL_ENV_VARS, kernel_env, machine_label

    for name in KERNEL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert kernel_env() == {"ATEN_CPU_CAPABILITY": "default"}
    assert machine_label().endswith("[ATEN_CPU_CAPABILITY=default]")
    held = {**AMD, "kernel_env": {"MKL_CBWR": "COMPATIBLE"}}
    assert mismatch(held, AMD) == {"kernel_env": [{"MKL_CBWR": "COMPATIBLE"}, {}]}
    assert mismatch({**AMD, "kernel_env": {}}, AMD) == {}  # none recorded, or an older fingerprint: the same
    assert distance(held, AMD) > distance({**AMD, "logical_cores": 64}, AMD)
    assert describe(held) == "AMD EPYC, 2 cores [MKL_CBWR=COMPATIBLE]"


def test_a_full_calibration_keeps_another_machines_default(tmp_path: Path) -> None:
    from gru_sim.model.library import calibration_out_path, here_fingerprint, own_profile_path

    default = tmp_path / "cpu-default.json"
    assert calibration_out_path("cpu", tmp_path) == default  # none yet
    _write(tmp_path, "cpu-default.json", here_fingerprint("cpu"))
    assert calibration_out_path("cpu", tmp_path) == default  # this machine's: replaced
    _write(tmp_path, "cpu-default.json", {**INTEL, "cpu_model": "Not This CPU"})
    own = calibration_out_path("cpu", tmp_path)
    assert own == own_profile_path("cpu", tmp_path) != default and own.name.startswith("cpu-")

