"""benchmarks/accuracy.py's recorded runs: a run's measurements appended to a CSV, and a profile judged
against the median of every run recorded on this CPU kind, other kinds left out."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from gru_sim.config import GruConfig
from gru_sim.model.profile import load_profile
from gru_sim.predict import Predictor

from model_fixtures import make_profile


@pytest.fixture
def acc(benchmark_script: Callable[[str], Any]) -> Any:
    """benchmarks/accuracy.py as a module."""
    return benchmark_script("accuracy")


SHAPES = {"small": GruConfig(batch=2, seq_len=10, input_size=16, hidden_size=32, threads=1),
          "train": GruConfig(batch=8, seq_len=20, input_size=64, hidden_size=128, mode="training", threads=2,
                             bidirectional=True)}


def _run_rows(scale: float) -> list[dict]:
    return [{"name": n, "config": c.to_dict(), "measured_s": scale * (1e-3 if n == "small" else 5e-2)}
            for n, c in SHAPES.items()]


def test_recorded_runs_judge_a_profile_against_each_shapes_median_on_this_cpu_kind(tmp_path: Path, acc: Any) -> None:
    profile = make_profile(tmp_path / "p.json")
    data = tmp_path / "runs.csv"
    for scale in (1.0, 2.0, 4.0):
        acc.record_run(data, "Test CPU", _run_rows(scale))
    acc.record_run(data, "Other CPU", _run_rows(100.0))
    with data.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["bidirectional"] == "false"  # one header, every run appended
    judged = acc.judge_recorded(profile, data, "Test CPU")
    assert judged["runs"] == 3
    by_name = {r["name"]: r for r in judged["rows"]}
    assert by_name["small"]["measured_s"] == pytest.approx(2e-3)  # the median of 1, 2, 4 ms: not 100x
    assert by_name["train"]["runs"] == 3 and by_name["train"]["spread_x"] == pytest.approx(4.0)
    predicted = Predictor(load_profile(profile)).predict(SHAPES["train"]).latency_s
    assert by_name["train"]["predicted_s"] == pytest.approx(predicted)
    expected = 100 * np.median([abs(r["predicted_s"] / r["measured_s"] - 1) for r in judged["rows"]])
    assert judged["all"]["median_ape"] == pytest.approx(expected)
    # The interval is also judged against each run's own measurement: 3 runs x 2 shapes of this CPU.
    single = judged["single_measurements"]
    assert single["n"] == 6
    inside = [lo <= float(r["measured_s"]) <= hi for r in rows if r["cpu_model"] == "Test CPU"
              for lo, hi in [tuple(by_name[r["name"]]["interval_s"])]]
    assert single["interval_coverage"] == pytest.approx(np.mean(inside))


def test_a_profile_judged_on_another_kinds_records_is_widened_as_it_would_be_there(
        tmp_path: Path, acc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "machine_label", lambda: "synthetic (family 26, model 2)")
    assert acc.here_of("synthetic (family 26, model 2)") is None  # this machine: its whole fingerprint
    assert acc.here_of("AMD EPYC (family 25, model 17) [MKL_CBWR=COMPATIBLE]") == {
        "device": "cpu", "cpu_model": "AMD EPYC", "cpu_signature": [25, 17], "kernel_env": {"MKL_CBWR": "COMPATIBLE"}}
    assert acc.here_of("Old CPU")["cpu_signature"] is None  # a label from before the numbers were recorded
    profile = make_profile(tmp_path / "p.json")  # made on a "synthetic" CPU
    data = tmp_path / "runs.csv"
    acc.record_run(data, "synthetic", _run_rows(1.0))
    acc.record_run(data, "Other CPU", _run_rows(1.0))
    own = {r["name"]: r["interval_s"] for r in acc.judge_recorded(profile, data, "synthetic")["rows"]}
    other = {r["name"]: r["interval_s"] for r in acc.judge_recorded(profile, data, "Other CPU")["rows"]}
    from gru_sim.model.library import FOREIGN_INTERVAL_FACTOR
    for name, (lo, hi) in own.items():
        assert other[name] == pytest.approx([lo / FOREIGN_INTERVAL_FACTOR, hi * FOREIGN_INTERVAL_FACTOR])


def test_recorded_runs_of_another_cpu_kind_only_are_refused_naming_them(tmp_path: Path, acc: Any) -> None:
    data = tmp_path / "runs.csv"
    acc.record_run(data, "Other CPU", _run_rows(1.0))
    with pytest.raises(SystemExit, match="Other CPU"):
        acc.judge_recorded(make_profile(tmp_path / "p.json"), data, "Test CPU")


def test_a_missing_file_of_recorded_runs_is_one_line_naming_it(tmp_path: Path, acc: Any) -> None:
    with pytest.raises(SystemExit, match="no such file of recorded runs"):
        acc.judge_recorded(make_profile(tmp_path / "p.json"), tmp_path / "nowhere.csv", "Test CPU")


def test_run_to_run_is_each_run_against_the_median_of_the_others_a_uniformly_slow_run_only_in_its_level(
        tmp_path: Path, acc: Any) -> None:
    data = tmp_path / "runs.csv"
    with data.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=acc.RECORD_FIELDS)
        w.writeheader()
        for k, (cpu, scale) in enumerate([("Test CPU", 1.0)] * 3 + [("Test CPU", 2.0), ("Other CPU", 9.0)]):
            for r in _run_rows(scale):
                c = r["config"]
                w.writerow({"run_at": f"2026-01-01T00:0{k}:00+00:00", "cpu_model": cpu, "name": r["name"],
                            "measured_s": r["measured_s"],
                            **{key: c[key] for key in acc.RECORD_FIELDS if key in c}})
    spread = acc.run_to_run(data, "Test CPU")
    # Three runs meet the median of the others exactly; the one twice as slow is 100 % off, all of it
    # its level; the other CPU's run is no part of it.
    assert spread["runs"] == 4
    assert spread["mean_median_ape"] == pytest.approx(25.0)
    assert spread["mean_after_level"] == pytest.approx(0.0, abs=1e-9)
    assert acc.run_to_run(data, "Other CPU") == {"runs": 1}


def test_judging_a_single_recorded_run_prints_its_figures_without_the_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], acc: Any) -> None:
    data = tmp_path / "runs.csv"
    acc.record_run(data, "Test CPU", _run_rows(1.0))
    monkeypatch.setattr(acc, "machine_label", lambda: "Test CPU")
    monkeypatch.setattr(sys, "argv", ["accuracy.py", "--profile", str(make_profile(tmp_path / "p.json")),
                                      "--measured", str(data)])
    acc.main()  # one run has no others to be judged against: no floor line, no error
    out = capsys.readouterr().out
    assert "1 recorded runs" in out and "recorded shapes, all" in out and "against the median of the others" not in out


def _write_runs(acc: Any, path: Path, runs: list[tuple[str, str, dict[str, float]]]) -> None:
    """Recorded runs: (run_at, cpu, seconds by shape name) each."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=acc.RECORD_FIELDS)
        w.writeheader()
        for at, cpu, seconds in runs:
            for name, s in seconds.items():
                c = SHAPES[name].to_dict()
                w.writerow({"run_at": at, "cpu_model": cpu, "name": name, "measured_s": s,
                            **{k: c[k] for k in acc.RECORD_FIELDS if k in c}})


