"""`gru-sim plan`: the scenario's plan section read with line-located errors, plan.json with
CONTRACT.md's keys and the report written, exit 0 when a deployment fits, 1 (one line saying why)
when none does, 2 on bad input. Priced by the made-up machine of test_report_fixtures."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import gru_sim.study.plan as study_plan
from gru_sim.cli import main
from gru_sim.errors import ScenarioError
from gru_sim.scenario import load_scenario
from test_report_fixtures import made_up_engine

ROOT = Path(__file__).resolve().parents[1]

PLAN = """\
name: plan-small
device: cpu
model: {input_size: 64, hidden_size: 256}
plan:
  arrival: {process: poisson, rate_per_s: 3000}
  seq_len: {distribution: uniform, low: 10, high: 40}
  rates_per_s: [1000, 3000]
  slo: {p99_latency_s: 0.01}
  search:
    replicas: {min: 1, max: 8}
    max_batch: [1, 8]
    max_wait_s: [0.0, 0.001]
    padding: [pad, bucket]
    threads_per_replica: [1]
  hardware:
    - {name: small, cost_per_hour: 0.1, cores: 1, memory_bytes: 2_000_000_000}
    - {name: big, cost_per_hour: 0.35, cores: 4}
  requests: 500
  seeds: 2
  training:
    sequences_per_epoch: 100000
    seq_len: 40
    target_epoch_time_s: 60
    batch_per_device: [16, 64]
    devices: [1, 2, 4, 8]
    interconnect: {bandwidth_bytes_per_s: 1.25e+9, latency_s: 2.0e-5}
    cost_per_device_hour: 0.5
"""
CONTRACT_KEYS = {"hardware", "machines", "replicas", "threads_per_replica", "max_batch", "max_wait_s", "padding",
                 "cost_per_hour", "latency_s", "slo_attainment"}


def _write(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def made_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gru-sim plan` priced by the made-up machine instead of a profile on disk."""
    monkeypatch.setattr(study_plan, "plan_scenario",
                        functools.partial(study_plan.plan_scenario, engine_factory=made_up_engine))


