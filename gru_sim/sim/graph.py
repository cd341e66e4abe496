"""The kernel graph of one GRU call: its kernels in program order with their kinds, steps, durations
and dependencies, and the buffers they allocate and free — plain NumPy arrays, from which the critical
path and the serial memory peak are computed without an event loop. :mod:`gru_sim.sim.graph_build`
builds it from a call's kernel times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import GruConfig
from ..errors import ConfigError

# Kernel kinds, in the order of their integer codes in ``KernelGraph.kind``.
KINDS = (
    "call_overhead",              # the framework's fixed per-call cost, before any kernel
    "input_projection",           # x·W_ihᵀ + b_ih over the steps covered
    "recurrent_steps",            # recurrent matmul + gates + per-step overhead, for the steps covered
    "stack_outputs",              # at::stack of the per-step outputs (memory only: its time is in the steps)
    "concat_directions",          # at::cat of both directions' outputs (memory only)
    "backward_steps",             # backward of the steps covered: data-gradient matmul, gate backward
    "recurrent_weight_grad",      # dW_hh, db_hh for all steps of a layer-direction
    "backward_input_projection",  # dW_ih, db_ih and (layer > 0) the gradient sent to the layer below
)
OVERHEAD, PROJECTION, STEPS, STACK, CONCAT, BACKWARD_STEPS, WEIGHT_GRAD, BACKWARD_PROJECTION = range(len(KINDS))
FORWARD_KINDS = (OVERHEAD, PROJECTION, STEPS, STACK, CONCAT)

# With chunk_steps=None, steps are merged so that each layer-direction has at most this many chunks:
# a T = 10,000 bidirectional 4-layer training call is then 8 × 4 × 256 ≈ 8,000 kernels.
DEFAULT_MAX_CHUNKS = 256


def resolve_chunk_steps(seq_len: int, chunk_steps: int | None = None,
                        max_chunks: int = DEFAULT_MAX_CHUNKS) -> int:
    """Steps per merged kernel: ``chunk_steps`` if given (capped at ``seq_len``), else the smallest
    number that keeps each layer-direction within ``max_chunks`` kernels."""
    if max_chunks < 1:
        raise ConfigError(f"max_chunks(={max_chunks}) must be >= 1")
    if chunk_steps is None:
        return max(1, math.ceil(seq_len / max_chunks))
    if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ConfigError(f"chunk_steps(={chunk_steps!r}) must be a whole number >= 1")
    return min(chunk_steps, seq_len)


@dataclass(frozen=True, eq=False)
class KernelGraph:
    """The kernels of one call in program order (the order ATen issues them, a topological order).

    Per kernel ``i``: ``kind[i]`` (code into :data:`KINDS`), ``layer[i]`` and ``direction[i]`` (-1 for
    the call overhead), the processing steps ``[step_start[i], step_stop[i])`` it covers in its
    direction's own order, ``duration_s[i]``, and ``deps[i]``: indices of kernels it waits for, padded
    with -1. Kernels are grouped in segments (``segments[k] = (start, stop)``); in a chained segment
    each kernel also waits for the one before it, which ``deps`` does not repeat, and ``deps`` never
    points inside its own segment.

    Memory: buffer ``j`` of ``buffer_bytes[j]`` bytes is allocated when kernel ``buffer_producer[j]``
    starts (or, where ``buffer_at_finish[j]``, when it finishes, after its frees) and freed when the
    last kernel ``consumer_node[k]`` with ``consumer_buffer[k] == j`` finishes (never, when it has none:
    the call's output and the weight gradients). Weights (``weight_bytes``) are allocated before the call.
    """

    config: GruConfig
    chunk_steps: int
    wavefront: bool
    weight_bytes: int
    kind: np.ndarray
    layer: np.ndarray
    direction: np.ndarray
    step_start: np.ndarray
    step_stop: np.ndarray
    duration_s: np.ndarray
    deps: np.ndarray
    segments: np.ndarray
    segment_chained: np.ndarray
    buffer_bytes: np.ndarray
    buffer_producer: np.ndarray
    buffer_at_finish: np.ndarray
    consumer_buffer: np.ndarray
    consumer_node: np.ndarray

    @property
    def n_kernels(self) -> int:
        """Number of kernels in the graph."""
        return int(self.duration_s.shape[0])

    def work_s(self) -> float:
        """Sum of all kernel durations: the latency if they ran one after another."""
        return float(self.duration_s.sum())

    def kernel_name(self, i: int) -> str:
        """A readable name such as ``L1.rev recurrent_steps 64-128``."""
        kind = KINDS[int(self.kind[i])]
        if kind == "call_overhead":
            return kind
        where = f"L{int(self.layer[i])}{'.rev' if self.direction[i] == 1 else ''}"
        start, stop = int(self.step_start[i]), int(self.step_stop[i])
        if kind in ("stack_outputs", "concat_directions", "recurrent_weight_grad") \
                or (start, stop) == (0, self.config.seq_len):
            return f"{where} {kind}"
        return f"{where} {kind} {start}-{stop}"

    def predecessors(self) -> list[list[int]]:
        """For every kernel, the distinct kernels it waits for (``deps`` plus the chain link)."""
        preds: list[list[int]] = [sorted({int(d) for d in row if d >= 0}) for row in self.deps]
        for (start, stop), chained in zip(self.segments, self.segment_chained):
            if chained:
                for i in range(int(start) + 1, int(stop)):
                    preds[i].append(i - 1)
        return preds

    def finish_times_s(self) -> np.ndarray:
        """Earliest finish of every kernel with unlimited resources (dynamic programming over the
        segments in order; a chain is a max-plus scan, done with cumulative sums)."""
        n = self.n_kernels
        finish = np.zeros(n + 1)  # the extra last slot is 0.0, what a -1 dependency reads
        for (start, stop), chained in zip(self.segments, self.segment_chained):
            start, stop = int(start), int(stop)
            rows = self.deps[start:stop]
            ready = finish[rows].max(axis=1) if rows.shape[1] else np.zeros(stop - start)
            dur = self.duration_s[start:stop]
            if chained:
                # finish_i = max(finish_{i-1}, ready_i) + dur_i  =  S_i + max_{j<=i}(ready_j − S_{j−1})
                total = np.cumsum(dur)
                finish[start:stop] = total + np.maximum.accumulate(ready - (total - dur))
            else:
                finish[start:stop] = ready + dur
        return finish[:n]

    def critical_path_s(self) -> float:
        """Length of the longest dependency chain: the latency with unlimited resources."""
        return float(self.finish_times_s().max()) if self.n_kernels else 0.0

    def alloc_bytes(self, at_finish: bool = False) -> np.ndarray:
        """Bytes each kernel allocates when it starts (``at_finish``: when it finishes)."""
        out = np.zeros(self.n_kernels, dtype=np.int64)
        mine = self.buffer_at_finish == at_finish
        np.add.at(out, self.buffer_producer[mine], self.buffer_bytes[mine])
        return out

    def consumer_counts(self) -> np.ndarray:
        """Number of consuming kernels of each buffer (0: it outlives the call)."""
        return np.bincount(self.consumer_buffer, minlength=self.buffer_bytes.shape[0])

    def serial_memory_bytes(self) -> np.ndarray:
        """Memory in use after each of the 2n events of running the kernels one at a time in program
        order: element 2i after kernel i starts (its allocations), 2i+1 after it finishes (its frees,
        then its allocations at finish). Weights included."""
        n = self.n_kernels
        last_consumer = np.full(self.buffer_bytes.shape[0], -1)
        np.maximum.at(last_consumer, self.consumer_buffer, self.consumer_node)
        freed = np.zeros(n, dtype=np.int64)
        has = last_consumer >= 0
        np.add.at(freed, last_consumer[has], self.buffer_bytes[has])
        steps = np.empty(2 * n, dtype=np.int64)
        steps[0::2] = self.alloc_bytes()
        steps[1::2] = self.alloc_bytes(at_finish=True) - freed
        return self.weight_bytes + np.cumsum(steps)

    def serial_peak_memory_bytes(self) -> int:
        """Peak memory (weights included) when the kernels run one at a time in program order."""
        return int(max(self.weight_bytes, int(self.serial_memory_bytes().max(initial=0))))
