"""A training call's saved activations re-read from beyond the cache (gru_sim.model.saved_spill): the
bytes, the residual term that prices them, its fit, and every path that must price it alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gru_sim.config import GruConfig
from gru_sim.model.batch import BatchPredictor
from gru_sim.model.costmodel import BREAKDOWN_TERMS, RESIDUAL_TERMS, GruCostModel
from gru_sim.model.profile import load_profile
from gru_sim.model.residual import BEFORE_SPILL_TERMS
from gru_sim.model.saved_spill import (SAVED_FLOATS_PER_UNIT, cache_bytes, saved_bytes_per_step, spilled_saved_bytes,
                                       spilled_saved_bytes_many)
from gru_sim.model.units import MemoryLevels
from gru_sim.predict import Predictor

from model_fixtures import L2_BYTES, LEVELS, as_written_before, design, make_profile, tables, true_coefficients

SPILL = RESIDUAL_TERMS.index("saved_spill")
RATE_S_PER_BYTE = 2e-10


def _train(**kw: object) -> GruConfig:
    base = {"batch": 64, "seq_len": 96, "input_size": 12, "hidden_size": 100, "mode": "training"}
    return GruConfig(**{**base, **kw})


def test_the_bytes_past_the_steps_the_cache_holds() -> None:
    per_step = SAVED_FLOATS_PER_UNIT * 64 * 100 * 4
    assert saved_bytes_per_step(64, 100, 4) == per_step
    cache = 1 << 20
    assert spilled_saved_bytes(_train(), cache) == pytest.approx((96 - cache / per_step) * per_step)
    # Linear in the steps past the allowance; nothing while the cache holds the whole saved set.
    assert spilled_saved_bytes(_train(seq_len=192), cache) - spilled_saved_bytes(_train(), cache) == pytest.approx(
        96 * per_step)
    assert spilled_saved_bytes(_train(seq_len=2), cache) == 0.0
    assert spilled_saved_bytes(_train(batch=1, hidden_size=16, seq_len=500), cache) == 0.0
    # Inference saves nothing; GRUCell and cuDNN run other kernels; no cache known.
    for other in (_train(mode="inference"), _train(impl="torch-gru-cell"),
                  _train(device="cuda")):
        assert spilled_saved_bytes(other, cache) == 0.0, other
    assert spilled_saved_bytes(_train(), 0.0) == 0.0
    b, t, h = np.array([64, 1, 256]), np.array([96, 500, 8]), np.array([100, 16, 512])
    many = spilled_saved_bytes_many(b, t, h, 4, cache)
    assert many == pytest.approx([spilled_saved_bytes(_train(batch=int(x), seq_len=int(y), hidden_size=int(z)), cache)
                                  for x, y, z in zip(b, t, h)])
    assert cache_bytes(MemoryLevels(("L1", "L2", "L3", "DRAM"), (32768, 1 << 20, 32 << 20, None), (1.0,) * 4)) \
        == 1 << 20
    assert cache_bytes(MemoryLevels(("L3", "DRAM"), (32 << 20, None), (1.0, 1.0))) == 0.0
    assert cache_bytes(None) == 0.0


def test_the_fit_recovers_the_rate_and_every_path_prices_it() -> None:
    steps, gemms = tables()
    configs = design(0, n=300) + [_train(batch=b, seq_len=t, hidden_size=h)
                                  for b in (16, 64) for t in (64, 256) for h in (64, 128, 256)]
    composer = GruCostModel(cv_folds=0)
    composer.step_tables_, composer.gemm_tables_ = steps, gemms
    x = np.array([composer.compose(c).terms for c in configs])
    assert np.count_nonzero(x[:, SPILL]) >= 12 and not x[[c.mode == "inference" for c in configs], SPILL].any()
    truth = true_coefficients()
    truth[SPILL] = RATE_S_PER_BYTE
    model = GruCostModel(cv_folds=0).fit(configs, x @ truth, steps, gemms)
    coef = model.coef_["cpu/float32/torch-gru/t1"]
    assert coef["training"][SPILL] == pytest.approx(RATE_S_PER_BYTE, rel=0.15)
    assert coef["inference"][SPILL] == 0.0
    long_call = _train(batch=64, seq_len=256, hidden_size=128, num_layers=2)
    assert model.term_seconds(long_call)[SPILL] > 0.02 * model.predict_one(long_call)
    parts = model.breakdown(long_call)
    assert sum(parts[k] for k in BREAKDOWN_TERMS) == pytest.approx(model.predict_one(long_call), rel=1e-9)
    assert parts["backward_s"] >= model.term_seconds(long_call)[SPILL]
    assert model.kernel_times(long_call).serial_s() == pytest.approx(model.predict_one(long_call), rel=1e-9)
    assert LEVELS.capacity_bytes[LEVELS.names.index("L2")] == L2_BYTES


def test_the_vectorised_path_prices_it_as_the_one_configuration_path(tmp_path: Path) -> None:
    profile = load_profile(make_profile(tmp_path / "p.json"))
    for coefs in profile.cost_model.coef_.values():
        coefs["training"][SPILL] = RATE_S_PER_BYTE
    configs = [_train(batch=b, seq_len=t, hidden_size=h, num_layers=n, bidirectional=bi, threads=th)
               for b in (8, 64) for t in (32, 300) for h in (64, 256) for n in (1, 3) for bi in (False, True)
               for th in (1, 2)]
    got = BatchPredictor(profile).predict(configs).latency_s
    predictor = Predictor(profile, here={"device": "cpu", "cpu_model": "synthetic", "torch": "2.13.0"})
    one = np.array([predictor.predict(c).latency_s for c in configs])
    assert got == pytest.approx(one, rel=1e-9)
    spilled = [c for c in configs if profile.cost_model.term_seconds(c)[SPILL] > 0]
    assert len(spilled) >= 8


def test_a_profile_from_before_the_term_predicts_as_it_did() -> None:
    steps, gemms = tables()
    configs = design(0)
    model = GruCostModel(cv_folds=0).fit(configs, [1e-3 * (1 + k % 7) for k in range(len(configs))], steps, gemms)
    for group in model.coef_:
        model.coef_[group]["training"][SPILL] = RATE_S_PER_BYTE
    again = as_written_before(model, len(BEFORE_SPILL_TERMS))
    call = _train(seq_len=300)
    assert again.coefficients(call)[0][SPILL] == 0.0
    assert again.predict_one(call) == pytest.approx(model.predict_one(call) - model.term_seconds(call)[SPILL],
                                                    rel=1e-12)