def _run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["plan", str(_write(tmp_path, text)), "--profile", str(tmp_path / "made-up.json"),
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_plan_section_becomes_the_planner_spec(tmp_path: Path) -> None:
    spec = load_scenario(_write(tmp_path)).plan
    assert spec is not None
    assert spec.space.replicas == tuple(range(1, 9)) and spec.seeds == (1, 2)
    assert [h.name for h in spec.hardware] == ["small", "big"] and spec.hardware[1].memory_bytes is None
    assert spec.slo.latency_s == 0.01 and spec.slo.percentile == 99 and spec.peak_rate_per_s == 3000
    assert spec.training is not None and spec.training.devices == (1, 2, 4, 8)


def test_plan_writes_plan_json_with_the_contract_keys_and_exits_0(tmp_path: Path, made_up: None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(tmp_path, PLAN, capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert {"slo", "rate_per_s", "recommended", "candidates", "pareto", "training"} <= set(plan)
    assert plan["rate_per_s"] == 3000 and plan["slo"]["p99_latency_s"] == 0.01
    assert CONTRACT_KEYS | {"headroom_rate_per_s"} <= set(plan["recommended"])
    assert all(CONTRACT_KEYS | {"feasible"} <= set(c) for c in plan["candidates"])
    assert plan["recommended"]["latency_s"]["p99"] <= 0.01
    assert {"devices", "batch_per_device", "epoch_time_s", "cost"} <= set(plan["training"])
    assert plan["training"]["epoch_time_s"] <= 60 and plan["training"]["devices"] > 1
    assert plan["recommended"]["machines"] > 1
    assert [r["rate_per_s"] for r in plan["schedule"]] == [1000, 3000]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Deployment plan" in html and "Why the cheaper deployments fail" in html
    assert out.splitlines()[-1] == f"report written to {tmp_path / 'out' / 'report.html'}"
    assert "recommended:" in out


def test_an_slo_below_one_requests_service_time_exits_1_with_the_reason(
        tmp_path: Path, made_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(tmp_path, PLAN.replace("p99_latency_s: 0.01", "p99_latency_s: 1.0e-6"), capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("gru-sim plan: no deployment meets p99 <= 1e-06 s") and "served alone" in last
    assert "Traceback" not in err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["recommended"] is None and plan["feasible"] is False


def test_a_memory_cap_below_the_weights_exits_1_with_the_reason(
        tmp_path: Path, made_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(tmp_path, PLAN.replace("  requests: 500\n", "  requests: 500\n  memory_cap_bytes: 1000\n"),
                        capsys)
    assert code == 1
    assert "gru-sim plan: memory_cap_bytes(=1000) is below the model's weights" in err
    assert "Traceback" not in err


def test_a_training_target_out_of_reach_exits_1(tmp_path: Path, made_up: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(tmp_path, PLAN.replace("target_epoch_time_s: 60", "target_epoch_time_s: 0.001"), capsys)
    assert code == 1
    assert "no training setup gets through 100000 sequences" in err


def test_a_scenario_without_a_plan_section_exits_2(tmp_path: Path, made_up: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = PLAN.split("plan:\n")[0] + "sweep: {batch: [1], seq_len: [10]}\n"
    code, _, err = _run(tmp_path, text, capsys)
    assert code == 2
    assert "has no plan section" in err


@pytest.mark.parametrize("change, where, message", [
    (("p99_latency_s: 0.01", "p99_latency_s: 0.01, p95_latency_s: 0.005"), ":8: plan.slo",
     "give one of p99_latency_s and p95_latency_s"),
    (("replicas: {min: 1, max: 8}", "replicas: {min: 4, max: 2}"), ":10: plan.search.replicas.max", "must be >= min"),
    (("name: big,", "name: small,"), ":17: plan.hardware[1].name", "its own name"),
    (("padding: [pad, bucket]", "padding: [pad, squash]"), ":13: plan.search.padding[1]", "must be one of"),
    (("cores: 4}", "cores: 4, profile: nowhere.json}"), ":17: plan.hardware[1].profile", "no such file"),
    (("  requests: 500\n", "  requests: 500\n  colour: blue\n"), ":19: plan.colour", "unknown key"),
    (("  seq_len: {distribution: uniform, low: 10, high: 40}\n", ""), ":4: plan.seq_len", "required unless"),
    (("cores: 4}", "cores: 4, max_machines: 0}"), ":17: plan.hardware[1].max_machines", "0 is not valid: must be > 0"),
    (("cores: 4}", "cores: 4, max_machines: -2}"), ":17: plan.hardware[1].max_machines", "must be > 0"),
    (("cores: 4}", "cores: 4, max_machines: many}"), ":17: plan.hardware[1].max_machines", "whole number"),
    (("  seeds: 2\n", "  seeds: 2\n  service_time_factor: 1.15\n  service_time_margin: interval\n"),
     ":21: plan.service_time_margin", "service_time_margin: interval and service_time_factor(=1.15) both set"),
    (("  seeds: 2\n", "  seeds: 2\n  service_time_margin: quantile\n"), ":20: plan.service_time_margin",
     "must be one of 'factor' or 'interval'"),
])
def test_plan_section_errors_name_the_line_and_field(tmp_path: Path, change: tuple[str, str], where: str,
                                                     message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(_write(tmp_path, PLAN.replace(*change)))
    assert where in str(err.value) and message in str(err.value)


LIMITED = (PLAN.replace("memory_bytes: 2_000_000_000}", "memory_bytes: 2_000_000_000, max_machines: 1}")
           .replace("cores: 4}", "cores: 4, max_machines: 1}"))


def test_max_machines_is_read_and_shown_in_plan_json(tmp_path: Path, made_up: None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_scenario(_write(tmp_path, LIMITED)).plan
    assert spec is not None and [h.max_machines for h in spec.hardware] == [1, 1]
    code, _, err = _run(tmp_path, LIMITED, capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert [(h["name"], h["max_machines"]) for h in plan["hardware"]] == [("small", 1), ("big", 1)]
    assert all(c["machines"] == 1 for c in plan["candidates"])
    assert plan["recommended"]["hardware"] == "big"  # two small machines would be cheaper, one is not enough
    assert any("needs more than max_machines(=1) small machines at 3000 req/s" in r["reason"]
               for r in plan["ruled_out"])


def test_an_slo_needing_more_than_max_machines_exits_1_naming_the_limit(
        tmp_path: Path, made_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    text = LIMITED.replace("rate_per_s: 3000", "rate_per_s: 20000").replace("[1000, 3000]", "[1000, 20000]")
    code, _, err = _run(tmp_path, text, capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("gru-sim plan: no deployment meets p99 <= 0.01 s at 2e+04 req/s")
    assert "small x 1 thread: needs more than max_machines(=1) small machines at 2e+04 req/s" in last
    assert "big x 1 thread: needs more than max_machines(=1) big machines at 2e+04 req/s" in last
    assert "Traceback" not in err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["recommended"] is None and plan["feasible"] is False


def test_the_interval_margin_is_recorded_and_costs_at_least_the_point_prediction(
        tmp_path: Path, made_up: None, capsys: pytest.CaptureFixture[str]) -> None:
    plans = {}
    for margin in ("factor", "interval"):
        text = PLAN.replace("  seeds: 2\n", f"  seeds: 2\n  service_time_margin: {margin}\n")
        code, _, err = _run(tmp_path, text, capsys)
        assert code == 0, err
        plans[margin] = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plans["interval"]["service_time_margin"] == "interval" and plans["factor"]["service_time_margin"] == "factor"
    point, margin = plans["factor"]["recommended"], plans["interval"]["recommended"]
    assert margin["cost_per_hour"] >= point["cost_per_hour"]
    # The made-up machine's interval reaches 1.15x its prediction: every latency is at least as long.
    assert margin["latency_s"]["p50"] > point["latency_s"]["p50"]


def test_a_profiles_interval_prices_as_its_predict_record_says() -> None:
    from gru_sim.plan.models import upper_service_time_s
    from gru_sim.study.engine import load_engine

    path = ROOT / "calibration" / "profiles" / "cpu-default.json"
    if not path.is_file():
        pytest.skip("no shipped cpu profile")
    predictor = load_engine(path).model
    scenario = load_scenario(ROOT / "scenarios" / "plan-speech.yaml")
    for batch, seq_len in ((1, 50), (4, 300), (16, 1500)):
        config = scenario.config(batch=batch, seq_len=seq_len, mode="inference", threads=1)
        record = predictor.predict(config)
        assert upper_service_time_s(predictor, config) == pytest.approx(
            record.latency_interval_s[1] * predictor.service_time_s(config) / record.latency_s, rel=1e-9)
        assert upper_service_time_s(predictor, config) >= predictor.service_time_s(config)


def test_the_example_plan_scenario_loads() -> None:
    spec = load_scenario(ROOT / "scenarios" / "plan-speech.yaml").plan
    assert spec is not None and spec.training is not None
    assert len(spec.hardware) == 3


def test_the_schema_documents_the_plan_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "plan" in schema["properties"]
    assert "PlanSpec" in schema["$defs"] and "HardwareSpec" in schema["$defs"]
    assert "max_machines" in schema["$defs"]["HardwareSpec"]["properties"]
    assert "service_time_margin" in schema["$defs"]["PlanSpec"]["properties"]


def test_run_leaves_a_plan_section_alone_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import gru_sim.study as study

    monkeypatch.setattr(study, "run_scenario", functools.partial(study.run_scenario, engine_factory=made_up_engine))
    text = PLAN.replace("plan:\n", "sweep: {batch: [1], seq_len: [10]}\nplan:\n", 1)
    code = main(["run", str(_write(tmp_path, text)), "--profile", str(tmp_path / "made-up.json"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "the plan section is for 'gru-sim plan'" in err
    assert not (tmp_path / "out" / "plan.json").exists()
