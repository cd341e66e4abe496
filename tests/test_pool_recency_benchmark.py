"""benchmarks/pool_recency.py: where it cuts the record, and which runs each pool holds at a cut
(only runs that ended before it: nothing a pool is judged on was measured before it was built)."""

from __future__ import annotations

from typing import Any, Callable


def test_cuts_start_one_interval_after_the_first_run_and_stop_before_the_last_record(
        benchmark_script: Callable[[str], Any]) -> None:
    pr = benchmark_script("pool_recency")
    assert pr.cuts_between(0.0, 100.0, 30.0) == [30.0, 60.0, 90.0]
    assert pr.cuts_between(0.0, 20.0, 30.0) == []


def test_each_pool_at_a_cut_holds_the_runs_that_ended_before_it_all_or_the_last_n(
        benchmark_script: Callable[[str], Any]) -> None:
    pr = benchmark_script("pool_recency")
    ends = {"d": 40.0, "a": 10.0, "c": 30.0, "b": 20.0, "late": 99.0}
    pools = pr.pools_at(ends, 50.0, [2, 3, 4])
    assert pools == {"all": ["a", "b", "c", "d"], "last 2": ["c", "d"], "last 3": ["b", "c", "d"]}
    assert pr.pools_at(ends, 15.0, [2]) == {}  # one run before the cut is no pool
