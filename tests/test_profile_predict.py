"""Profiles are verified on load; predict answers from a profile without torch, in the contract's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gru_sim.config import GruConfig
from gru_sim.errors import ProfileError
from gru_sim.predict import Predictor
from gru_sim.model.profile import default_profile_path, load_profile

from model_fixtures import make_profile

GRU_SIM = str(Path(sys.executable).parent / "gru-sim")
SHAPE = ["--batch", "4", "--seq-len", "16", "--input-size", "32", "--hidden-size", "48"]


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_profile(tmp_path_factory.mktemp("profile") / "synthetic.json")


def test_a_saved_profile_loads_and_predicts_the_same(profile_path: Path) -> None:
    p = load_profile(profile_path)
    c = GruConfig(batch=8, seq_len=32, input_size=64, hidden_size=64)
    assert Predictor(p).predict(c).latency_s == pytest.approx(p.cost_model.predict_one(c), rel=1e-9)


def test_a_tampered_profile_is_refused(profile_path: Path, tmp_path: Path) -> None:
    doc = json.loads(profile_path.read_text())
    doc["cost_model"]["groups"]["cpu/float32/torch-gru/t1"]["modes"]["inference"]["coef"][0] *= 2
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="checksum mismatch"):
        load_profile(bad)


def test_a_profile_of_another_schema_version_is_refused(profile_path: Path, tmp_path: Path) -> None:
    doc = json.loads(profile_path.read_text())
    doc["schema_version"] = 99
    bad = tmp_path / "future.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="schema_version 99"):
        load_profile(bad)


def test_a_profile_that_is_not_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not a readable JSON profile"):
        load_profile(bad)


def test_the_shipped_default_profile_loads() -> None:
    p = load_profile(default_profile_path("cpu"))
    assert p.cost_model.coef_ and p.self_check["holdout"]["n"] > 0


def test_predict_record_has_the_contract_keys(profile_path: Path) -> None:
    rec = Predictor(load_profile(profile_path)).predict(
        GruConfig(batch=4, seq_len=16, input_size=32, hidden_size=48, num_layers=2, bidirectional=True)).to_dict()
    for key in ("config", "latency_s", "throughput_seq_per_s", "throughput_tokens_per_s", "peak_memory_bytes",
                "latency_interval_s", "breakdown_s", "parallelism", "extrapolated", "profile"):
        assert key in rec
    lo, hi = rec["latency_interval_s"]
    assert lo <= rec["latency_s"] <= hi
    assert rec["throughput_seq_per_s"] * rec["latency_s"] == pytest.approx(4)
    # Two independent directions: the critical path is about half the work.
    assert rec["parallelism"]["avg_concurrency"] > 1.5


@pytest.mark.slow
def test_predict_never_imports_torch(profile_path: Path) -> None:
    code = ("import sys; from gru_sim.cli import main; "
            f"main(['predict', '--profile', {str(profile_path)!r}, '--batch', '2', '--seq-len', '3', "
            "'--input-size', '4', '--hidden-size', '5', '--json']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_predict_with_a_missing_profile_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([GRU_SIM, "predict", *SHAPE, "--profile", str(tmp_path / "nope.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "nope.json" in proc.stderr


@pytest.mark.slow
def test_predict_grid_writes_one_record_per_row(profile_path: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.csv"
    grid.write_text("batch,seq_len,input_size,hidden_size,layers,mode\n1,8,16,16,1,inference\n"
                    "2,16,16,32,2,training\n8,32,32,64,,\n")
    proc = subprocess.run([GRU_SIM, "predict", "--profile", str(profile_path), "--grid", str(grid)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["config"]["num_layers"] for r in recs] == [1, 2, 1]
    assert [r["config"]["mode"] for r in recs] == ["inference", "training", "inference"]


@pytest.mark.slow
def test_predict_grid_names_the_bad_row(profile_path: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.csv"
    grid.write_text("batch,seq_len,input_size,hidden_size\n1,8,16,16\n2,0,16,32\n")
    proc = subprocess.run([GRU_SIM, "predict", "--profile", str(profile_path), "--grid", str(grid)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "grid.csv:3" in proc.stderr and "seq_len(=0)" in proc.stderr


@pytest.mark.slow
def test_predict_trace_is_a_chrome_trace(profile_path: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    proc = subprocess.run([GRU_SIM, "predict", "--profile", str(profile_path), *SHAPE, "--layers", "2",
                           "--trace", str(trace)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("ph") == "X"]
    assert events and all(e["dur"] >= 0 and "ts" in e for e in events)


@pytest.mark.slow
def test_a_profile_from_another_machine_warns_naming_the_difference(profile_path: Path) -> None:
    proc = subprocess.run([GRU_SIM, "predict", "--profile", str(profile_path), *SHAPE],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "another machine" in proc.stderr and "cpu model (synthetic there, " in proc.stderr


@pytest.mark.slow
def test_predict_for_a_device_without_a_default_profile_says_how_to_make_one() -> None:
    if default_profile_path("cuda").exists():
        pytest.skip("a cuda default profile ships")
    proc = subprocess.run([GRU_SIM, "predict", *SHAPE, "--device", "cuda"], capture_output=True, text=True)
    assert proc.returncode == 2 and "gru-sim calibrate --device cuda" in proc.stderr


def test_a_profile_of_this_machine_matches_and_another_machines_is_flagged_with_a_wider_interval(
        profile_path: Path) -> None:
    p = load_profile(profile_path)
    c = GruConfig(batch=8, seq_len=32, input_size=64, hidden_size=64)
    same = Predictor(p, here=dict(p.fingerprint)).predict(c).to_dict()
    other = Predictor(p, here={**p.fingerprint, "cpu_model": "Intel(R) Xeon(R) Platinum 8481C"}).predict(c).to_dict()
    assert same["profile_match"] is True and "profile_mismatch" not in same
    assert other["profile_match"] is False
    assert other["profile_mismatch"]["cpu_model"][1].startswith("Intel")
    width = lambda r: r["latency_interval_s"][1] / r["latency_interval_s"][0]  # noqa: E731
    assert width(other) > 3 * width(same)
    assert other["latency_s"] == same["latency_s"]


def test_a_call_larger_than_the_machines_memory_is_marked_and_more_threads_than_cores_oversubscribe(
        profile_path: Path) -> None:
    p = load_profile(profile_path)
    here = {**p.fingerprint, "memory_total_bytes": 8 * 2**30, "logical_cores": 2}
    predictor = Predictor(p, here=here)
    small = predictor.predict(GruConfig(batch=8, seq_len=32, input_size=64, hidden_size=64)).to_dict()
    huge = predictor.predict(GruConfig(batch=10**6, seq_len=10**4, input_size=64, hidden_size=1024)).to_dict()
    many = predictor.predict(GruConfig(batch=8, seq_len=32, input_size=64, hidden_size=64, threads=8)).to_dict()
    assert small["fits_in_memory"] and not small["oversubscribed"]
    assert huge["fits_in_memory"] is False
    assert many["oversubscribed"] is True
