"""The cheapest data-parallel setup that gets through an epoch in time: for every batch per device,
the training simulator (:func:`gru_sim.sim.training.simulate_training`) gives the step time at every
device count; an epoch is ceil(sequences / (devices x batch)) steps, and an option costs
devices x price per device-hour x epoch time. The options are few (a handful of batches times device
counts, one cheap simulation per step), so every one is tried.

The plan does not model convergence: a larger global batch may need more epochs or another learning
rate, so list only batches per device the training recipe accepts.
"""

from __future__ import annotations

import math
from typing import Callable

from ..sim.training import DeviceStepTimes, TrainingSpec, simulate_training
from ..units import fmt_bytes
from .result import TrainingOption, TrainingPlan
from .spec import TrainingPlanSpec

StepForBatch = Callable[[int], DeviceStepTimes]
"""``step_for_batch(batch_per_device)``: one device's training step on that many sequences."""


def plan_training(spec: TrainingPlanSpec, step_for_batch: StepForBatch) -> TrainingPlan:
    """Every (devices, batch per device) option of ``spec`` and the cheapest that meets the target
    epoch time and fits in a device's memory (ties: the shorter epoch, then fewer devices)."""
    options: list[TrainingOption] = []
    for batch in sorted(set(spec.batch_per_device)):
        sim = simulate_training(step_for_batch(batch),
                                TrainingSpec(batch_per_device=batch, seq_len=spec.seq_len,
                                             devices=tuple(sorted(set(spec.devices))),
                                             interconnect=spec.interconnect, steps=1))
        for p in sim.points:
            steps = math.ceil(spec.sequences_per_epoch / (p.devices * batch))
            epoch_s = steps * p.step_time_s
            per_hour = p.devices * spec.cost_per_device_hour
            reason = None
            if spec.device_memory_bytes is not None and p.peak_memory_bytes_per_device > spec.device_memory_bytes:
                reason = (f"needs {fmt_bytes(p.peak_memory_bytes_per_device)} per device, more than its "
                          f"{fmt_bytes(spec.device_memory_bytes)}")
            elif epoch_s > spec.target_epoch_time_s:
                reason = f"an epoch takes {epoch_s:.4g} s, over the {spec.target_epoch_time_s:.4g} s target"
            options.append(TrainingOption(
                devices=p.devices, batch_per_device=batch, step_time_s=p.step_time_s, steps_per_epoch=steps,
                epoch_time_s=epoch_s, cost_per_hour=per_hour, cost=per_hour * epoch_s / 3600,
                scaling_efficiency=p.scaling_efficiency, peak_memory_bytes_per_device=p.peak_memory_bytes_per_device,
                feasible=reason is None, reason=reason))
    feasible = [o for o in options if o.feasible]
    chosen = min(feasible, key=lambda o: (o.cost, o.epoch_time_s, o.devices)) if feasible else None
    reason = None
    if chosen is None:
        fastest = min(options, key=lambda o: o.epoch_time_s)
        reason = (f"no training setup gets through {spec.sequences_per_epoch} sequences in "
                  f"{spec.target_epoch_time_s:.4g} s: the fastest, {fastest.devices} device"
                  f"{'s' * (fastest.devices != 1)} x batch {fastest.batch_per_device}, {fastest.reason}")
    return TrainingPlan(target_epoch_time_s=spec.target_epoch_time_s, sequences_per_epoch=spec.sequences_per_epoch,
                        chosen=chosen, options=tuple(options), reason=reason)
