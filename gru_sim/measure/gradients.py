"""Measuring gradient flow through time with torch on the CPU: ‖∂L/∂h_t‖ for every step t of a GRU,
for a loss on the last step, and the forward pass's numerical error in half precision.

The GRU runs step by step with ``torch.nn.GRU``'s exact equations (those of :mod:`gru_sim.reference`)
so that autograd can return the gradient of every intermediate state, which the fused ``nn.GRU`` does
not expose, and so that the update gate z of every step can be read. The weights are an ``nn.GRU``'s
(PyTorch's default initialisation, orthogonal recurrent blocks, or a ``state_dict`` file). The loss
is L = Σ_b ⟨v_b, y_T[b]⟩ with a random unit vector v_b per input b: one backward pass gives every
input's gradients, as inputs in a batch do not interact. The forward error is that of ``nn.GRU``
itself in each dtype, against the float64 NumPy reference with the same (rounded) weights and inputs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, OutOfMemoryError
from ..gradient_flow import INITS, SATURATED_Z, GradientMeasurement, GradientRun, GradientSetup
from ..reference import gru_forward
from .fingerprint import fingerprint
from .kernels import TORCH_DTYPES
from .run import MEMORY_HEADROOM, available_memory_bytes

# ``progress(done, total)``: sequence lengths measured so far, out of all of them.
Progress = Callable[[int, int], None]
GATES = 3


def measure_gradients(setup: GradientSetup, progress: Progress | None = None) -> GradientMeasurement:
    """Measure ``setup`` on this CPU now: one :class:`GradientRun` per sequence length, shortest first.

    Runs at ``setup.threads`` intra-op threads (NumPy's BLAS too) and puts torch's thread count back
    afterwards. Denormal floats are flushed to zero while measuring: vanishing gradients pass through
    the denormal range, where x86 arithmetic is a hundred times slower, and below float32's smallest
    normal number (1.2e-38) the norm carries no usable information anyway.
    """
    from threadpoolctl import threadpool_limits

    _check_fits(setup)
    weights = load_weights(setup)
    threads_before = torch.get_num_threads()
    start_s = time.perf_counter()
    try:
        torch.set_num_threads(setup.threads)
        torch.set_flush_denormal(True)
        with threadpool_limits(setup.threads):
            lengths = setup.sorted_seq_lens
            x_longest = make_inputs(setup, max(lengths))
            errors = _forward_errors(setup, weights, x_longest, lengths)
            runs = []
            for i, seq_len in enumerate(lengths):
                runs.append(_gradient_run(setup, weights, x_longest[:seq_len], errors[seq_len]))
                if progress is not None:
                    progress(i + 1, len(lengths))
        fp = fingerprint("cpu", torch.get_num_threads())
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads_before)
    return GradientMeasurement(setup=setup, runs=tuple(runs), wall_s=time.perf_counter() - start_s,
                               fingerprint=fp)


# ------------------------------------------------------------------------------------------- weights
def expected_shapes(setup: GradientSetup) -> dict[str, tuple[int, ...]]:
    """``nn.GRU``'s parameter names and shapes for ``setup``."""
    h = setup.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(setup.num_layers):
        layer_in = setup.input_size if layer == 0 else setup.directions * h
        for sfx in [""] + (["_reverse"] if setup.bidirectional else []):
            shapes[f"weight_ih_l{layer}{sfx}"] = (GATES * h, layer_in)
            shapes[f"weight_hh_l{layer}{sfx}"] = (GATES * h, h)
            shapes[f"bias_ih_l{layer}{sfx}"] = (GATES * h,)
            shapes[f"bias_hh_l{layer}{sfx}"] = (GATES * h,)
    return shapes


def load_weights(setup: GradientSetup) -> dict[str, torch.Tensor]:
    """The GRU's weights in float64 (rounded to ``setup.dtype`` and back, so that every dtype and the
    reference see the same numbers), by ``nn.GRU``'s parameter names."""
    if setup.init in INITS:
        torch.manual_seed(setup.seed)
        gru = torch.nn.GRU(setup.input_size, setup.hidden_size, setup.num_layers,
                           bidirectional=setup.bidirectional)
        state = {k: v.detach().to(torch.float64) for k, v in gru.state_dict().items()}
        if setup.init == "orthogonal":
            gen = torch.Generator().manual_seed(setup.seed + 2)
            for name, w in state.items():
                if name.startswith("weight_hh"):
                    for block in w.chunk(GATES, 0):  # r, z, n: one orthogonal H×H matrix each
                        torch.nn.init.orthogonal_(block, generator=gen)
    else:
        state = _read_state_dict(Path(setup.init), setup)
    dtype = TORCH_DTYPES[setup.dtype]
    return {k: v.to(torch.float64).to(dtype).to(torch.float64) for k, v in state.items()}


def _read_state_dict(path: Path, setup: GradientSetup) -> dict[str, torch.Tensor]:
    """An ``nn.GRU``'s weights from a ``state_dict`` file; the keys may carry a module prefix
    (``encoder.gru.weight_ih_l0``), which is dropped. Shapes must match ``setup``."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds (pickle, zip, OSError): all mean "unreadable"
        raise ConfigError(f"{path}: not a readable state_dict file ({type(err).__name__}: {err})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ConfigError(f"{path}: expected a state_dict (a mapping of names to tensors), "
                          f"found {type(raw).__name__}")
    prefixes = {k[: -len("weight_ih_l0")] for k in raw if k.endswith("weight_ih_l0")}
    if len(prefixes) != 1:
        found = "no" if not prefixes else f"{len(prefixes)} ({', '.join(sorted(p or '(none)' for p in prefixes))})"
        raise ConfigError(f"{path}: expected the weights of one nn.GRU (a key ending in weight_ih_l0), "
                          f"found {found}")
    prefix = prefixes.pop()
    state = {}
    for name, shape in expected_shapes(setup).items():
        tensor = raw.get(prefix + name)
        if tensor is None:
            raise ConfigError(f"{path}: {prefix + name} is missing: the file does not hold a GRU with "
                              f"num_layers={setup.num_layers}, bidirectional={str(setup.bidirectional).lower()}")
        if tuple(tensor.shape) != shape:
            raise ConfigError(f"{path}: {prefix + name} has shape {list(tensor.shape)}, expected {list(shape)} "
                              f"for input_size={setup.input_size}, hidden_size={setup.hidden_size}")
        state[name] = tensor.detach().to(torch.float64)
    extra = sorted(k[len(prefix):] for k in raw if k.startswith(prefix) and k[len(prefix):].startswith(
        ("weight_", "bias_")) and k[len(prefix):] not in state)
    if extra:
        raise ConfigError(f"{path}: holds {', '.join(extra)} beyond the GRU asked for: "
                          "check num_layers and bidirectional")
    return state


def make_inputs(setup: GradientSetup, seq_len: int) -> torch.Tensor:
    """Seeded standard-normal inputs ``[T, B, I]`` in float64; shorter lengths use a prefix."""
    gen = torch.Generator().manual_seed(setup.seed + 1)
    x = torch.randn(seq_len, setup.inputs, setup.input_size, generator=gen, dtype=torch.float64)
    return x.to(TORCH_DTYPES[setup.dtype]).to(torch.float64)


def _check_fits(setup: GradientSetup) -> None:
    """Refuse a setup whose autograd graph would not fit in the memory available now."""
    need = estimated_bytes(setup)
    have = available_memory_bytes("cpu")
    if need > MEMORY_HEADROOM * have:
        raise OutOfMemoryError(
            f"cpu memory: measuring gradients at T={max(setup.seq_lens)} needs about {need / 2**30:.2f} GiB, "
            f"more than {MEMORY_HEADROOM:.0%} of the {have / 2**30:.2f} GiB available; "
            "use fewer inputs or shorter sequences")


def estimated_bytes(setup: GradientSetup) -> int:
    """Bytes the step-by-step autograd graph of the longest sequence holds, roughly: per step, layer and
    direction about 16 tensors of [B, H] (gates, pre-activations, states) and the 3H input projection."""
    per_step = (16 + GATES) * setup.inputs * setup.hidden_size * 8
    return int(max(setup.seq_lens) * setup.num_layers * setup.directions * per_step)


# ----------------------------------------------------------------------------------------- gradients
def _gradient_run(setup: GradientSetup, weights: dict[str, torch.Tensor], x64: torch.Tensor,
                  forward_rel_error: dict[str, float]) -> GradientRun:
    norms, z = state_gradient_norms(setup, weights, x64, loss_directions(setup))
    return GradientRun(
        seq_len=x64.shape[0],
        grad_norm_by_steps_back=tuple(float(n) for n in norms.mean(dim=1).flip(0)),
        update_gate_saturation=float((z > SATURATED_Z).to(torch.float64).mean()),
        update_gate_mean=float(z.mean()),
        forward_rel_error=forward_rel_error,
    )


def loss_directions(setup: GradientSetup) -> torch.Tensor:
    """The loss's seeded random unit vectors v_b, one per input: ``[B, directions·H]`` in float64."""
    gen = torch.Generator().manual_seed(setup.seed + 3)
    v = torch.randn(setup.inputs, setup.directions * setup.hidden_size, generator=gen, dtype=torch.float64)
    return v / v.norm(dim=1, keepdim=True)


def state_gradient_norms(setup: GradientSetup, weights: dict[str, torch.Tensor], x64: torch.Tensor,
                         v64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """‖∂L/∂h_t‖ per step t = 0 … T and input b (``[T+1, B]``, float64) for L = Σ_b ⟨v_b, y_T[b]⟩,
    computed in ``setup.dtype``; h_t holds every layer's and direction's state after step t. Also
    every update-gate value z seen (flat, float64)."""
    dtype = TORCH_DTYPES[setup.dtype]
    seq_len, batch, _ = x64.shape
    params = {k: v.to(dtype) for k, v in weights.items()}
    states_by_step: list[list[torch.Tensor]] = [[] for _ in range(seq_len + 1)]
    z_values: list[torch.Tensor] = []
    layer_input = x64.to(dtype)
    for layer in range(setup.num_layers):
        outputs = []
        for direction in range(setup.directions):
            sfx = f"l{layer}" + ("_reverse" if direction else "")
            out, z = _layer_direction(layer_input, params, sfx, reverse=bool(direction),
                                      states_by_step=states_by_step)
            outputs.append(out)
            z_values.append(z.reshape(-1))
        layer_input = torch.cat(outputs, dim=2) if len(outputs) == 2 else outputs[0]
    loss = (layer_input[-1] * v64.to(dtype)).sum()
    flat = [h for states in states_by_step for h in states]
    grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    squares = torch.zeros(seq_len + 1, batch, dtype=torch.float64)
    for t, states in enumerate(states_by_step):
        for _ in states:
            g = next(grads)
            if g is not None:  # a state the loss does not depend on (a reverse direction's, at the top)
                squares[t] += g.to(torch.float64).pow(2).sum(dim=1)
    return squares.sqrt(), torch.cat(z_values).to(torch.float64)


def _layer_direction(layer_input: torch.Tensor, params: dict[str, torch.Tensor], sfx: str, reverse: bool,
                     states_by_step: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer and direction, step by step with ``nn.GRU``'s equations; appends each state after step
    t to ``states_by_step[t]`` (the forward direction's initial state to ``[0]``). Returns the output
    ``[T, B, H]`` and the update gates ``[T, B, H]`` (detached)."""
    w_ih, w_hh = params[f"weight_ih_{sfx}"], params[f"weight_hh_{sfx}"]
    b_ih, b_hh = params[f"bias_ih_{sfx}"], params[f"bias_hh_{sfx}"]
    seq_len, batch, features = layer_input.shape
    hidden = w_hh.shape[1]
    # All steps' input projections at once, then unbound: indexing one step at a time would make
    # autograd scatter each step's gradient into a full [T, B, 3H] zero tensor (quadratic in T).
    gi = torch.addmm(b_ih, layer_input.reshape(seq_len * batch, features), w_ih.t())
    gi_steps = gi.reshape(seq_len, batch, GATES * hidden).unbind(0)
    h = torch.zeros(batch, hidden, dtype=layer_input.dtype, requires_grad=True)
    if not reverse:
        states_by_step[0].append(h)
    outs: list[torch.Tensor] = [h] * seq_len
    zs: list[torch.Tensor] = [h] * seq_len
    for t in (range(seq_len - 1, -1, -1) if reverse else range(seq_len)):
        gh = torch.addmm(b_hh, h, w_hh.t())
        i_r, i_z, i_n = gi_steps[t].chunk(GATES, 1)
        h_r, h_z, h_n = gh.chunk(GATES, 1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1 - z) * n + z * h
        outs[t] = h
        zs[t] = z.detach()
        states_by_step[t + 1].append(h)
    return torch.stack(outs), torch.stack(zs)


# --------------------------------------------------------------------------------------- forward error
def _forward_errors(setup: GradientSetup, weights: dict[str, torch.Tensor], x64: torch.Tensor,
                    lengths: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """For each length T, each of ``setup.error_dtypes`` → max|y − y_ref| / max|y_ref| of ``nn.GRU``'s
    output of length T in that dtype against the float64 NumPy reference with the same rounded
    weights and inputs. A unidirectional GRU is causal, so the first T steps of the longest call are
    the call of length T; a bidirectional one runs each length on its own."""
    out: dict[int, dict[str, float]] = {t: {} for t in lengths}
    for name in setup.error_dtypes:
        dtype = TORCH_DTYPES[name]
        gru = torch.nn.GRU(setup.input_size, setup.hidden_size, setup.num_layers,
                           bidirectional=setup.bidirectional).to(dtype)
        gru.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
        w_ref = {k: v.to(dtype).to(torch.float64).numpy() for k, v in weights.items()}
        calls = [max(lengths)] if not setup.bidirectional else list(lengths)
        for call_len in calls:
            x = x64[:call_len].to(dtype)
            with torch.inference_mode():
                got = gru(x)[0].to(torch.float64).numpy()
            ref, _ = gru_forward(x.to(torch.float64).numpy(), w_ref, setup.num_layers, setup.bidirectional)
            for t in lengths:
                if (setup.bidirectional and t == call_len) or (not setup.bidirectional and t <= call_len):
                    out[t][name] = _max_rel_error(got[:t], ref[:t])
    return out


def _max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got − ref| / max|ref| (as :func:`gru_sim.measure.kernels.max_rel_error`); inf when the output
    is not finite."""
    if not np.all(np.isfinite(got)):
        return float("inf")
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    return diff / scale if scale > 0 else diff
