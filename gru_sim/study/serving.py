"""The serving study: requests at the scenario's arrival rate through the batcher and replicas, then
the load sweep (p99 against rate), with each batch's service time from the cost model."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from ..config import GruConfig
from ..scenario import Scenario
from ..report.prose import batch_name, batch_timeline_text
from ..sim.load_sweep import LoadSweep, sweep_load
from ..sim.serving import RequestLog, ServingResult, simulate_serving
from .engine import CostModel
from .records import Cdf, LoadSweepRecord, ServingRecord

SERVING_TIMELINE_POINTS = 400
# Requests per load-sweep point: enough for a stable p99 (50 requests above it), few enough that the
# sweep's dozen or more runs stay within seconds.
LOAD_SWEEP_REQUESTS = 5000
CDF_POINTS = 400
GANTT_BATCHES = 150


def run_serving(scenario: Scenario, model: CostModel, progress: Callable[[int, int], None]
                ) -> tuple[ServingResult, LoadSweep, list[GruConfig]]:
    """Simulate the serving study of ``scenario`` at its arrival
    rate, then the load sweep. Returns the run, the sweep (at ``LOAD_SWEEP_REQUESTS`` requests a point at
    most) and the configuration priced at the largest batch (for the extrapolation check)."""
    spec = scenario.serving
    assert spec is not None

    def config(batch: int, seq_len: int) -> GruConfig:
        return scenario.config(batch=batch, seq_len=seq_len, mode="inference", threads=spec.threads_per_replica)

    @lru_cache(maxsize=None)
    def service_time_s(batch: int, seq_len: int) -> float:
        return float(model.service_time_s(config(batch, seq_len)))

    @lru_cache(maxsize=None)
    def memory_bytes(batch: int, seq_len: int) -> int:
        # Weights, inputs and activations: all of it lives on the replica while the batch runs.
        return int(model.predict(config(batch, seq_len)).memory_bytes["total"])

    needs_memory = spec.memory_cap_bytes is not None
    progress(0, 2)
    result = simulate_serving(spec, service_time_s, memory_bytes if needs_memory else None,
                              timeline_points=SERVING_TIMELINE_POINTS, sample_requests=0)
    progress(1, 2)
    load = sweep_load(spec, service_time_s, memory_bytes if needs_memory else None,
                      requests=min(spec.requests, LOAD_SWEEP_REQUESTS))
    progress(2, 2)
    log = result.log
    priced = [config(int(log.batch_size.max()), int(log.batch_padded_len.max()))]
    return result, load, priced


def serving_record(scenario: Scenario, result: ServingResult, load: LoadSweep) -> ServingRecord:
    """The ``serving`` object of results.json: the run's figures (CONTRACT.md keys first), the offered
    rate, latency and queue-wait CDFs, and the load sweep."""
    spec = scenario.serving
    assert spec is not None
    return ServingRecord(result, offered_rate_per_s=spec.arrival.rate_per_s or _trace_rate_per_s(spec.arrival.trace),
                            latency_cdf=_cdf(result.log.latency_s), queue_wait_cdf=_cdf(result.log.queue_wait_s),
                            load_sweep=LoadSweepRecord(load, min(spec.requests, LOAD_SWEEP_REQUESTS)))


def _trace_rate_per_s(trace: tuple[tuple[float, int], ...] | None) -> float | None:
    """The mean arrival rate of a replayed trace (None for fewer than two distinct times)."""
    if not trace or trace[-1][0] <= trace[0][0]:
        return None
    return (len(trace) - 1) / (trace[-1][0] - trace[0][0])


def _cdf(values: Any) -> Cdf:
    """An empirical CDF at ``CDF_POINTS`` quantiles (the full sample would bloat results.json)."""
    ordered = sorted(float(v) for v in values)
    n = len(ordered)
    idx = sorted({min(n - 1, round(i * (n - 1) / (CDF_POINTS - 1))) for i in range(CDF_POINTS)})
    return Cdf(value_s=tuple(ordered[i] for i in idx), fraction=tuple((i + 1) / n for i in idx))


def batch_timeline(log: RequestLog) -> dict[str, Any]:
    """The first ``GANTT_BATCHES`` batches of a run on the replicas."""
    n = min(GANTT_BATCHES, int(log.batch_size.shape[0]))
    items = [{"lane": f"replica {int(log.batch_replica[i])}",
              "name": batch_name(i, int(log.batch_size[i]), int(log.batch_padded_len[i])),
              "start_s": float(log.batch_start_s[i]),
              "duration_s": float(log.batch_finish_s[i] - log.batch_start_s[i]),
              "category": "batch"} for i in range(n)]
    items.sort(key=lambda it: it["lane"])
    title, caption = batch_timeline_text(n)
    return {"study": "serving", "title": title, "caption": caption, "items": items}
