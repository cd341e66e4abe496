"""Memory the operating system hands a call fresh, and what touching it costs.

glibc's malloc serves a request of at least its mmap threshold with a new mapping, and a freed
mapping goes back to the system at once; the threshold rises with the blocks a process frees but never
past 32 MiB on a 64-bit system (``DEFAULT_MMAP_THRESHOLD_MAX``). So every tensor of a call that is
32 MiB or larger arrives as pages the kernel must fault in and zero on first touch, on every call,
while smaller ones reuse memory the process already holds. On an AMD EPYC VM (torch 2.13, glibc 2.36)
a fresh 48–200 MiB tensor written once cost 0.32–0.37 ns a byte more than the same write into memory
already held (one thread; 0.22–0.26 at two), a 96 MiB projection output 30 ms — time no unit of the
cost model sees: the unit calls are short and the GEMM table stops at 32 MiB outputs.

:func:`fresh_bytes` lists a ``torch-gru`` call's tensors that reach the ceiling, from the kernels ATen's
CPU path runs (``aten/src/ATen/native/RNN.cpp``): per layer and direction the input projection
``[T, B, 3H]`` and the stacked output ``[T, B, H]``; per bidirectional layer the concatenated output
``[T, B, 2H]``; in training also each projection's gradient ``[T, B, 3H]`` and, above the first
layer, the gradient of the layer's input ``[T, B, I_l]`` (the first layer's input needs none). Counted
against ``strace``'s mmap calls of one call of each of ten large shapes (B = 32–1,024, T = 64–1,000),
the list gave the mapped bytes exactly for nine and 300 MiB for 225 MiB for the tenth (one of its
gradients fitted into memory freed by the backward before it). What it leaves out: a process whose
heap already holds a free block large enough serves a big tensor from it (what ran before decides), and
a training call also faults in the heap pages glibc gave back at the end of the call before (its saved
activations: 496 MiB faulted for 437.5 MiB listed in a 1,000-step bidirectional call, in a process
that had run other large shapes before).

The weights' gradient buffers (3H × I and 3H × H, past the ceiling from H ≈ 1,700 in training) are not
listed: the calibration's per-call intercept at each hidden size already holds them
(:meth:`gru_sim.model.units.StepTable.layer_fixed_s`).

The rate is measured (:func:`gru_sim.measure.units.fresh_memory_s_per_byte`), and it is what a real
call pays: the ten large shapes of ``benchmarks/data/big_shapes.csv``, each timed in a process of its
own as glibc runs and with its mapping of large blocks turned off (``MALLOC_MMAP_THRESHOLD_``), ran
45–196 ms slower as glibc runs at one thread on an AMD EPYC VM, a median 0.44 ns per faulted byte
(0.32–0.57) where the probe read 0.36; at two threads a median 0.24 where it read 0.27
(``benchmarks/fresh_memory.py``).
"""

from __future__ import annotations

import numpy as np

from ..config import GATES, GruConfig

# glibc's largest dynamic mmap threshold on a 64-bit system: a request this large or larger is mapped afresh.
MMAP_CEILING_BYTES = 32 * 2**20


def _fresh(n_bytes: float) -> float:
    return n_bytes if n_bytes >= MMAP_CEILING_BYTES else 0.0


def listed(impl: str, device: str) -> bool:
    """Whether this module lists a call's fresh tensors: ATen's native ``torch-gru`` on the CPU only."""
    return impl == "torch-gru" and device == "cpu"


def fresh_bytes_by_layer(config: GruConfig) -> list[tuple[float, float]]:
    """Per layer (all its directions), the bytes of the tensors one call of ``config`` allocates at or
    past :data:`MMAP_CEILING_BYTES`: (forward, backward). Nothing for implementations other than ATen's
    native ``torch-gru`` on the CPU, whose tensors are not listed."""
    if not listed(config.impl, config.device):
        return [(0.0, 0.0)] * config.num_layers
    t, b, h, e, d = config.seq_len, config.batch, config.hidden_size, config.dtype_bytes, config.directions
    training = config.mode == "training"
    out = []
    for layer in range(config.num_layers):
        projection = float(t * b * GATES * h * e)
        forward = d * (_fresh(projection) + _fresh(float(t * b * h * e)))
        if d == 2:
            forward += _fresh(float(t * b * 2 * h * e))
        backward = 0.0
        if training:
            backward = d * _fresh(projection)
            if layer > 0:
                backward += _fresh(float(t * b * config.layer_input_size(layer) * e))
        out.append((forward, backward))
    return out


def fresh_bytes(config: GruConfig) -> float:
    """All bytes :func:`fresh_bytes_by_layer` lists for one call of ``config``."""
    return float(sum(f + b for f, b in fresh_bytes_by_layer(config)))


def fresh_bytes_many(batch: np.ndarray, seq_len: np.ndarray, hidden: np.ndarray, num_layers: np.ndarray,
                     directions: np.ndarray, element_bytes: int, training: bool) -> np.ndarray:
    """:func:`fresh_bytes` of many ``torch-gru`` CPU calls of one mode at once (float arrays)."""
    tb = seq_len * batch * element_bytes

    def fresh(n: np.ndarray) -> np.ndarray:
        return np.where(n >= MMAP_CEILING_BYTES, n, 0.0)

    projection = fresh(tb * GATES * hidden)
    per_layer = directions * (projection + fresh(tb * hidden)) + np.where(directions == 2, fresh(tb * 2 * hidden), 0.0)
    if training:
        per_layer = per_layer + directions * projection
        return num_layers * per_layer + (num_layers - 1) * fresh(tb * directions * hidden)
    return num_layers * per_layer