def test_another_sets_runs_are_judged_at_the_machines_pace_of_the_hour_from_the_typical_runs_near_them(
        tmp_path: Path, acc: Any) -> None:
    profile = make_profile(tmp_path / "p.json")
    predictor = Predictor(load_profile(profile))
    pred = {n: predictor.predict(c).latency_s for n, c in SHAPES.items()}
    typical, other = tmp_path / "typical.csv", tmp_path / "other.csv"
    # The typical runs: at midnight the machine ran twice as fast as the profile expects, at 10:00 at its
    # pace, and another CPU kind's run at midnight is no part of it.
    _write_runs(acc, typical, [("2026-01-01T00:00:00+00:00", "Test CPU", {n: p / 2 for n, p in pred.items()}),
                               ("2026-01-01T10:00:00+00:00", "Test CPU", pred),
                               ("2026-01-01T00:10:00+00:00", "Other CPU", {n: p * 9 for n, p in pred.items()})])
    paces = acc.paces_of_runs(profile, typical, "Test CPU")
    assert paces[("2026-01-01T00:00:00+00:00", 1)] == pytest.approx(2.0)
    assert paces[("2026-01-01T10:00:00+00:00", 2)] == pytest.approx(1.0)
    assert acc.pace_at(paces, "2026-01-01T01:30:00+00:00", 1, 2.0) == pytest.approx(2.0)
    assert acc.pace_at(paces, "2026-01-01T05:00:00+00:00", 1, 2.0) is None  # no typical run within 2 h
    # The other set's run at 00:30 ran in the fast spell (half the predicted time: 50 % off as measured,
    # exact at the machine's pace); its run at 05:00 has no typical run near it and is left out at pace.
    _write_runs(acc, other, [("2026-01-01T00:30:00+00:00", "Test CPU", {n: p / 2 for n, p in pred.items()}),
                             ("2026-01-01T05:00:00+00:00", "Test CPU", {n: p / 2 for n, p in pred.items()})])
    judged = acc.judge_recorded(profile, other, "Test CPU", paces, 2.0)
    assert judged["all"]["median_ape"] == pytest.approx(100.0)
    matched = judged["pace_matched"]
    assert (matched["runs"], matched["of_runs"], matched["window_h"]) == (1, 2, 2.0)
    assert matched["all"]["median_ape"] == pytest.approx(0.0, abs=1e-9)
    assert matched["t1"]["n"] == 1 and matched["t2"]["n"] == 1
    assert {r["name"]: r["measured_s"] for r in matched["rows"]} == pytest.approx(pred)  # brought to pace
    # Within a wider window the 05:00 run meets the midnight pace too; without paces nothing is added.
    assert acc.judge_recorded(profile, other, "Test CPU", paces, 6.0)["pace_matched"]["runs"] == 2
    assert "pace_matched" not in acc.judge_recorded(profile, other, "Test CPU")


