"""The vectorised predictor gives the numbers of the one-configuration path, row for row."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gru_sim.config import GruConfig
from gru_sim.errors import ConfigError, ProfileError
from gru_sim.model.batch import BatchPredictor, ConfigBatch
from gru_sim.model.profile import Profile, default_profile_path, load_profile
from gru_sim.predict import Predictor

from model_fixtures import make_profile

HERE = {"device": "cpu", "cpu_model": "synthetic", "torch": "2.13.0"}


def random_configs(seed: int, n: int, threads: tuple[int, ...] = (1, 2, 3), impls: tuple[str, ...] = ("torch-gru",)
                   ) -> list[GruConfig]:
    """Shapes inside and well beyond a profile's ranges (batch to 1024, hidden to 8192), both modes,
    thread counts calibrated and not."""
    rng = np.random.default_rng(seed)

    def log_int(lo: float, hi: float) -> int:
        return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    return [GruConfig(batch=log_int(1, 1024), seq_len=log_int(1, 4096), input_size=log_int(1, 4096),
                      hidden_size=log_int(4, 8192), num_layers=int(rng.integers(1, 5)),
                      bidirectional=bool(rng.integers(0, 2)), mode=["inference", "training"][int(rng.integers(0, 2))],
                      impl=impls[int(rng.integers(0, len(impls)))], threads=int(rng.choice(threads)))
            for _ in range(n)]


def assert_same(predictor: Predictor, batch: BatchPredictor, configs: list[GruConfig]) -> None:
    got = batch.predict(configs)
    for row, config in enumerate(configs):
        p = predictor.predict(config)
        assert got.latency_s[row] == pytest.approx(p.latency_s, rel=1e-9), config
        assert got.latency_lo_s[row] == pytest.approx(p.latency_interval_s[0], rel=1e-9), config
        assert got.latency_hi_s[row] == pytest.approx(p.latency_interval_s[1], rel=1e-9), config
        assert bool(got.extrapolated[row]) == p.extrapolated, config
        axes = {k: round(float(v[row]), 3) for k, v in got.extrapolation.items() if v[row] > 1.0}
        assert axes == p.extrapolated_axes, config
        assert got.flops[row] == p.flops
        assert got.bytes_moved[row] == p.bytes_moved
        assert got.peak_memory_bytes[row] == pytest.approx(p.peak_memory_bytes, rel=1e-12, abs=1.0)
        assert got.throughput_tokens_per_s[row] == pytest.approx(p.throughput_tokens_per_s, rel=1e-9)
        floor = predictor.roofline_floor_s(config, p.flops, _compulsory(config))
        assert got.roofline_floor_s[row] == pytest.approx(floor, rel=1e-12)


def _compulsory(config: GruConfig) -> int:
    from gru_sim.accounting import compulsory_bytes
    return compulsory_bytes(config)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    return load_profile(make_profile(tmp_path_factory.mktemp("batch") / "p.json"))


def test_batch_matches_scalar_on_the_synthetic_profile(synthetic) -> None:
    assert_same(Predictor(synthetic, here=HERE), BatchPredictor(synthetic, here=HERE), random_configs(0, 300))


def test_batch_matches_scalar_at_another_vector_width(tmp_path) -> None:
    profile = load_profile(make_profile(tmp_path / "p.json"))
    profile.cost_model.alignment_bytes = 32
    assert_same(Predictor(profile, here=HERE), BatchPredictor(profile, here=HERE), random_configs(2, 300))


def test_batch_matches_scalar_on_the_shipped_cpu_profile() -> None:
    profile = load_profile(default_profile_path("cpu"))
    here = {"device": "cpu", "cpu_model": "elsewhere"}
    assert_same(Predictor(profile, here=here), BatchPredictor(profile, here=here), random_configs(1, 300))


def _add_gru_cell_group(profile: Profile) -> None:
    """Give ``profile`` a torch-gru-cell group at 1 and 2 threads: the torch-gru group's data."""
    model = profile.cost_model
    for t in (1, 2):
        src, dst = f"cpu/float32/torch-gru/t{t}", f"cpu/float32/torch-gru-cell/t{t}"
        model.coef_[dst] = model.coef_[src]
        model.fit_range_[dst] = model.fit_range_[src]
        model.log_residual_quantiles_[dst] = model.log_residual_quantiles_[src]
        for mode in ("inference", "training"):
            model.step_tables_[f"{dst}|{mode}"] = model.step_tables_[f"{src}|{mode}"]
        profile.ceilings[dst] = profile.ceilings[src]


