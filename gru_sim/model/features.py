"""The terms a GRU call's time is built from, as features a linear model can weigh.

Each feature is a count taken from the shape (FLOPs, bytes, steps, calls); the cost model learns one
non-negative seconds-per-unit coefficient for each, per hardware group (device, dtype, threads, impl).
That keeps the model physical — every coefficient is a rate or an overhead the hardware has — and
makes the fit a convex problem with one answer.

The recurrent matmul ``[B,H]×[H,3H]`` reads its whole weight matrix every step. How fast that is
depends on where the matrix lives — L2, L3 or main memory — so the per-step weight traffic is split
over "hat" basis functions of log(weight bytes) with knots from 32 KiB to 128 MiB: the model learns
a cost per weight byte at each knot and interpolates between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..accounting import POINTWISE_BACKWARD_OPS_PER_UNIT, POINTWISE_OPS_PER_UNIT
from ..config import GATES, GruConfig

# Knots of the weight-byte basis: 32 KiB .. 128 MiB, a factor of 4 apart (L1/L2/L3/DRAM regimes).
WEIGHT_KNOTS_BYTES = tuple(32 * 1024 * 4 ** k for k in range(7))
_LOG_KNOTS = np.log(np.array(WEIGHT_KNOTS_BYTES, dtype=float))
# Knots over the batch (the GEMM's M): BLAS takes a matrix-vector path at 1 and gains efficiency with
# M, so the recurrent matmul's cost per FLOP is learned at each knot and interpolated.
BATCH_KNOTS = (1, 4, 16, 64, 256)
# Knots over a step's pointwise elements (B·H): ATen runs an elementwise op on one thread below
# 32,768 elements (at::internal::GRAIN_SIZE) and splits it over the pool above.
POINTWISE_KNOTS = (256, 4096, 65536, 1048576)


@dataclass(frozen=True)
class Term:
    """One feature: its name, the breakdown term its time belongs to, and the phase."""

    name: str
    breakdown: str   # input_projection_s | recurrent_matmul_s | pointwise_s | step_overhead_s | call_overhead_s
    backward: bool = False


FORWARD_TERMS = (
    Term("call", "call_overhead_s"),
    Term("layer_direction", "call_overhead_s"),
    Term("output_copy_bytes", "call_overhead_s"),
    Term("projection_flops", "input_projection_s"),
    Term("projection_io_bytes", "input_projection_s"),
    # The projection GEMM reads W_ih once; with few rows (small T·B) that read is what it costs.
    *(Term(f"projection_weight_bytes@{k}", "input_projection_s") for k in range(len(WEIGHT_KNOTS_BYTES))),
    Term("step", "step_overhead_s"),
    *(Term(f"recurrent_flops@b{k}", "recurrent_matmul_s") for k in range(len(BATCH_KNOTS))),
    *(Term(f"recurrent_weight_bytes@{k}", "recurrent_matmul_s") for k in range(len(WEIGHT_KNOTS_BYTES))),
    *(Term(f"pointwise_elements@{k}", "pointwise_s") for k in range(len(POINTWISE_KNOTS))),
)
BACKWARD_TERMS = (
    Term("bwd_call", "call_overhead_s", True),
    Term("bwd_projection_flops", "input_projection_s", True),
    Term("bwd_projection_weight_bytes", "input_projection_s", True),
    Term("bwd_step", "step_overhead_s", True),
    *(Term(f"bwd_recurrent_flops@b{k}", "recurrent_matmul_s", True) for k in range(len(BATCH_KNOTS))),
    *(Term(f"bwd_recurrent_weight_bytes@{k}", "recurrent_matmul_s", True) for k in range(len(WEIGHT_KNOTS_BYTES))),
    Term("bwd_pointwise_elements", "pointwise_s", True),
)
TERMS = FORWARD_TERMS + BACKWARD_TERMS
TERM_NAMES = tuple(t.name for t in TERMS)
N_TERMS = len(TERMS)
BREAKDOWN_TERMS = ("input_projection_s", "recurrent_matmul_s", "pointwise_s", "step_overhead_s",
                   "call_overhead_s")


def hat_basis(value: float, knots: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Hat-function weights (summing to 1) of ``value`` over ``knots`` in log space, clamped at both
    ends: a piecewise-linear interpolation between per-knot coefficients."""
    log_knots = np.log(np.asarray(knots, dtype=float))
    x = math.log(max(value, 1e-30))
    out = np.zeros(len(log_knots))
    if x <= log_knots[0]:
        out[0] = 1.0
    elif x >= log_knots[-1]:
        out[-1] = 1.0
    else:
        k = int(np.searchsorted(log_knots, x) - 1)
        frac = (x - log_knots[k]) / (log_knots[k + 1] - log_knots[k])
        out[k], out[k + 1] = 1.0 - frac, frac
    return out


