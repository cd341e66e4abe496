"""A GRU call as the units it runs (:class:`Composition`, one :class:`LayerUnits` per layer) and how the
cost model's residual coefficients price them: a layer's step as its recurrent matmuls and the rest,
each with its coefficient, and that step split into the breakdown's matmul, gates and overhead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import GruConfig
from .residual import _PROJ, _PROJ_BWD, _PROJ_UNALIGNED, _STEP_MM, _STEPS, _STEPS_UNALIGNED

# A training step runs three matmuls of the recurrent one's size: forward, data and weight gradients.
MATMULS_PER_TRAINING_STEP = 3


@dataclass(frozen=True)
class LayerUnits:
    """One direction of one layer, composed from the tables: seconds per step and per layer."""

    layer: int
    step_s: float            # one recurrent step (forward, plus its backward for training)
    matmul_s: float          # the recurrent matmul(s) inside that step
    forward_share: float     # the share of step_s that is forward (1 for inference)
    projection_s: float
    projection_backward_s: float
    output_bytes: float      # per step
    step_unaligned: bool = False        # H is not a whole number of SIMD vectors
    projection_unaligned: bool = False  # its 3H-wide rows are not, and the GEMM table has no measured
                                        # slowdown for that (a fitted extra share prices it)
    fixed_s: float = 0.0     # once per call: the layer's fixed cost beyond the smallest call's (its
                             # weights' gradient buffers in training; StepTable.layer_fixed_s)
    fresh_s: float = 0.0     # once per call: writing the direction's share of the layer's tensors the
                             # system maps afresh, at the measured rate (.fresh_memory)
    fresh_backward_s: float = 0.0  # the same for the tensors its backward allocates
    spill_bytes: float = 0.0  # once per call (training): the direction's saved activations its backward
                              # re-reads from beyond the cache (.saved_spill), priced at a fitted rate


@dataclass(frozen=True)
class Composition:
    """A call as its units: per-layer units (one direction; all directions cost the same) and the
    residual term values."""

    config: GruConfig
    layers: tuple[LayerUnits, ...]
    terms: np.ndarray
    floor_step_s: float
    floor_matmul_s: float
    borrowed_mode: bool


def price_layer(coef: np.ndarray, unit: LayerUnits) -> tuple[float, float, float]:
    """One layer's step seconds (its matmuls and the rest, each with its coefficient), and the
    coefficients on its projection and projection backward, with the unaligned extra where its sizes
    are not whole SIMD vectors."""
    extra_step = coef[_STEPS_UNALIGNED] if unit.step_unaligned else 0.0
    extra_proj = coef[_PROJ_UNALIGNED] if unit.projection_unaligned else 0.0
    mm = min(unit.matmul_s, unit.step_s)
    step_s = (coef[_STEPS] + extra_step) * (unit.step_s - mm) + (coef[_STEP_MM] + extra_step) * mm
    return step_s, coef[_PROJ] + extra_proj, coef[_PROJ_BWD] + extra_proj


def step_split(comp: Composition, unit: LayerUnits, coef: np.ndarray) -> tuple[float, float, float]:
    """One step's seconds split into (matmul, gates, overhead): the matmul as timed alone less the
    dispatch floor of a lone op, the overhead as the step floor of the table (the smallest step:
    dispatch and bookkeeping with no arithmetic to speak of), the gates the rest."""
    total = price_layer(coef, unit)[0]
    a_rest, a_mm = (coef[k] + (coef[_STEPS_UNALIGNED] if unit.step_unaligned else 0.0) for k in (_STEPS, _STEP_MM))
    scale = MATMULS_PER_TRAINING_STEP if comp.config.mode == "training" else 1.0
    overhead = min(a_rest * comp.floor_step_s, total)
    matmul = min(a_mm * max(min(unit.matmul_s, unit.step_s) - scale * comp.floor_matmul_s, 0.0), total - overhead)
    return matmul, total - overhead - matmul, overhead
