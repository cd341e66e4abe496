"""Backends run a GRU's kernel graph on their resources, and that decides latency, parallelism and the
memory in use over time.

Two executors mirror real backends:

* ``cpu`` — PyTorch's native CPU path: one host thread issues the kernels in program order (layers one
  after another, the reverse direction after the forward one) to one intra-op thread pool, a SimPy
  resource of capacity 1. Its makespan is therefore :meth:`CallTimes.serial_s`.
* ``gpu`` — a stream model of cuDNN: the host issues the call (its overhead runs on a ``host``
  resource), then any kernel whose inputs are ready may run, up to ``max_concurrency`` at once on the
  ``gpu`` resource (unlimited when None), on the layer-wavefront graph. Ready kernels compete in
  program order (a SimPy PriorityResource keyed by kernel index).

:func:`simulate_call` runs the SimPy event loop and keeps the per-kernel trace; :func:`parallelism`
computes work and critical path on the same graph by dynamic programming, without an event loop, for
callers that predict thousands of configurations.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Generator

import numpy as np
import simpy

from ..config import GruConfig
from ..errors import ConfigError
from ..model.kernel_times import CallTimes
from .graph import KINDS, OVERHEAD, KernelGraph
from .graph_build import build_graph

EXECUTORS = ("cpu", "gpu")


@dataclass(frozen=True)
class KernelRun:
    """One simulated kernel: what it was, where it ran (``resource``, ``lane``) and when, in seconds
    from the start of the call."""

    index: int
    name: str
    kind: str
    layer: int
    direction: int
    step_start: int
    step_stop: int
    resource: str
    lane: int
    start_s: float
    finish_s: float

    @property
    def duration_s(self) -> float:
        """Seconds the kernel ran."""
        return self.finish_s - self.start_s


@dataclass(frozen=True)
class Parallelism:
    """How much of a call could run at once: total kernel time, the longest dependency chain and
    their ratio (the average number of kernels running at once with unlimited resources)."""

    work_s: float
    critical_path_s: float
    avg_concurrency: float

    def to_dict(self) -> dict[str, float]:
        """The ``parallelism`` object of a ``predict`` record."""
        return {"work_s": self.work_s, "critical_path_s": self.critical_path_s,
                "avg_concurrency": self.avg_concurrency}


@dataclass(frozen=True)
class CallSimulation:
    """The simulated execution of one call.

    ``makespan_s`` is the call's latency; ``work_s`` the sum of kernel durations; ``critical_path_s``
    the graph's longest chain; ``avg_concurrency`` = work / makespan (kernel-seconds per second) and
    ``peak_concurrency`` the most kernels of non-zero duration running at one instant;
    ``utilization`` maps each resource to busy slot-seconds / (slots × makespan), where an unlimited
    resource counts as many slots as it ever used at once. ``memory_timeline`` is ``(time_s, bytes)``
    after every change, weights included, and ``peak_memory_bytes`` its maximum.
    """

    config: GruConfig
    executor: str
    max_concurrency: int | None
    chunk_steps: int
    makespan_s: float
    throughput_seq_per_s: float
    work_s: float
    critical_path_s: float
    avg_concurrency: float
    peak_concurrency: int
    utilization: dict[str, float]
    memory_timeline: tuple[tuple[float, int], ...]
    peak_memory_bytes: int
    weight_bytes: int
    kernels: tuple[KernelRun, ...] = field(repr=False)

    @property
    def peak_call_memory_bytes(self) -> int:
        """Peak memory beyond the weights (allocated before the call): CONTRACT.md's
        ``peak_memory_bytes`` of a ``predict`` record."""
        return self.peak_memory_bytes - self.weight_bytes

    @property
    def kernels_simulated(self) -> int:
        """Number of kernels in the trace."""
        return len(self.kernels)

    def parallelism(self) -> Parallelism:
        """Work, critical path and their ratio for this call's graph."""
        return Parallelism(self.work_s, self.critical_path_s,
                           self.work_s / self.critical_path_s if self.critical_path_s > 0 else 1.0)

    def to_dict(self, include_kernels: bool = False) -> dict[str, Any]:
        """Plain JSON-ready data; the per-kernel trace only when asked (it can be long)."""
        out: dict[str, Any] = {
            "config": self.config.to_dict(), "executor": self.executor,
            "max_concurrency": self.max_concurrency, "chunk_steps": self.chunk_steps,
            "makespan_s": self.makespan_s, "throughput_seq_per_s": self.throughput_seq_per_s,
            "work_s": self.work_s, "critical_path_s": self.critical_path_s,
            "avg_concurrency": self.avg_concurrency, "peak_concurrency": self.peak_concurrency,
            "utilization": dict(self.utilization), "peak_memory_bytes": self.peak_memory_bytes,
            "weight_bytes": self.weight_bytes, "peak_call_memory_bytes": self.peak_call_memory_bytes,
            "kernels_simulated": self.kernels_simulated,
            "memory_timeline": [list(p) for p in self.memory_timeline],
        }
        if include_kernels:
            out["kernels"] = [{"name": k.name, "resource": k.resource, "lane": k.lane, "start_s": k.start_s,
                               "finish_s": k.finish_s} for k in self.kernels]
        return out


