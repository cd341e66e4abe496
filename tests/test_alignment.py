"""Whether a layer's sizes are aligned is judged by the machine's SIMD width, recorded in the
profile: H=40 floats (160 bytes) is five AVX2 vectors but not a whole number of AVX-512 ones."""

from __future__ import annotations

import numpy as np

from gru_sim.config import GruConfig
from gru_sim.machine import simd_bytes
from gru_sim.model.costmodel import GruCostModel, gemm_key
from gru_sim.model.residual import RESIDUAL_TERMS
from gru_sim.model.units import GemmTable

from model_fixtures import design, fitted_model, synthetic_latencies, tables

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


def _with_measured_slowdown(ratio_of_m) -> dict:
    """The fixture's GEMM tables with an unaligned slowdown measured in every cell (``ratio_of_m(m)``)."""
    _, gemms = tables()
    out = {}
    for key, g in gemms.items():
        ratio = np.array([[[ratio_of_m(m) for _ in g.n] for _ in g.k] for m in g.m])
        out[key] = GemmTable(g.m, g.k, g.n, g.seconds, ratio)
    return out


def test_a_measured_slowdown_prices_the_unaligned_projection_instead_of_a_fitted_share() -> None:
    # A GEMM that mostly writes its output (many rows) pays more for rows that start mid-vector than
    # one that computes: the slowdown is read off the table at the call's own M, K and N.
    steps, _ = tables()
    gemms = _with_measured_slowdown(lambda m: (m / 2.0) ** 0.1)  # log-linear: read back exactly
    configs = design(n=120)
    model = GruCostModel(cv_folds=0, alignment_bytes=32).fit(configs, synthetic_latencies(configs), steps, gemms)
    proj = RESIDUAL_TERMS.index("projection_unaligned")
    g = gemms[gemm_key("cpu", "float32", 1)]
    for mode in ("inference", "training"):
        short = GruConfig(batch=2, seq_len=8, input_size=64, hidden_size=100, mode=mode)
        long_ = GruConfig(batch=64, seq_len=128, input_size=64, hidden_size=100, mode=mode)
        for config in (short, long_):
            comp = model.compose(config)
            assert comp.terms[proj] == 0 and not comp.layers[0].projection_unaligned
            m = config.seq_len * config.batch
            aligned = g.seconds_for(m, 64, 300)
            expected = aligned * (m / 2.0) ** 0.1
            assert np.isclose(g.seconds_for(m, 64, 300, unaligned=True), expected, rtol=1e-9)
            assert comp.layers[0].projection_s > 0.95 * expected
        # the slowdown grows with the rows here, so the long call's projection share grows too
        assert (model.compose(long_).layers[0].projection_s / g.seconds_for(8192, 64, 300)
                > model.compose(short).layers[0].projection_s / g.seconds_for(16, 64, 300))
    assert model.coef_["cpu/float32/torch-gru/t1"]["inference"][proj] == 0.0


def test_the_batch_path_reads_the_measured_slowdown_as_compose_does() -> None:
    from gru_sim.model.batch_tables import GemmLookup

    g = _with_measured_slowdown(lambda m: 1.0 + min(m / 4096.0, 2.0))[gemm_key("cpu", "float32", 1)]
    look = GemmLookup(g)
    m, k, n = np.array([16.0, 900.0, 8192.0, 1e6]), np.array([64.0, 300.0, 40.0, 5000.0]), np.array([300.0] * 4)
    off = np.array([True, False, True, True])
    got = look.seconds(m, k, n, off)
    want = [g.seconds_for(a, b, c, unaligned=u) for a, b, c, u in zip(m, k, n, off)]
    assert np.allclose(got, want, rtol=1e-9)


def test_the_slowdown_travels_pools_and_fills() -> None:
    g = _with_measured_slowdown(lambda m: 2.0)[gemm_key("cpu", "float32", 1)]
    again = GemmTable.from_dict(g.to_dict())
    assert again.has_unaligned and np.allclose(again.unaligned_ratio, g.unaligned_ratio)
    # a run without the twins leaves the pool's slowdown to the runs that timed them; not level-evened
    older = GemmTable(g.m, g.k, g.n, g.seconds * 1.3)
    holed = g.unaligned_ratio.copy()
    holed[len(g.m) // 2:] = np.nan       # large M not timed: held at the last timed M
    holed[:, 0, 0] = np.nan               # one column never timed: the median of the rest
    half = GemmTable(g.m, g.k, g.n, g.seconds, holed * 1.5)
    pooled = GemmTable.median_of([older, half, GemmTable(g.m, g.k, g.n, g.seconds * 0.9, holed * 1.5)])
    assert pooled.has_unaligned
    assert np.isclose(pooled.seconds_for(1e5, 300, 300, unaligned=True) / pooled.seconds_for(1e5, 300, 300), 3.0)
    assert np.isclose(pooled.seconds_for(g.m[0], g.k[0], g.n[0], unaligned=True)
                      / pooled.seconds_for(g.m[0], g.k[0], g.n[0]), 3.0)
    assert not older.has_unaligned and not GemmTable.from_dict(older.to_dict()).has_unaligned
