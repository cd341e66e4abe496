"""The build's use of the machine's speed, end to end on a crafted store: a synthetic machine whose
units and whole calls compose exactly, timed through a slow spell that the reference call also saw
(felt more by the reference call than by the kernels, as measured: ``drift.KERNEL_ELASTICITY``, and
less still by the projection GEMMs: ``drift.GEMM_ELASTICITY``).
The profile must describe the machine at its typical speed (the spell divided out), and its interval
must be wider than the same store's without the spell."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gru_sim.calibrate import store as store_module
from gru_sim.calibrate.build import fit_model
from gru_sim.calibrate.drift import GEMM_ELASTICITY, KERNEL_ELASTICITY
from gru_sim.calibrate.jobs import JobSpec
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.config import GruConfig
from gru_sim.model.costmodel import gemm_key, step_key

G = "cpu/float32/torch-gru/t1"
TABLE = step_key(G, "inference")
BATCH = (1, 2, 4, 8, 16, 32)
HIDDEN = (16, 32, 64, 128)
SPELL = (200.0, 300.0)  # seconds of the run (of about 600) during which the reference call ran 1.6x slower
SLOW = 1.6
KERNELS_SLOW = SLOW ** KERNEL_ELASTICITY  # and every kernel this much slower
FIXED_S = 30e-6


def step_s(b: float, h: float) -> float:
    return 4e-6 + 2e-11 * b * 3 * h * h + 3e-9 * b * h


def matmul_s(b: float, h: float) -> float:
    return 1e-6 + 2e-11 * b * 3 * h * h


def gemm_s(m: float, k: float, n: float) -> float:
    return 2e-6 + 2e-11 * m * k * n


def call_s(c: GruConfig) -> float:
    return FIXED_S + c.seq_len * step_s(c.batch, c.hidden_size) + gemm_s(c.seq_len * c.batch, c.input_size,
                                                                          3 * c.hidden_size)


def spec() -> JobSpec:
    return JobSpec(name="crafted", device="cpu", dtypes=["float32"], modes=["inference"], impls=["torch-gru"],
                   threads=[1], batch=(1, 32), seq_len=(2, 64), input_size=(4, 64), hidden_size=(16, 128),
                   num_layers=(1, 1), bidirectional=[False])


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spell: bool) -> tuple[object, list[GruConfig]]:
    """A store written over about 600 s of a run, one record every 4 s; with ``spell``, every
    reference reading inside ``SPELL`` is ``SLOW``x its true value and every timing ``KERNELS_SLOW``x."""
    clock = itertools.count(0.0, 4.0)
    now = [0.0]
    monkeypatch.setattr(store_module, "time", SimpleNamespace(time=lambda: now[0]))

    def tick() -> float:
        now[0] = next(clock)
        return SLOW if spell and SPELL[0] <= now[0] <= SPELL[1] else 1.0

    store = MeasurementStore(tmp_path / f"s{int(spell)}.sqlite")
    rng = np.random.default_rng(0)
    configs = [GruConfig(batch=int(rng.choice(BATCH)), seq_len=int(rng.integers(2, 65)),
                         input_size=int(rng.choice([4, 16, 64])), hidden_size=int(rng.choice(HIDDEN)))
               for _ in range(60)]
    records: list[tuple[str, object]] = (
        [("step", (b, h)) for h in HIDDEN for b in BATCH] + [("matmul", (b, h)) for h in HIDDEN for b in BATCH]
        + [("gemm", (m, k, 3 * h)) for m in (8, 64, 512, 4096) for k in (4, 16, 64) for h in (16, 64, 128)]
        + [("call", c) for c in configs])
    order = rng.permutation(len(records))
    for k in order:
        kind, what = records[k]
        reference = tick()
        store.add_drift(G, 5e-4 * reference)
        slow = reference ** KERNEL_ELASTICITY
        if kind == "step":
            b, h = what
            store.add_unit(G, TABLE, "step", {"batch": b, "hidden": h}, step_s(b, h) * slow, False, 0.0, at=now[0])
        elif kind == "matmul":
            b, h = what
            store.add_unit(G, G, "matmul", {"batch": b, "hidden": h}, matmul_s(b, h) * slow, False, 0.0, at=now[0])
        elif kind == "gemm":
            m, kk, n = what
            store.add_unit(G, gemm_key("cpu", "float32", 1), "gemm", {"m": m, "k": kk, "n": n},
                           gemm_s(m, kk, n) * reference ** GEMM_ELASTICITY, False, 0.0, at=now[0])
        else:
            store.add(G, "train", what, "ok", 0.0, latency_s=call_s(what) * slow)
    tick()
    store.add_unit(G, TABLE, "fixed", {}, FIXED_S, False, 0.0, at=now[0])
    model = fit_model(spec(), store, store.points(role="train"), seed=0)
    return model, configs


def errors(model: object, configs: list[GruConfig]) -> np.ndarray:
    return np.array([model.predict_one(c) / call_s(c) - 1.0 for c in configs])  # type: ignore[attr-defined]


def test_a_slow_spell_seen_by_the_reference_call_is_divided_out_of_units_and_calls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steady, configs = build(tmp_path, monkeypatch, spell=False)
    spelled, _ = build(tmp_path, monkeypatch, spell=True)
    assert np.median(np.abs(errors(steady, configs))) < 0.02
    # About a sixth of the records fell in the spell; corrected, the profile is the steady one's.
    assert np.median(np.abs(errors(spelled, configs))) < 0.02
    assert np.max(np.abs(errors(spelled, configs))) < 0.05


def test_the_speeds_spread_widens_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steady, configs = build(tmp_path, monkeypatch, spell=False)
    spelled, _ = build(tmp_path, monkeypatch, spell=True)
    c = configs[0]
    width = [m.interval_s(c, m.predict_one(c)) for m in (steady, spelled)]  # type: ignore[attr-defined]
    assert width[1][1] - width[1][0] > width[0][1] - width[0][0]
    # The model's error and the machine's speed are independent: their spreads add in quadrature.
    q_steady = steady.log_residual_quantiles_[G]["inference"][1]  # type: ignore[attr-defined]
    q_spelled = spelled.log_residual_quantiles_[G]["inference"][1]  # type: ignore[attr-defined]
    assert q_spelled == pytest.approx(math.hypot(q_steady, math.log(KERNELS_SLOW)), abs=0.02)


def test_without_the_reference_readings_the_spell_would_stay_in(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same spell with too few readings to correct for: the shapes composed from units timed in
    it stay slow (the check that the first test is not passing for want of a spell)."""
    from gru_sim.calibrate import drift

    monkeypatch.setattr(drift, "MIN_READINGS", 10**9)
    spelled, configs = build(tmp_path, monkeypatch, spell=True)
    assert np.max(np.abs(errors(spelled, configs))) > 0.1


