"""A projection column whose M grid stops well short of the GEMM cost cap is also timed at its
saturation M, and the GEMM table prices every larger projection from that point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gru_sim.calibrate import unit_grid
from gru_sim.calibrate.adapt import _quick_gemm_grid
from gru_sim.calibrate.jobs import load_job
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.calibrate.unit_grid import (GEMM_MAX_FLOPS, GEMM_MAX_OUTPUT_BYTES, UnitTimer, gemm_max_m, gemm_table,
                                         saturation_m)
from gru_sim.model.units import GemmTable

TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GRID_M = [2, 8, 64, 512, 4096, 32768, 262144]
PEAK_FLOPS = 60e9


def rising_rate_s(m: int, k: int, n: int) -> float:
    """A GEMM whose rate rises with M towards PEAK_FLOPS (half of it at M = 32) plus a 5 µs call."""
    return 5e-6 + 2.0 * m * k * n / (PEAK_FLOPS * m / (m + 32.0))


def test_saturation_m_is_the_largest_round_m_under_the_cap() -> None:
    assert saturation_m(GRID_M, 1024, 1536) == 256  # the grid stops at 64; 325 is the cap
    assert saturation_m(GRID_M, 4096, 6144) == 16  # small: a multiple of 16
    assert saturation_m(GRID_M[:5], 16, 48) is None  # the whole column is under the caps
    for k in (1, 4, 16, 64, 256, 1024, 4096):
        for n in (48, 96, 384, 1536, 6144):
            m = saturation_m(GRID_M, k, n)
            if m is not None:
                assert 2.0 * m * k * n <= GEMM_MAX_FLOPS
                assert m * n * 4 <= GEMM_MAX_OUTPUT_BYTES
                assert m % 16 == 0
                last = max(v for v in GRID_M if v <= gemm_max_m(k, n) or v == GRID_M[0])
                assert m >= 1.5 * last


def test_a_gemm_of_few_inputs_is_capped_by_the_bytes_it_writes() -> None:
    # K = 4, N = 6144: the FLOP cap allows M = 20345 (500 MB of output); the byte cap 1365.
    assert 2.0 * 20345 * 4 * 6144 <= GEMM_MAX_FLOPS
    assert gemm_max_m(4, 6144) == pytest.approx(GEMM_MAX_OUTPUT_BYTES / (6144 * 4))
    assert saturation_m(GRID_M, 4, 6144) == 1344  # a multiple of 64 under the byte cap
    # float64 writes twice the bytes per element: half the M.
    assert gemm_max_m(4, 6144, element_bytes=8) == pytest.approx(gemm_max_m(4, 6144) / 2)
    # From K = 64 up the FLOP cap binds first.
    for n in (48, 384, 6144):
        assert gemm_max_m(64, n) == pytest.approx(GEMM_MAX_FLOPS / (2.0 * 64 * n))


def test_saturation_m_skips_a_column_whose_last_point_is_near_the_cap() -> None:
    # K = 64, N = 48 at a 1e7 cap: the cap is M = 1627, the grid's 512 is more than 1.5x below it;
    # at a 4e6 cap it is 651 -> 640, under 1.5 x 512.
    assert saturation_m(GRID_M, 64, 48, cap_flops=1e7) == 1600
    assert saturation_m(GRID_M, 64, 48, cap_flops=4e6) is None


def _timed_gemms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gemm_grid: tuple | None) -> MeasurementStore:
    from gru_sim.measure import units

    monkeypatch.setattr(units, "projection_gemm_s", lambda m, k, n, *args: (rising_rate_s(m, k, n), False))
    monkeypatch.setattr(unit_grid, "GEMM_MAX_FLOPS", 2e7)
    spec = load_job(TINY)
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, gemm_grid=gemm_grid)
    monkeypatch.setattr(unit_grid, "gemm_axes", lambda _spec: ([2, 16, 128, 1024, 8192], [16, 64], [48, 192]))
    timer._gemms("cpu/float32/torch-gru/t1", "float32", 1)
    return store


def test_the_full_job_times_each_column_at_its_saturation_m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _timed_gemms(tmp_path, monkeypatch, None)
    timed = {(u.params["m"], u.params["k"], u.params["n"]) for u in store.units("cpu/float32/t1", "gemm")}
    # K = 64, N = 192: the cap 2e7 is M = 813 -> 768; the grid stops at 128.
    assert (768, 64, 192) in timed
    assert not any(m > 768 for m, k, n in timed if (k, n) == (64, 192))
    # The table prices a projection far past the cap at the saturated rate, not the rate at M = 128.
    table = gemm_table(store, "cpu", "float32", 1)
    truth = rising_rate_s(65536, 64, 192)
    assert table.seconds_for(65536, 64, 192) == pytest.approx(truth, rel=0.06)
    # Without the saturation point, the grid's last point (M = 128) runs at 80 % of peak: scaled from
    # its average per row the projection read 20 % slow; from the slope between its last two points
    # (the call's fixed part paid once) it reads the saturated rate.
    grid_only = {key: rising_rate_s(*key) for key in timed if key[0] in (2, 16, 128, 1024, 8192)}
    ms, ks, ns = (sorted({key[a] for key in grid_only}) for a in range(3))
    table = GemmTable(tuple(ms), tuple(ks), tuple(ns),
                      [[[grid_only.get((m, k, n), np.nan) for n in ns] for k in ks] for m in ms])
    assert rising_rate_s(128, 64, 192) * 65536 / 128 > 1.18 * truth
    # (within the 3 % by which the table's fastest GEMM runs below the peak, which bounds the slope)
    assert table.seconds_for(65536, 64, 192) == pytest.approx(truth, rel=0.04)


def test_rows_past_the_timed_m_cost_the_marginal_rate_within_the_tables_bounds() -> None:
    """Past a column's largest timed M each row costs the slope between its last two points, never
    faster than the table's fastest GEMM and never slower than the last point's average per row."""
    m, k, n = (8, 64, 512), (64, 256), (48,)
    fast = 2.0 * 512 * 256 * 48 / 80e9  # the table's fastest GEMM: 80 GFLOP/s
    seconds = np.full((3, 2, 1), np.nan)
    seconds[:, 1, 0] = [1e-5, 3e-5, fast]
    # K = 64: a slope from M = 8 to 64 of 0.1 µs a row (faster than 80 GFLOP/s allows: 0.077 µs)...
    seconds[:2, 0, 0] = [1e-5, 1e-5 + 56 * 0.01e-6]
    table = GemmTable(m, k, n, seconds)
    assert table.best_flops_per_s() == pytest.approx(80e9)
    ceiling_row_s = 2.0 * 64 * 48 / 80e9
    assert table.seconds_for(512, 64, 48) == pytest.approx(seconds[1, 0, 0] + 448 * ceiling_row_s)
    # ... and a slope steeper than the last point's average (a disturbed last point) is held to it.
    seconds[:2, 0, 0] = [1e-7, 5e-5]
    table = GemmTable(m, k, n, seconds)
    assert table.seconds_for(512, 64, 48) == pytest.approx(5e-5 * 512 / 64)
    # A column timed at one M alone scales from its average per row.
    seconds[:, 0, 0] = [2e-5, np.nan, np.nan]
    assert GemmTable(m, k, n, seconds).seconds_for(512, 64, 48) == pytest.approx(2e-5 * 64)


def test_a_given_grid_is_timed_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _timed_gemms(tmp_path, monkeypatch, ([2, 128, 8192], [16, 64], [48, 192]))
    timed = {u.params["m"] for u in store.units("cpu/float32/t1", "gemm")}
    assert timed <= {2, 128, 8192}


def test_the_quick_grid_keeps_to_the_regular_m_grid() -> None:
    source = ((2, 8, 16, 64, 256, 512, 4096), (16, 64, 256), (48, 96, 192))
    m, k, n = _quick_gemm_grid(source, [2, 8, 64, 512, 4096])
    assert m == [2, 64, 4096]
    assert k == [16, 256] and n == [48, 192]


def test_the_full_job_times_each_gemms_unaligned_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The made-up machine runs columns that are not a multiple of 8 at half the rate once M reaches
    # 1024 (a GEMM that mostly writes its output), at the full rate below.
    from gru_sim.measure import units

    def machine_s(m: int, k: int, n: int, *args: object) -> tuple[float, bool]:
        return rising_rate_s(m, k, n) * (2.0 if n % 8 and m >= 1024 else 1.0), False

    monkeypatch.setattr(units, "projection_gemm_s", machine_s)
    monkeypatch.setattr(unit_grid, "gemm_axes", lambda _spec: ([2, 16, 128, 1024, 8192], [16, 64], [48, 192]))
    store = MeasurementStore(tmp_path / "s.sqlite")
    UnitTimer(load_job(TINY), store)._gemms("cpu/float32/torch-gru/t1", "float32", 1)
    timed = {(u.params["m"], u.params["k"], u.params["n"]) for u in store.units("cpu/float32/t1", "gemm")}
    twins = {(u.params["m"], u.params["k"], u.params["n"]) for u in store.units("cpu/float32/t1", "gemm_unaligned")}
    assert twins == timed
    table = gemm_table(store, "cpu", "float32", 1)
    assert table.has_unaligned
    # 3H = 300 (H = 100): the slowdown at the call's M, not one factor for all.
    for m, slowdown in ((16, 1.0), (8192, 2.0)):
        assert table.seconds_for(m, 64, 150, unaligned=True) / table.seconds_for(m, 64, 150) == pytest.approx(
            slowdown, rel=0.02)
    # A quick adaptation's sub-grid times no twins (it keeps its source's slowdowns).
    sub = MeasurementStore(tmp_path / "q.sqlite")
    UnitTimer(load_job(TINY), sub, gemm_grid=([2, 1024], [16], [48]))._gemms("cpu/float32/torch-gru/t1", "float32", 1)
    assert not sub.units("cpu/float32/t1", "gemm_unaligned")


def test_a_table_with_a_column_never_timed_says_so_in_one_line() -> None:
    """A column no GEMM was timed in cannot be filled (the table's rate ceiling is read only for the
    columns it extends, so an untimed one reaches this message, not a reduction over nothing)."""
    seconds = np.full((2, 1, 2), np.nan)
    seconds[:, 0, 0] = [1e-5, 4e-5]
    with pytest.raises(ValueError, match="needs a measurement in every"):
        GemmTable(m=(8, 64), k=(4,), n=(48, 96), seconds=seconds)
    with pytest.raises(ValueError, match="needs a measurement in every"):
        GemmTable(m=(8, 64), k=(4,), n=(48,), seconds=np.full((2, 1, 1), np.nan))
