"""The cost model: fitting recovers what generated the data, and its outputs agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from gru_sim.config import GruConfig
from gru_sim.errors import ProfileError
from gru_sim.model.costmodel import GruCostModel
from gru_sim.model.features import TERM_NAMES, features, weight_basis

from model_fixtures import design, synthetic_latencies, true_coefficients


def test_fit_returns_self_and_predict_before_fit_is_a_clear_error() -> None:
    model = GruCostModel()
    with pytest.raises(ProfileError, match="not fitted"):
        model.predict_one(GruConfig(batch=1, seq_len=2, input_size=3, hidden_size=4))
    configs = design(0, n=60)
    assert model.fit(configs, synthetic_latencies(configs)) is model


def test_fit_recovers_latencies_of_unseen_configs_from_noise_free_data() -> None:
    train, test = design(0), design(7, n=80)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    rel = np.abs(model.predict(test) / synthetic_latencies(test) - 1.0)
    well_inside = np.array([c.hidden_size <= 800 for c in test])
    assert np.max(rel[well_inside]) < 0.02
    # Near the largest hidden size trained on, the top weight-size knot has little support and keeps
    # part of the cost of the knot below (see MIN_KNOT_SUPPORT): a few percent, no more.
    assert np.max(rel) < 0.05


def test_fit_recovers_the_dominant_coefficients() -> None:
    train = design(0, n=400)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    coef = model.coef_["cpu/float32/torch-gru/t1"]
    truth = true_coefficients()
    for name in ("step", "recurrent_flops@b2", "projection_flops", "bwd_step"):
        k = TERM_NAMES.index(name)
        assert coef[k] == pytest.approx(truth[k], rel=0.05), name


def test_weight_byte_costs_never_decrease_with_matrix_size() -> None:
    train = design(3)
    model = GruCostModel().fit(train, synthetic_latencies(train, noise=0.1))
    coef = model.coef_["cpu/float32/torch-gru/t1"]
    for prefix in ("recurrent", "bwd_recurrent", "projection"):
        per_byte = [coef[TERM_NAMES.index(f"{prefix}_weight_bytes@{k}")] for k in range(7)]
        assert all(b >= a - 1e-30 for a, b in zip(per_byte, per_byte[1:]))


def test_interval_covers_about_ninety_percent_of_noisy_unseen_latencies() -> None:
    train, test = design(0, n=300), design(11, n=300)
    model = GruCostModel().fit(train, synthetic_latencies(train, noise=0.05, seed=2))
    measured = synthetic_latencies(test, noise=0.05, seed=3)
    iv = np.array([model.interval_s(c) for c in test])
    coverage = np.mean((iv[:, 0] <= measured) & (measured <= iv[:, 1]))
    assert 0.8 <= coverage <= 0.97


def test_kernel_times_add_up_to_the_closed_form() -> None:
    train = design(0)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    for c in design(5, n=20):
        assert model.kernel_times(c).serial_s() == pytest.approx(model.predict_one(c), rel=1e-9)


def test_breakdown_terms_add_up_to_the_latency() -> None:
    train = design(0)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    c = GruConfig(batch=8, seq_len=50, input_size=64, hidden_size=128, num_layers=2, mode="training")
    b = model.breakdown(c)
    parts = sum(v for k, v in b.items() if k != "backward_s")
    assert parts == pytest.approx(model.predict_one(c), rel=1e-9)
    assert 0 < b["backward_s"] < parts


def test_configs_outside_the_fitted_range_are_flagged_and_get_wider_intervals() -> None:
    train = design(0)
    model = GruCostModel().fit(train, synthetic_latencies(train, noise=0.05))
    inside = GruConfig(batch=8, seq_len=50, input_size=64, hidden_size=128)
    beyond = inside.with_(hidden_size=4096)
    assert model.extrapolation(inside) == {}
    assert "hidden_size" in model.extrapolation(beyond)
    lo_in, hi_in = model.interval_s(inside)
    lo_out, hi_out = model.interval_s(beyond)
    assert hi_out / lo_out > hi_in / lo_in


def test_an_uncalibrated_thread_count_borrows_the_nearest_and_is_flagged() -> None:
    train = design(0)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    c = GruConfig(batch=8, seq_len=50, input_size=64, hidden_size=128, threads=4)
    assert model.coefficients(c)[1].endswith("/t1")
    assert "threads" in model.extrapolation(c)


def test_an_uncalibrated_dtype_is_refused_by_name() -> None:
    train = design(0, n=40)
    model = GruCostModel().fit(train, synthetic_latencies(train))
    with pytest.raises(ProfileError, match="float64"):
        model.predict_one(GruConfig(batch=1, seq_len=2, input_size=3, hidden_size=4, dtype="float64"))


def test_serialised_model_predicts_the_same() -> None:
    train = design(0)
    model = GruCostModel().fit(train, synthetic_latencies(train, noise=0.02))
    again = GruCostModel.from_dict(model.to_dict())
    test = design(9, n=10)
    assert np.allclose(again.predict(test), model.predict(test), rtol=1e-12)


def test_weight_basis_is_a_partition_of_unity() -> None:
    for size in (1.0, 1e4, 3e5, 7e6, 5e8):
        w = weight_basis(size)
        assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)


def test_gru_cell_moves_the_input_projection_into_the_steps() -> None:
    c = GruConfig(batch=4, seq_len=10, input_size=32, hidden_size=16)
    native, cell = features(c), features(c.with_(impl="torch-gru-cell"))
    assert native[TERM_NAMES.index("projection_flops")] > 0
    assert cell[TERM_NAMES.index("projection_flops")] == 0
    step_flops = [TERM_NAMES.index(f"recurrent_flops@b{k}") for k in range(5)]
    assert cell[step_flops].sum() > native[step_flops].sum()


def test_a_fit_without_cross_validation_still_gives_an_interval() -> None:
    train = design(0, n=40)
    model = GruCostModel(cv_folds=0).fit(train, synthetic_latencies(train))
    lo, hi = model.interval_s(train[0])
    assert lo < model.predict_one(train[0]) < hi


def test_a_weight_size_few_measurements_reach_costs_what_the_size_below_costs() -> None:
    # Every training shape is small (W_hh under ~1 MiB): the knots above carry no evidence, so a
    # much larger hidden size is priced at the largest supported knot's cost per byte, not at a
    # cost the fit was free to invent.
    small = [c for c in design(0, n=300) if c.hidden_size <= 200]
    model = GruCostModel().fit(small, synthetic_latencies(small, noise=0.1))
    coef = model.coef_["cpu/float32/torch-gru/t1"]
    per_byte = [coef[TERM_NAMES.index(f"recurrent_weight_bytes@{k}")] for k in range(7)]
    assert per_byte[4] == per_byte[5] == per_byte[6] == per_byte[3]