def test_a_pools_interval_is_its_out_of_fold_spread_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs pooled: their out-of-fold errors already hold the spread between runs (a configuration's
    runs share a fold), so the speed's spread is not added again, as it is for one run."""
    from gru_sim.calibrate.build import fit_runs

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    spelled, _ = build(tmp_path / "a", monkeypatch, spell=True)  # one run's model, for its widened interval
    build(tmp_path / "b", monkeypatch, spell=True)  # a second run of the same machine, for its store
    stores = [MeasurementStore(tmp_path / d / "s1.sqlite") for d in ("a", "b")]
    pooled = fit_runs(spec(), [(s, s.points(role="train")) for s in stores], seed=0)
    single_hi = spelled.log_residual_quantiles_[G]["inference"][1]  # type: ignore[attr-defined]
    pooled_lo, pooled_hi = pooled.log_residual_quantiles_[G]["inference"]
    assert single_hi >= math.log(KERNELS_SLOW) - 0.02  # one run: widened by the spell
    assert pooled_hi < 0.5 * single_hi and -pooled_lo < 0.5 * single_hi  # the pool: its own errors only


def test_gemms_timed_in_the_spell_are_taken_back_by_their_own_power_not_the_steps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GEMMs felt the spell to the power GEMM_ELASTICITY: divided by it, every GEMM cell is the
    steady machine's; divided by the steps' power (as before), those timed in the spell come out fast."""
    from gru_sim.calibrate import build as build_module

    cells = [(m, k, 3 * h) for m in (8, 64, 512, 4096) for k in (4, 16, 64) for h in (16, 64, 128)]
    key = gemm_key("cpu", "float32", 1)
    spelled, _ = build(tmp_path, monkeypatch, spell=True)
    ratios = np.array([spelled.gemm_tables_[key].seconds_for(*c) / gemm_s(*c) for c in cells])  # type: ignore[attr-defined]
    assert np.max(np.abs(ratios - 1.0)) < 0.02
    (tmp_path / "old").mkdir()
    monkeypatch.setattr(build_module, "GEMM_ELASTICITY", KERNEL_ELASTICITY)
    old, _ = build(tmp_path / "old", monkeypatch, spell=True)
    ratios = np.array([old.gemm_tables_[key].seconds_for(*c) / gemm_s(*c) for c in cells])  # type: ignore[attr-defined]
    assert np.min(ratios) < (SLOW ** (GEMM_ELASTICITY - KERNEL_ELASTICITY)) * 1.02  # a spell cell made too fast
