"""Running a scenario: every study it names — sweep, serving, training forecast from one
calibration profile, gradient flow measured on this CPU — and written to one folder.

The cost model gives the time of one GRU call; the simulators (``gru_sim.sim``) turn those times into
queues and training steps; the report draws the results. This module only wires the studies together.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..accounting import compulsory_bytes
from ..config import GruConfig
from ..groups import GroupKey
from ..model.library import choose_profile, describe, mismatch_text
from ..predict import Prediction, Predictor
from ..report.prose import extrapolation_warnings
from ..scenario import Scenario, model_values
from .engine import EngineFactory, ProgressFn, load_engine
from .gradients import run_gradients
from .results import RESULTS_SCHEMA_VERSION, RunOutput, write_outputs
from .serving import batch_timeline, run_serving, serving_record
from .sweep import kernel_timeline, median_latency_config, predict_all, roofline_ceilings
from .training import memory_bandwidth, run_training, step_timeline, training_records


def choose_profile_path(scenario: Scenario, cli_profile: str | Path | None) -> tuple[Path, str]:
    """The profile a run uses and why: ``--profile``, else the scenario's, else the shipped default."""
    if cli_profile is not None:
        return Path(cli_profile), "given with --profile"
    if scenario.profile_path is not None:
        return scenario.profile_path, "named in the scenario"
    choice = choose_profile(scenario.spec.device)
    return choice.path, choice.reason


def default_out_dir(scenario: Scenario) -> Path:
    """``reports/<scenario name>/`` under the current folder."""
    return Path("reports") / scenario.name


