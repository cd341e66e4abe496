"""The GRU implementations gru-sim measures, each built from one config and one seed.

* ``torch-gru``: ``torch.nn.GRU`` — cuDNN on CUDA, ATen's native path on CPU.
* ``torch-gru-cell``: a Python loop over ``torch.nn.GRUCell``, the unfused baseline.
* ``numpy-reference``: :func:`gru_sim.reference.gru_forward`.

A :class:`Kernel` runs one call: ``inference`` is a forward under ``torch.inference_mode``;
``training`` is a forward, a scalar loss (the sum of the output) and a backward. The three
implementations share the same weights for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import GruConfig
from ..reference import gru_forward

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64,
                "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Kernel:
    """One ready-to-run GRU call. ``call()`` runs it; ``output()`` returns its forward output as a
    float64 array for the error check; ``weights`` and ``inputs`` are float64 copies."""

    config: GruConfig
    call: Callable[[], object]
    output: Callable[[], np.ndarray]
    weights: dict[str, np.ndarray]
    inputs: np.ndarray


def make_gru(config: GruConfig, seed: int) -> torch.nn.GRU:
    """The nn.GRU of ``config`` with seeded weights, on its device and in its dtype."""
    torch.manual_seed(seed)
    gru = torch.nn.GRU(config.input_size, config.hidden_size, config.num_layers,
                       bidirectional=config.bidirectional)
    return gru.to(device=config.device, dtype=TORCH_DTYPES[config.dtype])


def make_inputs(config: GruConfig, seed: int) -> torch.Tensor:
    """A seeded ``[T, B, I]`` standard-normal input (never zeros: zeros take fast paths in some BLAS)."""
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(config.seq_len, config.batch, config.input_size, generator=gen, dtype=torch.float64)
    return x.to(device=config.device, dtype=TORCH_DTYPES[config.dtype])


def torch_call(config: GruConfig, gru: torch.nn.GRU, x: torch.Tensor
                ) -> tuple[Callable[[], object], Callable[[], torch.Tensor]]:
    """The call of ``config`` (inference or training) on module ``gru`` and input ``x``, and its forward,
    for a torch implementation."""
    if config.impl == "torch-gru":
        forward = lambda: gru(x)[0]  # noqa: E731
        params = list(gru.parameters())
    else:
        forward_x, params = _cell_loop(gru, config)
        forward = lambda: forward_x(x)  # noqa: E731

    if config.mode == "inference":
        def call() -> object:
            with torch.inference_mode():
                return forward()
    else:
        def call() -> object:
            for p in params:
                p.grad = None
            out = forward()
            out.sum().backward()
            return out

    return call, forward


def build_call(config: GruConfig, seed: int = 0) -> Callable[[], object]:
    """Only the call of ``config``, without the float64 copies :func:`build_kernel` keeps for the error
    check: for timing many calls quickly (the calibration's unit tables)."""
    if config.impl == "numpy-reference":
        return build_kernel(config, seed).call
    return torch_call(config, make_gru(config, seed), make_inputs(config, seed))[0]


def build_kernel(config: GruConfig, seed: int = 0) -> Kernel:
    """Build the implementation ``config.impl`` of ``config``, ready to call."""
    gru = make_gru(config, seed)
    x = make_inputs(config, seed)
    weights = {k: v.detach().to("cpu", torch.float64).numpy() for k, v in gru.state_dict().items()}
    inputs = x.detach().to("cpu", torch.float64).numpy()
    if config.impl == "numpy-reference":
        return _numpy_kernel(config, weights, inputs)
    call, forward = torch_call(config, gru, x)

    def output() -> np.ndarray:
        with torch.inference_mode():
            return forward().to("cpu", torch.float64).numpy()

    return Kernel(config=config, call=call, output=output, weights=weights, inputs=inputs)


def _cell_loop(gru: torch.nn.GRU, config: GruConfig) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                                list[torch.nn.Parameter]]:
    """GRUCells holding ``gru``'s weights, and a Python loop over time that runs them."""
    cells = []
    for layer in range(config.num_layers):
        for direction in range(config.directions):
            sfx = f"l{layer}" + ("_reverse" if direction else "")
            cell = torch.nn.GRUCell(config.layer_input_size(layer), config.hidden_size)
            cell = cell.to(device=config.device, dtype=TORCH_DTYPES[config.dtype])
            with torch.no_grad():
                cell.weight_ih.copy_(getattr(gru, f"weight_ih_{sfx}"))
                cell.weight_hh.copy_(getattr(gru, f"weight_hh_{sfx}"))
                cell.bias_ih.copy_(getattr(gru, f"bias_ih_{sfx}"))
                cell.bias_hh.copy_(getattr(gru, f"bias_hh_{sfx}"))
            cells.append(cell)

    def forward(x: torch.Tensor) -> torch.Tensor:
        layer_input = x
        for layer in range(config.num_layers):
            outs = []
            for direction in range(config.directions):
                cell = cells[layer * config.directions + direction]
                h = torch.zeros(config.batch, config.hidden_size, device=x.device, dtype=x.dtype)
                steps = range(config.seq_len - 1, -1, -1) if direction else range(config.seq_len)
                hs: list[torch.Tensor] = [h] * config.seq_len
                for t in steps:
                    h = cell(layer_input[t], h)
                    hs[t] = h
                outs.append(torch.stack(hs))
            layer_input = torch.cat(outs, dim=2) if len(outs) == 2 else outs[0]
        return layer_input

    return forward, [p for c in cells for p in c.parameters()]


def _numpy_kernel(config: GruConfig, weights: dict[str, np.ndarray], inputs: np.ndarray) -> Kernel:
    np_dtype = np.float32 if config.dtype == "float32" else np.float64
    w = {k: v.astype(np_dtype) for k, v in weights.items()}
    x = inputs.astype(np_dtype)

    def call() -> np.ndarray:
        return gru_forward(x, w, config.num_layers, config.bidirectional)[0]

    return Kernel(config=config, call=call, output=lambda: call().astype(np.float64),
                  weights=weights, inputs=inputs)


def max_rel_error(kernel: Kernel) -> float:
    """max |y − y_ref| / max |y_ref| of the forward output against the float64 NumPy reference.

    Normalised by the largest reference value, not elementwise: an elementwise ratio is dominated by
    outputs that happen to lie near zero.
    """
    c = kernel.config
    ref, _ = gru_forward(kernel.inputs, kernel.weights, c.num_layers, c.bidirectional)
    got = kernel.output()
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(got - ref)) / scale) if scale > 0 else float(np.max(np.abs(got - ref)))
