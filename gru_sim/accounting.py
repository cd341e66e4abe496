"""Counting what a GRU call does: parameters, floating-point operations, bytes moved and memory.

These are exact counts from the shapes alone, per layer and direction, split the way the work is
split on a real backend (PyTorch's native CPU path and cuDNN both do this):

* the *input projection* ``x W_ihᵀ + b_ih``: one GEMM over all ``T·B`` rows of a layer's input;
* the *recurrent matmul* ``h W_hhᵀ + b_hh``: one ``[B,H]×[H,3H]`` GEMM per time step;
* the *pointwise gate work* per step: ``r = σ(.)``, ``z = σ(.)``, ``n = tanh(. + r⊙.)``,
  ``h' = (1−z)⊙n + z⊙h``.

FLOPs count a multiply-add as 2 and each elementwise operation as 1. Training counts what autograd
runs: for every forward matmul a weight-gradient matmul, and a data-gradient matmul wherever the
matmul's input needs a gradient (not for the user's input or the zero initial hidden state).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import GATES, GruConfig

# Elementwise operations per hidden unit per step in the forward gate work: 2 adds + 2 sigmoids (r, z),
# mul + add + tanh (n), sub + mul + add (h'). The backward does about twice as many.
POINTWISE_OPS_PER_UNIT = 10
POINTWISE_BACKWARD_OPS_PER_UNIT = 20

# Activations, in units of T·B·H elements, that ATen's CPU path holds at its peak within one layer in
# inference: for one direction the input projection (3), the per-step outputs (1) and their stacked
# copy (1) (aten/src/ATen/native/RNN.cpp, FullLayer::operator()); a bidirectional layer holds 9 at its
# peak (the forward result, the reverse direction's 5, the 2H-wide concatenation). Checked against the
# resident-set growth of torch 2.13 on CPU (tests/test_accounting.py).
INFERENCE_LIVE_TBH = {1: 5, 2: 9}
# Tensors autograd keeps per step for backward, in units of B·H: the recurrent matmul output (3H wide,
# whose chunks r, z and n views keep alive), the r and z gate values, n, (h − n) and the new hidden state.
TRAINING_SAVED_BH_PER_STEP = 8
# Transient peak of a training call on top of what is saved, in units of T·B·H (gradients flowing back
# through a layer's outputs and projection), and in units of one W_hh matrix (the per-step weight
# gradient formed before it is added into the accumulated one, and that sum). Fitted to torch 2.13's
# CPU resident set.
TRAINING_TRANSIENT_TBH = 5
TRAINING_TRANSIENT_WEIGHTS = 2


@dataclass(frozen=True)
class LayerAccount:
    """Counts for one layer and direction of one call (forward unless the name says backward)."""

    layer: int
    direction: int
    input_size: int
    params: int
    input_projection_flops: int
    recurrent_flops_per_step: int
    pointwise_flops_per_step: int
    input_projection_bytes: int
    recurrent_bytes_per_step: int
    pointwise_bytes_per_step: int
    backward_input_projection_flops: int
    backward_recurrent_flops: int
    backward_pointwise_flops: int


def layer_params(input_size: int, hidden_size: int) -> int:
    """Parameters of one layer-direction: W_ih [3H,I], W_hh [3H,H], b_ih [3H], b_hh [3H]."""
    return GATES * hidden_size * (input_size + hidden_size + 2)


def account_layers(config: GruConfig) -> list[LayerAccount]:
    """Counts for every (layer, direction) of ``config``, in execution order."""
    b, t, h, s = config.batch, config.seq_len, config.hidden_size, config.dtype_bytes
    accounts = []
    for layer in range(config.num_layers):
        i = config.layer_input_size(layer)
        for direction in range(config.directions):
            proj = 2 * t * b * i * GATES * h
            step_mm = 2 * b * h * GATES * h
            pointwise = POINTWISE_OPS_PER_UNIT * b * h
            # Weight gradients always; data gradients where the input needs one: never for the user's
            # input (layer 0), never for the zero initial state (step 0).
            bwd_proj = proj + (proj if layer > 0 else 0)
            bwd_rec = t * step_mm + (t - 1) * step_mm
            accounts.append(LayerAccount(
                layer=layer,
                direction=direction,
                input_size=i,
                params=layer_params(i, h),
                input_projection_flops=proj,
                recurrent_flops_per_step=step_mm,
                pointwise_flops_per_step=pointwise,
                input_projection_bytes=s * (t * b * i + GATES * h * i + t * b * GATES * h),
                recurrent_bytes_per_step=s * (b * h + GATES * h * h + b * GATES * h),
                # Reads the two gate pre-activations (3H wide each) and h, writes h'.
                pointwise_bytes_per_step=s * (2 * b * GATES * h + 2 * b * h),
                backward_input_projection_flops=bwd_proj,
                backward_recurrent_flops=bwd_rec,
                backward_pointwise_flops=t * POINTWISE_BACKWARD_OPS_PER_UNIT * b * h,
            ))
    return accounts


@dataclass(frozen=True)
class CallAccount:
    """Totals for one call of ``config`` (a training call is forward + backward)."""

    params: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    input_projection_flops: int
    recurrent_flops: int
    pointwise_flops: int
    forward_flops: int
    backward_flops: int
    total_flops: int
    bytes_moved: int
    arithmetic_intensity_flops_per_byte: float
    activation_bytes: int


def account_call(config: GruConfig) -> CallAccount:
    """Totals of ``config``: parameters, FLOPs by term, bytes moved and activation memory."""
    layers = account_layers(config)
    t, s = config.seq_len, config.dtype_bytes
    proj = sum(a.input_projection_flops for a in layers)
    rec = sum(t * a.recurrent_flops_per_step for a in layers)
    pw = sum(t * a.pointwise_flops_per_step for a in layers)
    forward = proj + rec + pw
    backward = 0
    if config.mode == "training":
        backward = sum(a.backward_input_projection_flops + a.backward_recurrent_flops
                       + a.backward_pointwise_flops for a in layers)
    moved = sum(a.input_projection_bytes + t * (a.recurrent_bytes_per_step + a.pointwise_bytes_per_step)
                for a in layers)
    if config.mode == "training":
        moved *= 3  # backward reads and writes about twice what forward does
    params = sum(a.params for a in layers)
    return CallAccount(
        params=params,
        weight_bytes=params * s,
        input_bytes=config.tokens * config.input_size * s,
        output_bytes=config.tokens * config.directions * config.hidden_size * s,
        input_projection_flops=proj,
        recurrent_flops=rec,
        pointwise_flops=pw,
        forward_flops=forward,
        backward_flops=backward,
        total_flops=forward + backward,
        bytes_moved=moved,
        arithmetic_intensity_flops_per_byte=(forward + backward) / moved,
        activation_bytes=activation_bytes(config),
    )


def activation_bytes(config: GruConfig) -> int:
    """Peak activation bytes of one call, beyond weights and the input (and, for training, the
    weight gradients).

    Inference: the largest set of tensors alive at once, walking ATen's CPU path layer by layer —
    the previous layer's output and the current layer's ``INFERENCE_LIVE_TBH``·T·B·H. Training: what
    autograd keeps for backward from every step of every layer-direction and the stacked outputs, plus
    the transient peak of the backward pass.
    """
    tbh = config.tokens * config.hidden_size
    s = config.dtype_bytes
    d = config.directions
    if config.mode == "inference":
        peak = 0
        for layer in range(config.num_layers):
            previous = d * tbh if layer > 0 else 0
            peak = max(peak, previous + INFERENCE_LIVE_TBH[d] * tbh)
        return peak * s
    return training_activation_bytes(config) + TRAINING_TRANSIENT_WEIGHTS * recurrent_weight_bytes(config)


def training_activation_bytes(config: GruConfig) -> int:
    """What a training call keeps for backward (every step of every layer-direction, and the stacked
    outputs) plus the transient T·B·H-sized gradients of the backward pass, in bytes."""
    tbh = config.tokens * config.hidden_size
    saved = config.num_layers * config.directions * (TRAINING_SAVED_BH_PER_STEP + 1) * tbh
    return (saved + TRAINING_TRANSIENT_TBH * tbh) * config.dtype_bytes


def recurrent_weight_bytes(config: GruConfig) -> int:
    """Bytes of one W_hh matrix [3H, H]: the size of the per-step weight gradient autograd forms
    before adding it into the accumulated one."""
    return GATES * config.hidden_size * config.hidden_size * config.dtype_bytes


def compulsory_bytes(config: GruConfig) -> int:
    """Bytes a call must move at least once: weights, input and output. The roofline's floor and its
    arithmetic intensity are taken against these."""
    acc = account_call(config)
    return acc.weight_bytes + acc.input_bytes + acc.output_bytes


def footprint_bytes(config: GruConfig) -> int:
    """Estimated total memory of one call: weights (and their gradients when training), input and
    peak activations. Used to refuse shapes that cannot fit before trying them."""
    acc = account_call(config)
    grads = acc.weight_bytes if config.mode == "training" else 0
    return acc.weight_bytes + grads + acc.input_bytes + acc.activation_bytes
