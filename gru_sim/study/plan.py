"""Planning a scenario's deployment (``gru-sim plan``): each hardware kind's cost model priced from
its profile, the search of :mod:`gru_sim.plan`, and ``plan.json`` and ``report.html`` written to one
folder. This module only wires the profile, the planner and the writers together."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..atomic import write_text_atomic
from ..config import GruConfig
from ..errors import GruSimError
from ..plan import PlanResult, ReplicaModel, plan_serving, plan_training, replica_model
from ..plan.result import PLAN_SCHEMA_VERSION, Deployment
from ..plan.evaluate import SeedRun, SeedRunner, simulate_seed_task
from ..report.prose import extrapolation_warnings
from ..scenario import Scenario
from .engine import Engine, EngineFactory, ProgressFn, load_engine
from .results import jsonable
from .training import device_step, memory_bandwidth


@dataclass(frozen=True)
class PlanOutput:
    """Where a plan wrote its files, what it found, and what it wrote into plan.json."""

    out_dir: Path
    plan_path: Path
    report_path: Path
    result: PlanResult
    plan: dict[str, Any]


def plan_scenario(scenario: Scenario, profile_path: str | Path, out_dir: str | Path,
                  progress: ProgressFn | None = None, *, profile_source: str | None = None,
                  engine_factory: EngineFactory = load_engine, client: Any = None) -> PlanOutput:
    """Plan the ``plan`` section of ``scenario``: every hardware kind priced by its own profile (else
    the one at ``profile_path``), the cheapest deployment searched, and the training option chosen.
    Writes ``plan.json`` and ``report.html`` into ``out_dir`` (created), whether or not a deployment
    is feasible (the caller turns an infeasible plan into exit code 1). ``client`` (a Dask client)
    simulates the candidates' seeds on its cluster; the plan is the same."""
    spec = scenario.plan
    if spec is None:
        raise GruSimError(f"{scenario.path}: the scenario has no plan section: add one (see the README, "
                          "'Planning a deployment')")
    report_progress = progress or (lambda task, done, total: None)
    profile_path = Path(profile_path)
    engines: dict[Path, Engine] = {}

    def engine_for(path: Path) -> Engine:
        if path not in engines:
            engines[path] = engine_factory(path)
        return engines[path]

    def config_for(batch: int, seq_len: int, threads: int) -> GruConfig:
        return scenario.config(batch=batch, seq_len=seq_len, mode="inference", threads=threads)

    models: dict[str, ReplicaModel] = {}
    for hw in spec.hardware:
        models[hw.name] = replica_model(engine_for(Path(hw.profile) if hw.profile else profile_path).model,
                                        config_for)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    report_progress("plan", 0, 2)
    serving = plan_serving(spec, models, runner=None if client is None else _cluster_runner(client, spec, models))
    timings["serving"] = time.perf_counter() - start
    report_progress("plan", 1, 2)
    training = None
    if spec.training is not None:
        start = time.perf_counter()
        t = spec.training
        engine = engine_for(profile_path)
        bandwidth = memory_bandwidth(engine.profile.get("ceilings") or {}, scenario.config(batch=1, seq_len=1,
                                                                                    mode="training"))

        @lru_cache(maxsize=None)
        def step_for_batch(batch: int) -> Any:
            config = scenario.config(batch=batch, seq_len=t.seq_len, mode="training")
            return device_step(engine.model, config, t.optimizer, bandwidth)

        training = plan_training(t, step_for_batch)
        timings["training"] = time.perf_counter() - start
    report_progress("plan", 2, 2)
    result = PlanResult(serving=serving, training=training)
    base = engine_for(profile_path)
    # What the answer rests on: the recommended deployment's largest batch of the longest requests, and
    # the training call chosen; their predictions say whether they leave the calibrated range.
    priced: dict[str, list[dict[str, Any]]] = {}
    if serving.recommended is not None:
        d = serving.recommended.deployment
        hw = next(h for h in spec.hardware if h.name == d.hardware)
        model = engine_for(Path(hw.profile) if hw.profile else profile_path).model
        priced["plan"] = [model.predict(config_for(d.batching.max_batch, spec.longest_seq_len,
                                                   d.threads_per_replica)).to_dict()]
    if training is not None and training.chosen is not None and spec.training is not None:
        config = scenario.config(batch=training.chosen.batch_per_device, seq_len=spec.training.seq_len,
                                 mode="training")
        priced["plan training"] = [base.model.predict(config).to_dict()]
    plan = jsonable({
        **result.to_dict(),
        "schema_version": PLAN_SCHEMA_VERSION,
        "gru_sim_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": {"name": scenario.name, "path": str(scenario.path), "description": scenario.spec.description,
                     "device": scenario.spec.device},
        "profile": {**base.profile, "source": profile_source},
        "profiles_by_hardware": {hw.name: hw.profile or str(profile_path) for hw in spec.hardware},
        "timings_s": timings,
        "warnings": extrapolation_warnings(priced),
    })
    return _write(plan, result, Path(out_dir))


def _cluster_runner(client: Any, spec: Any, models: dict[str, ReplicaModel]) -> SeedRunner:
    """A :data:`~gru_sim.plan.evaluate.SeedRunner` on ``client``'s cluster: one task per seed. The spec and
    the replica models (the cost models they price with, pickled whole, so workers need no profile file)
    are sent to every worker once."""
    import uuid

    from ..distributed import import_distributed

    import_distributed()
    payload = client.scatter([(uuid.uuid4().hex, spec, models)], broadcast=True)[0]

    def run(deployment: Deployment, rate: float, seeds: Sequence[int]) -> Callable[[], Sequence[SeedRun]]:
        futures = [client.submit(simulate_seed_task, payload, deployment, rate, seed, pure=False, retries=2)
                   for seed in seeds]

        def wait() -> Sequence[SeedRun]:
            runs = client.gather(futures)
            for fut in futures:
                fut.release()
            return runs

        return wait

    return run



def _write(plan: dict[str, Any], result: PlanResult, out_dir: Path) -> PlanOutput:
    from ..report import write_report  # plotly is imported by the report alone, and only when writing one

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GruSimError(f"{out_dir}: cannot create the output folder: {err.strerror}") from None
    plan_path = write_text_atomic(out_dir / "plan.json", json.dumps(plan, indent=1, allow_nan=False) + "\n")
    page = {"scenario": plan["scenario"], "profile": plan["profile"], "gru_sim_version": plan["gru_sim_version"],
            "created_utc": plan["created_utc"], "warnings": plan["warnings"], "plan": plan}
    report_path = write_report(page, out_dir / "report.html")
    return PlanOutput(out_dir=out_dir, plan_path=plan_path, report_path=report_path, result=result, plan=plan)
