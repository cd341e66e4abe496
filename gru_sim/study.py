"""Running a scenario: every study it names — sweep, serving, training — forecast from one
calibration profile, written to one folder: ``results.json``, a CSV per study and ``report.html``.

The cost model gives the time of one GRU call; the simulators (``gru_sim.sim``) turn those times into
queues and training steps; the report draws the results. This module only wires them together and
writes what they return. Sweeps of thousands of configurations are spread over every core.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from . import __version__
from .accounting import account_call, compulsory_bytes
from .config import GruConfig
from .errors import GruSimError
from .model.costmodel import group_key
from .model.kernel_times import CallTimes
from .predict import Predictor
from .model.profile import load_profile, shipped_default_profile
from .scenario import Scenario
from .sim.executors import simulate_call
from .sim.serving import serving_spec_from_mapping, simulate_serving, sweep_load
from .sim.training import (DeviceStepTimes, Interconnect, TrainingSpec, ddp_buckets, simulate_step,
                           simulate_training, step_times_from_call)

RESULTS_SCHEMA_VERSION = 1
# Below this many configurations, starting worker processes costs more than it saves.
PARALLEL_MIN_CONFIGS = 2000
# Chunks per worker: enough that a slow chunk does not leave the other cores idle at the end.
CHUNKS_PER_WORKER = 4
# Recurrent steps of one layer-direction merged into at most this many bars of the kernel timeline.
TIMELINE_STEP_SEGMENTS = 24

ProgressFn = Callable[[str, int, int], None]
"""``progress(task, done, total)``: called as a study advances (the CLI draws a bar from it)."""


class CostModel(Protocol):
    """What the runner asks of the calibrated cost model (``gru_sim.predict.Predictor``)."""

    def predict(self, config: GruConfig) -> dict[str, Any]: ...

    def predict_many(self, configs: list[GruConfig]) -> list[dict[str, Any]]: ...

    def call_times(self, config: GruConfig) -> CallTimes: ...

    def service_time_s(self, config: GruConfig) -> float: ...


@dataclass(frozen=True)
class Engine:
    """A loaded profile, described as plain data for the report, and the cost model it holds."""

    profile: dict[str, Any]
    model: CostModel


EngineFactory = Callable[[Path], Engine]


def load_engine(profile_path: Path) -> Engine:
    """Load a calibration profile and its cost model (raises ProfileError)."""
    profile = load_profile(profile_path)
    return Engine(profile=profile_info(profile.path or profile_path, profile.fingerprint, profile.self_check,
                                       profile.ranges, profile.ceilings, profile.created_at),
                  model=Predictor(profile))


def profile_info(path: Path | str, fingerprint: dict[str, Any], self_check: dict[str, Any],
                 ranges: dict[str, Any], ceilings: dict[str, Any], created_at: str | None) -> dict[str, Any]:
    """What results.json and the report say about a profile. Ranges, self-check and ceilings are kept
    per hardware group (``device/dtype/impl/tN``) as the profile holds them; a ceiling's raw
    micro-benchmarks are left out."""
    def scalars(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}

    return {"path": str(path), "created_at": created_at, "fingerprint": dict(fingerprint),
            "self_check": dict(self_check), "ranges": dict(ranges),
            "ceilings": {k: scalars(v) if isinstance(v, dict) else v for k, v in ceilings.items()}}


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and what it wrote into results.json."""

    out_dir: Path
    results_path: Path
    report_path: Path
    csv_paths: dict[str, Path]
    results: dict[str, Any]


def choose_profile_path(scenario: Scenario, cli_profile: str | Path | None) -> tuple[Path, str]:
    """The profile a run uses and why: ``--profile``, else the scenario's, else the shipped default."""
    if cli_profile is not None:
        return Path(cli_profile), "given with --profile"
    if scenario.profile_path is not None:
        return scenario.profile_path, "named in the scenario"
    return shipped_default_profile(scenario.spec.device), f"the shipped default for {scenario.spec.device}"


