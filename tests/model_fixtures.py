"""Synthetic machines for the model and predict tests: unit tables timed on a made-up machine (known
step and GEMM times, a cache cliff), whole-call latencies composed from them with known residual
coefficients, and a real profile file fitted to them. No kernel runs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from gru_sim.config import GATES, GruConfig
from gru_sim.calibrate.design import round_size
from gru_sim.model.costmodel import MATMULS_PER_TRAINING_STEP, RESIDUAL_TERMS, GruCostModel, gemm_key, step_key
from gru_sim.model.memory_model import MemoryModel
from gru_sim.model.profile import Profile, save_profile
from gru_sim.calibrate.grids import batch_grid, hidden_grid, log_grid
from gru_sim.model.units import GemmTable, MemoryLevels, StepTable

L2_BYTES = 1 << 20
LEVELS = MemoryLevels(("L2", "L3", "DRAM"), (L2_BYTES, 32 << 20, None), (200e9, 80e9, 20e9))
BATCHES = tuple(batch_grid(1, 128))
HIDDENS = tuple(hidden_grid(16, 1024, [L2_BYTES], 4))


def true_matmul_s(b: float, h: float) -> float:
    """The made-up machine's recurrent matmul: a floor, FLOPs at a rate that grows with B, and the
    weight read at the bandwidth of the level the weights live in."""
    flops = 2.0 * b * h * GATES * h
    w = GATES * h * h * 4.0
    return 2e-6 + flops / (20e9 * min(b, 16) ** 0.5) + w / LEVELS.bandwidth_for(w)


def true_step_s(b: float, h: float, mode: str) -> float:
    k = MATMULS_PER_TRAINING_STEP if mode == "training" else 1
    return k * (4e-6 + true_matmul_s(b, h) + 10 * b * h * 1e-10)


def true_gemm_s(m: float, k: float, n: float) -> float:
    return 3e-6 + 2.0 * m * k * n / 60e9


def step_table(mode: str) -> StepTable:
    return StepTable(BATCHES, HIDDENS, [[true_step_s(b, h, mode) for b in BATCHES] for h in HIDDENS],
                     [[true_matmul_s(b, h) for b in BATCHES] for h in HIDDENS], 4, LEVELS,
                     MATMULS_PER_TRAINING_STEP if mode == "training" else 1)


def gemm_table() -> GemmTable:
    ms, ks, ns = log_grid(2, 65536, 4.0), log_grid(16, 2048, 3.0), log_grid(48, 3072, 3.0)
    return GemmTable(tuple(ms), tuple(ks), tuple(ns), [[[true_gemm_s(m, k, n) for n in ns] for k in ks] for m in ms])


def tables(threads: tuple[int, ...] = (1, 2)) -> tuple[dict[str, StepTable], dict[str, GemmTable]]:
    """Step tables for both modes and a GEMM table, per thread count (2 threads: 1.6× faster)."""
    steps, gemms = {}, {}
    for t in threads:
        group = f"cpu/float32/torch-gru/t{t}"
        for mode in ("inference", "training"):
            table = step_table(mode)
            if t != 1:
                table = StepTable(table.batch, table.hidden, table.step_s / 1.6, table.matmul_s / 1.6, 4, LEVELS,
                                  table.matmuls_per_step)
            steps[step_key(group, mode)] = table
        gemms[gemm_key("cpu", "float32", t)] = gemm_table()
    return steps, gemms


def true_coefficients() -> np.ndarray:
    """The residual the made-up machine adds to its units (by RESIDUAL_TERMS)."""
    values = {"steps": 1.05, "projection": 0.95, "projection_backward": 1.1, "call": 30e-6, "layer_direction": 8e-6,
              "output_bytes": 0.0, "steps_unaligned": 0.0, "projection_unaligned": 0.3, "step_matmuls": 0.9,
              "fresh_memory": 1.0, "saved_spill": 0.0}
    return np.array([values[name] for name in RESIDUAL_TERMS])


def design(seed: int = 0, n: int = 240, threads: int = 1) -> list[GruConfig]:
    """Random configurations, every other one with the round input and hidden sizes most models use
    (as the calibration design draws them: round and odd sizes run at different speeds)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        config = GruConfig(
            batch=int(np.exp(rng.uniform(0, np.log(128)))), seq_len=int(np.exp(rng.uniform(np.log(2), np.log(256)))),
            input_size=int(np.exp(rng.uniform(np.log(16), np.log(1024)))),
            hidden_size=int(np.exp(rng.uniform(np.log(16), np.log(1024)))), num_layers=int(rng.integers(1, 4)),
            bidirectional=bool(rng.integers(0, 2)), mode=["inference", "training"][int(rng.integers(0, 2))],
            threads=threads)
        if k % 2:
            config = config.with_(input_size=round_size("input_size", config.input_size, 16, 1024),
                                  hidden_size=round_size("hidden_size", config.hidden_size, 16, 1024))
        out.append(config)
    return out


