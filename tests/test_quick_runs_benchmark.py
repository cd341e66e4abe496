"""benchmarks/quick_runs.py: a stored quick adaptation is derived again under the kernel-choosing
settings it was measured with, and nothing is measured while it is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from gru_sim.calibrate.store import MeasurementStore
from gru_sim.machine import KERNEL_ENV_VARS

ROOT = Path(__file__).resolve().parent.parent


def test_a_store_is_derived_again_under_exactly_the_settings_it_was_measured_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, benchmark_script: Callable[[str], Any]) -> None:
    qr = benchmark_script("quick_runs")
    with MeasurementStore(tmp_path / "emulated.sqlite") as store:
        store.set_meta("fingerprint", {"cpu_model": "AMD EPYC", "kernel_env": {"MKL_CBWR": "COMPATIBLE"}})
    with MeasurementStore(tmp_path / "plain.sqlite") as store:
        store.set_meta("fingerprint", {"cpu_model": "AMD EPYC", "kernel_env": {}})
    assert qr.kernel_env_of(tmp_path / "emulated.sqlite") == {"MKL_CBWR": "COMPATIBLE"}
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # set here, not when the store was measured
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = qr.child_env(qr.kernel_env_of(tmp_path / "emulated.sqlite"))
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["SOMETHING_ELSE"] == "kept"
    assert "ATEN_CPU_CAPABILITY" not in env
    plain = qr.child_env(qr.kernel_env_of(tmp_path / "plain.sqlite"))
    assert not any(k in plain for k in KERNEL_ENV_VARS)


def test_a_store_is_judged_against_the_records_of_the_machine_it_was_measured_on(
        benchmark_script: Callable[[str], Any]) -> None:
    qr = benchmark_script("quick_runs")
    zen5 = {"cpu_model": "AMD EPYC", "cpu_signature": [26, 2], "kernel_env": {}}
    assert qr.cpu_of(zen5, "This CPU (family 9, model 9)") == "AMD EPYC (family 26, model 2)"
    # A store from before family and model numbers were recorded: the kind named on the command line.
    old = {"cpu_model": "AMD EPYC", "kernel_env": {"MKL_CBWR": "COMPATIBLE"}}
    assert qr.cpu_of(old, "AMD EPYC (family 25, model 17)") == "AMD EPYC (family 25, model 17) [MKL_CBWR=COMPATIBLE]"


@pytest.mark.slow
def test_deriving_a_stored_adaptation_again_measures_nothing_and_gives_the_same_tables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, benchmark_script: Callable[[str], Any]) -> None:
    import json
    import subprocess

    from gru_sim.calibrate import adapt
    from gru_sim.measure import units

    exe = str(Path(sys.executable).parent / "gru-sim")
    job = ROOT / "tests" / "data" / "tiny-job.yaml"
    source, quick = tmp_path / "source.json", tmp_path / "quick.json"
    subprocess.run([exe, "calibrate", "--job", str(job), "--out", str(source)], check=True, capture_output=True)
    subprocess.run([exe, "calibrate", "--quick", "--from", str(source), "--out", str(quick)], check=True,
                   capture_output=True)

    def no_measuring(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the derivation measured something")

    for name in ("time_gru_call_s", "recurrent_matmul_s", "projection_gemm_s", "copy_bandwidth_bytes_per_s"):
        monkeypatch.setattr(units, name, no_measuring)
    monkeypatch.setattr(adapt, "measure_gru", no_measuring)
    monkeypatch.setattr(adapt, "quick_ceilings", no_measuring)
    qr = benchmark_script("quick_runs")
    derived = tmp_path / "derived" / "again.json"
    derived.parent.mkdir()
    qr.derive(quick.with_suffix(".sqlite"), source, derived, passes_as_one=True)
    made, again = (json.loads(p.read_text())["cost_model"] for p in (quick, derived))
    assert again["step_tables"] == made["step_tables"] and again["gemm_tables"] == made["gemm_tables"]
