"""Discrete-event simulations of GRU networks at work: one call's kernels on a backend's resources
(latency, parallelism, memory over time), requests served by replicas behind a dynamic batcher, and
data-parallel training steps with gradient all-reduce.

The only package of gru-sim that imports SimPy; it never imports torch or plotly. Durations come in
as plain numbers (:class:`gru_sim.model.kernel_times.CallTimes`, or injected service-time functions).
"""

from .executors import (EXECUTORS, CallSimulation, KernelRun, Parallelism, graph_for, parallelism,
                        simulate_call)
from .graph import DEFAULT_MAX_CHUNKS, KINDS, KernelGraph, resolve_chunk_steps
from .graph_build import build_graph
from .load_sweep import LoadPoint, LoadSweep, sweep_load
from .serving import Percentiles, RequestLog, ServingResult, is_stable, simulate_serving
from .serving_spec import ArrivalSpec, BatchingSpec, ServingSpec, SeqLenSpec, generate_requests
from .trace import chrome_trace, write_chrome_trace
from .training import (BackwardPiece, Bucket, DeviceStepTimes, Interconnect, TrainingPoint, TrainingResult,
                       TrainingSpec, ddp_buckets, ring_allreduce_s, simulate_step, simulate_training,
                       step_times_from_call)

__all__ = [
    "EXECUTORS", "CallSimulation", "KernelRun", "Parallelism", "graph_for", "parallelism", "simulate_call",
    "DEFAULT_MAX_CHUNKS", "KINDS", "KernelGraph", "build_graph", "resolve_chunk_steps",
    "ArrivalSpec", "BatchingSpec", "LoadPoint", "LoadSweep", "Percentiles", "RequestLog", "ServingResult",
    "ServingSpec", "SeqLenSpec", "generate_requests",
    "is_stable", "simulate_serving", "sweep_load", "chrome_trace", "write_chrome_trace",
    "BackwardPiece", "Bucket", "DeviceStepTimes", "Interconnect", "TrainingPoint", "TrainingResult",
    "TrainingSpec", "ddp_buckets", "ring_allreduce_s", "simulate_step", "simulate_training",
    "step_times_from_call",
]
