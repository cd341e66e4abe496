"""Scenario files that are right load into checked, frozen objects; the schema describes them."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pydantic
import pytest
import yaml

from gru_sim.cli import main
from gru_sim.config import GruConfig
from gru_sim.errors import ScenarioError
from gru_sim.csvfiles import read_arrival_trace
from gru_sim.scenario import Scenario, load_scenario, scenario_json_schema
from gru_sim.sim.serving import ArrivalSpec, BatchingSpec, SeqLenSpec
from gru_sim.sim.training import Interconnect

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
DEEPBENCH_CSV = Path("/work/shared/data/deepbench_gru_configs.csv")

# The example of CONTRACT.md, verbatim.
CONTRACT_EXAMPLE = """\
name: speech-serving            # letters, digits, - and _; names the output folder
device: cpu                     # cpu | cuda
model: {input_size: 80, hidden_size: 512, num_layers: 2, bidirectional: false, dtype: float32}

sweep:                          # a grid of configurations; every list is an axis
  mode: [inference, training]
  batch: [1, 8, 32, 128]
  seq_len: [50, 200, 1000]
  hidden_size: [256, 512]       # optional: overrides model.hidden_size as an axis

serving:                        # requests arriving at a deployed model
  arrival: {process: poisson, rate_per_s: 200}     # poisson | constant | trace (csv: time_s,seq_len)
  seq_len: {distribution: fixed, value: 300}       # fixed | uniform {low, high} | lognormal {median, sigma, max}
  batching: {max_batch: 32, max_wait_s: 0.005, padding: pad}   # pad | bucket
  replicas: 2
  threads_per_replica: 1
  requests: 20000
  seed: 1
  slo: {p99_latency_s: 0.1}

training:                       # data-parallel training steps
  batch_per_device: 64
  seq_len: 200
  devices: [1, 2, 4, 8]
  interconnect: {bandwidth_bytes_per_s: 12.5e9, latency_s: 5.0e-6}
  steps: 50
