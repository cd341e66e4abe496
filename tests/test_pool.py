"""Pooling calibration runs (``gru-sim calibrate --pool``): unit tables as the geometric median of
the runs, one fold per configuration in the out-of-fold residuals, runs of another job or machine
refused in one line, and two real tiny runs pooled end to end."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru_sim.model import residual
from gru_sim.model.units import GemmTable, StepTable

from model_fixtures import LEVELS, gemm_table, step_table, true_gemm_s

TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GRU_SIM = str(Path(sys.executable).parent / "gru-sim")


def _scaled(table: StepTable, factor: np.ndarray | float, drop_hidden: int | None = None) -> StepTable:
    keep = [i for i, h in enumerate(table.hidden) if h != drop_hidden]
    return StepTable(table.batch, tuple(table.hidden[i] for i in keep), (table.step_s * factor)[keep],
                     (table.matmul_s * factor)[keep], table.element_bytes, table.levels, table.matmuls_per_step,
                     table.call_fixed_s * float(np.mean(factor)) if table.call_fixed_s else None)


def test_each_unit_is_the_geometric_median_of_the_runs_that_timed_it() -> None:
    base = step_table("inference")
    slow_row = np.ones_like(base.step_s)
    slow_row[3] = 2.0  # one run timed a whole row during a slow spell
    missing = base.hidden[5]
    runs = [_scaled(base, 1.0), _scaled(base, slow_row), _scaled(base, 1.1, drop_hidden=missing)]
    pooled = StepTable.median_of(runs)
    assert pooled.hidden == base.hidden and pooled.batch == base.batch
    # Three runs: the middle one; the slow spell moves nothing.
    np.testing.assert_allclose(pooled.step_s[3], 1.1 * base.step_s[3])
    np.testing.assert_allclose(pooled.step_s[0], 1.0 * base.step_s[0])
    # A row only two runs timed: the geometric mean of the two.
    np.testing.assert_allclose(pooled.step_s[5], base.step_s[5])
    np.testing.assert_allclose(pooled.matmul_s[3], 1.1 * base.matmul_s[3])
    assert pooled.levels == LEVELS


def test_one_run_is_its_own_pool_and_gemm_tables_pool_alike() -> None:
    base = step_table("training")
    assert StepTable.median_of([base]) is base
    g = gemm_table()
    faster = GemmTable(g.m, g.k, g.n, g.seconds * 0.5)
    pooled = GemmTable.median_of([g, faster])
    np.testing.assert_allclose(pooled.seconds, g.seconds * np.sqrt(0.5))


def test_a_unit_only_a_minority_of_runs_timed_is_put_on_the_pools_level() -> None:
    # Three runs; the newest (a fast spell: every unit 0.8x) also timed a row of one-row GEMMs the
    # older grid lacked. The pool's common units are the older runs' (the median); the new row,
    # timed by that run alone, is divided by its 0.8 rather than kept at the fast spell's speed.
    g = gemm_table()
    ones = np.array([[[true_gemm_s(1, k, n) for n in g.n] for k in g.k]])
    newer = GemmTable((1, *g.m), g.k, g.n, np.concatenate([ones, g.seconds]) * 0.8)
    pooled = GemmTable.median_of([g, GemmTable(g.m, g.k, g.n, g.seconds * 1.1), newer])
    assert pooled.m == (1, *g.m)
    np.testing.assert_allclose(pooled.seconds[1:], g.seconds)
    np.testing.assert_allclose(pooled.seconds[0], ones[0])
    # A unit most runs timed is their plain median, whatever the others' level.
    row = _scaled(step_table("inference"), 1.0)
    runs = [row, _scaled(row, 1.3), _scaled(row, 0.7, drop_hidden=row.hidden[2])]
    np.testing.assert_allclose(StepTable.median_of(runs).step_s[2], np.sqrt(1.3) * row.step_s[2])


def test_tables_of_other_modes_are_not_pooled() -> None:
    with pytest.raises(ValueError, match="cannot be pooled"):
        StepTable.median_of([step_table("inference"), step_table("training")])


def test_a_configuration_measured_in_several_runs_keeps_to_one_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 2.0, size=(30, len(residual.RESIDUAL_TERMS)))
    y = x.sum(axis=1) * rng.uniform(0.9, 1.1, size=30)
    labels = [k % 10 for k in range(30)]  # ten configurations, three runs each
    seen: list[set[int]] = []
    real_fit = residual.fit_residual

    def spy(xt: np.ndarray, yt: np.ndarray, fixed: float | None = None) -> np.ndarray:
        train = {labels[int(np.flatnonzero((x == row).all(axis=1))[0])] for row in xt}
        seen.append(train)
        return real_fit(xt, yt, fixed)

    monkeypatch.setattr(residual, "fit_residual", spy)
    out = residual.cv_log_residuals(x, y, np.random.default_rng(1), 5, None, labels)
    assert out.shape == (30,) and np.isfinite(out).all()
    assert len(seen) == 5
    # Every fold leaves out whole configurations: each appears in exactly four of the five fits.
    counts = {label: sum(label in train for train in seen) for label in set(labels)}
    assert set(counts.values()) == {4}
    # Without labels every point is its own configuration, as before.
    monkeypatch.setattr(residual, "fit_residual", real_fit)
    plain = residual.cv_log_residuals(x, y, np.random.default_rng(1), 5)
    assert plain.shape == (30,)


def _fake_run(path: Path, job: dict, fingerprint: dict) -> Path:
    from gru_sim.calibrate.store import MeasurementStore

    with MeasurementStore(path) as store:
        store.set_meta("job", job)
        store.set_meta("fingerprint", fingerprint)
    return path


@pytest.fixture
def fake_runs(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    from gru_sim.calibrate.jobs import load_job

    job = load_job(TINY).model_dump(mode="json")
    fp = {"device": "cpu", "cpu_model": "AMD EPYC", "logical_cores": 2, "isa": ["avx2"], "torch": "2.13.0+cpu"}
    a = _fake_run(tmp_path / "a.sqlite", job, fp)
    b = _fake_run(tmp_path / "b.sqlite", {**job, "budget_s": 99}, fp)
    other_job = _fake_run(tmp_path / "c.sqlite", {**job, "seed": 7}, fp)
    other_cpu = _fake_run(tmp_path / "d.sqlite", job, {**fp, "cpu_model": "Intel Xeon", "isa": ["avx512f"]})
    return a, b, other_job, other_cpu


@pytest.mark.parametrize("which, says", [
    ("job", "ran another job"),
    ("cpu", "pool runs of one kind of machine"),
    ("one", "at least two calibration runs"),
    ("missing", "no such calibration store"),
    ("out", "would replace one of the pooled runs"),
    ("quick", "--quick and --from adapt one instead"),
    ("budget", "--pool measures nothing"),
])
def test_runs_that_cannot_be_pooled_are_refused_in_one_line(fake_runs: tuple[Path, ...], which: str, says: str,
                                                           tmp_path: Path) -> None:
    a, b, other_job, other_cpu = fake_runs
    out = ["--out", str(tmp_path / "pooled.json")]
    args = {"job": [str(a), str(other_job), *out], "cpu": [str(a), str(other_cpu), *out], "one": [str(a), *out],
            "missing": [str(a), str(tmp_path / "nope.json"), *out], "out": [str(a), str(b), "--out", str(tmp_path / "a.json")],
            "quick": [str(a), str(b), *out, "--quick"], "budget": [str(a), str(b), *out, "--budget", "5"]}[which]
    proc = subprocess.run([GRU_SIM, "calibrate", "--pool", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pooled.json").exists()


def test_recent_keeps_the_runs_that_measured_last(tmp_path: Path) -> None:
    from gru_sim.calibrate.pool import most_recent
    from gru_sim.calibrate.store import MeasurementStore

    # Each run's last unit decides which are the latest, not its first one nor the order given.
    last_at = {"a": 300.0, "b": 100.0, "c": 400.0, "d": 200.0}
    stores = []
    for name, at in last_at.items():
        store = MeasurementStore(tmp_path / f"{name}.sqlite").__enter__()
        store.add_unit("g", "step", "step", {"b": 1}, 1e-3, False, 0.1, at=at)
        store.add_unit("g", "step", "step", {"b": 2}, 1e-3, False, 0.1, at=50.0 if name == "b" else at - 10.0)
        store.path = Path(name)
        stores.append(store)
    empty = MeasurementStore(tmp_path / "e.sqlite").__enter__()
    empty.path = Path("e.sqlite")
    try:
        # The latest, in the order given.
        assert [s.path.name for s in most_recent(stores + [empty], 2)] == ["a", "c"]
        assert [s.path.name for s in most_recent(stores + [empty], 3)] == ["a", "c", "d"]
        assert [s.path.name for s in most_recent(stores + [empty], 10)] == ["a", "b", "c", "d"]  # never the empty one
        assert [s.path.name for s in most_recent(stores + [empty], None)] == ["a", "b", "c", "d", "e.sqlite"]
    finally:
        for store in stores + [empty]:
            store.__exit__(None, None, None)


@pytest.mark.parametrize("args, says", [
    (["--recent", "1"], "a pool needs at least two runs"),
    (["--recent", "3", "--out", "x.json"], "give it with --pool"),
])
def test_recent_is_refused_in_one_line_where_it_cannot_choose(fake_runs: tuple[Path, ...], args: list[str], says: str,
                                                              tmp_path: Path) -> None:
    a, b, *_ = fake_runs
    pool = ["--pool", str(a), str(b), "--out", str(tmp_path / "pooled.json")] if "--out" not in args else []
    proc = subprocess.run([GRU_SIM, "calibrate", *pool, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pooled.json").exists() and not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_two_tiny_runs_pool_into_one_profile_that_predicts(tmp_path: Path) -> None:
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.calibrate.store import MeasurementStore
    from gru_sim.calibrate.unit_grid import step_table as stored_step_table
    from gru_sim.model.profile import load_profile

    for name in ("r1", "r2"):
        done = subprocess.run([GRU_SIM, "calibrate", "--job", str(TINY), "--out", str(tmp_path / f"{name}.json")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    with (tmp_path / "r2.sqlite").open("rb") as src, gzip.open(tmp_path / "r2.sqlite.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)  # a compressed store reads as the store
    pooled = tmp_path / "pooled.json"
    proc = subprocess.run([GRU_SIM, "calibrate", "--pool", str(tmp_path / "r1.json"), str(tmp_path / "r2.sqlite.gz"),
                           "--out", str(pooled)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 runs" in proc.stderr and f"profile written to {pooled}" in proc.stdout

    profile = load_profile(pooled)
    runs = profile.self_check["runs"]
    assert [r["store"] for r in runs] == ["r1.json", "r2.sqlite.gz"]
    singles = [load_profile(tmp_path / f"{n}.json") for n in ("r1", "r2")]
    assert profile.self_check["measuring_s"] == pytest.approx(sum(s.self_check["measuring_s"] for s in singles))
    # Each step unit: the geometric mean of the two runs' (the pooled profile stores what it was fed).
    spec = load_job(TINY)
    key = "cpu/float32/torch-gru/t1"
    tables = []
    for n in ("r1", "r2"):
        with MeasurementStore(tmp_path / f"{n}.sqlite") as store:
            from gru_sim.calibrate.drift import SpeedModel
            tables.append(stored_step_table(store, spec, key, "inference", "float32", 1,
                                            SpeedModel.from_store(store, [key]).corrector(key)))
    pooled_table = profile.cost_model.step_tables_[f"{key}|inference"]
    both = np.isfinite(tables[0].step_s) & np.isfinite(tables[1].step_s)
    assert both.any()
    np.testing.assert_allclose(pooled_table.step_s[both], np.sqrt(tables[0].step_s * tables[1].step_s)[both])
    # The residual is fitted on the whole calls of both runs; one measurement per configuration is kept.
    fitted = sum(profile.cost_model.n_samples_[key].values())
    assert fitted == sum(sum(s.cost_model.n_samples_[key].values()) for s in singles)
    configs = [(m["role"], json.dumps(m["config"], sort_keys=True)) for m in profile.measurements]
    assert len(configs) == len(set(configs))

    predicted = subprocess.run([GRU_SIM, "predict", "--profile", str(pooled), "--batch", "4", "--seq-len", "8",
                                "--input-size", "16", "--hidden-size", "16", "--json"],
                               capture_output=True, text=True, timeout=120)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["latency_s"] > 0

    # The pool knows how far one run's units lie from it by chance, and serves as a fresh run's prior:
    # the first run, resumed (nothing left to measure), read against it.
    assert profile.unit_scatter_log_sd and all(v >= 0 for v in profile.unit_scatter_log_sd.values())
    again = subprocess.run([GRU_SIM, "calibrate", "--job", str(TINY), "--out", str(tmp_path / "r1.json"),
                            "--prior", str(pooled)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "pool of 2 runs" in again.stderr and "read against the pool" in again.stderr
    read = load_profile(tmp_path / "r1.json")
    assert read.self_check["prior"]["runs"] == 2
    assert f"{key}|inference:step_s" in read.self_check["prior"]["tables"]
    assert read.unit_scatter_log_sd is None  # one run is no pool

    # --recent 2 of three runs: the two that measured last, the third named as left out.
    shutil.copyfile(tmp_path / "r1.sqlite", tmp_path / "r0.sqlite")
    with MeasurementStore(tmp_path / "r0.sqlite") as store:
        store._db.execute("UPDATE units SET created_at = created_at - 86400")
        store._db.execute("UPDATE points SET created_at = created_at - 86400")
        store._db.commit()
    recent = tmp_path / "recent.json"
    proc = subprocess.run([GRU_SIM, "calibrate", "--pool", str(tmp_path / "r0.sqlite"), str(tmp_path / "r1.json"),
                           str(tmp_path / "r2.sqlite.gz"), "--recent", "2", "--out", str(recent)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 runs (the 1 that measured earlier left out: --recent 2)" in proc.stderr
    kept = load_profile(recent).self_check
    assert [r["store"] for r in kept["runs"]] == ["r1.json", "r2.sqlite.gz"] and kept["runs_left_out"] == 1


def test_a_job_is_the_same_whatever_its_budget_for_a_resumed_run_and_for_a_pool(tmp_path: Path) -> None:
    from gru_sim.calibrate.jobs import job_differences, load_job
    from gru_sim.calibrate.runner import Calibration
    from gru_sim.calibrate.store import MeasurementStore
    from gru_sim.errors import GruSimError

    spec = load_job(TINY)
    job = spec.model_dump(mode="json")
    assert job_differences(job, {**job, "budget_s": 999.0}) == []
    assert job_differences(job, {**job, "seed": 3, "max_call_s": 1.0}) == ["max_call_s", "seed"]
    store = MeasurementStore(tmp_path / "s.sqlite")
    Calibration(spec, store)._check_store_matches()
    Calibration(spec.model_copy(update={"budget_s": 99.0}), store)._check_store_matches()  # "raise --budget"
    with pytest.raises(GruSimError, match="holds a different job"):
        Calibration(spec.model_copy(update={"seed": 3}), store)._check_store_matches()


def test_the_latest_runs_by_their_ends_in_the_order_given() -> None:
    from gru_sim.calibrate.pool import latest

    ends = [300.0, None, 100.0, 400.0, 200.0]
    assert latest(ends, 2) == [0, 3]
    assert latest(ends, 9) == [0, 2, 3, 4]  # a run that measured nothing is never among them
    assert latest(ends, None) == [0, 1, 2, 3, 4]