def _executor_for(call_times: CallTimes, executor: str | None) -> str:
    if executor is None:
        return "gpu" if call_times.config.device == "cuda" else "cpu"
    if executor not in EXECUTORS:
        raise ConfigError(f"executor(={executor!r}) must be one of {', '.join(EXECUTORS)}")
    return executor


def graph_for(call_times: CallTimes, executor: str | None = None, chunk_steps: int | None = None) -> KernelGraph:
    """The graph an executor runs: ATen's structure for ``cpu``, the layer wavefront for ``gpu``
    (None: ``gpu`` for a cuda config, else ``cpu``)."""
    return build_graph(call_times, chunk_steps=chunk_steps,
                       wavefront=_executor_for(call_times, executor) == "gpu")


def parallelism(call_times: CallTimes, executor: str | None = None,
                chunk_steps: int | None = None) -> Parallelism:
    """Work, critical path and average concurrency of the call's graph, by dynamic programming (no
    event loop): equal to :func:`simulate_call` with unlimited resources."""
    graph = build_graph(call_times, chunk_steps=chunk_steps, wavefront=_executor_for(call_times, executor) == "gpu",
                        track_memory=False)
    work, critical = graph.work_s(), graph.critical_path_s()
    return Parallelism(work, critical, work / critical if critical > 0 else 1.0)


class _Lanes:
    """Lane numbers for the trace: each running kernel takes the lowest free one."""

    def __init__(self) -> None:
        self.free: list[int] = []
        self.used = 0

    def take(self) -> int:
        if self.free:
            return heapq.heappop(self.free)
        self.used += 1
        return self.used - 1

    def give(self, lane: int) -> None:
        heapq.heappush(self.free, lane)


class _Run:
    """Mutable state of one simulation: times, lanes and memory as kernels start and finish."""

    def __init__(self, env: simpy.Environment, graph: KernelGraph, resource_names: list[str]) -> None:
        n = graph.n_kernels
        self.env = env
        self.graph = graph
        self.duration = graph.duration_s.tolist()
        self.start = [0.0] * n
        self.finish = [0.0] * n
        self.lane = [0] * n
        self.resource_names = resource_names
        self.lanes = {name: _Lanes() for name in set(resource_names)}
        self.alloc = graph.alloc_bytes().tolist()
        self.alloc_at_finish = graph.alloc_bytes(at_finish=True).tolist()
        self.buffer_bytes = graph.buffer_bytes.tolist()
        self.refcount = graph.consumer_counts().tolist()
        order = np.argsort(graph.consumer_node, kind="stable")
        nodes, buffers = graph.consumer_node[order], graph.consumer_buffer[order]
        bounds = np.searchsorted(nodes, np.arange(n + 1))
        self.consumes = [buffers[bounds[i]:bounds[i + 1]].tolist() for i in range(n)]
        self.memory = graph.weight_bytes
        self.timeline: list[tuple[float, int]] = [(0.0, self.memory)]

    def begin(self, i: int) -> None:
        now = self.env.now
        self.start[i] = now
        self.lane[i] = self.lanes[self.resource_names[i]].take()
        if self.alloc[i]:
            self.memory += self.alloc[i]
            self.timeline.append((now, self.memory))

    def end(self, i: int) -> None:
        now = self.env.now
        self.finish[i] = now
        self.lanes[self.resource_names[i]].give(self.lane[i])
        freed = 0
        for b in self.consumes[i]:
            self.refcount[b] -= 1
            if self.refcount[b] == 0:
                freed += self.buffer_bytes[b]
        if freed or self.alloc_at_finish[i]:
            self.memory += self.alloc_at_finish[i] - freed
            self.timeline.append((now, self.memory))


def _serial(run: _Run, pool: simpy.Resource) -> Generator[simpy.Event, Any, None]:
    """ATen's CPU path: one host thread, kernels in program order on one intra-op pool."""
    env = run.env
    for i in range(run.graph.n_kernels):
        with pool.request() as request:
            yield request
            run.begin(i)
            yield env.timeout(run.duration[i])
            run.end(i)


