"""Step units are read from two passes of timed calls taken at different moments, keeping the faster
(interference only ever slows a kernel down), less the call's measured fixed cost; the design draws
round sizes as well as odd ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from gru_sim.calibrate import unit_grid
from gru_sim.calibrate.design import round_size, sobol_configs
from gru_sim.calibrate.jobs import load_job
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.calibrate.unit_grid import CALL_PROBE_STEPS, UnitTimer, interleaved, step_table
from gru_sim.model.costmodel import step_key

TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GROUP = "cpu/float32/torch-gru/t1"


class FakeCalls:
    """A call of ``steps`` steps lasts 20 µs + steps · 1 µs · batch; the first pass of every call at
    batch 2 is disturbed (twice as slow)."""

    def __init__(self) -> None:
        self.timed: list[tuple[int, int, int, int]] = []

    def __call__(self, config, policy):  # type: ignore[no-untyped-def]
        second = policy.min_samples == 3
        self.timed.append((config.batch, config.hidden_size, config.seq_len, 2 if second else 1))
        seconds = 20e-6 + config.seq_len * 1e-6 * config.batch
        if config.batch == 2 and not second:
            seconds *= 2.0
        return seconds, False


@pytest.fixture
def fake_calls(monkeypatch: pytest.MonkeyPatch) -> FakeCalls:
    from gru_sim.measure import units

    fake = FakeCalls()
    monkeypatch.setattr(units, "time_gru_call_s", fake)
    return fake


def _timer(tmp_path: Path, two_passes: bool) -> tuple[UnitTimer, MeasurementStore]:
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, step_grid=([1, 2, 4], [16, 32]), two_passes=two_passes)
    return timer, store


def test_the_faster_pass_makes_the_step_and_the_fixed_cost_is_kept(tmp_path: Path, fake_calls: FakeCalls) -> None:
    timer, store = _timer(tmp_path, two_passes=True)
    for mode in ("inference",):
        plan = timer._step_calls(GROUP, mode, "float32", "torch-gru", 1)
        timer._step_calls(GROUP, mode, "float32", "torch-gru", 1, second=plan)
        timer._step_units(GROUP, mode, "float32", "torch-gru", 1, plan)
    first = [t for t in fake_calls.timed if t[3] == 1]
    second = [t for t in fake_calls.timed if t[3] == 2]
    # The second pass times the same calls, in reverse order, then the probes, then the intercept pairs
    # (each hidden size's smallest-batch call and, right after it, the same with four times its steps),
    # as the first pass did.
    n_units = len(plan)
    intercepts = first[len(CALL_PROBE_STEPS) + n_units:]
    assert [t[:3] for t in intercepts] == [c for b, h, s in plan if b == 1 for c in ((1, h, s), (1, h, 4 * s))]
    assert [t[:3] for t in second[:n_units]] == [t[:3] for t in reversed(first[len(CALL_PROBE_STEPS):][:n_units])]
    assert [t[:3] for t in second[n_units + len(CALL_PROBE_STEPS):]] == [t[:3] for t in intercepts]
    table = step_table(store, timer.spec, GROUP, "inference", "float32", 1)
    assert table is not None and table.call_fixed_s == pytest.approx(20e-6, rel=1e-6)
    for j, b in enumerate(table.batch):
        assert table.step_s[0][j] == pytest.approx(1e-6 * b, rel=1e-6)  # batch 2 from its quiet pass
    assert store.get_unit(step_key(GROUP, "inference"), "fixed", {}) is not None


def test_passes_taken_as_one_timing_give_their_geometric_mean(tmp_path: Path, fake_calls: FakeCalls) -> None:
    """A quick adaptation scales a source timed once per unit: its two passes stand for one timing
    (their geometric mean), not for the faster of two, which reads every unit fast by the noise."""
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, step_grid=([1, 2, 4], [16, 32]), two_passes=True, passes_as_one=True)
    plan = timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1)
    timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1, second=plan)
    timer._step_units(GROUP, "inference", "float32", "torch-gru", 1, plan)
    table = step_table(store, spec, GROUP, "inference", "float32", 1)
    assert table is not None and table.call_fixed_s == pytest.approx(20e-6, rel=1e-6)  # probes at batch 1: quiet
    steps = {b: s for b, h, s in plan if h == 16}
    for j, b in enumerate(table.batch):
        quiet = 20e-6 + steps[b] * 1e-6 * b
        total = quiet * (2.0 ** 0.5 if b == 2 else 1.0)  # batch 2: one pass twice as slow
        assert table.step_s[0][j] == pytest.approx((total - 20e-6) / steps[b], rel=1e-6)


def test_nothing_is_timed_again_on_resume(tmp_path: Path, fake_calls: FakeCalls) -> None:
    timer, _ = _timer(tmp_path, two_passes=True)
    timer.run(GROUP, "float32", "torch-gru", 1)
    step_calls = [t for t in fake_calls.timed]
    fake_calls.timed.clear()
    timer.run(GROUP, "float32", "torch-gru", 1)
    assert fake_calls.timed == [] and step_calls


def test_a_resume_does_not_retry_steps_a_retry_made_suspect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first timing of batch 1 is 2.5x slow, of batch 2 4x slow. Batch 2 is slower than batch 6 (a
    block of rows more), so it is retried (clean); batch 1, slower than batch 2 but not than batch 5,
    is not (one more sequence may cost less). The step units are stored by then and a resume changes
    none of them: it must time nothing."""
    from gru_sim.measure import units

    seen: set[tuple[int, int]] = set()
    timed: list[tuple[int, int]] = []

    def calls(config, policy=None):  # type: ignore[no-untyped-def]
        key = (config.batch, config.seq_len)
        timed.append(key)
        first = key not in seen and config.seq_len not in CALL_PROBE_STEPS
        slow = {1: 2.5, 2: 4.0}.get(config.batch, 1.0) if first else 1.0
        seen.add(key)
        return (20e-6 + config.seq_len * 1e-6 * config.batch) * slow, False

    monkeypatch.setattr(units, "time_gru_call_s", calls)
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    timer = UnitTimer(spec, MeasurementStore(tmp_path / "s.sqlite"), step_grid=([1, 2, 5, 6], [16]), two_passes=False)
    timer.run(GROUP, "float32", "torch-gru", 1)
    assert len([k for k in timed if k[0] == 2]) == 2  # batch 2 was retried
    units_at_1 = [k for k in timed if k[0] == 1 and k[1] not in CALL_PROBE_STEPS]
    n = units_at_1[0][1]  # batch 1 was not retried: its other calls are the intercept's pair (the
    assert units_at_1 == [(1, n), (1, n), (1, 4 * n)]  # same steps, then four times as many)
    timed.clear()
    timer.run(GROUP, "float32", "torch-gru", 1)
    assert [k for k in timed if k[1] not in CALL_PROBE_STEPS] == []


