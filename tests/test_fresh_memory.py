"""Fresh memory: the tensors of a call that glibc maps afresh (32 MiB and larger), what the cost model
charges for them, and a check of the list against the page faults of a real call."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gru_sim.config import GruConfig
from gru_sim.model.costmodel import BREAKDOWN_TERMS, RESIDUAL_TERMS, GruCostModel
from gru_sim.model.fresh_memory import MMAP_CEILING_BYTES, fresh_bytes, fresh_bytes_by_layer, fresh_bytes_many
from gru_sim.model.residual import BEFORE_FRESH_TERMS, fit_residual
from gru_sim.model.units import MemoryLevels

from model_fixtures import LEVELS, as_written_before, design, synthetic_latencies, tables

MiB = 2**20
FRESH = RESIDUAL_TERMS.index("fresh_memory")
RATE_S_PER_BYTE = 0.35e-9


def _config(**kw: object) -> GruConfig:
    base = dict(batch=512, seq_len=64, input_size=8, hidden_size=128, num_layers=1, bidirectional=False,
                mode="inference", threads=1)
    return GruConfig(**{**base, **kw})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- the list
def test_only_tensors_at_the_ceiling_count() -> None:
    # [T, B, 3H] float32: 64·512·384·4 = 48 MiB mapped afresh; the output [T, B, H], 16 MiB, is not.
    assert fresh_bytes(_config()) == 48 * MiB
    # Half the steps: a 24 MiB projection, nothing fresh.
    assert fresh_bytes(_config(seq_len=32)) == 0.0
    # At exactly the ceiling the output counts too: 128·512·128·4 = 32 MiB (and a 96 MiB projection).
    assert fresh_bytes(_config(seq_len=128)) == 96 * MiB + MMAP_CEILING_BYTES


def test_directions_layers_and_training_add_their_tensors() -> None:
    one = fresh_bytes(_config(seq_len=128))
    # Bidirectional: both directions' tensors and the concatenated [T, B, 2H] output (64 MiB).
    assert fresh_bytes(_config(seq_len=128, bidirectional=True)) == 2 * one + 64 * MiB
    # Two layers: the second reads [T, B, H]; its tensors are the same size as the first's.
    assert fresh_bytes(_config(seq_len=128, num_layers=2)) == 2 * one
    # Training: each projection's gradient (96 MiB) and, above the first layer, the input's (32 MiB).
    by_layer = fresh_bytes_by_layer(_config(seq_len=128, num_layers=2, mode="training"))
    assert by_layer == [(one, 96 * MiB), (one, 96 * MiB + 32 * MiB)]


def test_other_implementations_list_nothing() -> None:
    assert fresh_bytes(_config(seq_len=1024, impl="torch-gru-cell")) == 0.0
    assert fresh_bytes(_config(seq_len=1024, impl="numpy-reference")) == 0.0


def test_the_array_form_gives_the_same_bytes() -> None:
    configs = [_config(batch=b, seq_len=t, hidden_size=h, num_layers=n, bidirectional=bi, mode=m)
               for b in (8, 512) for t in (32, 128, 1000) for h in (64, 128, 512) for n in (1, 3)
               for bi in (False, True) for m in ("inference", "training")]
    assert any(fresh_bytes(c) == 0 for c in configs) and any(fresh_bytes(c) > 0 for c in configs)
    for mode in ("inference", "training"):
        part = [c for c in configs if c.mode == mode]
        col = lambda name: np.array([float(getattr(c, name)) for c in part])  # noqa: E731
        many = fresh_bytes_many(col("batch"), col("seq_len"), col("hidden_size"), col("num_layers"),
                                np.array([float(c.directions) for c in part]), 4, mode == "training")
        assert many.tolist() == [fresh_bytes(c) for c in part]


# ------------------------------------------------------------------------------------- the model
def _tables_with_rate(rate: float | None):  # type: ignore[no-untyped-def]
    steps, gemms = tables()
    levels = dataclasses.replace(LEVELS, fresh_s_per_byte=rate)
    return {k: dataclasses.replace(t, levels=levels) for k, t in steps.items()}, gemms


def test_the_composition_charges_fresh_bytes_at_the_measured_rate() -> None:
    steps, gemms = _tables_with_rate(RATE_S_PER_BYTE)
    model = GruCostModel(cv_folds=0)
    model.step_tables_, model.gemm_tables_ = steps, gemms
    big = _config(seq_len=128, num_layers=2, bidirectional=True, mode="training")
    assert model.compose(big).terms[FRESH] == pytest.approx(fresh_bytes(big) * RATE_S_PER_BYTE, rel=1e-12)
    assert model.compose(_config(seq_len=16)).terms[FRESH] == 0.0
    # A table that did not time it charges nothing (the profile predicts as it did).
    model.step_tables_ = _tables_with_rate(None)[0]
    assert model.compose(big).terms[FRESH] == 0.0


def test_the_fit_recovers_the_fresh_coefficient_and_the_breakdown_holds_it() -> None:
    steps, gemms = _tables_with_rate(RATE_S_PER_BYTE)
    configs = design(0, n=300) + [_config(batch=b, seq_len=t, hidden_size=h, mode=m)
                                  for b in (64, 128) for t in (128, 256) for h in (256, 512)
                                  for m in ("inference", "training")]
    composer = GruCostModel(cv_folds=0)
    composer.step_tables_, composer.gemm_tables_ = steps, gemms
    x = np.array([composer.compose(c).terms for c in configs])
    assert np.count_nonzero(x[:, FRESH]) >= 10
    truth = np.array([1.05, 0.95, 1.1, 30e-6, 8e-6, 0.0, 0.0, 0.3, 0.9, 1.0, 0.0])
    model = GruCostModel(cv_folds=0).fit(configs, x @ truth, steps, gemms)
    for mode in ("inference", "training"):
        assert model.coef_["cpu/float32/torch-gru/t1"][mode][FRESH] == pytest.approx(1.0, abs=0.05)
    big = _config(batch=128, seq_len=256, hidden_size=512, mode="training")
    parts = model.breakdown(big)
    total = sum(parts[k] for k in BREAKDOWN_TERMS)
    assert total == pytest.approx(model.predict_one(big), rel=1e-9)
    fresh_s = model.term_seconds(big)[FRESH]
    assert fresh_s > 0.01 * total
    assert parts["input_projection_s"] >= fresh_s
    times = model.kernel_times(big)
    serial = times.call_overhead_s + sum(
        lt.input_projection_s + lt.backward_input_projection_s + lt.recurrent_weight_grad_s
        + big.seq_len * (lt.recurrent_matmul_per_step_s + lt.pointwise_per_step_s + lt.step_overhead_per_step_s
                         + lt.backward_per_step_s) for lt in times.layers)
    assert serial == pytest.approx(model.predict_one(big), rel=1e-9)


def test_without_a_call_that_reaches_it_the_term_keeps_the_measured_rate() -> None:
    x = np.zeros((6, len(RESIDUAL_TERMS)))
    x[:, 0] = np.linspace(1e-3, 6e-3, 6)
    assert fit_residual(x, 1.1 * x[:, 0])[FRESH] == 1.0


def test_a_profile_from_before_fresh_memory_predicts_as_it_did() -> None:
    steps, gemms = _tables_with_rate(RATE_S_PER_BYTE)
    configs = design(0)
    model = GruCostModel(cv_folds=0).fit(configs, synthetic_latencies(configs), steps, gemms)
    again = as_written_before(model, len(BEFORE_FRESH_TERMS))
    big = _config(seq_len=256)
    assert again.coefficients(big)[0][FRESH] == 0.0
    assert again.predict_one(big) == pytest.approx(model.predict_one(big) - model.term_seconds(big)[FRESH], rel=1e-12)


def test_levels_keep_the_rate_through_json_and_pooling() -> None:
    a = dataclasses.replace(LEVELS, fresh_s_per_byte=3e-10)
    assert MemoryLevels.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert "fresh_s_per_byte" not in LEVELS.to_dict()
    pooled = MemoryLevels.median_of([a, dataclasses.replace(LEVELS, fresh_s_per_byte=5e-10), LEVELS])
    assert pooled.fresh_s_per_byte == pytest.approx(4e-10)  # the runs that timed it
    assert MemoryLevels.median_of([LEVELS, LEVELS]).fresh_s_per_byte is None


# ------------------------------------------------------------------------------- a real call
_FAULTS = textwrap.dedent("""
    import json, resource, sys, torch
    from gru_sim.config import GruConfig
    from gru_sim.measure.kernels import build_call
    torch.set_num_threads(1)
    call = build_call(GruConfig.from_mapping(json.loads(sys.argv[1])))
    call(); call()
    faults = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        call()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sorted(faults)[len(faults) // 2])
""")


# glibc's steady state, the one the list describes: large blocks mapped from the ceiling up (what the dynamic
# threshold settles at) and the heap's free top never given back. As glibc runs by default it trims the heap
# once its free top passes twice the largest block it has unmapped, and a call whose smaller tensors add up to
# about that (the 48 MiB case: a 16 MiB output and 64 step outputs of 256 KiB, 32 MiB against a 32 MiB trim
# threshold) faults them again in some processes and not in others: 48 MiB here, 81 MiB a call in every process
# of one CI run.
# glibc's own DEFAULT_MMAP_THRESHOLD_MAX, written out: not the module's constant, which the test checks.
_STEADY = "glibc.malloc.mmap_threshold=%d:glibc.malloc.trim_threshold=%d" % (32 * MiB, 2**62)


def _median_faulted_bytes(config: GruConfig, tunables: str | None) -> int:
    # glibc as it starts: a Dask cluster started earlier in this process (tests/test_cluster.py) leaves
    # MALLOC_TRIM_THRESHOLD_ set, which turns the dynamic mmap threshold off — every block past 128 KiB
    # is then mapped afresh (the 48 MiB case faulted 145 MiB a call).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run([sys.executable, "-c", _FAULTS, json.dumps(config.to_dict())], capture_output=True,
                         text=True, check=True, timeout=120, env=env)
    return int(out.stdout.strip()) * 4096


_REAL_CALLS = pytest.mark.parametrize(
    "config", [_config(), _config(seq_len=32), _config(batch=64, seq_len=192, input_size=32, hidden_size=256,
                                                       mode="training")],
    ids=["48MiB-projection", "nothing-fresh", "training"])
_GLIBC = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                            reason="the ceiling is glibc's mmap threshold")


@_GLIBC
@_REAL_CALLS
def test_a_real_call_faults_in_the_listed_bytes(config: GruConfig) -> None:
    """Calls of a config in a fresh process after two warm-ups, glibc held at its steady state: the median
    minor page faults (4 KiB each) of five calls are the listed tensors, give or take a few MiB of small
    allocations. A training call now and then serves one of its big tensors from memory the backward freed
    (B = 64, T = 192, H = 256, 72 MiB listed: once in thirty calls 36 MiB) — the median, not the fewest or
    the most, is the call the list describes."""
    listed = fresh_bytes(config)
    seen = _median_faulted_bytes(config, _STEADY)
    assert listed * 0.9 - 4 * MiB <= seen <= listed * 1.1 + 4 * MiB, \
        f"{listed / MiB:.0f} MiB listed, {seen / MiB:.0f} MiB faulted by the median call"


@_GLIBC
@_REAL_CALLS
def test_as_glibc_runs_a_call_faults_at_least_the_listed_bytes(config: GruConfig) -> None:
    """With glibc's own thresholds every listed tensor is still mapped afresh each call (none is served from
    the heap); what the heap's trimming adds on top is the process's, not the list's (see ``_STEADY``)."""
    listed = fresh_bytes(config)
    seen = _median_faulted_bytes(config, None)
    assert seen >= listed * 0.9 - 4 * MiB, f"{listed / MiB:.0f} MiB listed, {seen / MiB:.0f} MiB faulted"
