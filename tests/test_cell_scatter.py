"""A pool's run-to-run scatter per step cell, and the interval of a call whose steps scatter more than a
typical cell can by chance."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from gru_sim.calibrate.prior import UnitPrior
from gru_sim.config import GruConfig
from gru_sim.model.batch import BatchPredictor
from gru_sim.model.costmodel import SCATTER_Z
from gru_sim.model.profile import load_profile
from gru_sim.model.units import StepTable, cell_scatter
from gru_sim.predict import Predictor

from model_fixtures import make_profile, step_table
from test_batch_predict import HERE, assert_same, random_configs

KEY = "cpu/float32/torch-gru/t1|inference"


def _runs(n: int, hot: tuple[int, int], hot_sd: float, seed: int = 0) -> list[StepTable]:
    """``n`` runs of one table, each at its own level (±20 %), every cell off by ~2 % and the ``hot``
    cell (hidden index, batch index) by ``hot_sd`` (log)."""
    rng = np.random.default_rng(seed)
    base = step_table("inference")
    out = []
    for k in range(n):
        noise = rng.normal(0.0, 0.02, base.step_s.shape)
        noise[hot] = rng.normal(0.0, hot_sd)
        noise[hot] += hot_sd * (1 if k % 2 else -1)  # never by chance near zero
        level = np.exp(rng.uniform(-0.2, 0.2))
        out.append(dataclasses.replace(base, step_s=base.step_s * level * np.exp(noise),
                                       matmul_s=base.matmul_s * level))
    return out


def test_cell_scatter_divides_each_runs_level_out_and_needs_three_runs() -> None:
    pooled = np.ones((1, 3))
    runs = [np.array([[1.0, 1.0, 1.0]]) * f for f in (0.5, 1.0, 2.0)]  # levels only: no scatter
    assert cell_scatter(runs, pooled) == pytest.approx(np.zeros((1, 3)), abs=1e-12)
    runs = [np.array([[1.0, 1.0, np.exp(d)]]) for d in (-0.3, 0.0, 0.3)]
    assert cell_scatter(runs, pooled)[0, 2] == pytest.approx(0.3)
    assert cell_scatter(runs[:2], pooled) is None
    runs[0][0, 1] = np.nan  # a cell two runs timed has no scatter
    assert np.isnan(cell_scatter(runs, pooled)[0, 1])


def test_a_pool_finds_the_cell_that_scatters_and_only_it_widens() -> None:
    hot = (len(step_table("inference").hidden) - 2, 0)
    pool = StepTable.median_of(_runs(7, hot, 0.2))
    assert pool.scatter_runs == 7 and pool.cell_scatter_log_sd is not None
    assert np.nanmedian(pool.cell_scatter_log_sd) == pytest.approx(0.02, rel=0.3)
    b, h = pool.batch[hot[1]], pool.hidden[hot[0]]
    excess = pool.excess_scatter_log_sd(np.array([b, b, 64.0]), np.array([h, h * 1.05, 64.0]))
    assert excess[0] > 0.15 and excess[1] == excess[0]  # the nearest cell in log space
    assert excess[2] == 0.0  # a typical cell scatters no more than chance allows
    # One run's table, and a pool of two, carry none; neither widens anything.
    assert StepTable.median_of(_runs(2, hot, 0.2)).cell_scatter_log_sd is None
    assert step_table("inference").excess_scatter_log_sd(np.array([b]), np.array([h]))[0] == 0.0


def test_the_scatter_survives_json_and_a_fresh_run_read_against_the_pool() -> None:
    hot = (3, 2)
    pool = StepTable.median_of(_runs(5, hot, 0.3))
    again = StepTable.from_dict(json.loads(json.dumps(pool.to_dict())))
    assert again.scatter_runs == 5
    np.testing.assert_array_equal(np.isnan(again.cell_scatter_log_sd), np.isnan(pool.cell_scatter_log_sd))
    assert np.nanmax(np.abs(again.cell_scatter_log_sd - pool.cell_scatter_log_sd)) < 1e-12
    assert "cell_scatter_log_sd" not in step_table("inference").to_dict()
    prior = UnitPrior({KEY: pool}, {}, {f"{KEY}:step_s": 0.05, f"{KEY}:matmul_s": 0.05})
    fresh = prior.step(KEY, _runs(1, hot, 0.0, seed=3)[0])
    assert fresh.scatter_runs == 5
    assert fresh.cell_scatter_log_sd[hot] == pytest.approx(pool.cell_scatter_log_sd[hot])


def _with_hot_cell(profile, hidden: int, sd: float):  # type: ignore[no-untyped-def]
    for key, table in profile.cost_model.step_tables_.items():
        scatter = np.full(table.step_s.shape, 0.03)
        scatter[table.hidden.index(hidden), :] = sd
        profile.cost_model.step_tables_[key] = dataclasses.replace(table, cell_scatter_log_sd=scatter, scatter_runs=7)
    return profile


def test_the_interval_widens_by_the_steps_share_of_the_excess(tmp_path) -> None:
    plain = load_profile(make_profile(tmp_path / "p.json"))
    hidden = plain.cost_model.step_tables_[KEY].hidden[-2]
    hot = _with_hot_cell(load_profile(make_profile(tmp_path / "q.json")), hidden, 0.25)
    config = GruConfig(batch=1, seq_len=100, input_size=32, hidden_size=hidden, threads=1)
    lo0, hi0 = plain.cost_model.interval_s(config)
    lo1, hi1 = hot.cost_model.interval_s(config)
    spread = hot.cost_model.step_scatter_log_sd(config)
    assert 0.1 < spread < 0.25  # the steps' share of the call, times the excess over chance
    # Each end moves outwards by the scatter added in quadrature to the residual's.
    up, down = np.log(hi0 / plain.cost_model.predict_one(config)), np.log(plain.cost_model.predict_one(config) / lo0)
    assert np.log(hi1 / hi0) == pytest.approx(np.hypot(up, SCATTER_Z * spread) - up)
    assert np.log(lo0 / lo1) == pytest.approx(np.hypot(down, SCATTER_Z * spread) - down)
    assert np.log(hi1 / hi0) > 0.02
    # A call of other cells keeps its interval.
    other = GruConfig(batch=8, seq_len=100, input_size=32, hidden_size=32, threads=1)
    assert hot.cost_model.interval_s(other) == pytest.approx(plain.cost_model.interval_s(other))


def test_batch_matches_scalar_with_cell_scatter(tmp_path) -> None:
    profile = load_profile(make_profile(tmp_path / "p.json"))
    _with_hot_cell(profile, profile.cost_model.step_tables_[KEY].hidden[-3], 0.3)
    assert_same(Predictor(profile, here=HERE), BatchPredictor(profile, here=HERE), random_configs(4, 300))