def test_one_pass_when_asked(tmp_path: Path, fake_calls: FakeCalls) -> None:
    timer, store = _timer(tmp_path, two_passes=False)
    plan = timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1)
    timer._step_units(GROUP, "inference", "float32", "torch-gru", 1, plan)
    assert all(t[3] == 1 for t in fake_calls.timed)
    table = step_table(store, timer.spec, GROUP, "inference", "float32", 1)
    assert table is not None and table.call_fixed_s == pytest.approx(20e-6, rel=1e-6)


def test_round_sizes_are_what_people_write() -> None:
    assert round_size("batch", 22, 1, 256) == 16 and round_size("batch", 23, 1, 256) == 32 and round_size("batch", 300, 1, 256) == 256
    assert round_size("hidden_size", 157, 16, 2048) == 160 and round_size("input_size", 13, 16, 1024) == 16
    assert round_size("seq_len", 77, 2, 1024) == 77


def test_the_design_draws_round_and_odd_sizes() -> None:
    spec = load_job(Path(unit_grid.__file__).parent.parent / "data" / "jobs" / "cpu-default.yaml")
    configs = [c for _, c in zip(range(200), sobol_configs(spec, "float32", "torch-gru", 1, seed=0))]
    round_ = [c for c in configs if c.hidden_size % 16 == 0 and c.input_size % 16 == 0
              and c.batch & (c.batch - 1) == 0]
    assert 0.35 < len(round_) / len(configs) < 0.75


