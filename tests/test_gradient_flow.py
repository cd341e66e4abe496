"""The analysis of measured gradient norms (gru_sim.gradient_flow): no torch, known sequences."""

from __future__ import annotations

import json
import math

import pytest

from gru_sim.errors import ConfigError
from gru_sim.gradient_flow import (GradientMeasurement, GradientRun, GradientSetup, decay_per_step,
                                   fmt_power_of_ten, fmt_ratio, gradient_record, horizon_steps,
                                   summary_sentence)

# CONTRACT.md, "Gradient flow": the keys of `gru-sim gradients --json`.
CONTRACT_KEYS = ["config", "grad_norm_by_steps_back", "decay_per_step", "horizon_steps",
                 "update_gate_saturation"]


def _geometric(factor: float, seq_len: int, first: float = 1.0) -> list[float]:
    return [first * factor**k for k in range(seq_len + 1)]


def _run(norms: list[float], saturation: float = 0.0, errors: dict[str, float] | None = None) -> GradientRun:
    return GradientRun(seq_len=len(norms) - 1, grad_norm_by_steps_back=tuple(norms),
                       update_gate_saturation=saturation, update_gate_mean=0.5, forward_rel_error=errors or {})


def test_decay_of_a_geometric_sequence_is_its_factor() -> None:
    assert decay_per_step(_geometric(0.8, 50, first=3.0)) == pytest.approx(0.8, rel=1e-12)


def test_decay_above_one_when_gradients_grow() -> None:
    assert decay_per_step(_geometric(1.05, 40)) == pytest.approx(1.05, rel=1e-12)


def test_decay_leaves_out_underflowed_and_overflowed_norms() -> None:
    norms = _geometric(0.5, 10) + [0.0, 0.0, math.inf]
    assert decay_per_step(norms) == pytest.approx(0.5, rel=1e-12)


def test_decay_is_none_with_fewer_than_two_usable_norms() -> None:
    assert decay_per_step([1.0, 0.0, 0.0]) is None


def test_horizon_is_the_first_step_back_a_thousand_times_below_the_last_step() -> None:
    # 0.5**10 = 1/1024 is the first power of 1/2 at or below 1/1000.
    assert horizon_steps(_geometric(0.5, 30)) == 10


def test_horizon_is_none_when_the_gradient_never_falls_a_thousandfold_within_t() -> None:
    assert horizon_steps(_geometric(0.99, 100)) is None
    assert horizon_steps(_geometric(1.1, 100)) is None


def test_horizon_counts_an_underflow_to_zero_as_fallen() -> None:
    assert horizon_steps([1.0, 0.5, 0.0, 0.0]) == 2


def test_record_has_the_contract_keys_for_the_longest_length_and_every_length() -> None:
    setup = GradientSetup(input_size=3, hidden_size=4, seq_lens=(20, 5))
    runs = (_run(_geometric(0.5, 5)), _run(_geometric(0.5, 20)))
    record = gradient_record(GradientMeasurement(setup=setup, runs=runs, wall_s=0.1))
    assert all(key in record for key in CONTRACT_KEYS)
    assert record["config"]["seq_len"] == 20
    assert len(record["grad_norm_by_steps_back"]) == 21
    assert [r["seq_len"] for r in record["by_seq_len"]] == [5, 20]
    assert all(all(key in r for key in CONTRACT_KEYS[1:]) for r in record["by_seq_len"])


def test_record_is_strict_json_even_when_a_norm_overflowed() -> None:
    setup = GradientSetup(input_size=3, hidden_size=4, seq_lens=(3,))
    runs = (_run([1.0, 1e30, math.inf, math.nan], errors={"float16": math.inf}),)
    record = gradient_record(GradientMeasurement(setup=setup, runs=runs, wall_s=0.1))
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text)["grad_norm_by_steps_back"][2] is None
    assert record["forward_rel_error"]["float16"] is None


def test_sentence_for_vanishing_gradients_says_the_dependencies_cannot_be_learned() -> None:
    sentence = summary_sentence(_run(_geometric(0.1, 9)))
    assert sentence.startswith("gradients from step 0 are 1e-9 of those from the last step at T = 9")
    assert "cannot learn dependencies that long without truncation or a different initialisation" in sentence


def test_sentence_for_underflowed_gradients_gives_the_fitted_ratio() -> None:
    norms = _geometric(0.5, 100)[:50] + [0.0] * 51
    sentence = summary_sentence(_run(norms), dtype="float32")
    assert "about 8e-31 of those from the last step at T = 100" in sentence  # 0.5**100 = 7.9e-31
    assert "underflow to zero" in sentence


def test_sentence_for_exploding_gradients_says_they_explode() -> None:
    assert "explode" in summary_sentence(_run(_geometric(1.2, 100)))


def test_sentence_for_gradients_that_carry_says_they_reach_the_whole_sequence() -> None:
    assert "reach the whole sequence" in summary_sentence(_run(_geometric(0.999, 100), saturation=0.9))


def test_ratios_and_powers_of_ten_read_plainly() -> None:
    assert fmt_ratio(1.2e-9) == "1e-9"
    assert fmt_ratio(0.43) == "0.43"
    assert fmt_ratio(3.2e5) == "3e+5"
    assert fmt_ratio(0.0) == "0 (underflow)"
    assert fmt_power_of_ten(-290.3) == "5e-291"


def test_setup_refuses_an_init_that_is_neither_named_nor_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="init"):
        GradientSetup(input_size=3, hidden_size=4, init=str(tmp_path / "missing.pt"))


def test_setup_refuses_no_sequence_length() -> None:
    with pytest.raises(ConfigError, match="seq_lens"):
        GradientSetup(input_size=3, hidden_size=4, seq_lens=())


def test_setup_refuses_a_zero_sequence_length() -> None:
    with pytest.raises(ConfigError, match=r"seq_len\(=0\)"):
        GradientSetup(input_size=3, hidden_size=4, seq_lens=(10, 0))
