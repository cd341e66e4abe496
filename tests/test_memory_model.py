"""The peak-memory model: analytic before a fit, fitted weights recovered from probes."""

from __future__ import annotations

import numpy as np
import pytest

from gru_sim.accounting import activation_bytes
from gru_sim.config import GruConfig
from gru_sim.model.memory_model import MemoryModel, memory_features

from model_fixtures import design


def test_an_unfitted_model_predicts_the_analytic_inference_peak() -> None:
    c = GruConfig(batch=16, seq_len=100, input_size=64, hidden_size=128, num_layers=2, bidirectional=True)
    assert MemoryModel().predict_one(c) == activation_bytes(c)


def test_fitting_recovers_the_weights_that_made_the_probes() -> None:
    configs = design(0, n=60)
    truth = {"inference": np.array([1.1, 3.0]), "training": np.array([0.9, 1.0, 2.0, 5.0])}
    peaks = [float(memory_features(c) @ truth[c.mode]) for c in configs]
    model = MemoryModel().fit(configs, peaks)
    for c, peak in zip(configs, peaks):
        assert model.predict_one(c) == pytest.approx(peak, rel=0.03)


def test_probes_without_a_reading_are_ignored() -> None:
    configs = design(1, n=10)
    model = MemoryModel().fit(configs, [0] * len(configs))
    assert model.coef_ == {}


def test_the_fitted_model_survives_serialisation() -> None:
    configs = design(2, n=30)
    model = MemoryModel().fit(configs, [1.2 * float(memory_features(c).sum()) for c in configs])
    again = MemoryModel.from_dict(model.to_dict())
    assert [again.predict_one(c) for c in configs] == [model.predict_one(c) for c in configs]
