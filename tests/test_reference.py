"""The NumPy reference GRU computes exactly what torch.nn.GRU computes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from gru_sim.errors import ConfigError
from gru_sim.reference import gru_forward

# float64 on both sides: what remains is summation order, far below this.
REL_TOL = 1e-10


def init_weights(input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 seed: int = 0, dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Random weights with torch.nn.GRU's names, shapes and U(−1/√H, 1/√H) initialisation."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    weights = {}
    for layer in range(num_layers):
        layer_in = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            for name, shape in ((f"weight_ih_l{layer}", (3 * hidden_size, layer_in)),
                                (f"weight_hh_l{layer}", (3 * hidden_size, hidden_size)),
                                (f"bias_ih_l{layer}", (3 * hidden_size,)),
                                (f"bias_hh_l{layer}", (3 * hidden_size,))):
                weights[name + suffix] = rng.uniform(-bound, bound, shape).astype(dtype)
    return weights


@dataclass(frozen=True)
class Case:
    batch: int
    seq_len: int
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    batch_first: bool
    with_h0: bool
    seed: int


cases = st.builds(
    Case,
    batch=st.integers(1, 4),
    seq_len=st.integers(1, 6),
    input_size=st.integers(1, 6),
    hidden_size=st.integers(1, 6),
    num_layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)


def _rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-300))


def _torch_and_reference(case: Case, scale: float = 1.0) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                 tuple[np.ndarray, np.ndarray]]:
    """Run nn.GRU and the reference on the same float64 weights, input and h0."""
    torch.manual_seed(case.seed)
    gru = torch.nn.GRU(case.input_size, case.hidden_size, case.num_layers,
                       bidirectional=case.bidirectional, batch_first=case.batch_first).double()
    weights = {k: v.detach().numpy().copy() for k, v in gru.state_dict().items()}
    rng = np.random.default_rng(case.seed)
    shape = ((case.batch, case.seq_len, case.input_size) if case.batch_first
             else (case.seq_len, case.batch, case.input_size))
    x = scale * rng.standard_normal(shape)
    dirs = 2 if case.bidirectional else 1
    h0 = rng.standard_normal((case.num_layers * dirs, case.batch, case.hidden_size)) if case.with_h0 else None
    with torch.no_grad():
        out_t, hn_t = gru(torch.from_numpy(x), None if h0 is None else torch.from_numpy(h0))
    out_r, hn_r = gru_forward(x, weights, case.num_layers, case.bidirectional, h0=h0,
                              batch_first=case.batch_first)
    return (out_t.numpy(), hn_t.numpy()), (out_r, hn_r)


@given(case=cases)
@example(case=Case(1, 1, 1, 1, 1, False, False, False, 0))     # the smallest GRU there is
@example(case=Case(1, 5, 3, 4, 1, False, False, True, 1))      # batch 1, a given h0
@example(case=Case(3, 1, 2, 3, 3, True, False, False, 2))      # seq_len 1, 3 layers, bidirectional
@example(case=Case(2, 4, 3, 5, 3, True, True, True, 3))        # everything at once, batch_first
def test_reference_output_matches_torch_gru(case: Case) -> None:
    (out_t, _), (out_r, _) = _torch_and_reference(case)
    assert out_r.shape == out_t.shape
    assert _rel_error(out_r, out_t) < REL_TOL


@given(case=cases)
@example(case=Case(2, 4, 3, 5, 3, True, True, True, 3))
def test_reference_final_hidden_matches_torch_gru(case: Case) -> None:
    (_, hn_t), (_, hn_r) = _torch_and_reference(case)
    assert hn_r.shape == hn_t.shape
    assert _rel_error(hn_r, hn_t) < REL_TOL


def test_reference_saturated_gates_match_torch_without_overflow() -> None:
    # Inputs of size ~1e3 drive every sigmoid and tanh deep into saturation.
    case = Case(2, 3, 4, 5, 2, True, False, True, 7)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (out_t, hn_t), (out_r, hn_r) = _torch_and_reference(case, scale=1e3)
    assert np.all(np.isfinite(out_r))
    assert _rel_error(out_r, out_t) < REL_TOL
    assert _rel_error(hn_r, hn_t) < REL_TOL


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (3, True)])
def test_init_weights_load_into_torch_gru_by_name_and_shape(num_layers: int, bidirectional: bool) -> None:
    weights = init_weights(3, 4, num_layers, bidirectional, seed=5)
    gru = torch.nn.GRU(3, 4, num_layers, bidirectional=bidirectional).double()
    # strict=True: no missing and no unexpected names; load_state_dict refuses wrong shapes.
    gru.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)


def test_init_weights_within_torch_init_bound() -> None:
    hidden = 16
    weights = init_weights(8, hidden, 2, True, seed=3)
    bound = 1.0 / np.sqrt(hidden)
    assert all(np.max(np.abs(w)) <= bound for w in weights.values())
    assert all(np.ptp(w) > 0 for w in weights.values())


def test_init_weights_same_seed_same_weights() -> None:
    a, b = init_weights(3, 4, 2, True, seed=11), init_weights(3, 4, 2, True, seed=11)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_reference_computes_in_dtype_of_input() -> None:
    weights = {k: v.astype(np.float32) for k, v in init_weights(3, 4, seed=0).items()}
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out, hn = gru_forward(x, weights)
    assert out.dtype == np.float32
    assert hn.dtype == np.float32


def test_reference_rejects_wrong_h0_shape() -> None:
    weights = init_weights(3, 4, seed=0)
    x = np.ones((5, 2, 3))
    with pytest.raises(ConfigError, match=r"\(1, 2, 4\)"):
        gru_forward(x, weights, h0=np.zeros((1, 3, 4)))


def test_reference_rejects_input_not_3d() -> None:
    weights = init_weights(3, 4, seed=0)
    with pytest.raises(ConfigError, match=r"\(5, 3\)"):
        gru_forward(np.ones((5, 3)), weights)