def default_out_dir(scenario: Scenario) -> Path:
    """``reports/<scenario name>/`` under the current folder."""
    return Path("reports") / scenario.name


def run_scenario(scenario: Scenario, profile_path: str | Path, out_dir: str | Path,
                 progress: ProgressFn | None = None, *, profile_source: str | None = None,
                 workers: int | None = None, engine_factory: EngineFactory = load_engine) -> RunOutput:
    """Run every study of ``scenario`` on the profile at ``profile_path`` and write the results.

    Writes ``results.json``, ``<study>.csv`` per study and ``report.html`` into ``out_dir`` (created).
    ``workers`` caps the processes a large sweep uses (default: every core this process may use).
    """
    report_progress = progress or (lambda task, done, total: None)
    profile_path = Path(profile_path)
    engine = engine_factory(profile_path)
    out_dir = Path(out_dir)
    spec = scenario.spec
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "gru_sim_version": __version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "scenario": {"name": spec.name, "path": str(scenario.path), "description": spec.description,
                     "device": spec.device, "spec": spec.model_dump(mode="json", exclude_none=True)},
        "profile": {**engine.profile, "source": profile_source},
        "timings_s": {},
        "timelines": [],
    }
    priced: dict[str, list[dict[str, Any]]] = {}  # predict records behind each study, for the warnings
    if spec.sweep is not None:
        start = time.perf_counter()
        records = predict_all(scenario.sweep_configs, profile_path, engine, engine_factory,
                              lambda done, total: report_progress("sweep", done, total), workers)
        for record, config in zip(records, scenario.sweep_configs):
            record["compulsory_bytes"] = compulsory_bytes(config)
        results["sweep"] = records
        results["roofline"] = roofline_ceilings(records, engine.profile.get("ceilings") or {})
        results["timelines"].append(kernel_timeline(engine.model, median_latency_config(records)))
        results["timings_s"]["sweep"] = time.perf_counter() - start
        priced["sweep"] = records
    if spec.serving is not None:
        start = time.perf_counter()
        serving, timeline, configs = run_serving(scenario, engine.model,
                                                 lambda done, total: report_progress("serving", done, total))
        results["serving"] = serving
        if timeline is not None:
            results["timelines"].append(timeline)
        results["timings_s"]["serving"] = time.perf_counter() - start
        priced["serving"] = [engine.model.predict(c) for c in configs]
    if spec.training is not None:
        start = time.perf_counter()
        bandwidth = _bandwidth(engine.profile.get("ceilings") or {},
                               scenario.config(batch=1, seq_len=1, mode="training"))
        training, timeline, configs = run_training(scenario, engine.model, bandwidth,
                                                   lambda done, total: report_progress("training", done, total))
        results["training"] = training
        results["timelines"].append(timeline)
        results["timings_s"]["training"] = time.perf_counter() - start
        priced["training"] = [engine.model.predict(c) for c in configs]
    results["warnings"] = extrapolation_warnings(priced)
    results["extrapolated"] = any(r.get("extrapolated") for rs in priced.values() for r in rs)
    return write_outputs(jsonable(results), out_dir)


def write_outputs(results: dict[str, Any], out_dir: Path) -> RunOutput:
    """Write results.json, the per-study CSVs and report.html for ``results`` into ``out_dir``."""
    from .report import write_report  # plotly is imported by the report alone, and only when writing one

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GruSimError(f"{out_dir}: cannot create the output folder: {err.strerror}") from None
    results_path = _write_text(out_dir / "results.json", json.dumps(results, indent=1, allow_nan=False) + "\n")
    csv_paths = {}
    if "sweep" in results:
        csv_paths["sweep"] = write_csv(out_dir / "sweep.csv", [_flat_record(r) for r in results["sweep"]])
    if "serving" in results:
        s = results["serving"]
        rows = [{"run": "configured rate", "rate_per_s": s.get("offered_rate_per_s"), **_flat(s, skip=_SERVING_BULK)}]
        rows += [{"run": "load sweep", **_flat(p)} for p in (s.get("load_sweep") or {}).get("points", [])]
        csv_paths["serving"] = write_csv(out_dir / "serving.csv", rows)
    if "training" in results:
        csv_paths["training"] = write_csv(out_dir / "training.csv", [_flat(r) for r in results["training"]])
    report_path = write_report(results, out_dir / "report.html")
    return RunOutput(out_dir=out_dir, results_path=results_path, report_path=report_path, csv_paths=csv_paths,
                     results=results)


