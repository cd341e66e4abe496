"""The analytic counts agree with what torch itself has and does: its parameters, the matmul FLOPs its
FLOP counter sees, and the resident memory one call really takes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from gru_sim.accounting import account_call, account_layers, activation_bytes
from gru_sim.config import GruConfig
from gru_sim.measure.memory import peak_memory_cpu

# (batch, seq_len, input_size, hidden_size, num_layers, bidirectional)
SHAPES = [
    (2, 3, 4, 5, 1, False),
    (1, 1, 2, 3, 1, False),      # batch 1, seq_len 1: no recurrent data gradient at all
    (4, 2, 7, 3, 3, False),
    (2, 5, 3, 4, 2, True),
    (3, 4, 5, 6, 3, True),
]
SHAPE_IDS = ["B{}-T{}-I{}-H{}-L{}{}".format(*s[:5], "-bi" if s[5] else "") for s in SHAPES]

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 8), st.integers(1, 8),
                   st.integers(1, 3), st.booleans())


def matmul_flops(config: GruConfig) -> int:
    """Matmul FLOPs of one call from the per-layer accounts: what ``FlopCounterMode`` counts."""
    layers = account_layers(config)
    t = config.seq_len
    fwd = sum(a.input_projection_flops + t * a.recurrent_flops_per_step for a in layers)
    if config.mode == "inference":
        return fwd
    return fwd + sum(a.backward_input_projection_flops + a.backward_recurrent_flops for a in layers)


def _config(shape: tuple[int, int, int, int, int, bool], mode: str = "inference",
            dtype: str = "float32") -> GruConfig:
    b, t, i, h, layers, bi = shape
    return GruConfig(batch=b, seq_len=t, input_size=i, hidden_size=h, num_layers=layers,
                     bidirectional=bi, mode=mode, dtype=dtype)


def _counted_flops(config: GruConfig) -> int:
    """FLOPs FlopCounterMode counts for one CPU call of ``config``, run as the kernels run it."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(config.input_size, config.hidden_size, config.num_layers,
                       bidirectional=config.bidirectional).double()
    x = torch.randn(config.seq_len, config.batch, config.input_size, dtype=torch.float64)
    counter = FlopCounterMode(display=False)
    with counter:
        if config.mode == "inference":
            with torch.inference_mode():
                gru(x)
        else:
            gru(x)[0].sum().backward()  # x does not require grad, as in the training kernel
    return counter.get_total_flops()


@given(shape=shapes)
def test_param_count_equals_torch_gru_numel(shape: tuple[int, int, int, int, int, bool]) -> None:
    config = _config(shape)
    gru = torch.nn.GRU(config.input_size, config.hidden_size, config.num_layers,
                       bidirectional=config.bidirectional)
    assert account_call(config).params == sum(p.numel() for p in gru.parameters())


@pytest.mark.parametrize("dtype,size", [("float32", 4), ("float64", 8)])
def test_weight_bytes_are_params_times_dtype_size(dtype: str, size: int) -> None:
    acc = account_call(_config((2, 3, 4, 5, 2, True), dtype=dtype))
    assert acc.weight_bytes == size * acc.params


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_inference_matmul_flops_equal_flop_counter(shape: tuple[int, int, int, int, int, bool]) -> None:
    config = _config(shape, "inference")
    assert matmul_flops(config) == _counted_flops(config)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_training_matmul_flops_equal_flop_counter(shape: tuple[int, int, int, int, int, bool]) -> None:
    config = _config(shape, "training")
    assert matmul_flops(config) == _counted_flops(config)


@given(shape=shapes)
def test_call_forward_matmul_terms_equal_matmul_flops(shape: tuple[int, int, int, int, int, bool]) -> None:
    acc = account_call(_config(shape, "inference"))
    assert acc.input_projection_flops + acc.recurrent_flops == matmul_flops(_config(shape, "inference"))


@given(shape=shapes)
def test_training_adds_backward_and_keeps_forward(shape: tuple[int, int, int, int, int, bool]) -> None:
    inference, training = account_call(_config(shape, "inference")), account_call(_config(shape, "training"))
    assert inference.backward_flops == 0
    assert training.forward_flops == inference.forward_flops
    assert training.backward_flops > 0
    assert training.total_flops == training.forward_flops + training.backward_flops


@given(shape=shapes)
def test_layer_accounts_cover_every_layer_and_direction(shape: tuple[int, int, int, int, int, bool]) -> None:
    config = _config(shape)
    layers = account_layers(config)
    assert [(a.layer, a.direction) for a in layers] == [
        (layer, d) for layer in range(config.num_layers) for d in range(config.directions)]
    assert all(a.input_size == config.layer_input_size(a.layer) for a in layers)


@given(shape=shapes)
def test_arithmetic_intensity_is_total_flops_per_byte_moved(
        shape: tuple[int, int, int, int, int, bool]) -> None:
    acc = account_call(_config(shape))
    assert acc.arithmetic_intensity_flops_per_byte == pytest.approx(acc.total_flops / acc.bytes_moved)


# Mid-size shapes: every per-step tensor (B·H elements) is far above glibc's mmap threshold, so the
# resident set follows live tensors. One unidirectional, one bidirectional (whose ATen path differs).
MEMORY_SHAPES = [(32, 64, 128, 256, 1, False), (32, 64, 128, 256, 1, True)]


@pytest.mark.slow
@pytest.mark.parametrize("shape", MEMORY_SHAPES, ids=["unidirectional", "bidirectional"])
def test_inference_activation_bytes_close_to_measured_peak_rss(
        shape: tuple[int, int, int, int, int, bool]) -> None:
    config = _config(shape, "inference")
    predicted = activation_bytes(config)
    measured = peak_memory_cpu(config, seed=0, timeout_s=120)
    assert measured > 0
    assert abs(predicted - measured) <= 0.20 * measured, (
        f"activation_bytes {predicted} vs measured peak RSS growth {measured} "
        f"({predicted / measured:.2f}x) for {config}")
