"""A calibration's peak-memory probes (each a fresh subprocess on a CPU) run side by side, one per
core, and land in the store in the order they were picked, failures included."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gru_sim.calibrate import runner
from gru_sim.calibrate.jobs import load_job
from gru_sim.calibrate.runner import Calibration, Group
from gru_sim.calibrate.store import MeasurementStore
from gru_sim.errors import GruSimError
from gru_sim.locations import jobs_dir


class FakeProbe:
    """Sleeps a little (as a subprocess would), counts how many run at once; fails for one batch size."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.seen: list[int] = []
        self.fail_batch = fail_batch

    def __call__(self, config, seed: int = 0) -> int:  # type: ignore[no-untyped-def]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.seen.append(config.batch)
        time.sleep(0.3)
        with self.lock:
            self.running -= 1
        if config.batch == self.fail_batch:
            raise GruSimError("memory probe failed: out of memory")
        return 1000 * config.batch


def _calibration(tmp_path: Path) -> Calibration:
    spec = load_job(jobs_dir() / "cpu-default.yaml").model_copy(update={"memory_probes": 2})
    return Calibration(spec, MeasurementStore(tmp_path / "s.sqlite"))


def test_probes_run_one_per_core_and_are_stored_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProbe()
    monkeypatch.setattr(runner, "peak_memory_cpu", fake)
    cal = _calibration(tmp_path)
    key = "cpu/float32/torch-gru/t1"
    start = time.perf_counter()
    cal._probe_memory(key, Group("float32", "torch-gru", 1))
    wall_s = time.perf_counter() - start
    probes = cal.store.points(key, "memory")
    assert len(probes) == 4 and {p.config.mode for p in probes} == {"inference", "training"}
    assert all(p.status == "ok" and p.peak_memory_bytes == 1000 * p.config.batch for p in probes)
    assert fake.most == min(os.cpu_count() or 1, 4)
    # The budget counts the seconds the probes took together, not the sum of their overlapping runs.
    assert sum(p.wall_s for p in probes) == pytest.approx(wall_s, rel=0.25)
    # Probed once: a resumed run probes nothing again.
    fake.seen.clear()
    cal._probe_memory(key, Group("float32", "torch-gru", 1))
    assert fake.seen == []


def test_a_failed_probe_is_stored_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cal = _calibration(tmp_path)
    first = FakeProbe()
    monkeypatch.setattr(runner, "peak_memory_cpu", first)
    cal._probe_memory("cpu/float32/torch-gru/t1", Group("float32", "torch-gru", 1))
    batches = sorted(set(first.seen))
    other = _calibration(tmp_path / "again")
    monkeypatch.setattr(runner, "peak_memory_cpu", FakeProbe(fail_batch=batches[0]))
    other._probe_memory("cpu/float32/torch-gru/t1", Group("float32", "torch-gru", 1))
    status = {p.config.batch: p.status for p in other.store.points("cpu/float32/torch-gru/t1", "memory")}
    assert status[batches[0]] == "oom"
    assert all(s == "ok" for b, s in status.items() if b != batches[0])
