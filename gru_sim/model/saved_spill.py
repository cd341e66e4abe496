"""The bytes a training call's backward re-reads from beyond the cache: its saved activations.

A training step saves its gate activations for the backward (ATen's CPU path: autograd over each
step's ops): measured as the growth of a training call's peak memory with its length, 11.5–14.3 floats
per sequence and hidden unit a step (B = 16–64, H = 100–512, one layer, AMD EPYC; ``gru-sim measure
--mode training`` at T = 48 and 96). The backward reads them in reverse order, after the rest of the
call's forward and backward have run. A step unit is timed on a call of a few steps, whose saved set
stays in the core's cache until its backward; in a long call the saved set of the steps beyond what
that cache holds has been evicted when the backward comes back to it, and is read from further out.

So a training call pays, for each layer and direction, the saved bytes of its steps past the first
``cache / saved_per_step`` — ``spilled_saved_bytes`` — at a rate the residual fits from whole calls
(seconds per byte, pulled towards contributing nothing). Measured in one process against their
composed units (``benchmarks/call_vs_units.py``, 1 thread, AMD EPYC), training calls at H = 100 ran
1.03–1.16× them and at H = 256–512 0.99–1.04×.
"""

from __future__ import annotations

import numpy as np

from ..config import GruConfig
from .units import MemoryLevels

# Floats a training step saves per sequence and hidden unit (measured; see the module docstring).
SAVED_FLOATS_PER_UNIT = 13.0
# The cache level a short unit call's saved set stays in (its capacity is read from the OS).
CACHE_LEVEL = "L2"


def cache_bytes(levels: MemoryLevels | None) -> float:
    """Capacity of :data:`CACHE_LEVEL` among a table's memory levels (0 where there are none, or the
    machine reports no such level)."""
    if levels is None:
        return 0.0
    for name, cap in zip(levels.names, levels.capacity_bytes):
        if name == CACHE_LEVEL and cap:
            return float(cap)
    return 0.0


def saved_bytes_per_step(batch: float, hidden: float, dtype_bytes: float) -> float:
    return SAVED_FLOATS_PER_UNIT * batch * hidden * dtype_bytes


def spills(mode: str, impl: str, device: str) -> bool:
    """Whether a call saves activations this module prices: training with ATen's ``torch-gru`` on the CPU."""
    return mode == "training" and impl == "torch-gru" and device == "cpu"


def spilled_saved_bytes(config: GruConfig, cache: float) -> float:
    """Per layer and direction: the saved bytes of the steps beyond the first ``cache / per step``
    (0 in inference, for other implementations than ATen's ``torch-gru`` on CPU, and with no cache)."""
    if not spills(config.mode, config.impl, config.device):
        return 0.0
    return float(spilled_saved_bytes_many(config.batch, config.seq_len, config.hidden_size, config.dtype_bytes, cache))


def spilled_saved_bytes_many(batch: np.ndarray | float, seq_len: np.ndarray | float, hidden: np.ndarray | float,
                             dtype_bytes: float, cache: float) -> np.ndarray:
    """:func:`spilled_saved_bytes` of a training ``torch-gru`` CPU call, elementwise over arrays (or
    scalars); 0 with no cache."""
    per_step = saved_bytes_per_step(np.asarray(batch, dtype=float), np.asarray(hidden, dtype=float), dtype_bytes)
    if cache <= 0:
        return np.zeros_like(per_step)
    return np.maximum(np.asarray(seq_len, dtype=float) - cache / per_step, 0.0) * per_step