def _streams(run: _Run, resources: dict[str, simpy.Resource | None]) -> None:
    """The stream model: each kernel becomes a process when its last input is ready."""
    env, graph = run.env, run.graph
    preds = graph.predecessors()
    successors: list[list[int]] = [[] for _ in range(graph.n_kernels)]
    for i, ps in enumerate(preds):
        for p in ps:
            successors[p].append(i)
    waiting = [len(ps) for ps in preds]

    def kernel(i: int) -> Generator[simpy.Event, Any, None]:
        resource = resources[run.resource_names[i]]
        request = None
        if resource is not None:
            request = resource.request(priority=i) if isinstance(resource, simpy.PriorityResource) \
                else resource.request()
            yield request
        run.begin(i)
        yield env.timeout(run.duration[i])
        run.end(i)
        if resource is not None:
            resource.release(request)
        for j in successors[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                env.process(kernel(j))

    for i in range(graph.n_kernels):
        if waiting[i] == 0:
            env.process(kernel(i))


def simulate_call(call_times: CallTimes, executor: str | None = None, max_concurrency: int | None = None,
                  chunk_steps: int | None = None) -> CallSimulation:
    """Simulate one call of ``call_times.config`` with SimPy.

    ``executor``: ``cpu`` or ``gpu`` (None: ``gpu`` for a cuda config, else ``cpu``).
    ``max_concurrency``: kernels the ``gpu`` resource runs at once (None: unlimited); the ``cpu``
    executor has one pool and accepts only None or 1. ``chunk_steps``: steps merged per kernel
    (see :func:`gru_sim.sim.graph.resolve_chunk_steps`).
    """
    executor = _executor_for(call_times, executor)
    if max_concurrency is not None and (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise ConfigError(f"max_concurrency(={max_concurrency!r}) must be a whole number >= 1 or None")
    if executor == "cpu" and max_concurrency not in (None, 1):
        raise ConfigError(f"max_concurrency(={max_concurrency}) must be 1 for the cpu executor: ATen's CPU "
                          "path runs one kernel at a time on its intra-op pool")
    graph = graph_for(call_times, executor, chunk_steps)
    env = simpy.Environment()
    if executor == "cpu":
        names = ["cpu"] * graph.n_kernels
        run = _Run(env, graph, names)
        capacities: dict[str, int | None] = {"cpu": 1}
        env.process(_serial(run, simpy.Resource(env, capacity=1)))
    else:
        names = ["host" if k == OVERHEAD else "gpu" for k in graph.kind.tolist()]
        run = _Run(env, graph, names)
        capacities = {"host": 1, "gpu": max_concurrency}
        resources: dict[str, simpy.Resource | None] = {
            "host": simpy.Resource(env, capacity=1),
            "gpu": None if max_concurrency is None else simpy.PriorityResource(env, capacity=max_concurrency),
        }
        _streams(run, resources)
    env.run()
    return _summarise(call_times, graph, run, executor, max_concurrency, capacities)


def _peak_concurrency(start: np.ndarray, finish: np.ndarray) -> int:
    """Most intervals of non-zero length open at one instant (an interval ending at t does not overlap
    one starting at t)."""
    busy = finish > start
    if not busy.any():
        return 0
    times = np.concatenate([finish[busy], start[busy]])
    delta = np.concatenate([-np.ones(busy.sum(), dtype=np.int64), np.ones(busy.sum(), dtype=np.int64)])
    order = np.lexsort((delta, times))  # at equal times, ends (-1) before starts (+1)
    return int(np.cumsum(delta[order]).max())


def _summarise(call_times: CallTimes, graph: KernelGraph, run: _Run, executor: str,
               max_concurrency: int | None, capacities: dict[str, int | None]) -> CallSimulation:
    start, finish = np.asarray(run.start), np.asarray(run.finish)
    makespan = float(finish.max()) if graph.n_kernels else 0.0
    work = graph.work_s()
    durations = finish - start
    utilization = {}
    for name, capacity in capacities.items():
        mine = np.asarray([r == name for r in run.resource_names])
        slots = capacity if capacity is not None else max(run.lanes[name].used, 1)
        utilization[name] = float(durations[mine].sum() / (slots * makespan)) if makespan > 0 else 0.0
    kinds, layers, directions = graph.kind.tolist(), graph.layer.tolist(), graph.direction.tolist()
    starts, stops = graph.step_start.tolist(), graph.step_stop.tolist()
    kernels = tuple(
        KernelRun(index=i, name=graph.kernel_name(i), kind=KINDS[kinds[i]], layer=layers[i],
                  direction=directions[i], step_start=starts[i], step_stop=stops[i],
                  resource=run.resource_names[i], lane=run.lane[i], start_s=run.start[i],
                  finish_s=run.finish[i])
        for i in range(graph.n_kernels))
    config = call_times.config
    return CallSimulation(
        config=config, executor=executor, max_concurrency=max_concurrency, chunk_steps=graph.chunk_steps,
        makespan_s=makespan,
        throughput_seq_per_s=config.batch / makespan if makespan > 0 else float("inf"),
        work_s=work, critical_path_s=graph.critical_path_s(),
        avg_concurrency=work / makespan if makespan > 0 else 1.0,
        peak_concurrency=_peak_concurrency(start, finish), utilization=utilization,
        memory_timeline=tuple(run.timeline), peak_memory_bytes=int(max(m for _, m in run.timeline)),
        weight_bytes=graph.weight_bytes, kernels=kernels)
