"""A bad scenario file is refused with one message per problem naming the file, the line, the field,
the value as written and the rule; `gru-sim run` exits 2 and prints no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gru_sim.cli import main
from gru_sim.errors import ScenarioError
from gru_sim.scenario import MAX_CLUSTER_SWEEP_CONFIGS, MAX_SWEEP_CONFIGS, load_scenario

BAD = Path(__file__).parent / "bad_scenarios"

# file → the lines `gru-sim run FILE` must print after "FILE:", one per problem.
CASES = {
    "negative_max_batch.yaml": ["7: serving.batching.max_batch: -3 is not valid: must be > 0"],
    "misspelled_key.yaml": ["8: serving.replica: unknown key: did you mean 'replicas'?"],
    "unknown_top_level_key.yaml": ["4: sweeps: unknown key: did you mean 'sweep'?"],
    "string_for_number.yaml": ['5: sweep.batch[1]: "8" is not valid: must be a whole number'],
    "bool_for_number.yaml": ["8: serving.replicas: yes is not valid: must be a whole number"],
    "scalar_for_axis.yaml": ["5: sweep.batch: 8 is not valid: must be a list, e.g. [1, 2]"],
    "unknown_device.yaml": ["2: device: tpu is not valid: must be one of 'cpu' or 'cuda'"],
    "bad_name.yaml": ["1: name: my scenario! is not valid: must use only letters, digits, - and _"],
    "missing_hidden_size.yaml": ["3: model.hidden_size: missing: this field is required"],
    "unknown_arrival_process.yaml": [
        "6: serving.arrival.process: bursty is not valid: must be one of 'poisson', 'constant', 'trace'"],
    "half_precision_on_cpu.yaml": [
        "3: model.dtype: float16 is not valid: cpu runs float32 or float64 only (or use device: cuda)"],
    "uniform_low_above_high.yaml": ["6: serving.seq_len.high: 100 is not valid: must be >= low (400)"],
    "lognormal_cap_below_median.yaml": ["6: serving.seq_len.max: 100 is not valid: must be >= median (300)"],
    "duplicate_key.yaml": ["7: sweep.batch: duplicate key: already set on line 5"],
    "yaml_syntax_error.yaml": [
        "4: is not valid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping that starts on line 3)"],
    "empty.yaml": ["1: the file is empty: a scenario needs name, device, model and a study"],
    "top_level_list.yaml": [
        "1: a scenario is a mapping of keys (name, device, model, sweep, serving, training), not a list"],
    "no_study.yaml": ["1: the scenario has no study: add sweep, serving, training, gradients or plan"],
    "grid_and_configs.yaml": [
        "5: sweep.batch: [1, 8] is not valid: a sweep is either a grid or a list (configs), not both"],
    "duplicate_device_counts.yaml": [
        "7: training.devices: [1, 2, 2, 4] is not valid: device counts must be unique (2 appears twice)"],
    "missing_trace_file.yaml": [
        "5: serving.arrival.csv: no_such_trace.csv is not valid: no such file (looked in the scenario's folder "
        "and the current folder)"],
    "bad_trace_row.yaml": [
        "5: serving.arrival.csv: bad_trace.csv is not valid: bad_trace.csv:4: seq_len '-5' must be a whole "
        "number > 0"],
    "unknown_csv_column.yaml": [
        "5: sweep.configs_csv: unknown_column.csv is not valid: unknown_column.csv:1: unknown column "
        "'hiden_size' (columns: batch, seq_len, input_size, hidden_size, num_layers, mode, threads; others come "
        "from model)"],
    "memory_cap_too_small.yaml": [
        "8: serving.memory_cap_bytes: 1000000 is not valid: one request of 1500 steps alone needs about 27.5 MiB, "
        "so no batch fits"],
    "reference_impl_training.yaml": [
        "5: sweep.mode: [inference, training] is not valid: numpy-reference has no backward pass: use [inference]"],
    "several_problems.yaml": ["3: model.input_size: 0 is not valid: must be > 0",
                              "6: sweep.seq_len[1]: 0 is not valid: must be > 0"],
}


def test_every_bad_scenario_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_scenario_gives_its_message_and_exit_code_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / name
    code = main(["run", str(path), "--out", "/nonexistent/never-written"])
    out, err = capsys.readouterr()
    expected = "\n".join(f"{path}:{line}" for line in CASES[name])
    assert code == 2
    assert out == ""
    assert err == f"gru-sim run: {expected}\n"


def test_a_missing_scenario_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    assert main(["run", str(path)]) == 2
    assert capsys.readouterr().err == f"gru-sim run: {path}: no such file\n"


def test_a_folder_given_as_scenario_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a folder, not a scenario file"):
        load_scenario(tmp_path)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"latin1.yaml: is not UTF-8 text"):
        load_scenario(path)


def test_a_sweep_too_large_to_run_is_refused(tmp_path: Path) -> None:
    side = int(MAX_SWEEP_CONFIGS ** 0.5) + 1
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\ndevice: cpu\nmodel: {input_size: 8, hidden_size: 8}\nsweep:\n"
                    f"  batch: {list(range(1, side + 1))}\n  seq_len: {list(range(1, side + 1))}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == (f"{path}:4: sweep: the grid has {side * side} configurations: a sweep has at most "
                               f"{MAX_SWEEP_CONFIGS} ({MAX_CLUSTER_SWEEP_CONFIGS} with --workers or --scheduler)")


def test_more_than_ten_problems_are_counted_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("name: many\ndevice: cpu\nmodel: {input_size: 8, hidden_size: 8}\nsweep:\n"
                    "  batch: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n  seq_len: [1]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 11
    assert lines[-1] == f"{path}: ... and 2 more problems"


@pytest.mark.slow
def test_the_installed_entry_point_prints_no_traceback() -> None:
    path = BAD / "negative_max_batch.yaml"
    p = subprocess.run([sys.executable, "-m", "gru_sim.cli", "run", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().endswith("serving.batching.max_batch: -3 is not valid: must be > 0")
