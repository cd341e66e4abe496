"""`gru-sim run`: every study of a scenario forecast and written — results.json with CONTRACT.md's keys,
a CSV per study and the report — large sweeps spread over processes, extrapolation said out loud."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from gru_sim.cli import main
from gru_sim.config import GruConfig
from gru_sim.model.library import choose_profile
from gru_sim.model.profile import default_profile_path
from gru_sim.scenario import Scenario, load_scenario
from gru_sim.study import (PARALLEL_MIN_CONFIGS, choose_profile_path, default_out_dir, jsonable, load_engine,
                           run_scenario)
from test_report_fixtures import call_times, made_up_engine

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
DEFAULT_PROFILE = default_profile_path("cpu")
RECORD_KEYS = {"config", "latency_s", "throughput_seq_per_s", "throughput_tokens_per_s", "peak_memory_bytes",
               "latency_interval_s", "breakdown_s", "parallelism", "extrapolated", "profile"}
SERVING_KEYS = {"throughput_req_per_s", "latency_s", "queue_wait_s", "service_time_s", "utilization",
                "mean_batch_size", "slo_attainment"}
TRAINING_KEYS = {"devices", "step_time_s", "throughput_seq_per_s", "scaling_efficiency",
                 "peak_memory_bytes_per_device"}

SCENARIO = """\
name: all-studies
description: every study, small
device: cpu
model: {input_size: 32, hidden_size: 48, num_layers: 2}
sweep: {mode: [inference, training], batch: [1, 4], seq_len: [16, 32], hidden_size: [48, 2048]}
serving:
  arrival: {process: poisson, rate_per_s: 50}
  seq_len: {distribution: uniform, low: 8, high: 32}
  batching: {max_batch: 4, max_wait_s: 0.002, padding: pad}
  requests: 400
  seed: 3
  slo: {p99_latency_s: 0.5}
training:
  batch_per_device: 8
  seq_len: 16
  devices: [1, 2, 4]
  interconnect: {bandwidth_bytes_per_s: 1.0e9, latency_s: 1.0e-5}
  steps: 2
