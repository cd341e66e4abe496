"""A GRU call, as a backend runs it, is a graph of kernels: per layer and direction an input-projection
GEMM and ``seq_len`` recurrent steps, and for training the backward of each step in reverse order, the
recurrent weight-gradient GEMM and the backward of the input projection. Edges are the data
dependencies the math imposes:

* step t needs step t−1 of the same layer and direction (in that direction's own order: the reverse
  direction processes time T−1 first);
* layer l at time t needs layer l−1's output at time t, from both directions when bidirectional — the
  reverse direction of layer l−1 produces its output for time t at its own step T−1−t;
* backward needs forward's saved activations (it starts after the loss, i.e. after the whole forward),
  and layer l's backward at time t needs the gradient that layer l+1's backward sends down for time t.

Two structures are built from the same rules. ``wavefront=False`` is PyTorch's native CPU path
(aten/src/ATen/native/RNN.cpp): each input projection is one GEMM over all T·B rows, so layer l starts
when layer l−1 has finished. ``wavefront=True`` is cuDNN's layer wavefront: the input projections of
layers above the first are split into the same chunks as the steps, so layer l can run time t as soon
as layer l−1 has produced it.

Granularity: ``chunk_steps`` consecutive steps are merged into one kernel (durations summed) so that a
T = 10,000 call stays a few thousand kernels. A merged kernel waits for all the inputs of its steps,
so merging can only lengthen the critical path of a wavefront; when nothing overlaps it changes
nothing.

Memory is modelled as buffers, each allocated when its producing kernel starts and freed when the
last of its consuming kernels finishes — the lifetimes of ATen's CPU tensors, which make the peak of
an inference call equal weights + :func:`gru_sim.accounting.activation_bytes`. The graph holds plain
NumPy arrays so that critical paths and serial memory peaks are computed without an event loop
(:mod:`gru_sim.sim.graph`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..accounting import TRAINING_SAVED_BH_PER_STEP, layer_params
from ..config import GATES, GruConfig
from ..errors import ConfigError
from ..model.kernel_times import CallTimes, LayerTimes
from .graph import (BACKWARD_PROJECTION, BACKWARD_STEPS, CONCAT, DEFAULT_MAX_CHUNKS, OVERHEAD, PROJECTION, STACK,
                    STEPS, WEIGHT_GRAD, KernelGraph, resolve_chunk_steps)


class _Builder:
    """Collects segments and buffers; ``build`` freezes them into a :class:`KernelGraph`. Without
    ``track_memory`` buffers are not recorded (their ids are all -1), for callers that need only times."""

    def __init__(self, track_memory: bool = True) -> None:
        self.track_memory = track_memory
        self.n = 0
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.dep_columns: list[list[np.ndarray]] = []
        self.segments: list[tuple[int, int]] = []
        self.chained: list[bool] = []
        self.buf_bytes: list[np.ndarray] = []
        self.buf_producer: list[np.ndarray] = []
        self.buf_at_finish: list[np.ndarray] = []
        self.n_buffers = 0
        self.pairs_buffer: list[np.ndarray] = []
        self.pairs_node: list[np.ndarray] = []

    def segment(self, kind: int, layer: int, direction: int, starts: np.ndarray, stops: np.ndarray,
                durations_s: np.ndarray, deps: Sequence[np.ndarray], chained: bool) -> np.ndarray:
        """Append kernels covering steps ``[starts, stops)``; returns their indices."""
        starts = np.asarray(starts, dtype=np.int64)
        m = starts.shape[0]
        ids = np.arange(self.n, self.n + m)
        self.parts.append((np.full(m, kind, dtype=np.int8), np.full(m, layer, dtype=np.int32),
                           np.full(m, direction, dtype=np.int8), starts,
                           np.asarray(stops, dtype=np.int64), np.asarray(durations_s, dtype=np.float64)))
        cols = [np.broadcast_to(np.asarray(c, dtype=np.int64), (m,)) for c in deps]
        for col in cols:
            assert not np.any((col >= self.n) & (col >= 0)), "a dependency must point to an earlier segment"
        self.dep_columns.append(cols)
        self.segments.append((self.n, self.n + m))
        self.chained.append(chained)
        self.n += m
        return ids

    def buffers(self, sizes_bytes: np.ndarray | int, producers: np.ndarray | int,
                at_finish: bool = False) -> np.ndarray:
        """New buffers, one per producer (allocated when it starts, or finishes); returns their ids."""
        producers = np.atleast_1d(np.asarray(producers, dtype=np.int64))
        if not self.track_memory:
            return np.full(producers.shape, -1, dtype=np.int64)
        sizes = np.broadcast_to(np.asarray(sizes_bytes, dtype=np.int64), producers.shape)
        ids = np.arange(self.n_buffers, self.n_buffers + producers.shape[0])
        self.buf_bytes.append(sizes.copy())
        self.buf_producer.append(producers)
        self.buf_at_finish.append(np.full(producers.shape, at_finish))
        self.n_buffers += producers.shape[0]
        return ids

    def consume(self, buffers: np.ndarray | int, nodes: np.ndarray | int) -> None:
        """Kernels ``nodes`` release ``buffers`` when they finish (element-wise, broadcast)."""
        if not self.track_memory:
            return
        b, n = np.broadcast_arrays(np.atleast_1d(np.asarray(buffers, dtype=np.int64)),
                                   np.atleast_1d(np.asarray(nodes, dtype=np.int64)))
        keep = (b >= 0) & (n >= 0)
        self.pairs_buffer.append(b[keep].copy())
        self.pairs_node.append(n[keep].copy())

    def build(self, config: GruConfig, chunk_steps: int, wavefront: bool, weight_bytes: int) -> KernelGraph:
        cols = list(zip(*self.parts))
        width = max((len(c) for c in self.dep_columns), default=0)
        deps = np.full((self.n, width), -1, dtype=np.int64)
        for (start, stop), columns in zip(self.segments, self.dep_columns):
            for k, col in enumerate(columns):
                deps[start:stop, k] = col
        # Distinct (buffer, node) pairs, via one integer key per pair.
        keys = np.unique(np.concatenate(self.pairs_buffer or [np.zeros(0, np.int64)]) * (self.n + 1)
                         + np.concatenate(self.pairs_node or [np.zeros(0, np.int64)]))
        pairs = np.stack([keys // (self.n + 1), keys % (self.n + 1)])
        arrays = dict(
            kind=np.concatenate(cols[0]), layer=np.concatenate(cols[1]), direction=np.concatenate(cols[2]),
            step_start=np.concatenate(cols[3]), step_stop=np.concatenate(cols[4]),
            duration_s=np.concatenate(cols[5]), deps=deps,
            segments=np.asarray(self.segments, dtype=np.int64).reshape(-1, 2),
            segment_chained=np.asarray(self.chained, dtype=bool),
            buffer_bytes=np.concatenate(self.buf_bytes or [np.zeros(0, np.int64)]),
            buffer_producer=np.concatenate(self.buf_producer or [np.zeros(0, np.int64)]),
            buffer_at_finish=np.concatenate(self.buf_at_finish or [np.zeros(0, bool)]),
            consumer_buffer=pairs[0], consumer_node=pairs[1],
        )
        for value in arrays.values():
            value.setflags(write=False)
        return KernelGraph(config=config, chunk_steps=chunk_steps, wavefront=wavefront,
                           weight_bytes=weight_bytes, **arrays)


def _check_call_times(call_times: CallTimes) -> dict[tuple[int, int], LayerTimes]:
    """The layer times by (layer, direction), refusing missing, repeated or impossible entries."""
    config = call_times.config
    expected = {(l, d) for l in range(config.num_layers) for d in range(config.directions)}
    by_key: dict[tuple[int, int], LayerTimes] = {}
    for lt in call_times.layers:
        key = (lt.layer, lt.direction)
        if key not in expected or key in by_key:
            raise ConfigError(f"CallTimes has an unexpected or repeated entry for layer {lt.layer}, "
                              f"direction {lt.direction} (config: {config.num_layers} layer(s), "
                              f"{config.directions} direction(s))")
        for name in ("input_projection_s", "recurrent_matmul_per_step_s", "pointwise_per_step_s",
                     "step_overhead_per_step_s", "backward_per_step_s", "backward_input_projection_s",
                     "recurrent_weight_grad_s"):
            value = getattr(lt, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}(={value}) of layer {lt.layer} direction {lt.direction} "
                                  "must be a finite duration >= 0")
        by_key[key] = lt
    missing = sorted(expected - set(by_key))
    if missing:
        raise ConfigError(f"CallTimes lacks layer/direction {missing}")
    if not math.isfinite(call_times.call_overhead_s) or call_times.call_overhead_s < 0:
        raise ConfigError(f"call_overhead_s(={call_times.call_overhead_s}) must be a finite duration >= 0")
    return by_key


def _time_range(p0: np.ndarray, p1: np.ndarray, direction: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Times [a, b) covered by processing steps [p0, p1) of ``direction`` (the reverse one runs T−1 first)."""
    if direction == 0:
        return p0, p1
    return seq_len - p1, seq_len - p0