def test_the_job_takes_one_or_two_passes_only(tmp_path: Path) -> None:
    from gru_sim.errors import GruSimError

    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "unit_passes: 3\n")
    with pytest.raises(GruSimError, match="unit_passes"):
        load_job(bad)


def test_whole_call_phases_take_turns_point_by_point() -> None:
    from gru_sim.calibrate.runner import _round_robin

    order: list[str] = []

    def phase(name: str, points: int):  # type: ignore[no-untyped-def]
        for k in range(points):
            order.append(f"{name}{k}")
            yield

    _round_robin([phase("a", 3), phase("b", 1), phase("c", 2)])
    assert order == ["a0", "b0", "c0", "a1", "c1", "a2"]


def test_table_rows_take_turns_each_in_its_own_order_the_same_every_time() -> None:
    rows = [[(b, h) for b in (1, 2, 4, 8, 16, 32)] for h in (16, 32, 64, 128, 256)]
    order = list(interleaved(rows, "t1|inference|0"))
    assert sorted(order) == sorted(cell for row in rows for cell in row)
    for h in (16, 32, 64, 128, 256):
        assert [b for b, hh in order if hh == h] == [1, 2, 4, 8, 16, 32]
    assert order == list(interleaved(rows, "t1|inference|0"))
    assert order != list(interleaved(rows, "t2|inference|0"))
    # Not row after row: a slow spell of a few consecutive timings spans several hidden sizes.
    switches = sum(a[1] != b[1] for a, b in zip(order, order[1:]))
    assert switches > len(order) // 2


def test_step_calls_are_timed_with_rows_taking_turns(tmp_path: Path, fake_calls: FakeCalls) -> None:
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    timer = UnitTimer(spec, MeasurementStore(tmp_path / "s.sqlite"), step_grid=([1, 2, 4, 8], [16, 32, 64]),
                      two_passes=False)
    plan = timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1)
    hiddens = [h for _, h, _ in plan]
    assert hiddens != sorted(hiddens)
    for h in (16, 32, 64):
        assert [b for b, hh, _ in plan if hh == h] == [1, 2, 4, 8]


class SquareCalls(FakeCalls):
    """A step of 1 µs of dispatch and 1 ns · batch · hidden² of work: a step count guessed from a
    neighbour of another hidden size differs from one guessed from another batch."""

    def __call__(self, config, policy):  # type: ignore[no-untyped-def]
        self.timed.append((config.batch, config.hidden_size, config.seq_len, 2 if policy.min_samples == 3 else 1))
        return 20e-6 + config.seq_len * (1e-6 + 1e-9 * config.batch * config.hidden_size**2), False


def test_a_table_whose_steps_are_stored_times_no_call_again_whatever_its_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gru_sim.measure import units

    fake_calls = SquareCalls()
    monkeypatch.setattr(units, "time_gru_call_s", fake_calls)
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    grid = ([1, 2, 4, 8], [16, 32, 64, 128])
    # A store timed row after row (as before the rows took turns): other step counts for some calls.
    with monkeypatch.context() as m:
        m.setattr(unit_grid, "interleaved", lambda lines, seed: (item for line in lines for item in line))
        UnitTimer(spec, store, step_grid=grid, two_passes=False).run(GROUP, "float32", "torch-gru", 1)
    row_order = {(b, h, s) for b, h, s, _ in fake_calls.timed}
    timed = len(fake_calls.timed)
    turns = UnitTimer(spec, MeasurementStore(tmp_path / "fresh.sqlite"), step_grid=grid, two_passes=False)
    assert set(turns._step_calls(GROUP, "inference", "float32", "torch-gru", 1)) - row_order  # the plans differ
    fake_calls.timed.clear()
    UnitTimer(spec, store, step_grid=grid, two_passes=False).run(GROUP, "float32", "torch-gru", 1)
    assert fake_calls.timed == []
    assert timed > 0


class WeightedCalls:
    """A call of ``steps`` steps lasts a fixed cost that grows with the hidden size (20 µs + 1 µs per
    hidden unit) + steps · 1 µs · batch."""

    def __call__(self, config, policy=None):  # type: ignore[no-untyped-def]
        return 20e-6 + 1e-6 * config.hidden_size + config.seq_len * 1e-6 * config.batch, False


