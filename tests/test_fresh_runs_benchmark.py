"""benchmarks/fresh_runs.py: which recorded typical-shape run was taken right after which calibration,
and the calibration store's span of measuring that pairing reads."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable

from gru_sim.calibrate.store import MeasurementStore
from gru_sim.config import GruConfig

def _at(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def test_a_recorded_run_pairs_with_the_calibration_that_ended_last_before_it_and_only_within_the_window(
        benchmark_script: Callable[[str], Any]) -> None:
    fr = benchmark_script("fresh_runs")
    t0 = 1_800_000_000.0
    ends = {"a": t0, "b": t0 + 600.0}
    runs = [_at(t0 + 300.0),    # after a, before b ended: a's
            _at(t0 + 700.0),    # right after b
            _at(t0 + 800.0),    # b already has its run
            _at(t0 + 5000.0)]   # long after every calibration
    assert fr.right_after(ends, runs, within_min=15.0) == {"a": runs[0], "b": runs[1]}
    assert fr.right_after(ends, runs, within_min=1.0) == {}


def test_the_store_knows_when_it_measured_its_first_and_last_point_or_unit(tmp_path: Path) -> None:
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        assert store.measured_span() is None
        before = time.time()
        store.add("g", "train", GruConfig(batch=1, seq_len=2, input_size=3, hidden_size=4), "ok", 0.1, latency_s=1e-3)
        store.add_unit("g", "t", "step", {"batch": 1}, 1e-5, False, 0.01)
        first, last = store.measured_span()
        assert before <= first <= last <= time.time()


def test_a_run_is_read_against_the_others_or_only_those_made_before_it(
        benchmark_script: Callable[[str], Any]) -> None:
    fr = benchmark_script("fresh_runs")
    spans = [(0.0, 10.0), (20.0, 30.0), (25.0, 40.0), (50.0, 60.0)]
    assert fr.prior_runs(spans, 1, earlier=False) == [0, 2, 3]
    assert fr.prior_runs(spans, 3, earlier=True) == [0, 1, 2]
    assert fr.prior_runs(spans, 2, earlier=True) == [0]  # run 1 was still measuring when run 2 began
    assert fr.prior_runs(spans, 0, earlier=True) == []
    # Only the last N that measured, as `calibrate --pool --recent N` keeps them.
    assert fr.prior_runs(spans, 3, earlier=True, recent=2) == [1, 2]
    assert fr.prior_runs(spans, 0, earlier=False, recent=2) == [2, 3]
