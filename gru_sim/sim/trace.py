"""A simulated call as a timeline a person can scroll through: the Chrome trace-event format, which
Perfetto (ui.perfetto.dev) and chrome://tracing open.

Each kernel is a complete event (``"ph": "X"``) with ``ts`` and ``dur`` in microseconds; each resource
is a process (``pid``) and each of its lanes a thread (``tid``), named by metadata events; memory in
use is a counter track (``"ph": "C"``). Format: the Trace Event Format document
(docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from .executors import CallSimulation

_US_PER_S = 1e6


def chrome_trace(simulation: CallSimulation, include_memory: bool = True) -> dict[str, Any]:
    """The trace of ``simulation`` as a ``{"traceEvents": [...]}`` object."""
    resources = sorted({k.resource for k in simulation.kernels})
    pid_of = {name: pid for pid, name in enumerate(resources, start=1)}
    events: list[dict[str, Any]] = []
    for name, pid in pid_of.items():
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}})
        lanes = sorted({k.lane for k in simulation.kernels if k.resource == name})
        for lane in lanes:
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": lane,
                           "args": {"name": f"{name} lane {lane}"}})
    for k in simulation.kernels:
        events.append({
            "name": k.name, "cat": k.kind, "ph": "X", "pid": pid_of[k.resource], "tid": k.lane,
            "ts": k.start_s * _US_PER_S, "dur": k.duration_s * _US_PER_S,
            "args": {"layer": k.layer, "direction": k.direction, "steps": [k.step_start, k.step_stop]},
        })
    if include_memory:
        memory_pid = len(pid_of) + 1
        events.append({"name": "process_name", "ph": "M", "pid": memory_pid, "tid": 0,
                       "args": {"name": "memory"}})
        for time_s, in_use in simulation.memory_timeline:
            events.append({"name": "memory", "ph": "C", "pid": memory_pid, "tid": 0,
                           "ts": time_s * _US_PER_S, "args": {"bytes": in_use}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"executor": simulation.executor, "config": simulation.config.to_dict(),
                          "makespan_s": simulation.makespan_s}}


def write_chrome_trace(simulation: CallSimulation, path: str | Path, include_memory: bool = True) -> Path:
    """Write :func:`chrome_trace` of ``simulation`` as JSON to ``path``; returns the path."""
    return write_text_atomic(path, json.dumps(chrome_trace(simulation, include_memory)))