def test_step_units_are_read_net_of_each_hidden_sizes_intercept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    from gru_sim.measure import units

    monkeypatch.setattr(units, "time_gru_call_s", WeightedCalls())
    spec = load_job(TINY).model_copy(update={"modes": ["training"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, step_grid=([1, 2, 4], [16, 32, 64]), two_passes=False)
    timer.run(GROUP, "float32", "torch-gru", 1)
    table = step_table(store, spec, GROUP, "training", "float32", 1)
    assert table is not None
    for i, h in enumerate(table.hidden):
        for j, b in enumerate(table.batch):
            assert table.step_s[i][j] == pytest.approx(1e-6 * b, rel=1e-6), (h, b)
    assert table.intercepts_by_hidden() == pytest.approx({h: 20e-6 + 1e-6 * h for h in (16, 32, 64)}, rel=1e-6)
    assert table.layer_fixed_s(64) == pytest.approx(48e-6, rel=1e-6)


def test_a_store_without_intercepts_is_read_net_of_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store timed before the intercepts were (its step units net of the smallest call's fixed cost
    alone) is read again net of intercepts measured by other runs."""
    from gru_sim.measure import units

    monkeypatch.setattr(units, "time_gru_call_s", WeightedCalls())
    monkeypatch.setattr(unit_grid, "INTERCEPT_MAX_CALL_S", 0.0)  # no intercept calls: an older store
    spec = load_job(TINY).model_copy(update={"modes": ["training"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, step_grid=([1, 2, 4], [16, 32, 64]), two_passes=False)
    timer.run(GROUP, "float32", "torch-gru", 1)
    old = step_table(store, spec, GROUP, "training", "float32", 1)
    assert old is not None and old.call_fixed_by_hidden_s is None
    assert old.step_s[2][0] > 1.1e-6  # H = 64, B = 1: the call's weight-sized cost read as steps
    others = {h: 20e-6 + 1e-6 * h for h in (16, 64)}  # measured at two hidden sizes: 32 between them
    fixed = step_table(store, spec, GROUP, "training", "float32", 1, fallback_intercepts=others)
    assert fixed is not None
    for i, h in enumerate(fixed.hidden):
        for j, b in enumerate(fixed.batch):
            expected = 1e-6 * b if h != 32 else None
            if expected is not None:
                assert fixed.step_s[i][j] == pytest.approx(expected, rel=1e-6), (h, b)
    assert fixed.layer_fixed_s(64) == pytest.approx(48e-6, rel=1e-6)


def test_intercepts_stay_positive_and_ordered_when_the_probes_read_nothing() -> None:
    """A fixed cost read as 0 (the two probes equal) and a long call faster than the short one (a
    disturbance) still give positive intercepts, non-decreasing in H, each at most its short call."""
    from gru_sim.calibrate.unit_grid import call_intercepts

    got = call_intercepts([16, 32, 64], {16: (4, 1e-4, 3e-4, 0.0), 32: (4, 2e-4, 1e-4, 0.0)}, 0.0)
    assert all(v > 0 for v in got.values())
    assert got[16] <= got[32] <= got[64]
    assert got[32] <= 2e-4 + 1e-15


def test_a_step_count_is_guessed_from_the_work_above_the_dispatch_floor() -> None:
    floor = 8e-6
    # A neighbour that is all dispatch says nothing about the work: the guess at a hidden size eight
    # times larger stays near the floor (its matmul at peak rate), not 64 times the neighbour.
    near_floor = UnitTimer._estimate({(1, 16): 8.4e-6}, 1, 128, 1.0, floor)
    assert floor < near_floor < 2 * floor
    steps = unit_grid.STEP_TARGET_CALL_S / near_floor
    assert steps > 100  # a call of ~1.5 ms, not one of three steps
    # A neighbour with work: its work (above the floor) grows linearly with the batch and the hidden size.
    assert UnitTimer._estimate({(4, 256): 108e-6}, 8, 256, 1.0, floor) == pytest.approx(floor + 200e-6)
    assert UnitTimer._estimate({(1, 512): 108e-6}, 1, 1024, 1.0, floor) == pytest.approx(floor + 200e-6)
    # Never below the matmuls at the peak rate (training runs three of them a step).
    alone = UnitTimer._estimate({}, 64, 1024, 3.0, floor)
    assert alone == pytest.approx(floor + 3.0 * 2 * 64 * 3 * 1024**2 / unit_grid.ESTIMATE_FLOPS_PER_S)


def test_step_tables_time_batches_past_the_job_where_the_step_is_small() -> None:
    """Past the job's largest batch a step changes regime (a cache level, the threads' split of the
    gate ops): the grid goes on to PAST_BATCH_FACTOR times it, timed where the step's matmul is small."""
    from gru_sim.calibrate.jobs import default_job_path
    from gru_sim.calibrate.unit_grid import PAST_BATCH_MAX_STEP_FLOPS, step_axes, step_cell_timed

    spec = load_job(default_job_path("cpu"))
    batches, hiddens = step_axes(spec, "float32")
    assert [b for b in batches if b > spec.batch[1]] == [384, 512, 768, 1024]
    for b in batches:
        for h in hiddens:
            inside = b <= spec.batch[1]
            assert step_cell_timed(spec, b, h) == (inside or 2.0 * b * 3 * h * h <= PAST_BATCH_MAX_STEP_FLOPS)
    assert step_cell_timed(spec, 1024, 128) and not step_cell_timed(spec, 1024, 512)
    assert step_cell_timed(spec, 256, 2048)


def test_the_cells_past_the_job_are_timed_but_the_calibrated_range_stays_the_jobs(
        tmp_path: Path, fake_calls: FakeCalls) -> None:
    from gru_sim.calibrate.build import fit_ranges

    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, two_passes=False)
    plan = timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1)
    timer._step_units(GROUP, "inference", "float32", "torch-gru", 1, plan)
    assert max(b for b, _, _ in plan) == 4 * spec.batch[1]
    table = step_table(store, spec, GROUP, "inference", "float32", 1)
    assert table is not None and table.batch[-1] == 4 * spec.batch[1]
    assert fit_ranges(spec, {GROUP: ["inference"]})[GROUP]["batch"] == list(spec.batch)


