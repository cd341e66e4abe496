"""measure_gradients and ``gru-sim gradients``: cases with a known answer, tiny GRUs in float64."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from gru_sim.errors import ConfigError
from gru_sim.gradient_flow import GradientSetup, decay_per_step, gradient_record, horizon_steps
from gru_sim.measure.gradients import (expected_shapes, load_weights, loss_directions, make_inputs,
                                       measure_gradients, state_gradient_norms)

pytestmark = pytest.mark.usefixtures("restore_threads")

# A gate bias this large saturates its sigmoid exactly in float64: 1 / (1 + e^-100) rounds to 1.
SATURATING_BIAS = 100.0


def _setup(tmp_path: Path | None = None, state: dict[str, torch.Tensor] | None = None,
           **changes: Any) -> GradientSetup:
    init = "default"
    if state is not None:
        assert tmp_path is not None
        init = str(tmp_path / "weights.pt")
        torch.save(state, init)
    values: dict[str, Any] = dict(input_size=3, hidden_size=6, dtype="float64", init=init, seq_lens=(12,),
                                  inputs=2, error_dtypes=())
    return GradientSetup(**{**values, **changes})


def _forced_gates(hidden: int, inputs: int, z_bias: float, r_bias: float = 0.0,
                  w_hn: np.ndarray | None = None, seed: int = 0, zero_inputs: bool = False) -> dict[str, torch.Tensor]:
    """A one-layer GRU's state_dict whose update gate (and reset gate, when ``r_bias`` is large) is pinned
    by its bias: the gate's rows of W_ih and W_hh are zero. The other rows are random (W_ih zero when
    ``zero_inputs``); W_hn is ``w_hn`` when given."""
    rng = np.random.default_rng(seed)
    w_ih = rng.uniform(-0.5, 0.5, (3 * hidden, inputs)) * (0.0 if zero_inputs else 1.0)
    w_hh = rng.uniform(-0.5, 0.5, (3 * hidden, hidden))
    b_ih = rng.uniform(-0.5, 0.5, 3 * hidden) * (0.0 if zero_inputs else 1.0)
    b_hh = np.zeros(3 * hidden) if zero_inputs else rng.uniform(-0.5, 0.5, 3 * hidden)
    r, z, n = slice(0, hidden), slice(hidden, 2 * hidden), slice(2 * hidden, 3 * hidden)
    for gate, bias in ((z, z_bias), (r, r_bias)):
        if bias:
            w_ih[gate] = 0.0
            w_hh[gate] = 0.0
            b_ih[gate] = bias
            b_hh[gate] = 0.0
    if w_hn is not None:
        w_hh[n] = w_hn
    return {name: torch.tensor(value, dtype=torch.float64) for name, value in
            (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh))}


def _scaled_orthogonal(hidden: int, scale: float, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((hidden, hidden)))
    return scale * q


def _only_run(setup: GradientSetup) -> dict[str, Any]:
    record = gradient_record(measure_gradients(setup))
    assert len(record["by_seq_len"]) == 1
    return record


# ---------------------------------------------------------------------------------- known answers
def test_update_gate_forced_to_one_carries_the_gradient_unchanged(tmp_path: Path) -> None:
    setup = _setup(tmp_path, _forced_gates(6, 3, z_bias=SATURATING_BIAS), seq_lens=(40,))
    record = _only_run(setup)
    # The loss is a unit-norm projection of h_T, and h_t = h_{t-1} exactly: every norm is 1.
    assert record["grad_norm_by_steps_back"] == pytest.approx([1.0] * 41, rel=1e-12)
    assert record["decay_per_step"] == pytest.approx(1.0, rel=1e-12)
    assert record["horizon_steps"] is None
    assert record["update_gate_saturation"] == 1.0


def test_update_gate_forced_to_zero_decays_at_the_spectral_norm_of_w_hn(tmp_path: Path) -> None:
    # z = 0, r = 1 and no input: h_t = tanh(W_hn h_{t-1}) stays 0, so ∂h_t/∂h_{t-1} = W_hn, and with
    # W_hn = s·Q (Q orthogonal) every step scales the gradient by exactly s = ‖W_hn‖₂, the bound.
    scale = 0.6
    state = _forced_gates(6, 3, z_bias=-SATURATING_BIAS, r_bias=SATURATING_BIAS,
                          w_hn=_scaled_orthogonal(6, scale), zero_inputs=True)
    record = _only_run(_setup(tmp_path, state, seq_lens=(30,)))
    assert record["grad_norm_by_steps_back"] == pytest.approx([scale**k for k in range(31)], rel=1e-9)
    assert record["decay_per_step"] == pytest.approx(scale, rel=1e-9)
    assert record["horizon_steps"] == math.ceil(math.log(1000) / math.log(1 / scale))
    assert record["update_gate_saturation"] == 0.0


def test_decay_never_exceeds_the_spectral_norm_bound_with_random_inputs(tmp_path: Path) -> None:
    # With inputs, ∂h_t/∂h_{t-1} = diag(1 − n²)·W_hn: each step shrinks the gradient by at most
    # ‖W_hn‖₂, and a least-squares slope is a weighted mean of the steps' log-ratios.
    w_hn = np.random.default_rng(5).standard_normal((6, 6))
    w_hn *= 0.7 / np.linalg.norm(w_hn, 2)
    state = _forced_gates(6, 3, z_bias=-SATURATING_BIAS, r_bias=SATURATING_BIAS, w_hn=w_hn)
    record = _only_run(_setup(tmp_path, state, seq_lens=(25,)))
    norms = np.array(record["grad_norm_by_steps_back"])
    assert np.all(norms[1:] <= 0.7 * norms[:-1] * (1 + 1e-12))
    assert record["decay_per_step"] <= 0.7 * (1 + 1e-12)


def test_gradient_of_the_initial_state_matches_nn_gru_autograd() -> None:
    setup = _setup(seq_lens=(9,), inputs=3)
    weights = load_weights(setup)
    x, v = make_inputs(setup, 9), loss_directions(setup)
    norms, _z = state_gradient_norms(setup, weights, x, v)
    gru = torch.nn.GRU(3, 6).double()
    gru.load_state_dict(weights)
    h0 = torch.zeros(1, 3, 6, dtype=torch.float64, requires_grad=True)
    out, _ = gru(x, h0)
    (grad_h0,) = torch.autograd.grad((out[-1] * v).sum(), h0)
    assert norms[0].numpy() == pytest.approx(grad_h0[0].norm(dim=1).numpy(), rel=1e-10)
    assert norms[-1].numpy() == pytest.approx(np.ones(3), rel=1e-12)  # ‖v_b‖ = 1


def test_stacked_bidirectional_gru_gives_one_norm_per_step_back() -> None:
    setup = _setup(num_layers=2, bidirectional=True, seq_lens=(7,), dtype="float32")
    record = _only_run(setup)
    norms = record["grad_norm_by_steps_back"]
    assert len(norms) == 8
    assert all(n > 0 for n in norms)


def test_every_sequence_length_is_measured_once_shortest_first() -> None:
    record = gradient_record(measure_gradients(_setup(seq_lens=(9, 4, 9))))
    assert [r["seq_len"] for r in record["by_seq_len"]] == [4, 9]
    assert [len(r["grad_norm_by_steps_back"]) for r in record["by_seq_len"]] == [5, 10]


def test_fitted_decay_and_horizon_are_those_of_the_measured_norms() -> None:
    record = _only_run(_setup(seq_lens=(30,)))
    norms = record["grad_norm_by_steps_back"]
    assert record["decay_per_step"] == decay_per_step(norms)
    assert record["horizon_steps"] == horizon_steps(norms)


# --------------------------------------------------------------------------------- forward error
def test_forward_error_is_rounding_in_float64_and_larger_in_half_precision() -> None:
    record = _only_run(_setup(seq_lens=(20,), error_dtypes=("float64", "float16", "bfloat16")))
    errors = record["forward_rel_error"]
    assert errors["float64"] < 1e-12
    assert 1e-12 < errors["float16"] < 0.1
    assert errors["float16"] < errors["bfloat16"] < 0.1  # bfloat16 keeps 8 mantissa bits, float16 11


def test_forward_error_of_a_bidirectional_gru_is_measured_per_length() -> None:
    record = gradient_record(measure_gradients(
        _setup(bidirectional=True, seq_lens=(5, 10), error_dtypes=("float64",))))
    assert [set(r["forward_rel_error"]) for r in record["by_seq_len"]] == [{"float64"}, {"float64"}]
    assert all(r["forward_rel_error"]["float64"] < 1e-12 for r in record["by_seq_len"])


# ------------------------------------------------------------------------------------------ weights
def test_orthogonal_init_makes_each_recurrent_gate_block_orthogonal() -> None:
    weights = load_weights(_setup(init="orthogonal"))
    for block in weights["weight_hh_l0"].chunk(3, 0):
        assert (block.T @ block).numpy() == pytest.approx(np.eye(6), abs=1e-12)


def test_a_state_dict_with_a_module_prefix_is_read(tmp_path: Path) -> None:
    gru = torch.nn.GRU(3, 6).double()
    torch.save({f"encoder.rnn.{k}": v for k, v in gru.state_dict().items()}, tmp_path / "model.pt")
    weights = load_weights(_setup(init=str(tmp_path / "model.pt")))
    assert torch.equal(weights["weight_hh_l0"], gru.weight_hh_l0.detach())


def test_a_state_dict_of_another_shape_is_refused_naming_the_key(tmp_path: Path) -> None:
    torch.save(torch.nn.GRU(3, 5).state_dict(), tmp_path / "h5.pt")
    with pytest.raises(ConfigError, match=r"weight_ih_l0 has shape \[15, 3\], expected \[18, 3\]"):
        load_weights(_setup(init=str(tmp_path / "h5.pt")))


def test_a_state_dict_with_more_layers_than_asked_is_refused(tmp_path: Path) -> None:
    torch.save(torch.nn.GRU(3, 6, num_layers=2).state_dict(), tmp_path / "l2.pt")
    with pytest.raises(ConfigError, match="weight_ih_l1"):
        load_weights(_setup(init=str(tmp_path / "l2.pt")))


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a readable state_dict"):
        load_weights(_setup(init=str(tmp_path / "junk.pt")))


def test_expected_shapes_follow_nn_gru() -> None:
    setup = _setup(num_layers=2, bidirectional=True)
    gru = torch.nn.GRU(3, 6, num_layers=2, bidirectional=True)
    assert expected_shapes(setup) == {k: tuple(v.shape) for k, v in gru.state_dict().items()}


def test_measuring_puts_the_thread_count_back() -> None:
    before = torch.get_num_threads()
    measure_gradients(_setup(threads=1))
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------- CLI
@pytest.mark.slow  # a subprocess that imports torch
def test_cli_json_has_the_contract_keys(run_cli: Callable[..., Any]) -> None:
    result = run_cli(["gradients", "--input-size", "3", "--hidden-size", "6", "--seq-len", "15", "--json",
                      "--no-error"])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    for key in ("config", "grad_norm_by_steps_back", "decay_per_step", "horizon_steps",
                "update_gate_saturation"):
        assert key in record
    assert len(record["grad_norm_by_steps_back"]) == 16


@pytest.mark.slow  # a subprocess that imports torch
def test_cli_table_has_a_row_per_length_and_the_sentence(run_cli: Callable[..., Any]) -> None:
    result = run_cli(["gradients", "--input-size", "3", "--hidden-size", "6", "--seq-lens", "10,20",
                      "--init", "orthogonal"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["10"] for line in lines)
    assert any(line.split()[:1] == ["20"] for line in lines)
    assert "gradients from step 0" in result.stdout


@pytest.mark.slow  # a subprocess that imports torch
def test_cli_missing_state_dict_is_one_line_and_exit_2(run_cli: Callable[..., Any]) -> None:
    result = run_cli(["gradients", "--input-size", "3", "--hidden-size", "6", "--seq-len", "5",
                      "--init", "no-such-file.pt"])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no-such-file.pt" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow  # a subprocess that imports torch
def test_cli_refuses_cuda(run_cli: Callable[..., Any]) -> None:
    result = run_cli(["gradients", "--input-size", "3", "--hidden-size", "6", "--seq-len", "5",
                      "--device", "cuda"])
    assert result.returncode == 2
    assert "cpu" in result.stderr


@pytest.mark.slow  # a subprocess that imports torch
def test_cli_refuses_an_implementation_other_than_torch(run_cli: Callable[..., Any]) -> None:
    result = run_cli(["gradients", "--input-size", "3", "--hidden-size", "6", "--seq-len", "5",
                      "--impl", "numpy-reference"])
    assert result.returncode == 2
    assert "impl(=numpy-reference)" in result.stderr