def test_the_machines_speed_against_its_calibrations_is_the_reference_calls_ratio_and_the_kernels_by_its_power(
        acc: Any) -> None:
    from gru_sim.calibrate.drift import KERNEL_ELASTICITY

    speed = acc.machine_speed_against_calibration({1: 5e-4, 2: 4e-4}, {1: [1e-3, 1e-3, 5e-4], 2: [4e-4]})
    assert speed[1]["reference_x"] == pytest.approx(2.0)
    assert speed[1]["kernels_x"] == pytest.approx(2.0 ** KERNEL_ELASTICITY)
    assert speed[2] == {"reference_x": pytest.approx(1.0), "kernels_x": pytest.approx(1.0)}
    # A thread count the calibration did not track, or no reading taken: nothing said.
    assert acc.machine_speed_against_calibration({1: 5e-4}, {1: [], 2: [1e-3]}) == {}


def test_the_calibrations_reference_is_read_from_the_store_beside_the_profile(tmp_path: Path, acc: Any) -> None:
    from gru_sim.calibrate.store import MeasurementStore

    profile = make_profile(tmp_path / "p.json")
    assert acc.calibration_reference_s(profile) == {}  # no store beside it
    groups = list(load_profile(profile).cost_model.coef_)
    with MeasurementStore(profile.with_suffix(".sqlite")) as store:
        for v in (4e-4, 5e-4, 9e-4):
            store.add_drift(groups[0], v)
    from gru_sim.groups import GroupKey

    assert acc.calibration_reference_s(profile) == {GroupKey.parse(groups[0]).threads: pytest.approx(5e-4)}


def test_its_validate_figures_are_the_random_samples_alone(acc: Any, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    # gru-sim validate measures the application shapes by default; this script measures them itself, so
    # its "validate" figures (inside and beyond the range) must stay the random sample's.
    import json
    import subprocess

    seen: list[list[str]] = []

    def fake_run(cmd, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(list(cmd))
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        row = {"config": {}, "measured_latency_s": 1.0, "predicted_latency_s": 1.1,
               "latency_interval_s": [0.9, 1.3], "extrapolated": False, "noisy": False}
        (out / "validation.json").write_text(json.dumps({"rows": [row], "summary": {}}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(acc.subprocess, "run", fake_run)
    figures, spread, rows = acc.run_validate(tmp_path / "p.json", 40, tmp_path / "v")
    assert "--no-apps" in seen[0] and seen[0][seen[0].index("--sample") + 1] == "40"
    assert figures["inside"]["n"] == 1 and figures["beyond"]["n"] == 0 and len(rows) == 1


def test_a_validate_that_crashed_is_one_line_with_its_last_error_not_a_traceback_of_a_missing_file(
        acc: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A Python exception exits 1, as a validation that ran and failed its check does: the missing
    # validation.json, not the exit status, tells them apart.
    import subprocess

    def crashed(cmd, **kwargs):  # type: ignore[no-untyped-def]
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback (most recent call last):\n  ...\n"
                                                       "SyntaxError: invalid syntax\n")

    monkeypatch.setattr(acc.subprocess, "run", crashed)
    with pytest.raises(SystemExit, match="^gru-sim validate failed: SyntaxError: invalid syntax$"):
        acc.run_validate(tmp_path / "p.json", 40, tmp_path / "v")


def test_a_missing_pace_record_given_by_name_is_one_line_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, acc: Any) -> None:
    data = tmp_path / "runs.csv"
    acc.record_run(data, "Test CPU", _run_rows(1.0))
    monkeypatch.setattr(sys, "argv", ["accuracy.py", "--profile", str(make_profile(tmp_path / "p.json")),
                                      "--measured", str(data), "--pace-from", str(tmp_path / "typo.csv")])
    with pytest.raises(SystemExit, match="typo.csv: no such file of recorded runs"):
        acc.main()


def test_since_keeps_the_runs_recorded_from_that_time_on(tmp_path: Path, acc: Any) -> None:
    data = tmp_path / "runs.csv"
    for scale in (1.0, 2.0, 4.0):
        acc.record_run(data, "Test CPU", _run_rows(scale))
    with data.open() as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    stamps = ["2026-12-03T10:00:00+00:00", "2026-12-05T02:36:00+00:00", "2026-12-05T09:00:00+00:00"]
    for k, r in enumerate(rows):
        r["run_at"] = stamps[k // len(SHAPES)]
    with data.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    kept = acc.runs_since(data, "2026-12-05T02:36", tmp_path / "since.csv")  # no zone: UTC
    judged = acc.judge_recorded(make_profile(tmp_path / "p.json"), kept, "Test CPU")
    assert judged["runs"] == 2 and judged["first_run"] == stamps[1]
    assert {r["name"]: r["measured_s"] for r in judged["rows"]}["small"] == pytest.approx(3e-3)  # median of 2 and 4 ms
    with pytest.raises(SystemExit, match="not an ISO time"):
        acc.runs_since(data, "yesterday", tmp_path / "bad.csv")