"""


def _scenario(tmp_path: Path, text: str = SCENARIO) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_scenario(path)


def _strict_json(path: Path) -> dict:  # type: ignore[type-arg]
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def made_up_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("run")
    calls: list[tuple[str, int, int]] = []
    out = run_scenario(_scenario(tmp), tmp / "made-up.json", tmp / "out", lambda *a: calls.append(a),
                       engine_factory=made_up_engine)
    return out, calls


def test_results_json_has_the_contract_keys_of_every_study(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    results = _strict_json(out.results_path)
    assert len(results["sweep"]) == 2 * 2 * 2 * 2
    assert all(RECORD_KEYS <= set(r) for r in results["sweep"])
    assert SERVING_KEYS <= set(results["serving"])
    assert set(results["serving"]["latency_s"]) == {"mean", "p50", "p90", "p99"}
    assert [r["devices"] for r in results["training"]] == [1, 2, 4]
    assert all(TRAINING_KEYS <= set(r) for r in results["training"])


def test_results_json_reads_back_into_the_records_the_report_takes(made_up_run) -> None:  # type: ignore[no-untyped-def]
    from gru_sim.study.records import ServingRecord, SweepRecord, TrainingRecord

    out, _ = made_up_run
    results = _strict_json(out.results_path)
    assert all(r.compulsory_bytes for r in SweepRecord.read_all(results["sweep"]))
    assert [r.to_dict() for r in SweepRecord.read_all(results["sweep"])] == results["sweep"]
    assert ServingRecord.from_dict(results["serving"]).to_dict() == results["serving"]
    assert [r.to_dict() for r in TrainingRecord.read_all(results["training"])] == results["training"]


def test_sweep_records_are_in_scenario_order_and_consistent(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    scenario = load_scenario(out.out_dir.parent / "s.yaml")
    records = out.results["sweep"]
    assert [GruConfig.from_mapping(r["config"]) for r in records] == list(scenario.sweep_configs)
    for r in records:
        assert r["throughput_seq_per_s"] == pytest.approx(r["config"]["batch"] / r["latency_s"])
        assert r["compulsory_bytes"] > 0


def test_one_device_has_perfect_scaling_and_more_devices_never_beat_it(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    rows = {r["devices"]: r for r in out.results["training"]}
    assert rows[1]["scaling_efficiency"] == pytest.approx(1.0)
    assert rows[1]["exposed_comm_s"] == 0.0
    assert all(rows[n]["scaling_efficiency"] <= 1.0 + 1e-12 for n in rows)
    assert rows[4]["step_time_s"] >= rows[2]["step_time_s"] >= rows[1]["step_time_s"]


def test_serving_throughput_follows_the_arrival_rate_below_capacity(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    serving = out.results["serving"]
    assert serving["utilization"] < 0.9
    assert serving["throughput_req_per_s"] == pytest.approx(50, rel=0.25)
    assert serving["latency_s"]["p99"] >= serving["latency_s"]["p50"] >= serving["queue_wait_s"]["p50"]
    points = serving["load_sweep"]["points"]
    assert len(points) >= 2 and all(p["rate_per_s"] > 0 for p in points)


def test_a_csv_is_written_per_study(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    assert set(out.csv_paths) == {"sweep", "serving", "training"}
    sweep = list(csv.DictReader(out.csv_paths["sweep"].open()))
    assert len(sweep) == len(out.results["sweep"])
    assert {"config.batch", "latency_s", "latency_interval_s.low", "latency_interval_s.high",
            "breakdown_s.recurrent_matmul_s"} <= set(sweep[0])
    assert float(sweep[0]["latency_s"]) == out.results["sweep"][0]["latency_s"]
    training = list(csv.DictReader(out.csv_paths["training"].open()))
    assert [int(r["devices"]) for r in training] == [1, 2, 4]
    serving = list(csv.DictReader(out.csv_paths["serving"].open()))
    assert serving[0]["run"] == "configured rate"
    assert {r["run"] for r in serving[1:]} == {"load sweep"}


def test_progress_is_reported_for_every_study_to_its_end(made_up_run) -> None:  # type: ignore[no-untyped-def]
    _, calls = made_up_run
    for study in ("sweep", "serving", "training"):
        mine = [(done, total) for task, done, total in calls if task == study]
        assert mine[0][0] == 0 and mine[-1][0] == mine[-1][1]


def test_extrapolation_is_warned_with_the_axis_and_how_far(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    results = out.results
    assert results["extrapolated"] is True
    assert results["warnings"] == [
        "sweep: 8 of 16 configurations lie outside the profile's calibrated range (hidden_size up to 2× beyond). "
        "Their predictions are extrapolations: calibrate over a wider range before trusting them."]
    assert "sweep: 8 of 16 configurations lie outside" in out.report_path.read_text()


def test_kernel_timeline_ends_at_the_predicted_latency(made_up_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = made_up_run
    timeline = next(t for t in out.results["timelines"] if t["study"] == "sweep")
    end = max(i["start_s"] + i["duration_s"] for i in timeline["items"])
    records = sorted(out.results["sweep"], key=lambda r: r["latency_s"])
    median = GruConfig.from_mapping(records[len(records) // 2]["config"])
    # the cpu executor runs kernels one after another: the makespan is the serial sum
    assert end == pytest.approx(call_times(median).serial_s(), rel=1e-9)


@pytest.mark.slow
def test_a_large_sweep_runs_in_worker_processes_and_keeps_its_order(tmp_path: Path) -> None:
    side = math.ceil(math.sqrt(PARALLEL_MIN_CONFIGS))
    text = ("name: big\ndevice: cpu\nmodel: {input_size: 16, hidden_size: 32}\nsweep:\n"
            f"  batch: {list(range(1, side + 1))}\n  seq_len: {list(range(1, side + 1))}\n")
    scenario = _scenario(tmp_path, text)
    out = run_scenario(scenario, tmp_path / "p.json", tmp_path / "out", engine_factory=made_up_engine, workers=2)
    records = out.results["sweep"]
    assert len(records) == side * side >= PARALLEL_MIN_CONFIGS
    assert [GruConfig.from_mapping(r["config"]) for r in records] == list(scenario.sweep_configs)
    pids = {r["profile"]["pid"] for r in records}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_jsonable_turns_numpy_and_non_finite_numbers_into_json() -> None:
    assert jsonable({"a": (1, np.float64(2.5)), "b": float("nan"), "c": np.int64(3), "d": [np.inf]}) == \
        {"a": [1, 2.5], "b": None, "c": 3, "d": [None]}
    with pytest.raises(TypeError):
        jsonable({"x": object()})


def test_profile_choice_follows_flag_then_scenario_then_default(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text("{}")
    plain = _scenario(tmp_path)
    assert choose_profile_path(plain, "given.json") == (Path("given.json"), "given with --profile")
    path, reason = choose_profile_path(plain, None)
    # Whichever shipped profile describes the machine the tests run on (one per machine kind).
    assert path == choose_profile("cpu").path and ("matches this machine" in reason or "nearest" in reason)
    named = _scenario(tmp_path, SCENARIO.replace("device: cpu\n", "device: cpu\nprofile: mine.json\n"))
    assert choose_profile_path(named, None) == (tmp_path / "mine.json", "named in the scenario")
    assert default_out_dir(plain) == Path("reports") / "all-studies"


def test_a_missing_profile_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    code = main(["run", str(path), "--profile", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1].startswith(f"gru-sim run: {tmp_path / 'nope.json'}: profile not found")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ with the shipped default profile
needs_profile = pytest.mark.skipif(not DEFAULT_PROFILE.exists(), reason="no shipped default cpu profile")


def _small(scenario: Scenario) -> Scenario:
    """The scenario with few requests and steps, so that CI runs it in seconds."""
    spec = scenario.spec
    update = {}
    if spec.serving is not None:
        update["serving"] = spec.serving.model_copy(update={"requests": min(spec.serving.requests, 500)})
    if spec.training is not None:
        update["training"] = spec.training.model_copy(update={"steps": 2})
    # Gradient flow is measured for real: short sequences and no half-precision forward runs.
    gradients = tuple(dataclasses.replace(g, seq_lens=(10, 20), error_dtypes=()) for g in scenario.gradients)
    return dataclasses.replace(scenario, spec=spec.model_copy(update=update), gradients=gradients)


@needs_profile
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_runs_on_the_default_profile(path: Path, tmp_path: Path) -> None:
    scenario = _small(load_scenario(path))
    out = run_scenario(scenario, DEFAULT_PROFILE, tmp_path / "out", workers=1)
    results = _strict_json(out.results_path)
    assert (tmp_path / "out" / "report.html").stat().st_size > 1_000_000
    if scenario.spec.sweep is not None:
        assert len(results["sweep"]) == len(scenario.sweep_configs)
        # the cost model never beats the measured ceilings, so the roofline holds every point
        roof = results["roofline"][0]
        for r in results["sweep"]:
            achieved = r["flops"] / r["latency_s"]
            ceiling = min(roof["peak_flops_per_s"], roof["memory_bandwidth_bytes_per_s"] * r["flops"] / r["compulsory_bytes"])
            assert achieved <= ceiling * (1 + 1e-9)
    if scenario.spec.serving is not None:
        assert SERVING_KEYS <= set(results["serving"])
    if scenario.spec.training is not None:
        assert [r["devices"] for r in results["training"]] == scenario.spec.training.devices
    if scenario.spec.gradients is not None:
        assert len(results["gradients"]) == len(scenario.spec.gradients.init)


@needs_profile
def test_gru_sim_run_prints_where_the_report_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "quick"
    assert main(["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"report written to {out_dir / 'report.html'}\n"
    assert f"profile {choose_profile('cpu').path} (" in captured.err
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html", "results.json", "serving.csv", "sweep.csv",
                                                          "training.csv"]


@needs_profile
def test_load_engine_describes_the_profile_as_plain_data() -> None:
    engine = load_engine(DEFAULT_PROFILE)
    json.dumps(engine.profile)
    assert engine.profile["path"] == str(DEFAULT_PROFILE)
    assert engine.profile["fingerprint"]["device"] == "cpu"
    assert all("primitives" not in c for c in engine.profile["ceilings"].values())