"""


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_scenarios_exist() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"quickstart", "speech-serving", "deepbench", "training-scaling"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem  # so reports/<name>/ is named like the file
    assert scenario.spec.sweep or scenario.spec.serving or scenario.spec.training or scenario.spec.plan


def test_the_contract_example_loads_as_written(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, CONTRACT_EXAMPLE))
    assert len(s.sweep_configs) == 2 * 4 * 3 * 2
    assert s.spec.training is not None
    # PyYAML's YAML 1.1 resolver would read 12.5e9 as the text "12.5e9".
    assert s.spec.training.interconnect.bandwidth_bytes_per_s == 12.5e9
    assert s.spec.serving is not None and s.spec.serving.slo is not None
    assert s.spec.serving.slo.p99_latency_s == 0.1


def test_the_grid_is_every_combination_of_the_axes_with_the_model_filling_the_rest(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, CONTRACT_EXAMPLE))
    seen = {(c.mode, c.batch, c.seq_len, c.hidden_size) for c in s.sweep_configs}
    assert seen == {(m, b, t, h) for m in ("inference", "training") for b in (1, 8, 32, 128)
                    for t in (50, 200, 1000) for h in (256, 512)}
    assert {(c.input_size, c.num_layers, c.device, c.dtype) for c in s.sweep_configs} == {(80, 2, "cpu", "float32")}


def test_a_loaded_scenario_is_frozen(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, CONTRACT_EXAMPLE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        s.spec.model.hidden_size = 3  # type: ignore[misc]


def test_configs_csv_rows_take_missing_fields_from_the_model(tmp_path: Path) -> None:
    (tmp_path / "shapes.csv").write_text("batch,seq_len,hidden_size,mode\n4,100,128,inference\n8,50,,training\n")
    s = load_scenario(_write(tmp_path, "name: csv\ndevice: cpu\nmodel: {input_size: 40, hidden_size: 64, "
                                       "num_layers: 2}\nsweep: {configs_csv: shapes.csv}\n"))
    assert s.sweep_configs == (
        GruConfig(batch=4, seq_len=100, input_size=40, hidden_size=128, num_layers=2, mode="inference"),
        GruConfig(batch=8, seq_len=50, input_size=40, hidden_size=64, num_layers=2, mode="training"),
    )


def test_relative_paths_are_read_beside_the_scenario_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "trace.csv").write_text("time_s,seq_len\n0.0,10\n0.5,20\n")
    path = _write(tmp_path / "sub", "name: t\ndevice: cpu\nmodel: {input_size: 8, hidden_size: 8}\nserving:\n"
                                    "  arrival: {process: trace, csv: trace.csv}\n  batching: {max_batch: 4}\n")
    monkeypatch.chdir(tmp_path)  # the current folder has no trace.csv: it must be found beside the file
    s = load_scenario(path)
    assert s.serving is not None and s.serving.arrival.trace == ((0.0, 10), (0.5, 20))


def test_a_profile_named_in_the_scenario_must_exist(tmp_path: Path) -> None:
    text = "name: p\ndevice: cpu\nprofile: nowhere.json\nmodel: {input_size: 8, hidden_size: 8}\n" \
           "sweep: {batch: [1], seq_len: [1]}\n"
    with pytest.raises(ScenarioError, match=r"s.yaml:3: profile: nowhere.json is not valid: no such file"):
        load_scenario(_write(tmp_path, text))
    (tmp_path / "nowhere.json").write_text("{}")
    assert load_scenario(tmp_path / "s.yaml").profile_path == tmp_path / "nowhere.json"


def test_deepbench_scenario_lists_the_73_deepbench_sizes() -> None:
    s = load_scenario(ROOT / "scenarios" / "deepbench.yaml")
    configs = s.sweep_configs
    assert len(configs) == 73
    assert sum(c.mode == "training" for c in configs) == 19
    assert all(c.input_size == c.hidden_size and c.num_layers == 1 and not c.bidirectional for c in configs)


@pytest.mark.skipif(not DEEPBENCH_CSV.exists(), reason="the shared DeepBench CSV is not on this machine")
def test_deepbench_scenario_matches_the_shared_csv_row_for_row() -> None:
    rows = list(csv.DictReader(DEEPBENCH_CSV.open()))
    configs = load_scenario(ROOT / "scenarios" / "deepbench.yaml").sweep_configs
    assert [(int(r["hidden_size"]), int(r["batch"]), int(r["seq_len"]), r["mode"]) for r in rows] == \
        [(c.hidden_size, c.batch, c.seq_len, c.mode) for c in configs]


def test_schema_command_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json.loads(json.dumps(scenario_json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) == {"name", "device", "model"}
    assert set(schema["properties"]) >= {"name", "device", "profile", "model", "sweep", "serving", "training"}


def _objects(node: object) -> list[dict]:  # type: ignore[type-arg]
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            found.append(node)
        for v in node.values():
            found += _objects(v)
    elif isinstance(node, list):
        for v in node:
            found += _objects(v)
    return found


def test_schema_forbids_unknown_keys_everywhere() -> None:
    objects = _objects(scenario_json_schema())
    assert len(objects) >= 15
    assert all(o.get("additionalProperties") is False for o in objects)


def test_schema_knows_every_key_the_shipped_scenarios_use() -> None:
    schema = scenario_json_schema()
    defs = schema["$defs"]

    def keys_of(ref_or_schema: dict) -> set[str]:  # type: ignore[type-arg]
        out: set[str] = set()
        for option in ref_or_schema.get("anyOf", []) + ref_or_schema.get("oneOf", []) + [ref_or_schema]:
            if "$ref" in option:
                out |= set(defs[option["$ref"].rsplit("/", 1)[1]]["properties"])
            out |= set(option.get("properties", {}))
        return out

    for path in SHIPPED:
        data = yaml.safe_load(path.read_text())
        assert set(data) <= set(schema["properties"])
        for study in ("model", "sweep", "serving", "training"):
            if study in data:
                assert set(data[study]) <= keys_of(schema["properties"][study]), (path.name, study)


def test_scenario_config_fills_the_model_and_device(tmp_path: Path) -> None:
    s: Scenario = load_scenario(_write(tmp_path, CONTRACT_EXAMPLE))
    c = s.config(batch=3, seq_len=7, mode="training")
    assert c == GruConfig(batch=3, seq_len=7, input_size=80, hidden_size=512, num_layers=2, mode="training")


def test_the_studies_become_the_simulators_own_specs(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, CONTRACT_EXAMPLE))
    assert s.serving is not None and s.training is not None
    assert s.serving.arrival == ArrivalSpec("poisson", rate_per_s=200.0)
    assert s.serving.seq_len == SeqLenSpec("fixed", value=300)
    assert s.serving.batching == BatchingSpec(32, 0.005, "pad")
    assert (s.serving.replicas, s.serving.requests, s.serving.seed, s.serving.slo_p99_latency_s) == (2, 20000, 1, 0.1)
    assert s.training.devices == (1, 2, 4, 8) and s.training.steps == 50
    assert s.training.interconnect == Interconnect(12.5e9, 5e-6)


def test_an_arrival_trace_is_read_once_with_file_and_line_in_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("time_s,seq_len\n0.0,10\n0.5,20\n1.0,30\n")
    assert read_arrival_trace(path) == ((0.0, 10), (0.5, 20), (1.0, 30))
    path.write_text("time_s,seq_len\n0.0,10\n0.5,ten\n")
    with pytest.raises(ScenarioError, match=r"arrivals\.csv:3:"):
        read_arrival_trace(path)
    path.write_text("time_s,seq_len\n1.0,10\n0.5,10\n")
    with pytest.raises(ScenarioError, match="non-decreasing"):
        read_arrival_trace(path)
