"""The machine's speed during a calibration: reference-call readings give each moment's slowdown
against the run's typical speed; the build divides every timing by it and widens the interval by its
spread."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gru_sim.calibrate.drift import GEMM_ELASTICITY, KERNEL_ELASTICITY, MIN_READINGS, DriftTracker, SpeedModel
from gru_sim.calibrate.store import MeasurementStore

G = "cpu/float32/torch-gru/t1"


def _readings(values: list[float]) -> list[tuple[float, float]]:
    return [(100.0 + 10.0 * k, v) for k, v in enumerate(values)]


def test_a_steady_machine_needs_no_correction() -> None:
    speed = SpeedModel({G: _readings([1e-3] * 10)})
    assert speed.slowdown(G, 150.0) == pytest.approx(1.0)
    assert speed.corrector(G)(2.0, 150.0) == pytest.approx(2.0)
    assert speed.spread(G) == (0.0, 0.0)


def test_a_slow_spell_is_divided_out_and_one_odd_reading_is_not() -> None:
    values = [1e-3] * 6 + [1.5e-3] * 6 + [1e-3] * 6
    values[2] = 3e-3  # one disturbed reading in the quiet part
    speed = SpeedModel({G: _readings(values)})
    at_slow = 100.0 + 10.0 * 9
    # The kernels follow the reference call's slowdown only in part (a measured elasticity below 1).
    kernels = 1.5 ** KERNEL_ELASTICITY
    assert 1.0 < kernels < 1.5
    assert speed.slowdown(G, at_slow) == pytest.approx(kernels)
    assert speed.corrector(G)(3.0 * kernels, at_slow) == pytest.approx(3.0)
    assert speed.slowdown(G, 100.0 + 10.0 * 2) == pytest.approx(1.0)  # smoothed away
    lo, hi = speed.spread(G)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(KERNEL_ELASTICITY * math.log(1.5))


def test_gemms_follow_the_reference_call_less_and_are_corrected_less() -> None:
    speed = SpeedModel({G: _readings([1e-3] * 6 + [1.5e-3] * 6 + [1e-3] * 6)})
    at_slow = 100.0 + 10.0 * 9
    assert GEMM_ELASTICITY < KERNEL_ELASTICITY
    assert speed.slowdown(G, at_slow, GEMM_ELASTICITY) == pytest.approx(1.5 ** GEMM_ELASTICITY)
    assert speed.corrector(G, GEMM_ELASTICITY)(2.0, at_slow) == pytest.approx(2.0 / 1.5 ** GEMM_ELASTICITY)
    # Between two readings the slowdown is interpolated in log: halfway from 1x to 1.5x is sqrt(1.5).
    halfway = 100.0 + 10.0 * 5.5
    assert speed.slowdown(G, halfway, 1.0) == pytest.approx(math.sqrt(1.5))


def test_too_few_readings_or_an_untracked_group_are_left_alone() -> None:
    speed = SpeedModel({G: _readings([1e-3, 2e-3][: MIN_READINGS - 1])})
    assert speed.slowdown(G, 105.0) == 1.0
    assert speed.slowdown("cpu/float32/torch-gru/t2", 105.0) == 1.0
    assert speed.summary() == {}


def test_the_tracker_times_at_most_every_few_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gru_sim.measure import units

    calls: list[int] = []
    monkeypatch.setattr(units, "reference_call_s", lambda *a, **k: calls.append(1) or 1e-3)
    store = MeasurementStore(tmp_path / "s.sqlite")
    tracker = DriftTracker(store, "cpu")
    for _ in range(5):
        tracker.tick(G, "float32", "torch-gru", 1)
    assert len(calls) == 1 and len(store.drift(G)) == 1
    tracker._last[G] -= 10.0
    tracker.tick(G, "float32", "torch-gru", 1)
    assert len(store.drift(G)) == 2


def test_the_reference_call_is_timed_for_real() -> None:
    from gru_sim.measure.units import reference_call_s

    assert 0 < reference_call_s(2, 16, 4, "float32", "torch-gru", "cpu", 1) < 0.1


def test_a_profile_records_the_reference_calls_typical_time_a_pools_the_median_of_its_runs() -> None:
    # The speed every unit was taken to: what `gru-sim validate` reads the machine's pace against.
    from gru_sim.calibrate.build import _speed_summary

    runs = [SpeedModel({G: _readings([t] * 8 + [3 * t])}) for t in (1e-3, 1.2e-3, 2e-3)]
    assert runs[0].summary()[G]["typical_reference_s"] == pytest.approx(1e-3)
    pooled = _speed_summary(runs)[G]
    assert pooled["typical_reference_s"] == pytest.approx(1.2e-3)
    assert pooled["readings"] == 27