def test_the_intercept_comes_from_its_back_to_back_pair_not_a_slow_moment_of_the_table_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call of n steps timed in a slow moment, and its 4n-step twin later in a quick one, read the
    slowdown as the call's fixed cost; the pair timed back to back does not."""
    from gru_sim.measure import units

    fixed_s, step_s = 20e-6, 1e-6
    state = {"intercepts": False}

    def calls(config, policy):  # type: ignore[no-untyped-def]
        seconds = fixed_s + config.seq_len * step_s * config.batch
        slow = config.batch == 1 and config.hidden_size == 32 and not state["intercepts"]
        return seconds * (3.0 if slow else 1.0), False

    monkeypatch.setattr(units, "time_gru_call_s", calls)
    spec = load_job(TINY).model_copy(update={"modes": ["inference"]})
    store = MeasurementStore(tmp_path / "s.sqlite")
    timer = UnitTimer(spec, store, step_grid=([1, 2, 4], [16, 32]), two_passes=False)
    original = timer._timed

    def timed(group, table, kind, params, run):  # type: ignore[no-untyped-def]
        state["intercepts"] = kind.startswith("intercept")  # the table's own calls are slow at H = 32
        return original(group, table, kind, params, run)

    monkeypatch.setattr(timer, "_timed", timed)
    plan = timer._step_calls(GROUP, "inference", "float32", "torch-gru", 1)
    timer._step_units(GROUP, "inference", "float32", "torch-gru", 1, plan)
    intercepts = {u.params["hidden"]: u.value for u in store.units(step_key(GROUP, "inference"), "intercept")}
    assert intercepts[32] == pytest.approx(fixed_s, rel=1e-6)


def test_a_unit_call_runs_the_steps_that_make_it_last_its_target_within_the_bounds() -> None:
    # One rule for the calibration and benchmarks/call_vs_units.py: the next whole step count.
    assert unit_grid.unit_call_steps(unit_grid.STEP_TARGET_CALL_S / 6.5, "training") == 7
    assert unit_grid.unit_call_steps(1.0, "training") == unit_grid.MIN_STEPS["training"]
    assert unit_grid.unit_call_steps(1.0, "inference") == unit_grid.MIN_STEPS["inference"]
    assert unit_grid.unit_call_steps(0.0, "inference") == unit_grid.MAX_STEPS