def test_batch_matches_scalar_for_gru_cell_and_a_borrowed_mode(synthetic) -> None:
    # Give the synthetic profile a torch-gru-cell group (the torch-gru one's data), and take the
    # training step table away from threads=2 so that training borrows the inference one.
    _add_gru_cell_group(synthetic)
    del synthetic.cost_model.step_tables_["cpu/float32/torch-gru/t2|training"]
    configs = random_configs(2, 200, impls=("torch-gru", "torch-gru-cell"))
    assert_same(Predictor(synthetic, here=HERE), BatchPredictor(synthetic, here=HERE), configs)


def test_a_group_the_profile_lacks_is_the_same_profile_error(synthetic) -> None:
    config = GruConfig(batch=2, seq_len=3, input_size=4, hidden_size=5, dtype="float64")
    with pytest.raises(ProfileError) as scalar:
        Predictor(synthetic, here=HERE).predict(config)
    with pytest.raises(ProfileError) as batch:
        BatchPredictor(synthetic, here=HERE).predict([config])
    assert str(batch.value) == str(scalar.value)


def test_columns_broadcast_single_values_and_keep_row_order(synthetic) -> None:
    columns = {"batch": np.array([1, 8, 64]), "seq_len": 16, "input_size": 32, "hidden_size": np.array([64, 16, 512]),
               "mode": np.array(["training", "inference", "training"])}
    batch = ConfigBatch.from_columns(columns, defaults={"threads": 2})
    assert [batch.config(k) for k in range(3)] == [
        GruConfig(batch=1, seq_len=16, input_size=32, hidden_size=64, mode="training", threads=2),
        GruConfig(batch=8, seq_len=16, input_size=32, hidden_size=16, threads=2),
        GruConfig(batch=64, seq_len=16, input_size=32, hidden_size=512, mode="training", threads=2)]


def test_bad_columns_are_refused_naming_the_value() -> None:
    with pytest.raises(ConfigError, match="hidden_size"):
        ConfigBatch.from_columns({"batch": 1, "seq_len": 1, "input_size": 1, "hidden_size": np.array([4, 0])})
    with pytest.raises(ConfigError, match="dtype"):
        ConfigBatch.from_columns({"batch": 1, "seq_len": 1, "input_size": 1, "hidden_size": 4, "dtype": "float16"})
    with pytest.raises(ConfigError, match="mode"):
        ConfigBatch.from_columns({"batch": 1, "seq_len": 1, "input_size": 1, "hidden_size": 4, "mode": "serving"})


def test_batch_prediction_imports_no_torch_simpy_or_plotly() -> None:
    import subprocess
    code = ("import sys, gru_sim.model.batch; "
            "print([m for m in ('torch', 'simpy', 'plotly') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_batch_matches_scalar_with_measured_unaligned_slowdowns(tmp_path) -> None:
    # GEMM tables with a measured slowdown (growing with M) for sizes that are not whole vectors, and a
    # torch-gru-cell group: both paths price the unaligned projection (and GRUCell's per-step GEMM) from
    # it, and the training backward at the aligned rate.
    from gru_sim.model.units import GemmTable

    profile = load_profile(make_profile(tmp_path / "p.json"))
    model = profile.cost_model
    for key, g in list(model.gemm_tables_.items()):
        ratio = np.array([[[(m / 2.0) ** 0.1 for _ in g.n] for _ in g.k] for m in g.m])
        model.gemm_tables_[key] = GemmTable(g.m, g.k, g.n, g.seconds, ratio)
    _add_gru_cell_group(profile)
    configs = random_configs(3, 300, impls=("torch-gru", "torch-gru-cell"))
    assert any(c.hidden_size % 16 and c.mode == "training" and c.num_layers > 1 for c in configs)
    assert_same(Predictor(profile, here=HERE), BatchPredictor(profile, here=HERE), configs)
