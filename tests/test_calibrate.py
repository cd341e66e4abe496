"""Calibration jobs: specs are validated, the store survives a killed job, and resuming measures
nothing twice and loses nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gru_sim.calibrate.design import beyond_configs, holdout_flags, sobol_configs
from gru_sim.calibrate.jobs import default_job_path, load_job
from gru_sim.errors import GruSimError
from gru_sim.model.profile import load_profile

TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GRU_SIM = str(Path(sys.executable).parent / "gru-sim")


def _rows(store: Path) -> dict[str, float]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT key, created_at FROM points"))


def _points_so_far(store: Path) -> int:
    """Points a running job has stored (0 while its store is not there or its tables not yet made: the
    file exists a moment before the job's first transaction creates them)."""
    try:
        return len(_rows(store)) if store.exists() else 0
    except sqlite3.OperationalError:
        return 0


def test_the_shipped_job_specs_are_valid() -> None:
    for device in ("cpu", "cuda"):
        assert load_job(default_job_path(device)).device == device


def test_a_job_spec_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "budgett: 3\n")
    with pytest.raises(GruSimError, match="budgett"):
        load_job(bad)


def test_a_job_spec_with_an_inverted_range_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("batch: [1, 8]", "batch: [8, 1]"))
    with pytest.raises(GruSimError, match="batch"):
        load_job(bad)


def test_the_design_is_deterministic_and_inside_the_ranges() -> None:
    spec = load_job(TINY)
    a = [c for _, c in zip(range(50), sobol_configs(spec, "float32", "torch-gru", 1, seed=0))]
    b = [c for _, c in zip(range(50), sobol_configs(spec, "float32", "torch-gru", 1, seed=0))]
    assert a == b
    assert all(1 <= c.batch <= 8 and 4 <= c.hidden_size <= 32 and c.num_layers in (1, 2) for c in a)
    assert {c.mode for c in a} == {"inference", "training"}


def test_beyond_points_lie_past_the_range_on_their_axis() -> None:
    spec = load_job(TINY)
    pts = beyond_configs(spec, "float32", "torch-gru", 1, 0, lambda c: 0.0)
    assert len(pts) == 4
    assert all(c.hidden_size > 32 or c.seq_len > 16 for c in pts)


def test_about_a_fifth_is_held_out() -> None:
    assert 0.15 < holdout_flags(2000, 0.2, seed=0).mean() < 0.25


@pytest.mark.slow
def test_a_killed_job_resumes_without_measuring_anything_twice(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    store = tmp_path / "p.sqlite"
    cmd = [GRU_SIM, "calibrate", "--job", str(TINY), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some points are stored, then kill mid-job
        time.sleep(0.2)
        if proc.poll() is not None or _points_so_far(store) >= 5:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(store)
    assert len(before) >= 5 and not out.exists()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _rows(store)
    # None lost, none measured again (a re-measured point would carry a new timestamp).
    assert all(after.get(k) == t for k, t in before.items())
    assert len(after) > len(before)
    profile = load_profile(out)
    stored = {(m["role"], json.dumps(m["config"], sort_keys=True)) for m in profile.measurements}
    assert len(stored) == len(profile.measurements) == len(after)
    assert profile.self_check["holdout"]["n"] >= 1


@pytest.mark.slow
def test_resuming_with_another_job_in_the_same_store_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    subprocess.run([GRU_SIM, "calibrate", "--job", str(TINY), "--out", str(out), "--budget", "2"],
                   capture_output=True, text=True, timeout=300)
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("hidden_size: [4, 32]", "hidden_size: [4, 64]"))
    proc = subprocess.run([GRU_SIM, "calibrate", "--job", str(other), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "different job" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_job_saying_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    store = tmp_path / "p.sqlite"
    # Ctrl-C as a terminal delivers it: a test run started in the background of a non-interactive
    # shell (nohup, CI wrappers) has SIGINT ignored, which a child would inherit and rightly obey.
    proc = subprocess.Popen([GRU_SIM, "calibrate", "--job", str(TINY), "--out", str(out), "--budget", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if _points_so_far(store) >= 3:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert len(_rows(store)) >= 3


@pytest.mark.slow
def test_a_cuda_job_without_cuda_stops_at_once_creating_nothing(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "gpu" / "p.json"
    proc = subprocess.run([GRU_SIM, "calibrate", "--device", "cuda", "--out", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "device(=cuda) is not available" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "gpu").exists()
