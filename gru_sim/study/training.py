"""The training study: one device's step from the cost model's kernel times (plus an optimizer step
priced as a memory-bound pass), then data-parallel steps simulated at every device count."""

from __future__ import annotations

from typing import Any, Callable

from ..accounting import account_call
from ..config import GruConfig
from ..groups import GroupKey
from ..report.prose import step_timeline_text
from ..scenario import Scenario
from ..sim.training import (DeviceStepTimes, TrainingResult, TrainingSpec, ddp_buckets, simulate_step,
                            simulate_training, step_times_from_call)
from .engine import CostModel
from .records import TrainingRecord

# Bytes an optimizer step reads and writes per byte of weights (parameter, gradient and state, each
# read or written once): SGD reads p and g and writes p; momentum adds one buffer read and written;
# Adam reads p, g, m, v and writes p, m, v (torch.optim's single-tensor, non-fused loops).
OPTIMIZER_PASSES = {"sgd": 3, "sgd-momentum": 5, "adam": 7}
# State it keeps, in units of the weights (momentum buffer; Adam's two moments).
OPTIMIZER_STATE = {"sgd": 0, "sgd-momentum": 1, "adam": 2}


def run_training(scenario: Scenario, model: CostModel, memory_bandwidth_bytes_per_s: float | None,
                 progress: Callable[[int, int], None]) -> tuple[TrainingResult, DeviceStepTimes, list[GruConfig]]:
    """Simulate data-parallel training at every device count of the study.

    The optimizer step is priced as a memory-bound pass over weights, gradients and optimizer state at
    the profile's measured bandwidth (none measured: free). Returns the result, one device's step and
    the configuration priced.
    """
    spec = scenario.training
    assert spec is not None and scenario.spec.training is not None
    config = scenario.config(batch=spec.batch_per_device, seq_len=spec.seq_len, mode="training")
    progress(0, 1)
    step = device_step(model, config, scenario.spec.training.optimizer, memory_bandwidth_bytes_per_s)
    result = simulate_training(step, spec)
    progress(1, 1)
    return result, step, [config]


def memory_bandwidth(ceilings: dict[str, Any], config: GruConfig) -> float | None:
    """The memory bandwidth the profile measured for ``config``'s hardware group (bytes/s; None when
    it measured none): what the optimizer step is priced at."""
    value = (ceilings.get(str(GroupKey.of(config))) or {}).get("memory_bandwidth_bytes_per_s")
    return float(value) if value else None


def device_step(model: CostModel, config: GruConfig, optimizer: str,
                memory_bandwidth_bytes_per_s: float | None) -> DeviceStepTimes:
    """One device's training step on ``config`` (a training call): the call's kernel times, then the
    optimizer step priced as a memory-bound pass at ``memory_bandwidth_bytes_per_s`` (None: free); the
    peak memory adds the gradients and the optimizer's state to the call's."""
    weight_bytes = account_call(config).weight_bytes
    optimizer_s = (OPTIMIZER_PASSES[optimizer] * weight_bytes / memory_bandwidth_bytes_per_s
                   if memory_bandwidth_bytes_per_s else 0.0)
    peak = int(model.predict(config).peak_memory_bytes) + (1 + OPTIMIZER_STATE[optimizer]) * weight_bytes
    return step_times_from_call(model.call_times(config), optimizer_s, peak)


def training_records(result: TrainingResult, step: DeviceStepTimes) -> tuple[TrainingRecord, ...]:
    """The ``training`` list of results.json: one record per device count."""
    return TrainingRecord.all_of(result, step.optimizer_step_s)


def step_timeline(step: DeviceStepTimes, spec: TrainingSpec) -> dict[str, Any]:
    """One simulated step at the largest device count: compute, bucket all-reduces, optimizer."""
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
    title, caption = step_timeline_text(devices)
    return {"study": "training", "title": title, "caption": caption,
            "items": [it for it in items if it["duration_s"] > 0]}
