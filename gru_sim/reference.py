"""A GRU in plain NumPy with exactly torch.nn.GRU's equations, as the yardstick for numerical error.

Per layer and direction, with gates in torch's order r | z | n (rows of ``W_ih`` and ``W_hh``)::

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))     # reset applied after the hidden matmul
    h' = (1 − z) ⊙ n + z ⊙ h

Layer ``l > 0`` reads the concatenated outputs of both directions of layer ``l − 1``; the reverse
direction walks the sequence from its end. Weights use torch's names (``weight_ih_l0``,
``weight_hh_l0_reverse``, ...), so ``{k: v.numpy() for k, v in gru.state_dict().items()}`` fits.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import ConfigError


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Two branches so that exp never overflows for large |x|.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def gru_forward(x: np.ndarray, weights: Mapping[str, np.ndarray], num_layers: int = 1,
                bidirectional: bool = False, h0: np.ndarray | None = None,
                batch_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run a GRU forward like ``torch.nn.GRU(...)(x, h0)``.

    ``x`` is ``[T, B, I]`` (``[B, T, I]`` with ``batch_first``); ``h0`` is
    ``[num_layers·directions, B, H]`` or None for zeros. Returns ``(output, h_n)``: output is
    ``[T, B, directions·H]`` (``[B, T, ...]`` with ``batch_first``), ``h_n`` is
    ``[num_layers·directions, B, H]``. Computes in the dtype of ``x``.
    """
    if x.ndim != 3:
        raise ConfigError(f"x must be 3-d [T, B, I] (or [B, T, I] with batch_first), got shape {x.shape}")
    seq = np.swapaxes(x, 0, 1) if batch_first else x
    t_len, batch, _ = seq.shape
    hidden = weights["weight_hh_l0"].shape[1]
    dirs = 2 if bidirectional else 1
    if h0 is None:
        h0 = np.zeros((num_layers * dirs, batch, hidden), dtype=seq.dtype)
    if h0.shape != (num_layers * dirs, batch, hidden):
        raise ConfigError(f"h0 must have shape {(num_layers * dirs, batch, hidden)}, got {h0.shape}")
    layer_input = seq
    finals = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(dirs):
            sfx = f"l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = weights[f"weight_ih_{sfx}"], weights[f"weight_hh_{sfx}"]
            b_ih, b_hh = weights[f"bias_ih_{sfx}"], weights[f"bias_hh_{sfx}"]
            # Input projection for all steps at once: [T, B, 3H].
            gi = layer_input @ w_ih.T + b_ih
            h = h0[layer * dirs + direction]
            out = np.empty((t_len, batch, hidden), dtype=seq.dtype)
            steps = range(t_len - 1, -1, -1) if direction else range(t_len)
            for t in steps:
                gh = h @ w_hh.T + b_hh
                i_r, i_z, i_n = np.split(gi[t], 3, axis=1)
                h_r, h_z, h_n = np.split(gh, 3, axis=1)
                r = _sigmoid(i_r + h_r)
                z = _sigmoid(i_z + h_z)
                n = np.tanh(i_n + r * h_n)
                h = (1.0 - z) * n + z * h
                out[t] = h
            outputs.append(out)
            finals.append(h)
        layer_input = np.concatenate(outputs, axis=2) if dirs == 2 else outputs[0]
    output = np.swapaxes(layer_input, 0, 1) if batch_first else layer_input
    return output, np.stack(finals)