def run_scenario(scenario: Scenario, profile_path: str | Path, out_dir: str | Path,
                 progress: ProgressFn | None = None, *, profile_source: str | None = None,
                 workers: int | None = None, engine_factory: EngineFactory = load_engine,
                 client: Any = None) -> RunOutput:
    """Run every study of ``scenario`` on the profile at ``profile_path`` and write the results.

    Writes ``results.json``, ``<study>.csv`` per study and ``report.html`` into ``out_dir`` (created).
    ``workers`` caps the processes a large sweep uses (default: every core this process may use);
    ``client`` (a Dask client) runs the sweep on its cluster instead. A grid too large for records
    (``scenario.sweep_grid``) is priced in vectorised chunks written to ``out_dir/sweep.parquet``, and
    results.json keeps its summary (``sweep_summary``).
    """
    report_progress = progress or (lambda task, done, total: None)
    profile_path = Path(profile_path)
    engine = engine_factory(profile_path)
    spec = scenario.spec
    ceilings = engine.profile.get("ceilings") or {}
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "gru_sim_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": {"name": spec.name, "path": str(scenario.path), "description": spec.description,
                     "device": spec.device, "spec": spec.model_dump(mode="json", exclude_none=True)},
        "profile": {**engine.profile, "source": profile_source},
        **profile_match_record(engine.model),
        "timings_s": {},
        "timelines": [],
    }
    priced: dict[str, list[dict[str, Any]]] = {}  # predict records behind each study, for the warnings
    if scenario.sweep_grid is not None:
        start = time.perf_counter()
        summary = _large_sweep(scenario, profile_path, engine, Path(out_dir), client,
                               lambda done, total: report_progress("sweep", done, total))
        results["sweep_summary"] = summary
        groups = {str(GroupKey.of(GruConfig.from_mapping(summary["fastest"]["config"])))}
        results["roofline"] = [{"group": g, **{k: ceilings[g][k] for k in ("peak_flops_per_s",
                                                                          "memory_bandwidth_bytes_per_s")}}
                               for g in sorted(groups) if (ceilings.get(g) or {}).get("peak_flops_per_s")
                               and ceilings[g].get("memory_bandwidth_bytes_per_s")]
        middle = sorted(summary["sample"], key=lambda r: r["latency_s"])[len(summary["sample"]) // 2]
        results["timelines"].append(kernel_timeline(engine.model, GruConfig.from_mapping(middle["config"])))
        results["timings_s"]["sweep"] = time.perf_counter() - start
    elif spec.sweep is not None:
        start = time.perf_counter()
        records = predict_all(scenario.sweep_configs, profile_path, engine, engine_factory,
                              lambda done, total: report_progress("sweep", done, total), workers, client)
        for record, config in zip(records, scenario.sweep_configs):
            record["compulsory_bytes"] = compulsory_bytes(config)
        results["sweep"] = records
        results["roofline"] = roofline_ceilings(records, ceilings)
        results["timelines"].append(kernel_timeline(engine.model, median_latency_config(records)))
        results["timings_s"]["sweep"] = time.perf_counter() - start
        priced["sweep"] = records
    if scenario.serving is not None:
        start = time.perf_counter()
        served, load, configs = run_serving(scenario, engine.model,
                                            lambda done, total: report_progress("serving", done, total))
        results["serving"] = serving_record(scenario, served, load)
        results["timelines"].append(batch_timeline(served.log))
        results["timings_s"]["serving"] = time.perf_counter() - start
        priced["serving"] = _records(engine.model.predict(c) for c in configs)
    if scenario.training is not None:
        start = time.perf_counter()
        bandwidth = memory_bandwidth(ceilings, scenario.config(batch=1, seq_len=1, mode="training"))
        trained, step, configs = run_training(scenario, engine.model, bandwidth,
                                              lambda done, total: report_progress("training", done, total))
        results["training"] = training_records(trained, step)
        results["timelines"].append(step_timeline(step, scenario.training))
        results["timings_s"]["training"] = time.perf_counter() - start
        priced["training"] = _records(engine.model.predict(c) for c in configs)
    if scenario.gradients:
        start = time.perf_counter()
        results["gradients"] = run_gradients(scenario, lambda done, total: report_progress("gradients", done, total))
        results["timings_s"]["gradients"] = time.perf_counter() - start
    results["warnings"] = extrapolation_warnings(priced)
    results["extrapolated"] = any(r.get("extrapolated") for rs in priced.values() for r in rs)
    if results.get("sweep_summary", {}).get("extrapolated"):
        s = results["sweep_summary"]
        results["warnings"].insert(0, f"sweep: {s['extrapolated']} of {s['configurations']} configurations lie outside "
                                      "the profile's calibrated range. Their predictions are extrapolations: "
                                      "calibrate over a wider range before trusting them.")
        results["extrapolated"] = True
    return write_outputs(results, Path(out_dir))


def _large_sweep(scenario: Scenario, profile_path: Path, engine: Any, out_dir: Path, client: Any,
                 progress: Any) -> dict[str, Any]:
    """The summary of a grid too large for records (gru_sim.study.large_sweep), each row's
    ``config`` gathered back into one mapping as the records write it."""
    from .large_sweep import GridSweep, run_large_sweep

    grid = GridSweep.of(dict(scenario.sweep_grid or {}), model_values(scenario.spec))
    summary = run_large_sweep(grid, profile_path, getattr(engine.model, "here", None) or {}, out_dir, client,
                              progress)
    fields = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "bidirectional", "mode", "dtype",
              "impl", "device", "threads")

    def nest(row: dict[str, Any]) -> dict[str, Any]:
        return {"config": {k: row[k] for k in fields}, **{k: v for k, v in row.items() if k not in fields}}

    for key in ("fastest", "slowest"):
        summary[key] = nest(summary[key])
    summary["pareto_front"] = [nest(r) for r in summary["pareto_front"]]
    summary["sample"] = [nest(r) for r in summary["sample"]]
    return summary


def profile_match_record(predictor: Predictor) -> dict[str, Any]:
    """Whether the profile describes this machine; when not, what differs and a sentence naming both
    machines and the command that fixes it (the report's red banner)."""
    if getattr(predictor, "mismatch", None) is None:
        return {}  # a stand-in model that knows nothing of machines
    if not predictor.mismatch:
        return {"profile_match": True}
    made_on, here = describe(predictor.profile.fingerprint), describe(predictor.here)
    return {"profile_match": False, "profile_mismatch": predictor.mismatch,
            "profile_note": f"This forecast uses a profile made on another machine ({made_on}), not on the one it "
                            f"ran on ({here}); they differ in {mismatch_text(predictor.mismatch)}. Its figures describe "
                            "that machine, and its intervals are widened. Run 'gru-sim calibrate --quick' here "
                            "(about a minute) for this machine's numbers."}


def _records(predictions: Iterable[Prediction]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in predictions]

