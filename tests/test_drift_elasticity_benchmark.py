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
