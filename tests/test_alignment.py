"""Whether a layer's sizes are aligned is judged by the machine's SIMD width, recorded in the
profile: H=40 floats (160 bytes) is five AVX2 vectors but not a whole number of AVX-512 ones."""

from __future__ import annotations

import numpy as np

from gru_sim.config import GruConfig
from gru_sim.machine import simd_bytes
from gru_sim.model.costmodel import GruCostModel
from gru_sim.model.residual import RESIDUAL_TERMS

from model_fixtures import design, fitted_model, synthetic_latencies

UNALIGNED = RESIDUAL_TERMS.index("steps_unaligned")


def test_the_vector_width_comes_from_the_isa() -> None:
    assert simd_bytes(["avx", "avx2", "fma", "avx512f"], "GenuineIntel") == 64
    assert simd_bytes(["avx", "avx2", "fma", "avx512f"], "AuthenticAMD") == 32  # MKL's AVX2 kernels on AMD
    assert simd_bytes(["avx", "avx2", "fma"], "GenuineIntel") == 32
    assert simd_bytes(["asimd"], "") == 16 and simd_bytes([], "") == 16


def test_alignment_is_judged_by_the_profiles_vector_width() -> None:
    configs = design(n=120)
    model = fitted_model(configs, synthetic_latencies(configs), cv_folds=0)
    h40 = GruConfig(batch=4, seq_len=10, input_size=32, hidden_size=40)
    model.alignment_bytes = 64
    assert model.compose(h40).terms[UNALIGNED] > 0
    model.alignment_bytes = 32
    assert model.compose(h40).terms[UNALIGNED] == 0


def test_the_width_travels_with_the_profile() -> None:
    configs = design(n=120)
    model = fitted_model(configs, synthetic_latencies(configs), cv_folds=0, alignment_bytes=32)
    again = GruCostModel.from_dict(model.to_dict())
    assert again.alignment_bytes == 32
    old = model.to_dict()
    del old["settings"]["alignment_bytes"]
    assert GruCostModel.from_dict(old).alignment_bytes == 64  # a profile that does not say: a cache line


def test_old_settings_dicts_still_load() -> None:
    model = GruCostModel(cv_folds=0, alignment_bytes=32)
    assert model.alignment_bytes == 32 and np.isclose(model.interval, 0.9)


def test_the_hidden_size_decides_the_projection_too() -> None:
    # The projection writes rows 3H wide (its weight gradient's rows too): an input size that is not
    # whole vectors (I = 300) runs at the rate of its neighbours; H = 250 does not.
    configs = design(n=120)
    model = fitted_model(configs, synthetic_latencies(configs), cv_folds=0, alignment_bytes=32)
    proj = RESIDUAL_TERMS.index("projection_unaligned")
    for mode in ("inference", "training"):
        odd_input = GruConfig(batch=32, seq_len=50, input_size=300, hidden_size=256, mode=mode)
        odd_hidden = GruConfig(batch=32, seq_len=50, input_size=300, hidden_size=250, mode=mode)
        assert model.compose(odd_input).terms[proj] == 0
        assert model.compose(odd_input).terms[UNALIGNED] == 0
        assert model.compose(odd_hidden).terms[proj] > 0
        assert all(not unit.projection_unaligned for unit in model.compose(odd_input).layers)
