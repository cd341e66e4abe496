"""The calibration's micro-benchmarks return positive, consistent figures (tiny sizes, quick policy)."""

from __future__ import annotations

import pytest

from gru_sim.measure.primitives import gru_overheads, matmul_s, memory_bandwidth, pointwise_gates_s
from gru_sim.measure.timing import TimingPolicy

QUICK = TimingPolicy(min_sample_s=0.0005, warmup_s=0.0, min_warmups=1, min_samples=3, max_samples=3, budget_s=0.0)


def test_a_matmul_reports_its_time_and_flop_rate() -> None:
    out = matmul_s(8, 32, 96, policy=QUICK)
    assert out["seconds"] > 0
    assert out["flops_per_s"] * out["seconds"] == pytest.approx(2 * 8 * 32 * 96)


def test_the_gate_work_and_the_copy_bandwidth_are_timed() -> None:
    assert pointwise_gates_s(4, 16, policy=QUICK)["seconds"] > 0
    bw = memory_bandwidth(bytes_=2**20, policy=QUICK)
    assert bw["bytes_per_s"] * bw["seconds"] == pytest.approx(2 * 2**20)


def test_gru_overheads_give_a_call_cost_and_a_step_cost() -> None:
    out = gru_overheads(policy=QUICK)
    assert out["call_s"] > 0 and "step_s" in out
