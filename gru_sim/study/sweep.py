"""The sweep study: the prediction of every configuration of a grid, spread over a pool of worker
processes when there are thousands (each loads the profile once), plus the roofline ceilings of the
groups swept and the simulated kernels of the median-latency call."""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import GruConfig
from ..groups import GroupKey
from ..report.prose import kernel_lane, kernel_timeline_text
from ..sim.executors import simulate_call
from .engine import CostModel, Engine, EngineFactory

# Below this many configurations, starting worker processes costs more than it saves.
PARALLEL_MIN_CONFIGS = 2000
# Chunks per worker: enough that a slow chunk does not leave the other cores idle at the end.
CHUNKS_PER_WORKER = 4
# Recurrent steps of one layer-direction merged into at most this many bars of the kernel timeline.
TIMELINE_STEP_SEGMENTS = 24

_WORKER_ENGINE: Engine | None = None


def _init_worker(engine_factory: EngineFactory, profile_path: Path) -> None:
    global _WORKER_ENGINE
    # The parent has already shown the profile's warnings (e.g. a different machine) once.
    warnings.simplefilter("ignore")
    _WORKER_ENGINE = engine_factory(profile_path)


def _predict_chunk(configs: list[GruConfig]) -> list[dict[str, Any]]:
    assert _WORKER_ENGINE is not None, "worker used before _init_worker"
    return [p.to_dict() for p in _WORKER_ENGINE.model.predict_many(configs)]


def predict_all(configs: Sequence[GruConfig], profile_path: Path, engine: Engine, engine_factory: EngineFactory,
                progress: Callable[[int, int], None], workers: int | None = None, client: Any = None
                ) -> list[dict[str, Any]]:
    """The predict record of every config, in order; a large sweep runs in a pool of processes, each
    loading the profile once, or on ``client``'s Dask cluster (gru_sim.distributed)."""
    total = len(configs)
    if client is not None:
        from ..distributed import predict_records_on
        from ..predict import GRID_MAX_CHUNKS

        model: Any = engine.model
        progress(0, total)
        return list(predict_records_on(client, configs, profile_path, model.here, GRID_MAX_CHUNKS,
                                       chunk_size=max(50, min(2000, math.ceil(total / 64))), progress=progress))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(workers or available, available))
    progress(0, total)
    if workers == 1 or total < PARALLEL_MIN_CONFIGS:
        size = max(1, math.ceil(total / 100))
        records: list[dict[str, Any]] = []
        for i in range(0, total, size):
            records += [p.to_dict() for p in engine.model.predict_many(list(configs[i:i + size]))]
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


def median_latency_config(records: Sequence[dict[str, Any]]) -> GruConfig:
    """The config of the record with the median latency."""
    ordered = sorted(records, key=lambda r: r["latency_s"])
    return GruConfig.from_mapping(ordered[len(ordered) // 2]["config"])


def roofline_ceilings(records: Sequence[dict[str, Any]], ceilings: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured ceilings of each hardware group the sweep's configurations belong to."""
    out = []
    for key in dict.fromkeys(str(GroupKey.of(GruConfig.from_mapping(r["config"]))) for r in records):
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
    items = [{"lane": kernel_lane(k.layer, k.direction), "name": k.name, "start_s": k.start_s,
              "duration_s": k.duration_s, "category": k.kind.replace("_", " ")}
             for k in sim.kernels if k.duration_s > 0]
    title, caption = kernel_timeline_text(config, sim.executor, chunk, sim.makespan_s, sim.peak_memory_bytes)
    return {"study": "sweep", "title": title, "caption": caption, "items": items,
            "memory_timeline": {"time_s": [t for t, _ in sim.memory_timeline],
                                "bytes": [b for _, b in sim.memory_timeline]}}
