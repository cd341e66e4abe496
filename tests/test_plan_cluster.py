"""`gru-sim plan --workers N / --scheduler ADDRESS`: the candidates' seeds simulated on a Dask cluster
give the plan the serial run gives for the same seeds, and without the optional extra the flags end
with one line naming it."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import gru_sim.study.plan as study_plan
from gru_sim.cli import main
from gru_sim.plan import PlanResult, plan_serving
from gru_sim.plan.evaluate import Evaluator, SeedRun
from gru_sim.scenario import load_scenario
from gru_sim.sim.serving import SeqLenSpec
from gru_sim.study.results import jsonable
from test_plan import MODELS, small_spec
from test_plan_scenario import PLAN
from test_report_fixtures import made_up_engine


def _comparable(plan: dict[str, Any]) -> dict[str, Any]:
    """plan.json without what says when it was written and how long it took."""
    return {k: v for k, v in plan.items() if k not in ("created_utc", "timings_s")}


def test_without_dask_plans_cluster_flags_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import dask.distributed → ImportError
    scenario = tmp_path / "plan.yaml"
    scenario.write_text(PLAN)
    for flags in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert main(["plan", str(scenario), "--out", str(tmp_path / "o"), *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "gru-sim[dask]" in err[0], err
    assert not (tmp_path / "o").exists()


def _local_runner(ev: Evaluator, log: list[tuple[Any, float, tuple[int, ...]]]):
    """A runner that simulates every seed at once, here, as a cluster would (no seed left out)."""
    def run(deployment, rate, seeds):
        log.append((deployment, rate, tuple(seeds)))
        runs = [ev.simulate_seed(deployment, rate, s) for s in seeds]
        return lambda: runs
    return run


@pytest.mark.parametrize("exhaustive", [False, True])
def test_a_runner_that_simulates_every_seed_at_once_gives_the_serial_plan(exhaustive: bool) -> None:
    """Seeds after the first failing one are simulated, and left out; bisection steps started early
    and never asked for are not candidates."""
    spec = small_spec(rate=3000.0, slo_s=0.1, seq=SeqLenSpec("uniform", low=5, high=30), seeds=(1, 2, 3))
    serial = plan_serving(spec, MODELS, exhaustive=exhaustive)
    log: list[tuple[Any, float, tuple[int, ...]]] = []
    spread = plan_serving(spec, MODELS, exhaustive=exhaustive, runner=_local_runner(Evaluator(spec, MODELS), log))
    as_json = [json.dumps(jsonable(PlanResult(p, None).to_dict())) for p in (serial, spread)]
    assert as_json[0] == as_json[1]
    assert spread == serial
    assert log and all(seeds == (1, 2, 3) for _, _, seeds in log)
    assert any(not c.feasible and len(c.latency_p99_by_seed_s) < 3 for c in serial.candidates)


distributed = pytest.importorskip("distributed")


def test_seed_tasks_on_a_cluster_are_the_seeds_simulated_here(client) -> None:
    from gru_sim.plan.evaluate import simulate_seed_task

    spec = small_spec(seeds=(1, 2))
    ev = Evaluator(spec, MODELS)
    plan = plan_serving(spec, MODELS)
    d = plan.candidates[0].deployment
    payload = client.scatter([("t", spec, MODELS)], broadcast=True)[0]
    runs: list[SeedRun] = client.gather([client.submit(simulate_seed_task, payload, d, plan.rate_per_s, s, pure=False)
                                         for s in (1, 2)])
    for run, seed in zip(runs, (1, 2)):
        here = ev.simulate_seed(d, plan.rate_per_s, seed)
        assert (run.seed, run.p99_s, run.utilization, run.mean_batch_size, run.stable) == \
               (here.seed, here.p99_s, here.utilization, here.mean_batch_size, here.stable)
        assert run.latency_s.tobytes() == here.latency_s.tobytes()


def test_plan_on_a_cluster_writes_the_serial_plan_json(client, tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    scenario = load_scenario(path)
    plan = functools.partial(study_plan.plan_scenario, engine_factory=made_up_engine)
    serial = plan(scenario, tmp_path / "made-up.json", tmp_path / "serial")
    spread = plan(scenario, tmp_path / "made-up.json", tmp_path / "cluster", client=client)
    assert serial.plan["recommended"] is not None and len(serial.plan["candidates"]) > 1
    assert _comparable(spread.plan) == _comparable(serial.plan)
    written = [_comparable(json.loads((tmp_path / d / "plan.json").read_text())) for d in ("serial", "cluster")]
    assert written[0] == written[1]


def test_plan_workers_flag_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`gru-sim plan --workers 1` (a local cluster of one worker process) writes the plan.json the
    serial command writes."""
    import gru_sim.distributed as dist

    real = dist.cluster_client
    # Threads rather than processes: the made-up machine lives in the tests, which worker processes can import
    # only with the tests folder on their path; the flags' wiring is what this test is about.
    monkeypatch.setattr(dist, "cluster_client", lambda workers=None, scheduler=None: real(workers, scheduler,
                                                                                          processes=False))
    monkeypatch.setattr(study_plan, "plan_scenario",
                        functools.partial(study_plan.plan_scenario, engine_factory=made_up_engine))
    scenario = tmp_path / "plan.yaml"
    scenario.write_text(PLAN)
    outs = {}
    for name, flags in (("serial", []), ("cluster", ["--workers", "1"])):
        code = main(["plan", str(scenario), "--profile", str(tmp_path / "made-up.json"),
                     "--out", str(tmp_path / name), *flags])
        outs[name] = capsys.readouterr().out
        assert code == 0, outs[name]
    plans = [_comparable(json.loads((tmp_path / n / "plan.json").read_text())) for n in ("serial", "cluster")]
    assert plans[0] == plans[1]
    assert outs["serial"].splitlines()[:-1] == outs["cluster"].splitlines()[:-1]