def weight_basis(weight_bytes: float) -> np.ndarray:
    """:func:`hat_basis` of ``weight_bytes`` over ``WEIGHT_KNOTS_BYTES``."""
    return hat_basis(max(weight_bytes, 1.0), WEIGHT_KNOTS_BYTES)


def layer_features(config: GruConfig, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of one direction of ``layer``, split as (input-projection part, per-step part).

    The per-step part is for ONE time step, so a simulator can place steps one by one; the
    projection part holds everything else of the layer-direction (projection, its backward, the
    layer's fixed costs). ``features(config)`` sums them over the whole call.
    """
    b, h, s = config.batch, config.hidden_size, config.dtype_bytes
    i = config.layer_input_size(layer)
    training = config.mode == "training"
    t = config.seq_len
    proj = np.zeros(N_TERMS)
    step = np.zeros(N_TERMS)
    idx = {name: k for k, name in enumerate(TERM_NAMES)}
    w_bytes = GATES * h * h * s
    proj_flops = 2.0 * t * b * i * GATES * h
    step_flops = 2.0 * b * h * GATES * h
    if config.impl == "torch-gru-cell":
        # GRUCell computes the input projection inside every step, as a small [B,I]×[I,3H] GEMM.
        step_flops += 2.0 * b * i * GATES * h
        w_bytes += GATES * h * i * s
    else:
        proj[idx["projection_flops"]] = proj_flops
        proj[idx["projection_io_bytes"]] = s * t * b * (i + GATES * h)
        ih_bytes = GATES * h * i * s
        for k, share in enumerate(weight_basis(ih_bytes)):
            proj[idx[f"projection_weight_bytes@{k}"]] = ih_bytes * share
    proj[idx["layer_direction"]] = 1.0
    proj[idx["output_copy_bytes"]] = s * t * b * h
    step[idx["step"]] = 1.0
    for k, share in enumerate(hat_basis(b, BATCH_KNOTS)):
        step[idx[f"recurrent_flops@b{k}"]] = step_flops * share
    basis = weight_basis(w_bytes)
    for k in range(len(WEIGHT_KNOTS_BYTES)):
        step[idx[f"recurrent_weight_bytes@{k}"]] = w_bytes * basis[k]
    for k, share in enumerate(hat_basis(b * h, POINTWISE_KNOTS)):
        step[idx[f"pointwise_elements@{k}"]] = POINTWISE_OPS_PER_UNIT * b * h * share
    if training:
        # Weight gradient of the projection; data gradient too for layers > 0 (layer 0's input needs none).
        proj[idx["bwd_projection_flops"]] = proj_flops * (2.0 if layer > 0 else 1.0)
        if config.impl != "torch-gru-cell":
            proj[idx["bwd_projection_weight_bytes"]] = GATES * h * i * s
        step[idx["bwd_step"]] = 1.0
        # Data gradient (all steps but the first, whose h0 needs none) + weight gradient: ~2× forward.
        for k, share in enumerate(hat_basis(b, BATCH_KNOTS)):
            step[idx[f"bwd_recurrent_flops@b{k}"]] = 2.0 * (2.0 * b * h * GATES * h) * share
        for k in range(len(WEIGHT_KNOTS_BYTES)):
            # The weight gradient is read and written every step: the same cache regimes as forward.
            step[idx[f"bwd_recurrent_weight_bytes@{k}"]] = w_bytes * basis[k]
        step[idx["bwd_pointwise_elements"]] = POINTWISE_BACKWARD_OPS_PER_UNIT * b * h
    return proj, step


def features(config: GruConfig) -> np.ndarray:
    """The feature vector of a whole call: sum over layers and directions, T steps each."""
    x = np.zeros(N_TERMS)
    for layer in range(config.num_layers):
        proj, step = layer_features(config, layer)
        x += config.directions * (proj + config.seq_len * step)
    x[TERM_NAMES.index("call")] = 1.0
    if config.mode == "training":
        x[TERM_NAMES.index("bwd_call")] = 1.0
    return x


def feature_matrix(configs: list[GruConfig]) -> np.ndarray:
    """Rows of :func:`features` for many configs."""
    return np.array([features(c) for c in configs]) if configs else np.zeros((0, N_TERMS))