# -------------------------------------------------------------------------------------------- sweep
_WORKER_ENGINE: Engine | None = None


def _init_worker(engine_factory: EngineFactory, profile_path: Path) -> None:
    global _WORKER_ENGINE
    # The parent has already shown the profile's warnings (e.g. a different machine) once.
    warnings.simplefilter("ignore")
    _WORKER_ENGINE = engine_factory(profile_path)


def _predict_chunk(configs: list[GruConfig]) -> list[dict[str, Any]]:
    assert _WORKER_ENGINE is not None, "worker used before _init_worker"
    return [jsonable(r) for r in _WORKER_ENGINE.model.predict_many(configs)]


def predict_all(configs: Sequence[GruConfig], profile_path: Path, engine: Engine, engine_factory: EngineFactory,
                progress: Callable[[int, int], None], workers: int | None = None) -> list[dict[str, Any]]:
    """The predict record of every config, in order; a large sweep runs in a pool of processes, each
    loading the profile once."""
    total = len(configs)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(workers or available, available))
    progress(0, total)
    if workers == 1 or total < PARALLEL_MIN_CONFIGS:
        size = max(1, math.ceil(total / 100))
        records: list[dict[str, Any]] = []
        for i in range(0, total, size):
            records += [jsonable(r) for r in engine.model.predict_many(list(configs[i:i + size]))]
            progress(len(records), total)
        return records
    size = max(50, math.ceil(total / (workers * CHUNKS_PER_WORKER)))
    chunks = [list(configs[i:i + size]) for i in range(0, total, size)]
    out: list[list[dict[str, Any]]] = [[] for _ in chunks]
    done = 0
    # spawn, not fork: the parent may hold threads (the progress bar) that a forked child would copy locked.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(engine_factory, profile_path)) as pool:
        futures = {pool.submit(_predict_chunk, chunk): i for i, chunk in enumerate(chunks)}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            done += len(chunks[futures[fut]])
            progress(done, total)
    return [r for chunk in out for r in chunk]


def _bandwidth(ceilings: dict[str, Any], config: GruConfig) -> float | None:
    value = (ceilings.get(group_key(config)) or {}).get("memory_bandwidth_bytes_per_s")
    return float(value) if value else None