def _source_chunks(a: np.ndarray, b: np.ndarray, direction: int, seq_len: int,
                   chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk indices (lowest, highest) of ``direction`` whose steps cover times [a, b); a range no longer
    than one chunk meets at most two chunks."""
    if direction == 0:
        lo_step, hi_step = a, b - 1
    else:
        lo_step, hi_step = seq_len - b, seq_len - 1 - a
    return lo_step // chunk, hi_step // chunk


def _covering(nodes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Two dependency columns naming the chunk kernels ``nodes[lo]`` and ``nodes[hi]`` (-1 if the same)."""
    first = nodes[lo]
    second = np.where(hi != lo, nodes[np.minimum(hi, nodes.shape[0] - 1)], -1)
    return [first, second]


def build_graph(call_times: CallTimes, *, chunk_steps: int | None = None, wavefront: bool = False,
                max_chunks: int = DEFAULT_MAX_CHUNKS, track_memory: bool = True) -> KernelGraph:
    """The kernel graph of one call with durations from ``call_times`` (see the module docstring).

    ``wavefront=False``: ATen's CPU structure; ``True``: cuDNN's layer wavefront. ``chunk_steps``:
    steps per merged kernel (1 = step by step; None = chosen by :func:`resolve_chunk_steps`).
    ``track_memory=False`` leaves the buffers out (the graph then has no memory figures), which is
    faster when only times are wanted.
    """
    by_key = _check_call_times(call_times)
    config = call_times.config
    t_len, batch, hidden, s = config.seq_len, config.batch, config.hidden_size, config.dtype_bytes
    n_layers, dirs = config.num_layers, tuple(range(config.directions))
    bidir = config.directions == 2
    training = config.mode == "training"
    chunk = resolve_chunk_steps(t_len, chunk_steps, max_chunks)
    p0 = np.arange(0, t_len, chunk, dtype=np.int64)
    p1 = np.minimum(p0 + chunk, t_len)
    n_chunks = p0.shape[0]
    steps_in = p1 - p0
    bh_bytes = batch * hidden * s
    tbh_bytes = t_len * bh_bytes
    weight_bytes = sum(layer_params(config.layer_input_size(l), hidden) * s
                       for l in range(n_layers) for _ in dirs)

    g = _Builder(track_memory)
    overhead = g.segment(OVERHEAD, -1, -1, [0], [0], [call_times.call_overhead_s], [], chained=False)[0]

    step_nodes: dict[tuple[int, int], np.ndarray] = {}
    saved_buffers: dict[tuple[int, int], np.ndarray] = {}
    final: dict[int, int] = {}
    layer_output: dict[int, int] = {}
    for l in range(n_layers):
        lt_by_dir = {d: by_key[(l, d)] for d in dirs}
        layer_scoped: list[np.ndarray] = []  # buffers freed when the layer's last forward kernel ends
        stacks: list[int] = []
        proj_buffers: dict[int, np.ndarray] = {}
        proj_nodes: dict[int, np.ndarray] = {}
        for d in dirs:
            lt = lt_by_dir[d]
            if wavefront and l > 0:
                a, b = _time_range(p0, p1, d, t_len)
                cols: list[np.ndarray] = []
                for src in dirs:
                    lo, hi = _source_chunks(a, b, src, t_len, chunk)
                    cols += _covering(step_nodes[(l - 1, src)], lo, hi)
                proj = g.segment(PROJECTION, l, d, p0, p1, lt.input_projection_s * steps_in / t_len, cols,
                                 chained=False)
                proj_col = proj
                proj_buf = g.buffers(GATES * steps_in * bh_bytes, proj)
            else:
                dep = overhead if l == 0 else final[l - 1]
                proj = g.segment(PROJECTION, l, d, [0], [t_len], [lt.input_projection_s], [np.array([dep])],
                                 chained=False)
                proj_col = np.full(n_chunks, proj[0])
                proj_buf = g.buffers(GATES * tbh_bytes, proj)
            proj_nodes[d], proj_buffers[d] = proj, proj_buf
            steps = g.segment(STEPS, l, d, p0, p1, steps_in * lt.step_s, [proj_col], chained=True)
            step_nodes[(l, d)] = steps
            if training:
                # What autograd saves for backward, per step (accounting.TRAINING_SAVED_BH_PER_STEP);
                # the new hidden state is among them, so no separate per-step output buffer.
                saved_buffers[(l, d)] = g.buffers(TRAINING_SAVED_BH_PER_STEP * steps_in * bh_bytes, steps)
            else:
                # The per-step outputs, alive until the layer function returns (after the stack).
                layer_scoped.append(g.buffers(steps_in * bh_bytes, steps))
            stack = int(g.segment(STACK, l, d, [0], [t_len], [0.0], [np.array([steps[-1]])], chained=False)[0])
            stacks.append(stack)
            stack_buf = g.buffers(tbh_bytes, stack)
            if bidir:
                layer_scoped.append(stack_buf)
            else:
                layer_output[l] = int(stack_buf[0])
            if wavefront or not bidir:
                layer_scoped.append(proj_buf)
        if bidir:
            concat = int(g.segment(CONCAT, l, -1, [0], [t_len], [0.0], [np.array([stacks[0]]), np.array([stacks[1]])],
                                   chained=False)[0])
            layer_output[l] = int(g.buffers(2 * tbh_bytes, concat)[0])
            final[l] = concat
            if not wavefront:
                # FullBidirectionalLayer reassigns its projection tensor: the forward direction's is
                # released once the reverse one has been computed; the reverse's lives to the return.
                g.consume(proj_buffers[0], proj_nodes[1][-1])
                layer_scoped.append(proj_buffers[1])
        else:
            final[l] = stacks[0]
        for bufs in layer_scoped:
            g.consume(bufs, final[l])
        # apply_layer_stack drops the previous layer's output when this layer returns (inference);
        # in training the previous output is saved by this layer's input projection for dW_ih.
        if l > 0 and not training:
            g.consume(layer_output[l - 1], final[l])

    if training:
        _build_backward(g, config, by_key, chunk, p0, p1, step_nodes, saved_buffers, final, layer_output,
                        wavefront)
    return g.build(config, chunk, wavefront, weight_bytes)


def _build_backward(g: _Builder, config: GruConfig, by_key: dict[tuple[int, int], LayerTimes], chunk: int,
                    p0: np.ndarray, p1: np.ndarray, step_nodes: dict[tuple[int, int], np.ndarray],
                    saved_buffers: dict[tuple[int, int], np.ndarray], final: dict[int, int],
                    layer_output: dict[int, int], wavefront: bool) -> None:
    """Append the backward kernels in the order autograd runs them: top layer first and, within a
    layer, the direction created last first (the engine prefers higher sequence numbers)."""
    t_len, batch, hidden, s = config.seq_len, config.batch, config.hidden_size, config.dtype_bytes
    dirs = tuple(range(config.directions))
    n_layers = config.num_layers
    bh_bytes = batch * hidden * s
    order = np.arange(p0.shape[0])[::-1]  # chunks in backward order
    bp0, bp1 = p0[order], p1[order]
    b_steps_in = bp1 - bp0
    # Per layer and direction: backward-projection kernels indexed by forward chunk (or one kernel),
    # and the buffer of the gradient each sends to the layer below.
    bproj_by_chunk: dict[tuple[int, int], np.ndarray] = {}
    dx_buffer_of: dict[int, int] = {}
    for l in reversed(range(n_layers)):
        input_size = config.layer_input_size(l)
        for d in reversed(dirs):
            lt = by_key[(l, d)]
            a, b = _time_range(bp0, bp1, d, t_len)
            if l == n_layers - 1:
                first = np.full(order.shape[0], -1)
                first[0] = final[l]  # the loss needs the whole forward; the chain carries it on
                cols = [first]
            else:
                cols = []
                for src in dirs:
                    lo, hi = _source_chunks(a, b, src, t_len, chunk)
                    cols += _covering(bproj_by_chunk[(l + 1, src)], lo, hi)
            bsteps = g.segment(BACKWARD_STEPS, l, d, bp0, bp1, b_steps_in * lt.backward_per_step_s, cols,
                               chained=True)
            # Saved activations are released by the backward of their own steps.
            g.consume(saved_buffers[(l, d)][order], bsteps)
            if l < n_layers - 1:
                # The gradient from the layer above is released once these steps have read it.
                for col in cols:
                    sources = col[col >= 0]
                    g.consume(np.array([dx_buffer_of.get(int(x), -1) for x in sources], dtype=np.int64),
                              bsteps[col >= 0])
            # Gradients of the gate pre-activations (dL/d input projection), buffered by autograd until
            # the unbind backward has all T of them. A merged kernel makes its first step's at its start
            # and the rest at its finish, after its saved activations are released: step by step, the
            # peak within a chunk is at its first step, so merging leaves the peak unchanged.
            gate_grads = np.concatenate([g.buffers(GATES * bh_bytes, bsteps),
                                         g.buffers(GATES * (b_steps_in - 1) * bh_bytes, bsteps, at_finish=True)])
            # dW_hh and db_hh outlive the call. Autograd creates them at the first backward step and adds
            # each step's weight gradient into them: one weight-sized temporary per step.
            hh_grad_bytes = GATES * hidden * (hidden + 1) * s
            g.buffers(hh_grad_bytes, bsteps[0])
            g.consume(g.buffers(hh_grad_bytes, bsteps), bsteps)
            if wavefront and l > 0:
                bproj = g.segment(BACKWARD_PROJECTION, l, d, bp0, bp1,
                                  lt.backward_input_projection_s * b_steps_in / t_len, [bsteps], chained=False)
                g.consume(gate_grads, np.concatenate([bproj, bproj]))
                bproj_by_chunk[(l, d)] = bproj[::-1]  # back to forward chunk order
                steps_of = b_steps_in
            else:
                bproj = g.segment(BACKWARD_PROJECTION, l, d, [0], [t_len], [lt.backward_input_projection_s],
                                  [np.array([bsteps[-1]])], chained=False)
                g.consume(gate_grads, bproj[0])
                bproj_by_chunk[(l, d)] = np.full(p0.shape[0], bproj[0])
                steps_of = np.array([t_len])
            # The stacked gate gradients (UnbindBackward's output), transient within the kernel.
            g.consume(g.buffers(GATES * steps_of * bh_bytes, bproj), bproj)
            g.buffers(GATES * hidden * (input_size + 1) * s, bproj[0])  # dW_ih, db_ih: outlive the call
            # The recurrent weight-gradient GEMM after the data gradients, as cuDNN's backward-weights
            # call follows its backward-data call; in a wavefront it overlaps the layers below.
            g.segment(WEIGHT_GRAD, l, d, [0], [t_len], [lt.recurrent_weight_grad_s], [np.array([bproj[-1]])],
                      chained=False)
            if l > 0:
                dx = g.buffers(steps_of * batch * input_size * s, bproj)
                if bidir_accumulates(config, wavefront, d):
                    # Autograd adds this direction's input gradient in place into the one the other
                    # direction produced: it is released as soon as it is made.
                    g.consume(dx, bproj)
                else:
                    for node, buf in zip(bproj, dx):
                        dx_buffer_of[int(node)] = int(buf)
        if l > 0:
            # The layer below's output was saved for this layer's dW_ih.
            for d in dirs:
                g.consume(layer_output[l - 1], np.unique(bproj_by_chunk[(l, d)]))


def bidir_accumulates(config: GruConfig, wavefront: bool, direction: int) -> bool:
    """True for the bidirectional direction whose input gradient is accumulated into the other's
    (ATen's path: the forward direction, whose backward runs second)."""
    return config.directions == 2 and not wavefront and direction == 0
