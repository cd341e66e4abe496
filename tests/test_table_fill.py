"""Completing a step table past the batch sizes it was timed at: from the step's matmuls and a
per-sequence slope of the rest, never from a one-point row's fixed part spread over its batch."""

from __future__ import annotations

import numpy as np
import pytest

from gru_sim.model.table_fill import (complete_step_rows, monotone_fit, per_hidden_unit_slope_s,
                                      rest_slope_s, theil_sen_slope)
from gru_sim.model.units import StepTable

BATCH = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
HIDDEN = (64, 128, 256, 512)
# A synthetic machine: matmul time ∝ B·H² (plus a floor), rest = a(H) + κ·B·H.
KAPPA_S = 2e-9
MM_RATE = 1e-11


def matmul_s(b: float, h: float) -> float:
    return 2e-6 + MM_RATE * b * 3 * h * h


def step_s(b: float, h: float, matmuls: int = 1, fixed_s: float = 20e-6) -> float:
    return matmuls * matmul_s(b, h) + fixed_s * (h / 64.0) + KAPPA_S * b * h


def table(matmuls: int = 1, stop: dict[int, int] | None = None) -> StepTable:
    """A table whose rows are timed up to ``stop[h]`` batch points (default: all), matmul rows in full."""
    stop = stop or {}
    step = np.array([[step_s(b, h, matmuls) if i < stop.get(h, len(BATCH)) else np.nan for i, b in enumerate(BATCH)]
                     for h in HIDDEN])
    mm = np.array([[matmul_s(b, h) for b in BATCH] for h in HIDDEN])
    return StepTable(tuple(int(b) for b in BATCH), HIDDEN, step, mm, matmuls_per_step=matmuls)


def test_theil_sen_ignores_one_disturbed_point() -> None:
    x = np.arange(1.0, 9.0)
    y = 3.0 * x + 1.0
    y[5] *= 4.0  # one point timed while something else ran
    assert theil_sen_slope(x, y) == pytest.approx(3.0)


def test_row_slope_is_the_rest_per_sequence() -> None:
    h = 256
    row = np.array([step_s(b, h) for b in BATCH])
    mm = np.array([matmul_s(b, h) for b in BATCH])
    assert rest_slope_s(BATCH, row, mm, 1) == pytest.approx(KAPPA_S * h, rel=1e-6)


def test_row_timed_over_too_few_batch_sizes_gives_no_slope_of_its_own() -> None:
    h = 256
    row = np.array([step_s(b, h) if b <= 16 else np.nan for b in BATCH])  # 8 and 16 only above the floor
    mm = np.array([matmul_s(b, h) for b in BATCH])
    assert rest_slope_s(BATCH, row, mm, 1) is None


def test_kappa_is_per_hidden_unit() -> None:
    rows = np.array([[step_s(b, h) for b in BATCH] for h in HIDDEN])
    mms = np.array([[matmul_s(b, h) for b in BATCH] for h in HIDDEN])
    assert per_hidden_unit_slope_s(BATCH, HIDDEN, rows, mms, 1) == pytest.approx(KAPPA_S, rel=1e-6)


@pytest.mark.parametrize("matmuls", [1, 3])
def test_one_point_row_grows_by_its_matmuls_and_kappa_not_by_its_fixed_part(matmuls: int) -> None:
    """The largest hidden size timed at batch 1 only (its calls were too long): the rest of the row
    comes from its matmuls and κ·H. The old rule (the rest at B=1 spread per sequence) made B=256
    cost its whole fixed part 256 times over."""
    t = table(matmuls, stop={512: 1})
    for b in (16, 64, 256):
        assert t.step_parts_s(b, 512)[0] == pytest.approx(step_s(b, 512, matmuls), rel=1e-6)


def test_a_row_timed_part_way_continues_with_its_own_slope() -> None:
    t = table(stop={256: 6})  # timed up to B=32
    for b in (64, 128, 256):
        assert t.step_parts_s(b, 256)[0] == pytest.approx(step_s(b, 256), rel=1e-6)


def test_complete_rows_keeps_timed_points() -> None:
    rows = np.array([[step_s(b, h) for b in BATCH] for h in HIDDEN])
    mms = np.array([[matmul_s(b, h) for b in BATCH] for h in HIDDEN])
    np.testing.assert_allclose(complete_step_rows(BATCH, HIDDEN, rows, mms, 1), rows)