def median_latency_config(records: Sequence[dict[str, Any]]) -> GruConfig:
    """The config of the record with the median latency."""
    ordered = sorted(records, key=lambda r: r["latency_s"])
    return GruConfig.from_mapping(ordered[len(ordered) // 2]["config"])


def roofline_ceilings(records: Sequence[dict[str, Any]], ceilings: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured ceilings of each hardware group the sweep's configurations belong to."""
    out = []
    for key in dict.fromkeys(group_key(GruConfig.from_mapping(r["config"])) for r in records):
        c = ceilings.get(key) or {}
        if c.get("peak_flops_per_s") and c.get("memory_bandwidth_bytes_per_s"):
            out.append({"group": key, "peak_flops_per_s": c["peak_flops_per_s"],
                        "memory_bandwidth_bytes_per_s": c["memory_bandwidth_bytes_per_s"]})
    return out


def kernel_timeline(model: CostModel, config: GruConfig) -> dict[str, Any]:
    """The simulated kernels of one call of ``config`` (the executor the device implies), with runs of
    recurrent steps merged so that each layer and direction shows at most ``TIMELINE_STEP_SEGMENTS``."""
    chunk = max(1, math.ceil(config.seq_len / TIMELINE_STEP_SEGMENTS))
    sim = simulate_call(model.call_times(config), chunk_steps=chunk)
    items = []
    for k in sim.kernels:
        if k.duration_s <= 0:
            continue
        lane = "call" if k.layer < 0 else f"layer {k.layer} · {'left to right' if k.direction == 0 else 'right to left'}"
        items.append({"lane": lane, "name": k.name, "start_s": k.start_s, "duration_s": k.duration_s,
                      "category": k.kind.replace("_", " ")})
    label = (f"{config.mode} B={config.batch} T={config.seq_len} I={config.input_size} H={config.hidden_size} "
             f"L={config.num_layers}{' bidirectional' if config.bidirectional else ''}")
    return {"study": "sweep", "title": f"Simulated kernels of one call: {label}",
            "caption": f"The sweep's median-latency configuration on the {sim.executor} executor; "
                       f"{chunk} step{'s' * (chunk > 1)} per bar. Latency {sim.makespan_s:.4g} s, "
                       f"peak memory {sim.peak_memory_bytes} bytes.",
            "items": items,
            "memory_timeline": {"time_s": [t for t, _ in sim.memory_timeline],
                                "bytes": [b for _, b in sim.memory_timeline]}}


# ------------------------------------------------------------------------------------------ serving
SERVING_TIMELINE_POINTS = 400
# Requests per load-sweep point: enough for a stable p99 (50 requests above it), few enough that the
# sweep's dozen or more runs stay within seconds.
LOAD_SWEEP_REQUESTS = 5000
CDF_POINTS = 400
GANTT_BATCHES = 150
# Large per-request series, left out of the serving CSV (they are in results.json).
_SERVING_BULK = ("latency_cdf", "queue_wait_cdf", "queue_length_timeline", "utilization_timeline",
                 "batch_size_histogram", "load_sweep", "request_sample")


def run_serving(scenario: Scenario, model: CostModel, progress: Callable[[int, int], None]
                ) -> tuple[dict[str, Any], dict[str, Any], list[GruConfig]]:
    """Simulate the serving study at its arrival rate, then the load sweep (p99 against rate).

    Returns the ``serving`` object of results.json, a timeline of the first batches on the replicas,
    and the configurations priced at the largest batch (for the extrapolation check).
    """
    sv = scenario.spec.serving
    assert sv is not None
    spec = serving_spec_from_mapping(sv.model_dump(mode="python", exclude_none=True),
                                     arrival_trace=scenario.arrival_trace)

    def config(batch: int, seq_len: int) -> GruConfig:
        return scenario.config(batch=batch, seq_len=seq_len, mode="inference", threads=sv.threads_per_replica)

    @lru_cache(maxsize=None)
    def service_time_s(batch: int, seq_len: int) -> float:
        return float(model.service_time_s(config(batch, seq_len)))

    @lru_cache(maxsize=None)
    def memory_bytes(batch: int, seq_len: int) -> int:
        # Weights, inputs and activations: all of it lives on the replica while the batch runs.
        record = model.predict(config(batch, seq_len))
        return int((record.get("memory_bytes") or {}).get("total") or record["peak_memory_bytes"])

    needs_memory = spec.memory_cap_bytes is not None
    progress(0, 2)
    result = simulate_serving(spec, service_time_s, memory_bytes if needs_memory else None,
                              timeline_points=SERVING_TIMELINE_POINTS, sample_requests=0)
    progress(1, 2)
    load = sweep_load(spec, service_time_s, memory_bytes if needs_memory else None,
                      requests=min(spec.requests, LOAD_SWEEP_REQUESTS))
    progress(2, 2)
    out = result.to_dict()
    out.pop("request_sample", None)
    out["offered_rate_per_s"] = spec.arrival.rate_per_s or _trace_rate_per_s(scenario.arrival_trace)
    out["latency_cdf"] = _cdf(result.log.latency_s)
    out["queue_wait_cdf"] = _cdf(result.log.queue_wait_s)
    out["load_sweep"] = {**load.to_dict(), "requests_per_point": min(spec.requests, LOAD_SWEEP_REQUESTS)}
    log = result.log
    longest_batch = int(log.batch_size.max())
    longest_len = int(log.batch_padded_len.max())
    priced = [config(longest_batch, longest_len)]
    return out, _batch_timeline(log), priced


def _trace_rate_per_s(trace: tuple[tuple[float, int], ...] | None) -> float | None:
    """The mean arrival rate of a replayed trace (None for fewer than two distinct times)."""
    if not trace or trace[-1][0] <= trace[0][0]:
        return None
    return (len(trace) - 1) / (trace[-1][0] - trace[0][0])


def _cdf(values: Any) -> dict[str, list[float]]:
    """An empirical CDF at ``CDF_POINTS`` quantiles (the full sample would bloat results.json)."""
    ordered = sorted(float(v) for v in values)
    n = len(ordered)
    idx = sorted({min(n - 1, round(i * (n - 1) / (CDF_POINTS - 1))) for i in range(CDF_POINTS)})
    return {"value_s": [ordered[i] for i in idx], "fraction": [(i + 1) / n for i in idx]}


def _batch_timeline(log: Any) -> dict[str, Any]:
    n = min(GANTT_BATCHES, int(log.batch_size.shape[0]))
    items = [{"lane": f"replica {int(log.batch_replica[i])}",
              "name": f"batch {i}: {int(log.batch_size[i])} request{'s' * (int(log.batch_size[i]) != 1)} "
                      f"padded to {int(log.batch_padded_len[i])} steps",
              "start_s": float(log.batch_start_s[i]),
              "duration_s": float(log.batch_finish_s[i] - log.batch_start_s[i]),
              "category": "batch"} for i in range(n)]
    items.sort(key=lambda it: it["lane"])
    return {"study": "serving", "title": "Simulated batches on the replicas",
            "caption": f"The first {n} batches of the run at the configured rate; gaps are idle replicas.",
            "items": items}


# ----------------------------------------------------------------------------------------- training
# Bytes an optimizer step reads and writes per byte of weights (parameter, gradient and state, each
# read or written once): SGD reads p and g and writes p; momentum adds one buffer read and written;
# Adam reads p, g, m, v and writes p, m, v (torch.optim's single-tensor, non-fused loops).
OPTIMIZER_PASSES = {"sgd": 3, "sgd-momentum": 5, "adam": 7}
# State it keeps, in units of the weights (momentum buffer; Adam's two moments).
OPTIMIZER_STATE = {"sgd": 0, "sgd-momentum": 1, "adam": 2}


def run_training(scenario: Scenario, model: CostModel, memory_bandwidth_bytes_per_s: float | None,
                 progress: Callable[[int, int], None]) -> tuple[list[dict[str, Any]], dict[str, Any], list[GruConfig]]:
    """Simulate data-parallel training at every device count of the study.

    The optimizer step is priced as a memory-bound pass over weights, gradients and optimizer state at
    the profile's measured bandwidth (none measured: free). Returns the ``training`` list, a timeline
    of one step at the largest device count, and the configuration priced.
    """
    tr = scenario.spec.training
    assert tr is not None
    config = scenario.config(batch=tr.batch_per_device, seq_len=tr.seq_len, mode="training")
    progress(0, 1)
    times = model.call_times(config)
    weight_bytes = account_call(config).weight_bytes
    optimizer_s = (OPTIMIZER_PASSES[tr.optimizer] * weight_bytes / memory_bandwidth_bytes_per_s
                   if memory_bandwidth_bytes_per_s else 0.0)
    record = model.predict(config)
    step = step_times_from_call(times, optimizer_s,
                                int(record["peak_memory_bytes"]) + (1 + OPTIMIZER_STATE[tr.optimizer]) * weight_bytes)
    spec = TrainingSpec(batch_per_device=tr.batch_per_device, seq_len=tr.seq_len, devices=tuple(tr.devices),
                        interconnect=Interconnect(tr.interconnect.bandwidth_bytes_per_s, tr.interconnect.latency_s),
                        steps=tr.steps)
    result = simulate_training(step, spec)
    progress(1, 1)
    rows = result.to_dict()
    for row in rows:
        row["optimizer_step_s"] = optimizer_s
    return rows, _step_timeline(step, spec), [config]


def _step_timeline(step: DeviceStepTimes, spec: TrainingSpec) -> dict[str, Any]:
    devices = max(spec.devices)
    buckets = ddp_buckets(step.backward, spec.bucket_cap_bytes, spec.first_bucket_bytes)
    timeline = simulate_step(step, devices, spec.interconnect, buckets)
    items = [{"lane": "compute", "name": "forward", "start_s": 0.0, "duration_s": step.forward_s,
              "category": "forward"}]
    clock = step.forward_s
    for i, piece in enumerate(step.backward):
        items.append({"lane": "compute", "name": f"backward piece {i + 1} of {len(step.backward)}",
                      "start_s": clock, "duration_s": piece.duration_s, "category": "backward"})
        clock += piece.duration_s
    for (start, finish), bucket in zip(timeline.bucket_intervals_s, buckets):
        items.append({"lane": "communication", "name": f"all-reduce of bucket {bucket.index} ({bucket.nbytes} bytes)",
                      "start_s": start, "duration_s": finish - start, "category": "all-reduce"})
    items.append({"lane": "compute", "name": "optimizer step", "start_s": timeline.step_time_s - step.optimizer_step_s,
                  "duration_s": step.optimizer_step_s, "category": "optimizer"})
    return {"study": "training", "title": f"One simulated training step on {devices} device{'s' * (devices > 1)}",
            "caption": "Gradient buckets are all-reduced as backward produces them, as PyTorch DDP does; the "
                       "optimizer step waits for the last one.",
            "items": [it for it in items if it["duration_s"] > 0]}


# ------------------------------------------------------------------------------------ extrapolation
# Axes the profile either covers or not (the cost model marks them with a factor of 2, meaning "other").
CATEGORICAL_AXES = ("mode", "bidirectional", "threads")


def extrapolation_warnings(records_by_study: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One sentence per study whose predictions leave the profile's calibrated range, naming the axes
    and how far (the ``extrapolated_axes`` factors of the predict records: value / calibrated limit)."""
    out = []
    for study, records in records_by_study.items():
        outside = [r for r in records if r.get("extrapolated")]
        if not outside:
            continue
        worst: dict[str, float] = {}
        for r in outside:
            for axis, factor in (r.get("extrapolated_axes") or {}).items():
                worst[axis] = max(worst.get(axis, 0.0), float(factor))
        axes = "; ".join(f"{axis} not calibrated" if axis in CATEGORICAL_AXES else f"{axis} up to {factor:.3g}× beyond"
                         for axis, factor in sorted(worst.items()))
        n = len(records)
        one = len(outside) == 1
        out.append(f"{study}: {len(outside)} of {n} configuration{'s' * (n != 1)} {'lies' if one else 'lie'} outside "
                   f"the profile's calibrated range{' (' + axes + ')' if axes else ''}. "
                   f"{'Its prediction is an extrapolation' if one else 'Their predictions are extrapolations'}: "
                   f"calibrate over a wider range before trusting {'it' if one else 'them'}.")
    return out


# ------------------------------------------------------------------------------------------ writing
def jsonable(value: Any) -> Any:
    """Plain JSON data: tuples → lists, numpy scalars → Python numbers, NaN and ±inf → null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.json")


def _flat(record: dict[str, Any], prefix: str = "", skip: Iterable[str] = ()) -> dict[str, Any]:
    """Nested keys joined with '.', [low, high] pairs as .low and .high, other lists left out."""
    out: dict[str, Any] = {}
    skip = set(skip)
    for key, value in record.items():
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, list):
            if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
                out[name + ".low"], out[name + ".high"] = value
        else:
            out[name] = value
    return out


def _flat_record(record: dict[str, Any]) -> dict[str, Any]:
    return _flat({k: v for k, v in record.items() if k != "profile"})


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows of flat dicts as CSV; columns in order of first appearance."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
