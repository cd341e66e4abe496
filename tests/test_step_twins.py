"""A step table's twins: the step at a hidden size that is not whole SIMD vectors, and the step one
sequence past a round batch beyond the dense start, each timed right after its grid cell and read as how
much slower it runs than the table (timed at round sizes) reads there; a call at such a size pays it, a
call at a round size does not."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gru_sim.calibrate.jobs import load_job
from gru_sim.calibrate.prior import UnitPrior
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.calibrate.unit_grid import ODD_TWIN_BATCHES, TWIN_BATCHES, UnitTimer, has_odd_twin, has_twin, step_table
from gru_sim.config import GruConfig
from gru_sim.model.adapt import adapt_step_table
from gru_sim.model.batch import BatchPredictor
from gru_sim.model.batch_tables import StepLookup
from gru_sim.model.costmodel import step_key
from gru_sim.model.profile import load_profile
from gru_sim.model.units import UNALIGNED_EXTRA_HIDDEN, StepTable
from gru_sim.predict import Predictor

from model_fixtures import make_profile
from model_fixtures import step_table as fixture_table
from test_batch_predict import HERE, assert_same, random_configs

TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GROUP = "cpu/float32/torch-gru/t1"
KEY = step_key(GROUP, "inference")
SLOWDOWN = 1.25
ODD_SLOWDOWN = 1.2


class UnalignedCalls:
    """A call lasts 20 µs + steps · 1 µs · batch · H/32, and each step SLOWDOWN times that where H is not
    a multiple of 16 (whole 64-byte vectors of float32), ODD_SLOWDOWN times where the batch is past 16
    and not a multiple of 4."""

    def __init__(self) -> None:
        self.timed: list[tuple[int, int, int]] = []

    def __call__(self, config, policy=None):  # type: ignore[no-untyped-def]
        self.timed.append((config.batch, config.hidden_size, config.seq_len))
        step = 1e-6 * config.batch * config.hidden_size / 32
        if config.hidden_size % 16:
            step *= SLOWDOWN
        if config.batch > 16 and config.batch % 4:
            step *= ODD_SLOWDOWN
        return 20e-6 + config.seq_len * step, False


def test_twins_are_timed_right_after_their_cells_and_read_as_the_slowdown_beyond_the_grids_growth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gru_sim.measure import units

    calls = UnalignedCalls()
    monkeypatch.setattr(units, "time_gru_call_s", calls)
    spec = load_job(TINY).model_copy(update={"modes": ["inference"], "hidden_size": [4, 64], "batch": [1, 40]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    UnitTimer(spec, store, two_passes=False).run(GROUP, "float32", "torch-gru", 1)
    table = step_table(store, spec, GROUP, "inference", "float32", 1)
    assert table is not None and table.unaligned_ratio is not None
    twins = [(b, h) for h in table.hidden for b in table.batch if has_twin(b, h, table.hidden)]
    # Powers of two from 32 whose twin stays inside the grid (64 is its largest), at the twin batches.
    assert {h for _, h in twins} == {32} and {b for b, _ in twins} == {b for b in TWIN_BATCHES if b in table.batch}
    for b, h in twins:
        cell = [k for k, t in enumerate(calls.timed) if t[:2] == (b, h)][0]
        assert calls.timed[cell + 1][:2] == (b, h + UNALIGNED_EXTRA_HIDDEN)  # right after its cell, as many steps
        assert calls.timed[cell + 1][2] == calls.timed[cell][2]
    timed = np.isfinite(table.unaligned_ratio)
    assert timed.sum() == len(twins)
    # The fake step grows as H between the cells (log-linear: the table reads it exactly): what is left
    # is the slowdown.
    assert table.unaligned_ratio[timed] == pytest.approx(SLOWDOWN, rel=1e-6)
    assert table.step_parts_s(4, 100, unaligned=True)[0] == pytest.approx(SLOWDOWN * table.step_parts_s(4, 100)[0])
    # The odd-batch twins: one sequence past the round batches beyond the dense start (1-16 here).
    odd = [(b, h) for h in table.hidden for b in table.batch if has_odd_twin(b, h, table.batch, table.hidden)]
    assert {b for b, _ in odd} == {b for b in ODD_TWIN_BATCHES if 16 < b and b + 1 < max(table.batch)}
    assert {h for _, h in odd} == {32, 64}
    for b, h in odd:
        cell = [k for k, t in enumerate(calls.timed) if t[:2] == (b, h)][0]
        after = 2 if has_twin(b, h, table.hidden) else 1  # right after the cell (and its unaligned twin)
        assert calls.timed[cell + after] == (b + 1, h, calls.timed[cell][2])
    assert table.odd_batch_ratio is not None
    assert np.isfinite(table.odd_batch_ratio).sum() == len(odd)
    assert table.odd_batch_ratio[np.isfinite(table.odd_batch_ratio)] == pytest.approx(ODD_SLOWDOWN, rel=1e-6)
    plain = dataclasses.replace(table, odd_batch_ratio=None)
    assert table.step_parts_s(37, 48)[0] == pytest.approx(ODD_SLOWDOWN * plain.step_parts_s(37, 48)[0])
    assert table.step_parts_s(36, 48) == plain.step_parts_s(36, 48)  # whole blocks of rows: as read
    assert table.step_parts_s(7, 48) == plain.step_parts_s(7, 48)  # the dense start: its own cell    # A quick adaptation's sub-grid times no twins.
    quick = MeasurementStore(tmp_path / "q.sqlite")
    calls.timed.clear()
    UnitTimer(spec, quick, step_grid=([1, 4], [16, 32, 64]), two_passes=False).run(GROUP, "float32", "torch-gru", 1)
    assert all(h % 16 == 0 for _, h, _ in calls.timed)


def _with_twins(table: StepTable, ratios: dict[tuple[int, int], float]) -> StepTable:
    grid = np.full(table.step_s.shape, np.nan)
    for (b, h), r in ratios.items():
        grid[table.hidden.index(h), table.batch.index(b)] = r
    return dataclasses.replace(table, unaligned_ratio=grid)


def test_an_unaligned_step_pays_the_twins_slowdown_read_between_them_and_held_at_their_edges() -> None:
    plain = fixture_table("inference")
    twins = _with_twins(plain, {(1, 64): 1.0, (16, 64): 1.2, (1, 256): 1.1, (16, 256): 1.3})
    for b, h in ((1, 64), (16, 64), (1, 256), (16, 256)):
        r = twins.unaligned_ratio[plain.hidden.index(h), plain.batch.index(b)]
        got = twins.step_parts_s(b, h, unaligned=True)
        assert got == pytest.approx(tuple(r * v for v in plain.step_parts_s(b, h)))
        assert twins.step_parts_s(b, h) == plain.step_parts_s(b, h)  # an aligned step pays nothing
    # Between the twins: bilinear in log batch and log hidden; beyond them: held.
    assert twins.unaligned_log_ratio(4, 128) == pytest.approx(0.5 * (0.5 * math.log(1.2) + 0.5 * (
        math.log(1.1) + math.log(1.3))), rel=1e-9)
    assert twins.unaligned_log_ratio(128, 2048) == pytest.approx(math.log(1.3))
    assert twins.unaligned_log_ratio(1, 16) == pytest.approx(0.0, abs=1e-12)
    # A table without twins prices an unaligned step as its cells read.
    assert plain.step_parts_s(16, 100, unaligned=True) == plain.step_parts_s(16, 100)
    # An odd batch past the dense start pays the odd-batch twins' slowdown, whole row blocks do not.
    dense = plain.dense_batch
    odd = dataclasses.replace(twins, odd_batch_ratio=np.where(np.isfinite(plain.step_s), 1.15, np.nan))
    for b in (dense + 1, 2 * dense + 3, 1001):
        assert odd.step_parts_s(b, 64)[0] == pytest.approx(1.15 * plain.step_parts_s(b, 64)[0])
        assert odd.step_parts_s(b, 100, unaligned=True)[0] == pytest.approx(
            1.15 * twins.step_parts_s(b, 100, unaligned=True)[0])
    for b in (dense, dense - 1, 4 * dense):
        assert odd.step_parts_s(b, 64) == plain.step_parts_s(b, 64)
    # The array reading agrees with the one-call reading.
    b = np.array([1.0, 3.0, 16.0, 40.0, 7.0]), np.array([100.0, 60.0, 260.0, 2000.0, 64.0])
    off = np.array([True, True, True, True, False])
    for table in (twins, odd):
        step, mm = StepLookup(table).step_parts(b[0], b[1], off)
        for k in range(len(off)):
            assert (step[k], mm[k]) == pytest.approx(table.step_parts_s(b[0][k], b[1][k], unaligned=bool(off[k])))


def test_twins_survive_json_pool_as_the_runs_geometric_median_and_stay_through_a_prior_and_an_adaptation(
        ) -> None:
    plain = fixture_table("inference")
    b_odd = plain.batch[-2]
    runs = [dataclasses.replace(_with_twins(plain, {(1, 64): r, (16, 256): 1.2}),
                                odd_batch_ratio=_with_twins(plain, {(b_odd, 64): r ** 2}).unaligned_ratio)
            for r in (1.0, 1.1, 1.4)] + [plain]
    again = StepTable.from_dict(json.loads(json.dumps(runs[0].to_dict())))
    np.testing.assert_array_equal(np.isnan(again.unaligned_ratio), np.isnan(runs[0].unaligned_ratio))
    assert "unaligned_ratio" not in plain.to_dict()
    pool = StepTable.median_of(runs)  # the run without twins has no say in them
    assert pool.unaligned_ratio[plain.hidden.index(64), 0] == pytest.approx(1.1)
    assert pool.unaligned_ratio[plain.hidden.index(256), plain.batch.index(16)] == pytest.approx(1.2)
    assert pool.odd_batch_ratio[plain.hidden.index(64), plain.batch.index(b_odd)] == pytest.approx(1.21)
    assert StepTable.median_of([plain, plain]).unaligned_ratio is None
    assert StepTable.median_of([plain, plain]).odd_batch_ratio is None
    np.testing.assert_array_equal(np.isnan(again.odd_batch_ratio), np.isnan(runs[0].odd_batch_ratio))
    prior = UnitPrior({KEY: pool}, {}, {f"{KEY}:step_s": 0.05, f"{KEY}:matmul_s": 0.05})
    own = prior.step(KEY, runs[0])  # a fresh run that timed twins keeps its own
    assert own.unaligned_ratio[plain.hidden.index(64), 0] == pytest.approx(1.0)
    borrowed = prior.step(KEY, plain)  # one that timed none reads the pool's
    assert borrowed.unaligned_ratio[plain.hidden.index(64), 0] == pytest.approx(1.1)
    assert own.odd_batch_ratio[plain.hidden.index(64), plain.batch.index(b_odd)] == pytest.approx(1.0)
    assert borrowed.odd_batch_ratio[plain.hidden.index(64), plain.batch.index(b_odd)] == pytest.approx(1.21)
    hiddens, batches = [64, 256], [1, 16]
    times = [[2.0 * pool.step_parts_s(b, h)[0] for b in batches] for h in hiddens]
    adapted = adapt_step_table(pool, batches, hiddens, times, times, pool.levels)
    np.testing.assert_array_equal(adapted.unaligned_ratio, pool.unaligned_ratio)
    np.testing.assert_array_equal(adapted.odd_batch_ratio, pool.odd_batch_ratio)


def test_only_calls_at_hidden_sizes_that_are_not_whole_vectors_pay_and_batch_agrees(tmp_path: Path) -> None:
    plain = load_profile(make_profile(tmp_path / "p.json"))
    twins = load_profile(make_profile(tmp_path / "q.json"))
    for key, table in twins.cost_model.step_tables_.items():
        grid = np.where(np.isfinite(table.step_s), 1.3, np.nan)
        twins.cost_model.step_tables_[key] = dataclasses.replace(table, unaligned_ratio=grid,
                                                                 odd_batch_ratio=grid / 1.3 * 1.1)
    aligned = GruConfig(batch=8, seq_len=50, input_size=32, hidden_size=96, threads=1)
    odd = dataclasses.replace(aligned, hidden_size=100)
    assert twins.cost_model.predict_one(aligned) == pytest.approx(plain.cost_model.predict_one(aligned))
    slow, base = twins.cost_model.predict_one(odd), plain.cost_model.predict_one(odd)
    steps = plain.cost_model.breakdown(odd)
    assert slow > base * 1.05
    step_part = steps["recurrent_matmul_s"] + steps["pointwise_s"] + steps["step_overhead_s"]
    assert slow - base == pytest.approx(0.3 * step_part, rel=0.1)
    odd_batch = dataclasses.replace(aligned, batch=37)
    assert twins.cost_model.predict_one(odd_batch) > plain.cost_model.predict_one(odd_batch) * 1.05
    assert twins.cost_model.predict_one(dataclasses.replace(aligned, batch=36)) == pytest.approx(
        plain.cost_model.predict_one(dataclasses.replace(aligned, batch=36)))
    assert_same(Predictor(twins, here=HERE), BatchPredictor(twins, here=HERE), random_configs(5, 300))
