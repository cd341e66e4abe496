"""The ``gradients:`` study of a scenario: its schema and line-located errors, the lengths it measures by
default, its entry in results.json and gradients.csv, and its report section."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from gru_sim.errors import ScenarioError
from gru_sim.scenario import load_scenario
from gru_sim.study import run_scenario
from test_report_fixtures import made_up_engine

pytestmark = pytest.mark.usefixtures("restore_threads")

MODEL = "device: cpu\nmodel: {input_size: 4, hidden_size: 6, num_layers: 2}\n"
SERVING = """\
serving:
  arrival: {process: poisson, rate_per_s: 50}
  seq_len: {distribution: lognormal, median: 20, sigma: 0.5, max: 40}
  batching: {max_batch: 4}
  requests: 200
"""
TRAINING = """\
training:
  batch_per_device: 4
  seq_len: 30
  devices: [1, 2]
  interconnect: {bandwidth_bytes_per_s: 1.0e9, latency_s: 1.0e-5}
  steps: 2
"""
CONTRACT_KEYS = {"config", "grad_norm_by_steps_back", "decay_per_step", "horizon_steps", "update_gate_saturation"}


def _write(tmp_path: Path, body: str, name: str = "s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + MODEL + body)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    return str(err.value)


# ------------------------------------------------------------------------------------------- loading
def test_default_lengths_are_those_served_and_trained_on(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, SERVING + TRAINING + "gradients: {}\n"))
    assert [s.seq_lens for s in scenario.gradients] == [(20, 30, 40)]
    assert dict(scenario.seq_lens_in_use) == {"served (median)": 20, "served (longest)": 40, "trained": 30}


def test_one_measurement_per_initialisation_with_the_models_shape(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, "gradients: {seq_len: [10], init: [default, orthogonal]}\n"))
    assert [s.init for s in scenario.gradients] == ["default", "orthogonal"]
    assert all((s.input_size, s.hidden_size, s.num_layers) == (4, 6, 2) for s in scenario.gradients)


def test_a_state_dict_is_read_from_the_scenarios_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weights").mkdir()
    torch.save(torch.nn.GRU(4, 6, num_layers=2).state_dict(), tmp_path / "weights" / "trained.pt")
    monkeypatch.chdir(Path("/"))
    scenario = load_scenario(_write(tmp_path, "gradients: {seq_len: [10], init: [weights/trained.pt]}\n"))
    assert scenario.gradients[0].init == str(tmp_path / "weights" / "trained.pt")


def test_a_gradients_study_alone_is_a_scenario(tmp_path: Path) -> None:
    assert load_scenario(_write(tmp_path, "gradients: {seq_len: [10]}\n")).gradients


def test_without_other_studies_the_lengths_are_required_at_their_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "gradients:\n  inputs: 2\n"))
    assert "s.yaml:4: gradients.seq_len: missing" in message


def test_a_missing_weights_file_is_named_at_its_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "gradients:\n  seq_len: [10]\n  init: [default, nope.pt]\n"))
    assert "s.yaml:6: gradients.init[1]: nope.pt is not valid" in message
    assert "state_dict file" in message


def test_repeated_lengths_are_refused(tmp_path: Path) -> None:
    assert "gradients.seq_len: [10, 10] is not valid" in _error(_write(tmp_path, "gradients: {seq_len: [10, 10]}\n"))


def test_an_unknown_key_of_the_study_is_refused_with_a_hint(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "gradients: {seq_len: [10], seq_lens: [20]}\n"))
    assert "gradients.seq_lens: unknown key: did you mean 'seq_len'?" in message


def test_an_unknown_error_dtype_is_refused(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "gradients: {seq_len: [10], error_dtypes: [float8]}\n"))
    assert "gradients.error_dtypes[0]: float8 is not valid" in message


# ----------------------------------------------------------------------------------------------- run
@pytest.fixture(scope="module")
def gradients_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("gradients")
    before = torch.get_num_threads()
    path = _write(tmp, SERVING + "gradients: {init: [default, orthogonal], error_dtypes: [float16]}\n",
                  name="grad")
    calls: list[tuple[str, int, int]] = []
    out = run_scenario(load_scenario(path), tmp / "made-up.json", tmp / "out", lambda *a: calls.append(a),
                       engine_factory=made_up_engine)
    torch.set_num_threads(before)
    return out, calls


def test_results_hold_one_contract_record_per_initialisation(gradients_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = gradients_run
    records = json.loads(out.results_path.read_text())["gradients"]
    assert [r["label"] for r in records] == ["init default", "init orthogonal"]
    assert all(CONTRACT_KEYS <= set(r) for r in records)
    assert all(r["seq_lens_in_use"] == {"served (median)": 20, "served (longest)": 40} for r in records)
    assert [len(r["grad_norm_by_steps_back"]) for r in records] == [41, 41]


def test_gradients_csv_has_a_row_per_configuration_and_length(gradients_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = gradients_run
    with open(out.csv_paths["gradients"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["configuration"], r["seq_len"]) for r in rows] == [
        ("init default", "20"), ("init default", "40"), ("init orthogonal", "20"), ("init orthogonal", "40")]
    assert all(float(r["forward_rel_error.float16"]) > 0 for r in rows)


def test_progress_counts_every_length_of_every_configuration(gradients_run) -> None:  # type: ignore[no-untyped-def]
    _, calls = gradients_run
    assert [c for c in calls if c[0] == "gradients"][-1] == ("gradients", 4, 4)


def test_report_has_the_gradient_section_with_its_sentence_and_figures(gradients_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = gradients_run
    html = out.report_path.read_text()
    assert 'id="gradients"' in html
    assert "gradients from step 0 are" in html
    for title in ("Gradient norm against steps back", "Memory horizon against the sequence lengths",
                  "Forward error in half precision against T"):
        assert title in html
