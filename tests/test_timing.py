"""The timing harness, driven by a fake clock and a fake loop timer: no sleeping, no real kernels."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gru_sim.measure.timing import TimingPolicy, TimingResult, time_calls, wall_clock_timer


def _noop() -> None:
    return None


def _constant(cost_s: float):  # type: ignore[no-untyped-def]
    return lambda index: cost_s


# fake_timing is a factory that makes a fresh clock per call, so sharing it across examples is safe.
fresh_per_example = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_first_call_kept_apart_from_warmups_and_samples(fake_timing) -> None:
    # Call 0 is cold (1 s), calls 1-2 are still warming (0.1 s), every later call costs 1 ms.
    fake_clock, timer = fake_timing(lambda i: 1.0 if i == 0 else 0.1 if i <= 2 else 1e-3)
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=2, min_samples=5, budget_s=0.0)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    assert result.first_call_s == 1.0
    assert result.warmup_calls == 2
    assert timer.loops_seen[:3] == [1, 1, 1]  # the first call and the two warm-ups, each timed alone
    assert all(s == pytest.approx(1e-3) for s in result.samples_s)


def test_warmups_last_at_least_warmup_s(fake_timing) -> None:
    fake_clock, timer = fake_timing(_constant(0.01))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.095, min_warmups=2, min_samples=3, budget_s=0.0)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    # 0.01 s each: nine warm-ups last 0.09 s, short of 0.095 s, so a tenth is needed.
    assert result.warmup_calls == 10


@fresh_per_example
@given(cost_s=st.floats(min_value=1e-6, max_value=2e-2))
def test_loop_count_grows_until_one_sample_lasts_min_sample_s(fake_timing, cost_s: float) -> None:
    clock, timer = fake_timing(_constant(cost_s))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=3, budget_s=0.0)
    result = time_calls(_noop, timer, policy, clock=clock)
    needed = math.ceil(policy.min_sample_s / cost_s)
    assert result.loops * cost_s >= policy.min_sample_s * (1 - 1e-12)
    # Grown, not overshot: at most twice the fewest loops that would do.
    assert result.loops <= max(1, 2 * needed)
    # Every timed sample used that loop count.
    assert timer.loops_seen[-len(result.samples_s):] == [result.loops] * len(result.samples_s)


def test_loop_count_probes_increase_until_long_enough(fake_timing) -> None:
    fake_clock, timer = fake_timing(_constant(1e-6))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=3, budget_s=0.0)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    probes = timer.loops_seen[2:-len(result.samples_s)]  # after the first call and the warm-up
    assert probes == sorted(set(probes))  # strictly increasing
    assert probes[-1] == result.loops
    assert all(loops * 1e-6 < policy.min_sample_s for loops in probes[:-1])


def test_no_fewer_than_min_samples_when_budget_is_spent(fake_timing) -> None:
    fake_clock, timer = fake_timing(_constant(1.0))  # one sample alone outlasts the whole budget
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=7, budget_s=0.5)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    assert len(result.samples_s) == 7


def test_no_more_than_max_samples_when_budget_is_large(fake_timing) -> None:
    fake_clock, timer = fake_timing(_constant(1e-3))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=3, max_samples=12,
                          budget_s=1e6)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    assert len(result.samples_s) == 12


@fresh_per_example
@given(budget_s=st.floats(min_value=0.0, max_value=0.5), cost_s=st.floats(min_value=1e-5, max_value=1e-2))
def test_sampling_stops_once_budget_is_spent(fake_timing, budget_s: float, cost_s: float) -> None:
    clock, timer = fake_timing(_constant(cost_s))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=3,
                          max_samples=10_000, budget_s=budget_s)
    result = time_calls(_noop, timer, policy, clock=clock)
    sample_times = [s * result.loops for s in result.samples_s]
    assert len(result.samples_s) >= policy.min_samples
    if len(result.samples_s) > policy.min_samples:
        # Past min_samples, it stops at the first sample that reaches the budget, not later.
        assert sum(sample_times) >= budget_s * (1 - 1e-9)
        assert sum(sample_times[:-1]) < budget_s * (1 + 1e-9)


def test_samples_kept_in_order_and_per_call(fake_timing) -> None:
    # Warm calls cost 1, 2, 3, ... 9 ms in turn, cycling: samples differ, and must keep their order.
    costs = [k * 1e-3 for k in range(1, 10)]
    fake_clock, timer = fake_timing(lambda i: 1.0 if i < 2 else costs[(i - 2) % 9])
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=4, budget_s=0.0)
    result = time_calls(_noop, timer, policy, clock=fake_clock)
    assert len(result.samples_s) == 4
    elapsed = [s * result.loops for s in result.samples_s]
    # Each sample is its loop's elapsed time divided by loops (a per-call time, not the loop's total).
    first_sample_call = timer.calls - 4 * result.loops
    expected = [sum(costs[(i - 2) % 9] for i in range(first_sample_call + k * result.loops,
                                                       first_sample_call + (k + 1) * result.loops))
                for k in range(4)]
    assert elapsed == pytest.approx(expected)


def test_median_and_iqr_of_samples() -> None:
    # 1..9 shuffled: median 5; numpy's linear quartiles are 3 and 7, IQR 4.
    result = TimingResult(first_call_s=1.0, samples_s=(7.0, 2.0, 9.0, 1.0, 5.0, 3.0, 8.0, 4.0, 6.0),
                          loops=1, warmup_calls=2)
    assert result.median_s == 5.0
    assert result.iqr_s == 4.0


@given(samples=st.lists(st.floats(min_value=1e-7, max_value=1.0), min_size=1, max_size=40))
def test_median_and_iqr_agree_with_numpy(samples: list[float]) -> None:
    result = TimingResult(first_call_s=1.0, samples_s=tuple(samples), loops=1, warmup_calls=1)
    q25, q50, q75 = np.quantile(samples, [0.25, 0.5, 0.75])
    assert result.median_s == pytest.approx(q50)
    assert result.iqr_s == pytest.approx(q75 - q25, abs=1e-15)


def _with_iqr_ratio(ratio: float) -> TimingResult:
    # Nine samples around 1.0 whose quartiles sit at 1 ± ratio/2: IQR/median == ratio.
    half = ratio / 2
    samples = (1 - 2 * half, 1 - half, 1 - half, 1 - half, 1.0, 1 + half, 1 + half, 1 + half, 1 + 2 * half)
    result = TimingResult(first_call_s=1.0, samples_s=samples, loops=1, warmup_calls=1)
    assert result.iqr_s / result.median_s == pytest.approx(ratio)
    return result


def test_noisy_when_iqr_over_ten_percent_of_median() -> None:
    assert _with_iqr_ratio(0.12).is_noisy()


def test_not_noisy_when_iqr_under_ten_percent_of_median() -> None:
    assert not _with_iqr_ratio(0.08).is_noisy()


def test_noisy_threshold_follows_the_given_ratio() -> None:
    result = _with_iqr_ratio(0.12)
    assert not result.is_noisy(0.15)
    assert result.is_noisy(0.10)


def test_default_noisy_ratio_is_ten_percent() -> None:
    assert TimingPolicy().noisy_iqr_ratio == pytest.approx(0.10)


@pytest.mark.parametrize("enabled_before", [True, False], ids=["gc-on", "gc-off"])
def test_gc_off_while_timing_and_restored_after(fake_timing, enabled_before: bool) -> None:
    was = gc.isenabled()
    fake_clock, timer = fake_timing(_constant(1e-3))
    policy = TimingPolicy(min_sample_s=5e-3, warmup_s=0.0, min_warmups=1, min_samples=3, budget_s=0.0)
    try:
        gc.enable() if enabled_before else gc.disable()
        time_calls(_noop, timer, policy, clock=fake_clock)
        assert gc.isenabled() == enabled_before
    finally:
        gc.enable() if was else gc.disable()
    assert not any(timer.gc_enabled_seen)


def test_gc_restored_when_the_call_raises(fake_timing) -> None:
    def failing() -> None:
        raise RuntimeError("kernel failed")

    fake_clock, timer = fake_timing(_constant(1e-3))
    was = gc.isenabled()
    gc.enable()
    try:
        with pytest.raises(RuntimeError, match="kernel failed"):
            time_calls(failing, timer, TimingPolicy(), clock=fake_clock)
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def test_wall_clock_timer_runs_loops_calls_and_reads_clock_twice() -> None:
    ticks = iter([10.0, 10.25])
    calls = []
    timer = wall_clock_timer(clock=lambda: next(ticks))
    assert timer(lambda: calls.append(1), 7) == 0.25
    assert len(calls) == 7


@pytest.mark.parametrize("bad", [{"min_sample_s": 0.0}, {"min_sample_s": -1e-3}, {"min_samples": 0},
                                 {"min_samples": 10, "max_samples": 5}])
def test_policy_rejects_impossible_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
        TimingPolicy(**bad)