def _composer() -> GruCostModel:
    steps, gemms = tables()
    model = GruCostModel(cv_folds=0)
    model.step_tables_, model.gemm_tables_ = steps, gemms
    return model


def synthetic_latencies(configs: list[GruConfig], noise: float = 0.0, seed: int = 1) -> np.ndarray:
    composer = _composer()
    y = np.array([composer.compose(c).terms for c in configs]).reshape(len(configs), -1) @ true_coefficients()
    if noise:
        y = y * np.exp(np.random.default_rng(seed).normal(0.0, noise, size=y.shape))
    return y


def fitted_model(configs: list[GruConfig], latencies: np.ndarray, **settings: object) -> GruCostModel:
    steps, gemms = tables()
    return GruCostModel(**settings).fit(configs, latencies, steps, gemms)  # type: ignore[arg-type]


TINY = GruConfig(batch=2, seq_len=4, input_size=8, hidden_size=8)


def make_profile(path: Path, noise: float = 0.03, canary_latency_s: float | None = None) -> Path:
    """A profile whose cost model was fitted on synthetic measurements (threads 1 and 2). With
    ``canary_latency_s`` its one canary is the TINY config said to take that long."""
    configs = design(0) + design(1, threads=2)
    y = synthetic_latencies(configs, noise)
    model = fitted_model(configs, y)
    mem_configs = [c for c in configs[:40]]
    memory = MemoryModel()
    canaries = [{"config": c.to_dict(), "latency_s": float(v)} for c, v in itertools.islice(zip(configs, y), 3)]
    if canary_latency_s is not None:
        canaries = [{"config": TINY.to_dict(), "latency_s": canary_latency_s}]
    profile = Profile(path=None, fingerprint={"device": "cpu", "cpu_model": "synthetic", "torch": "2.13.0"},
                      job={"name": "synthetic", "max_call_s": 0.25}, ranges=model.fit_range_,
                      ceilings={k: {"peak_flops_per_s": 1e11, "memory_bandwidth_bytes_per_s": 1e10}
                                for k in model.coef_},
                      self_check={"holdout": {"median_ape": 1.0}}, cost_model=model, memory_model=memory,
                      canaries=canaries, created_at="2026-01-01T00:00:00+00:00",
                      measurements=[{"group": "cpu/float32/torch-gru/t1", "role": "train", "config": c.to_dict(),
                                     "latency_s": float(v)} for c, v in zip(mem_configs, y)])
    return save_profile(profile, path)


def as_written_before(model: GruCostModel, terms: int) -> GruCostModel:
    """``model`` as a profile written when the cost model had only its first ``terms`` residual terms
    would read back: saved as JSON with those terms and coefficients, and loaded."""
    old = model.to_dict()
    old["terms"] = list(RESIDUAL_TERMS[:terms])
    for group in old["groups"].values():
        for mode in group["modes"].values():
            mode["coef"] = mode["coef"][:terms]
    return GruCostModel.from_dict(json.loads(json.dumps(old)))