def test_a_matrix_read_once_from_the_level_of_the_calls_whole_weight_set_pays_the_difference() -> None:
    """Weights cost 20 ps/B to read while a matrix fits the cache (up to 8 MB here) and 60 ps/B past
    it (log-interpolated between the sizes timed). A 3 MB matrix in a call whose weights total 50 MB
    pays one read at the difference; in a call whose weights fit, nothing; a matrix already past the
    cache, nothing more."""
    hidden = (256, 512, 1024, 2048)
    wb = np.array([3.0 * h * h * 4 for h in hidden])
    per_byte = np.where(wb <= 8e6, 20e-12, 60e-12)
    mm = np.array([[v * b, v * b * 2.0] for v, b in zip(per_byte, wb)])
    t = StepTable((1, 2), hidden, mm * 1.5, mm, matmuls_per_step=1)
    assert t.read_s_per_byte(wb[1]) == pytest.approx(20e-12)
    assert t.read_s_per_byte(wb[3]) == pytest.approx(60e-12)
    assert t.cold_read_s(wb[0], wb[1]) == pytest.approx(0.0)  # both fit: no level crossed
    assert t.cold_read_s(wb[1], wb[3]) == pytest.approx(wb[1] * 40e-12)
    assert t.cold_read_s(wb[3], wb[3] * 2) == pytest.approx(0.0)
    np.testing.assert_allclose(t.cold_read_s(np.array([wb[0], wb[1]]), np.array([wb[1], wb[3]])),
                               [0.0, wb[1] * 40e-12])


def clean_grid() -> np.ndarray:
    return np.array([[step_s(b, h) for b in BATCH] for h in HIDDEN])


def test_a_table_that_already_grows_is_left_as_timed() -> None:
    grid = clean_grid()
    assert np.allclose(monotone_fit(grid), grid, rtol=1e-9)


def test_a_noisy_table_comes_out_non_decreasing_in_batch_and_hidden_with_gaps_kept() -> None:
    rng = np.random.default_rng(3)
    noisy = clean_grid() * np.exp(rng.normal(0.0, 0.3, size=(len(HIDDEN), len(BATCH))))
    noisy[-1, 5:] = np.nan  # the largest hidden size stops early, as long calls do
    fitted = monotone_fit(noisy)
    assert np.array_equal(np.isnan(fitted), np.isnan(noisy))
    assert np.nanmin(np.diff(fitted, axis=1)) >= 0.0
    assert np.nanmin(np.diff(fitted, axis=0)) >= 0.0


def test_one_fast_reading_of_a_big_problem_does_not_pull_down_every_smaller_one() -> None:
    grid = clean_grid()
    disturbed = grid.copy()
    disturbed[2, 6] = grid[0, 0] * 1.01  # H = 256, B = 64 read as fast as the smallest problem
    fitted = monotone_fit(disturbed)
    # Cells far from it keep their timings (a lower envelope would have lowered all 21 smaller ones).
    assert np.allclose(fitted[:2, :4], grid[:2, :4], rtol=1e-9)
    assert fitted[2, 6] > disturbed[2, 6]


def test_a_round_batch_keeps_its_speed_against_its_slower_odd_neighbour() -> None:
    """BLAS runs rows in blocks and a remainder in narrower passes: B = 8 faster than B = 7 is real
    (not a disturbance), while a step slower than one with a block of sequences more is not."""
    batch = [4, 5, 6, 7, 8, 12]
    sawtooth = np.array([[230.0, 282.0, 288.0, 350.0, 293.0, 394.0]]) * 1e-6  # H = 512, AMD EPYC, µs
    fitted = monotone_fit(sawtooth, batch=batch, batch_block=4)
    np.testing.assert_allclose(fitted, sawtooth, rtol=1e-9)
    linked_row_by_row = monotone_fit(sawtooth)
    assert linked_row_by_row[0, 4] > 1.05 * sawtooth[0, 4]  # B = 8 priced like B = 7
    disturbed = sawtooth.copy()
    disturbed[0, 0] = 500e-6  # B = 4 slower than B = 8: a disturbance
    fixed = monotone_fit(disturbed, batch=batch, batch_block=4)
    assert fixed[0, 0] < 0.8 * disturbed[0, 0]
    assert fixed[0, 0] <= fixed[0, 4] * (1 + 1e-9) <= fixed[0, 5] * (1 + 1e-9)  # 4, 8, 12 non-decreasing


def test_a_matmul_row_timed_short_of_saturation_grows_at_the_tables_compute_bound_rate() -> None:
    # A GEMM speeds up with its rows until compute-bound: 40% of the peak at B = 1, the peak from B = 64.
    # The large hidden size's row stops at B = 32 (still at 80%); grown in proportion to that point, B = 256
    # would cost a quarter more than it does. The small rows, timed to B = 256, show the peak.
    peak = 1e11

    def mm(b: float, h: float) -> float:
        return 2.0 * b * h * 3 * h / (peak * min(0.4 + 0.6 * (b / 64.0) ** 0.5, 1.0))

    hidden = (256, 512, 2048)
    rows = [[mm(b, h) if (h < 2048 or b <= 32) else np.nan for b in BATCH] for h in hidden]
    t = StepTable(tuple(int(b) for b in BATCH), hidden, [[3 * v for v in r] for r in rows], rows)
    got = t._matmul[2]
    for j, b in enumerate(BATCH):
        assert got[j] == pytest.approx(mm(b, 2048), rel=0.12 if b > 32 else 1e-9), b
    assert got[-1] == pytest.approx(mm(256, 2048), rel=0.05)  # in proportion to B = 32: +21%
    assert np.all(np.diff(got) > 0)
