"""The ATen ops one call of ``torch.nn.GRU`` runs on CPU: the list the cost model's units are built on,
checked against ``torch.profiler`` by ``tests/test_kernel_list.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import GruConfig


def native_cpu_kernels(config: "GruConfig") -> dict[str, int]:
    """The ATen ops one inference call of ``torch.nn.GRU`` runs on CPU, as counts — the cost model's
    units (:mod:`.units`) are built on this list (``aten/src/ATen/native/RNN.cpp``: ``FullLayer``
    precomputes the input projection of all steps as one ``linear``, then ``GRUCell`` runs per step
    one ``linear`` of the hidden state, two ``sigmoid_`` and one ``tanh_`` on chunks of the gates, and
    the blend; each layer-direction's outputs are stacked, and so are the final hidden states)."""
    layer_directions = config.num_layers * config.directions
    steps = layer_directions * config.seq_len
    return {"aten::addmm": layer_directions + steps, "aten::sigmoid_": 2 * steps, "aten::tanh_": steps,
            "aten::stack": layer_directions + 1}
