"""The kernels the cost model composes a call from are the kernels torch really runs: the list read
from ATen's CPU GRU (gru_sim.model.kernel_list.native_cpu_kernels) against torch.profiler's count."""

from __future__ import annotations

from collections import Counter

import pytest

from gru_sim.config import GruConfig
from gru_sim.model.kernel_list import native_cpu_kernels


@pytest.mark.parametrize("layers,bidirectional,seq_len", [(1, False, 7), (2, True, 5), (3, False, 3)])
def test_the_native_cpu_gru_runs_the_kernels_the_model_composes(layers: int, bidirectional: bool, seq_len: int) -> None:
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    config = GruConfig(batch=3, seq_len=seq_len, input_size=8, hidden_size=16, num_layers=layers,
                       bidirectional=bidirectional)
    gru = torch.nn.GRU(8, 16, num_layers=layers, bidirectional=bidirectional)
    x = torch.randn(seq_len, 3, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode():
        gru(x)
    ran = Counter(e.name for e in prof.events())
    for op, count in native_cpu_kernels(config).items():
        assert ran[op] == count, op
