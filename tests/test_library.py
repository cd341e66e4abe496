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


def test_parts_that_share_a_model_name_are_told_apart_by_family_and_model(tmp_path: Path) -> None:
    # A KVM guest shows "AMD EPYC" for a Zen 4 (family 25) and a Zen 5 (family 26) alike.
    zen4 = {**AMD, "cpu_signature": [25, 17]}
    zen5 = {**AMD, "cpu_signature": [26, 2]}
    assert mismatch(zen4, zen5) == {"cpu_signature": [[25, 17], [26, 2]]}
    assert mismatch(AMD, zen5) == {}  # a fingerprint from before the numbers were recorded: not compared
    assert describe(zen5) == "AMD EPYC (family 26, model 2), 2 cores"
    _write(tmp_path, "cpu-zen4.json", zen4)
    own = _write(tmp_path, "cpu-zen5.json", zen5)
    assert choose_profile("cpu", zen5, dirs=[tmp_path]).path == own


def test_what_differs_is_said_in_words_with_both_values() -> None:
    from gru_sim.model.library import mismatch_text

    zen4 = {**AMD, "isa": ["avx2", "avx512f"], "cpu_signature": [25, 17],
            "caches": [{"level": 1, "size_bytes": 32 << 10}, {"level": 2, "size_bytes": 1 << 20}]}
    zen5 = {**AMD, "isa": ["avx2", "avx512f", "avx_vnni"], "cpu_signature": [26, 2],
            "caches": [{"level": 1, "size_bytes": 48 << 10}, {"level": 2, "size_bytes": 1 << 20}]}
    text = mismatch_text(mismatch(zen4, zen5))
    assert text == ("ISA (avx_vnni here only), family/model (25/17 there, 26/2 here), "
                    "caches (L1 32 KiB there, 48 KiB here)")
    assert mismatch_text(mismatch({**AMD, "logical_cores": 8}, AMD)) == "logical cores (8 there, 2 here)"


def test_the_cpu_signature_is_read_from_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    from gru_sim import machine

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"
                    "model name\t: AMD EPYC\n\nprocessor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k))
    for name in machine.KERNEL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert machine.cpu_signature() == (26, 2)
    assert machine.machine_label() == "AMD EPYC (family 26, model 2)"
    assert machine.signature_text(None) == ""


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

