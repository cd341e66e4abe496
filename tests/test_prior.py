"""A fresh calibration read against a pool of its machine kind (:mod:`gru_sim.calibrate.prior`): the
run's level kept, the shape its cells share with their neighbours shrunk in the proportion chance
explains it and a cell unlike its neighbours read as the pool's (a pool written before: each cell's
scatter shrunk alike), shape the pool lacks kept, and the command line's ``--prior`` / ``--no-prior``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from gru_sim.calibrate.prior import SHARED_SUFFIX, UnitPrior, neighbourhood_median, robust_log_sd, shrink_cells
from gru_sim.errors import GruSimError
from gru_sim.model.profile import load_profile
from gru_sim.model.units import GemmTable, StepTable

from model_fixtures import LEVELS, gemm_table, make_profile, step_table, tables

RNG = np.random.default_rng(7)


def _noisy(values: np.ndarray, sd: float, rng: np.random.Generator = RNG) -> np.ndarray:
    return values * np.exp(rng.normal(0.0, sd, np.shape(values)))


def test_scatter_no_larger_than_chance_leaves_the_runs_level_on_the_pools_shape() -> None:
    prior = np.exp(np.linspace(-12, -6, 60))
    fresh = _noisy(prior * 1.25, 0.15)
    out, s = shrink_cells(fresh, prior, chance_log_sd=0.15)
    assert s.weight < 0.35 and s.cells == 60
    assert s.level_x == pytest.approx(1.25, rel=0.06)
    # The cells lie far closer to the pool's shape at the run's level than the run's own timings did.
    assert robust_log_sd(np.log(out / (prior * s.level_x))) < 0.4 * robust_log_sd(np.log(fresh / (prior * s.level_x)))


def test_shape_the_pool_lacks_is_kept() -> None:
    prior = np.exp(np.linspace(-12, -6, 60))
    shape = np.where(np.arange(60) < 30, 1.0, 2.5)  # another machine: a cache cliff the pool does not have
    fresh = _noisy(prior * shape, 0.05)
    out, s = shrink_cells(fresh, prior, chance_log_sd=0.05)
    assert s.weight > 0.95
    np.testing.assert_allclose(out, fresh, rtol=0.05)


def test_cells_either_side_lacks_are_returned_as_timed() -> None:
    prior = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    fresh = np.array([1.1, np.nan, 3.3, 4.4, 5.5])
    out, s = shrink_cells(fresh, prior, chance_log_sd=0.1)
    assert np.isnan(out[1]) and out[2] == 3.3
    np.testing.assert_allclose(out[[0, 3, 4]], [1.1, 4.4, 5.5])  # exactly 1.1x: no scatter to shrink
    few, s = shrink_cells(np.array([1.0, 2.0]), np.array([3.0, 1.0]), chance_log_sd=0.1)
    assert s.weight == 1.0 and few.tolist() == [1.0, 2.0]


def test_a_cell_unlike_its_neighbours_reads_as_the_pools_while_a_shape_they_share_stands() -> None:
    rng = np.random.default_rng(11)
    hidden, batch = np.arange(1, 9)[:, None], np.arange(1, 13)[None, :]
    prior = 1e-5 * hidden ** 1.5 * batch ** 0.5
    # This machine: 1.2x the pool's pace, and 1.6x more from the sixth hidden size up (a cache the
    # pool's machines have more of); its timings scatter by chance, and eight cells were timed while
    # the machine was disturbed (cells timed in a shuffled order: scattered over the table).
    truth = prior * 1.2 * np.where(hidden >= 6, 1.6, 1.0)
    fresh = _noisy(truth, 0.03, rng)
    hit = rng.choice(prior.size, 8, replace=False)
    fresh.flat[hit] *= 2.0
    out, s = shrink_cells(fresh, prior, chance_log_sd=0.05, shared_chance_log_sd=0.02)
    assert s.shared and s.weight > 0.9 and s.cells == prior.size
    # The disturbed cells read as the pool's at this machine's shape; the shape the cells share stands.
    np.testing.assert_allclose(out.flat[hit] / truth.flat[hit], 1.0, atol=0.1)
    assert np.median(out[5:] / prior[5:]) / np.median(out[:5] / prior[:5]) == pytest.approx(1.6, rel=0.05)
    # Read cell by cell (a pool written before the split), the disturbed cells were kept as timed.
    whole, w = shrink_cells(fresh, prior, chance_log_sd=0.05)
    assert not w.shared and np.median(whole.flat[hit] / truth.flat[hit]) > 1.6


def test_a_neighbourhood_median_keeps_a_step_and_skips_cells_not_timed() -> None:
    grid = np.where(np.arange(6)[:, None] >= 3, 1.0, 0.0) * np.ones((6, 7))
    grid[1, 3], grid[4, 4], grid[0, 0] = 5.0, -5.0, np.nan
    smooth = neighbourhood_median(grid)
    assert np.isnan(smooth[0, 0])
    np.testing.assert_array_equal(smooth[1:], np.where(np.arange(1, 6)[:, None] >= 3, 1.0, 0.0) * np.ones((5, 7)))
    assert neighbourhood_median(np.array([0.0, 0.0, 9.0, 0.0, 1.0, 1.0, 1.0])).tolist() == [0, 0, 0, 1, 1, 1, 1]


def _scaled_step(table: StepTable, values: np.ndarray, matmul: np.ndarray | None = None,
                 intercepts: tuple[float, ...] | None = None) -> StepTable:
    return StepTable(table.batch, table.hidden, values, table.matmul_s if matmul is None else matmul, 4, LEVELS,
                     table.matmuls_per_step, None, intercepts)


def test_a_pool_of_runs_knows_its_chance_scatter_and_reads_a_fresh_table_against_it() -> None:
    base = step_table("inference")
    rng = np.random.default_rng(3)
    hidden_fixed = tuple(1e-4 * h / base.hidden[0] for h in base.hidden)
    runs = []
    for k in range(9):
        level = 0.85 + 0.05 * k
        runs.append(_scaled_step(base, _noisy(base.step_s * level, 0.12, rng), _noisy(base.matmul_s * level, 0.12, rng),
                                 tuple(_noisy(np.array(hidden_fixed) * level, 0.1, rng))))
    g = gemm_table()
    gemm_runs = [GemmTable(g.m, g.k, g.n, _noisy(g.seconds, 0.1, rng)) for _ in range(9)]
    prior = UnitPrior.from_runs([{"s": r} for r in runs], [{"g": t} for t in gemm_runs])
    assert prior.chance_log_sd["s:step_s"] == pytest.approx(0.12, rel=0.25)
    assert prior.chance_log_sd["g:seconds"] == pytest.approx(0.10, rel=0.25)
    parts = {"s:step_s", "s:matmul_s", "s:intercepts", "g:seconds"}
    assert set(prior.chance_log_sd) == parts | {p + SHARED_SUFFIX for p in parts}
    # The shape a run's cells share with their neighbours scatters less by chance than its cells.
    for p in parts:
        assert prior.chance_log_sd[p + SHARED_SUFFIX] < 0.8 * prior.chance_log_sd[p], p

    fresh = _scaled_step(base, _noisy(base.step_s * 1.3, 0.12, rng), _noisy(base.matmul_s * 1.3, 0.12, rng),
                         tuple(np.array(hidden_fixed) * 1.3))
    read = prior.step("s", fresh)
    assert read.hidden == fresh.hidden and read.batch == fresh.batch
    truth = base.step_s * 1.3
    err_read = np.nanmedian(np.abs(np.log(read.step_s / truth)))
    err_fresh = np.nanmedian(np.abs(np.log(fresh.step_s / truth)))
    assert err_read < 0.6 * err_fresh
    assert prior.applied["s:step_s"].level_x == pytest.approx(1.3, rel=0.08)
    np.testing.assert_allclose(read.call_fixed_by_hidden_s, np.array(hidden_fixed) * 1.3, rtol=0.08)
    assert prior.step("other", fresh) is fresh  # a table the pool lacks stands as timed
    summary = prior.summary()
    assert summary["runs"] == 9 and "s:step_s" in summary["tables"] and summary["tables"]["s:step_s"]["shared"]
    assert "9 runs" in prior.describe() and "share with their neighbours" in prior.describe()
    # A pool written before the split (no shared scatter stored) reads each cell's whole deviation.
    before = UnitPrior(prior.steps, prior.gemms, {k: v for k, v in prior.chance_log_sd.items()
                                                  if not k.endswith(SHARED_SUFFIX)})
    before.step("s", fresh)
    assert not before.applied["s:step_s"].shared and "scatter about that level" in before.describe()


def test_a_run_that_borrowed_the_pools_intercepts_adds_no_chance_scatter() -> None:
    base = step_table("training")
    own = tuple(1e-3 * (1 + 0.2 * np.sin(i)) for i in range(len(base.hidden)))
    runs = [{"s": _scaled_step(base, base.step_s, intercepts=own)} for _ in range(5)]
    runs.append({"s": _scaled_step(base, base.step_s, intercepts=tuple(np.array(own) * np.exp(0.3 * np.cos(np.arange(len(own))))))})
    prior = UnitPrior.from_runs(runs, [])
    # Five identical runs (a borrowed copy each) are left out: the scatter is the one run's own.
    assert prior.chance_log_sd["s:intercepts"] > 0.05


def test_only_a_pool_serves_as_a_prior(tmp_path: Path) -> None:
    profile = load_profile(make_profile(tmp_path / "single.json"))
    with pytest.raises(GruSimError, match="not a pool of calibration runs"):
        UnitPrior.from_profile(profile)
    steps, gemms = tables()
    profile.unit_scatter_log_sd = {f"{k}:step_s": 0.1 for k in steps}
    profile.self_check["runs"] = [{"store": "a"}, {"store": "b"}]
    prior = UnitPrior.from_profile(profile)
    assert prior.runs == 2 and set(prior.steps) == set(profile.cost_model.step_tables_)


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{"prior": None, "no_prior": False, **kw})


def test_the_command_takes_the_named_pool_or_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.commands.calibrate import _prior_for
    from gru_sim.model.profile import save_profile

    spec = load_job(Path(__file__).parent / "data" / "tiny-job.yaml")
    assert _prior_for(_args(no_prior=True), spec) is None
    path = make_profile(tmp_path / "pool.json")
    with pytest.raises(GruSimError, match="pools another job"):
        _prior_for(_args(prior=str(path)), spec)
    profile = load_profile(path)
    profile.job = spec.model_dump(mode="json")
    save_profile(profile, path)
    with pytest.raises(GruSimError, match="not a pool"):
        _prior_for(_args(prior=str(path)), spec)
    profile.unit_scatter_log_sd = {f"{k}:step_s": 0.1 for k in profile.cost_model.step_tables_}
    profile.self_check["runs"] = [{"store": "a"}, {"store": "b"}, {"store": "c"}]
    save_profile(profile, path)
    prior = _prior_for(_args(prior=str(path)), spec)
    assert prior is not None and prior.runs == 3
    err = capsys.readouterr().err
    assert "pool of 3 runs" in err and "--no-prior" in err
    assert "differ" in err  # pooled on a 'synthetic' machine: said so


def test_the_command_takes_the_largest_pool_of_this_job_that_matches_this_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.commands.calibrate import _prior_for
    from gru_sim.model import library
    from gru_sim.model.profile import save_profile

    spec = load_job(Path(__file__).parent / "data" / "tiny-job.yaml")
    here = library.here_fingerprint("cpu")

    def write(name: str, runs: int, fingerprint: dict, job: dict) -> None:
        profile = load_profile(make_profile(tmp_path / name))
        profile.fingerprint, profile.job = fingerprint, job
        if runs > 1:
            profile.self_check["runs"] = [{"store": f"r{k}"} for k in range(runs)]
            profile.unit_scatter_log_sd = {f"{k}:step_s": 0.1 for k in profile.cost_model.step_tables_}
        save_profile(profile, tmp_path / name)

    job = spec.model_dump(mode="json")
    write("cpu-default.json", 1, here, job)                              # this machine, one run: no pool
    write("cpu-this-pool.json", 3, here, job)                            # the one to take
    write("cpu-other-job.json", 9, here, {**job, "name": "another"})      # another job
    write("cpu-other-cpu.json", 9, {**here, "cpu_model": "Not This CPU"}, job)  # another machine
    monkeypatch.setattr(library, "profile_dirs", lambda: [tmp_path])
    prior = _prior_for(_args(), spec)
    assert prior is not None and prior.runs == 3 and prior.source.endswith("cpu-this-pool.json")
    assert "pool of 3 runs" in capsys.readouterr().err


@pytest.mark.parametrize("other_cpu", [False, True])
def test_a_named_pool_of_another_machine_kind_is_read_cell_by_cell(tmp_path: Path, other_cpu: bool,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.commands.calibrate import _prior_for
    from gru_sim.model.library import here_fingerprint
    from gru_sim.model.profile import save_profile

    spec = load_job(Path(__file__).parent / "data" / "tiny-job.yaml")
    path = make_profile(tmp_path / "pool.json")
    profile = load_profile(path)
    profile.job = spec.model_dump(mode="json")
    here = here_fingerprint(spec.device)
    profile.fingerprint = {**here, "cpu_model": "Not This CPU"} if other_cpu else here
    keys = [f"{k}:step_s" for k in profile.cost_model.step_tables_]
    profile.unit_scatter_log_sd = {**{k: 0.1 for k in keys}, **{k + SHARED_SUFFIX: 0.05 for k in keys}}
    profile.self_check["runs"] = [{"store": "a"}, {"store": "b"}]
    save_profile(profile, path)
    prior = _prior_for(_args(prior=str(path)), spec)
    assert prior is not None
    # The neighbourhood split holds for the pool's own kind of machine; another may differ cell by cell.
    assert any(k.endswith(SHARED_SUFFIX) for k in prior.chance_log_sd) is not other_cpu
    assert ("cell by cell" in capsys.readouterr().err) is other_cpu


def test_the_command_finds_no_pool_for_another_job() -> None:
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.commands.calibrate import _prior_for

    # The shipped pool is of the default job: a calibration of another job stands alone.
    spec = load_job(Path(__file__).parent / "data" / "tiny-job.yaml")
    assert _prior_for(_args(), spec) is None


@pytest.mark.parametrize("flags, says", [(["--quick", "--prior", "x.json"], "belong to a full calibration"),
                                         (["--pool", "a.json", "b.json", "--out", "p.json", "--no-prior"],
                                          "belong to a full calibration")])
def test_prior_flags_outside_a_full_calibration_are_refused(run_cli, flags: list[str], says: str) -> None:  # type: ignore[no-untyped-def]
    done = run_cli(["calibrate", *flags])
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1
