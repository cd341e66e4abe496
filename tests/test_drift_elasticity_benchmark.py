"""benchmarks/drift_elasticity.py: each run's level from its step units against the median run, and
the slope of those levels on the runs' reference-call times (the figure behind
``drift.KERNEL_ELASTICITY``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from gru_sim.calibrate.store import MeasurementStore

G = "cpu/float32/torch-gru/t1"


def _run(path: Path, reference_s: float, units_x: float) -> MeasurementStore:
    store = MeasurementStore(path)
    store.path = path
    for _ in range(6):
        store.add_drift(G, reference_s)
    for b in (1, 8, 64):
        for h in (32, 128):
            store.add_unit(G, f"{G}|inference", "step", {"batch": b, "hidden": h}, 1e-6 * b * h * units_x, False, 0.0)
    return store


def test_the_slope_of_the_runs_unit_levels_on_their_reference_times(
        tmp_path: Path, benchmark_script: Callable[[str], Any]) -> None:
    de = benchmark_script("drift_elasticity")
    references = [4e-4, 5e-4, 6e-4, 8e-4, 1e-3]
    stores = [_run(tmp_path / f"r{k}.sqlite", r, (r / 5e-4) ** 0.6) for k, r in enumerate(references)]
    levels = de.run_levels(de.read_runs(stores))
    rows = levels[G]
    assert [r[1] for r in rows] == pytest.approx(references)
    assert dict((r[0], r[2]) for r in rows)["r2.sqlite"] == pytest.approx(1.0)  # the median run (6e-4)
    s = de.slopes(rows)
    assert s["theil_sen"] == pytest.approx(0.6) and s["least_squares"] == pytest.approx(0.6)
    assert s["runs"] == 5 and s["correlation"] == pytest.approx(1.0)
    for store in stores:
        store.close()


def test_a_cell_fewer_runs_timed_than_the_minimum_does_not_set_a_level(
        tmp_path: Path, benchmark_script: Callable[[str], Any]) -> None:
    de = benchmark_script("drift_elasticity")
    stores = [_run(tmp_path / f"r{k}.sqlite", 5e-4, 1.0) for k in range(de.MIN_RUNS_PER_CELL)]
    stores[0].add_unit(G, f"{G}|inference", "step", {"batch": 512, "hidden": 32}, 1.0, False, 0.0)  # one run only
    levels = de.run_levels(de.read_runs(stores))
    assert [r[2] for r in levels[G]] == pytest.approx([1.0] * de.MIN_RUNS_PER_CELL)
    assert np.isfinite([r[2] for r in levels[G]]).all()
    for store in stores:
        store.close()


def test_gemm_units_give_their_own_slope_under_the_group_of_their_thread_count_and_sizes_can_be_picked(
        tmp_path: Path, benchmark_script: Callable[[str], Any]) -> None:
    de = benchmark_script("drift_elasticity")
    references = [4e-4, 5e-4, 6e-4, 8e-4, 1e-3]
    stores = []
    for k, r in enumerate(references):
        store = _run(tmp_path / f"r{k}.sqlite", r, (r / 5e-4) ** 0.6)
        # The GEMMs follow the reference call less: to the power 0.3; one small, one large per run.
        for n, base_s in ((96, 1e-5), (3072, 5e-3)):
            store.add_unit(G, "cpu/float32/t1", "gemm", {"m": 64, "k": 128, "n": n}, base_s * (r / 5e-4) ** 0.3,
                           False, 0.0)
        stores.append(store)
    gemm = de.slopes(de.run_levels(de.read_runs(stores), "gemm")[G])
    assert gemm["theil_sen"] == pytest.approx(0.3) and gemm["runs"] == 5
    assert de.slopes(de.run_levels(de.read_runs(stores), "step")[G])["theil_sen"] == pytest.approx(0.6)
    # Only the large GEMM in the band of 1-10 ms; none in a band no unit falls into.
    large = de.run_levels(de.read_runs(stores), "gemm", (1e-3, 1e-2))[G]
    assert len(large) == 5 and de.slopes(large)["theil_sen"] == pytest.approx(0.3)
    assert de.run_levels(de.read_runs(stores), "gemm", (1.0, 2.0)) == {}
    assert de.size_slopes(de.read_runs(stores)) == []  # fewer than ten runs: no slope by size
    for store in stores:
        store.close()


def test_within_a_run_the_slope_of_each_timing_on_its_moments_slowdown(
        tmp_path: Path, benchmark_script: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run's reference call swings from moment to moment; its step units follow the smoothed
    slowdown at their moment to the power 0.5, its whole calls not at all: the within-run slopes find
    about those powers, whatever each run's own level (each cell's median over the runs also carries
    the other runs' moments, so the slope is not exact)."""
    import types

    from gru_sim.calibrate import store as store_module
    from gru_sim.calibrate.drift import SpeedModel
    from gru_sim.config import GruConfig

    de = benchmark_script("drift_elasticity")
    now = [0.0]
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(time=lambda: now[0]))
    rng = np.random.default_rng(1)
    stores = []
    for k in range(5):
        store = MeasurementStore(tmp_path / f"m{k}.sqlite")
        store.path = tmp_path / f"m{k}.sqlite"
        for t in range(20):
            now[0] = 1000.0 + 2.0 * t
            store.add_drift(G, 5e-4 * (1.0 + k / 10) * float(rng.choice([1.0, 1.0, 1.5, 2.0])))
        speed = SpeedModel.from_store(store, [G])
        moments = rng.uniform(1001.0, 1037.0, size=12)
        for j, (b, h) in enumerate((b, h) for b in (1, 8, 64) for h in (32, 128)):
            at = float(moments[j])
            store.add_unit(G, f"{G}|inference", "step", {"batch": b, "hidden": h},
                           1e-6 * b * h * (1.0 + k / 10) * speed.slowdown(G, at, 1.0) ** 0.5, False, 0.0, at=at)
        for j, b in enumerate((2, 4, 16, 32, 48, 96)):
            now[0] = float(moments[6 + j])
            config = GruConfig(batch=b, seq_len=8, input_size=8, hidden_size=16)
            store.add(G, "train", config, "ok", 0.0, latency_s=1e-4 * b * (1.0 + k / 10))
        stores.append(store)
    rows = {(r["kind"], r["threads"]): r for r in de.moment_slopes(de.read_moments(stores))}
    step, call = rows[("step", "t1")], rows[("call", "t1")]
    assert step["theil_sen"] == pytest.approx(0.5, abs=0.12) and step["correlation"] > 0.7, step
    assert step["timings"] <= 30 and call["timings"] <= 30
    assert call["theil_sen"] == pytest.approx(0.0, abs=1e-9)  # every call at its run's level, whatever the moment
    assert ("gemm", "t1") not in rows  # no GEMM timed
    for store in stores:
        store.close()
