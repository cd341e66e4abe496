"""Shared fixtures for the measuring side's tests: a fake clock and timer for the harness, a cheap
timing policy for the few tests that run real kernels, the CLI runner, the CUDA skip, an
in-process Dask cluster for the cluster tests, and the benchmark scripts as modules."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
GRU_SIM_EXE = Path(sys.executable).parent / "gru-sim"

# Deterministic and modest: the same examples on every run, few enough for two shared cores.
settings.register_profile("gru-sim", max_examples=20, deadline=None, derandomize=True, database=None)
settings.load_profile("gru-sim")


def pytest_configure(config: pytest.Config) -> None:
    # Also in pyproject.toml; registered here too so that the marker is known however pytest is run.
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.cuda`` tests when torch sees no CUDA device (torch imported only then)."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch sees none")
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _own_user_data_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiles in the real user's data folder (on gru-sim's search path) would change which profile a
    test chooses: every test, and every gru-sim it starts, gets an empty one of its own (XDG on Linux)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "user-data"))


# ------------------------------------------------------------------------------- fake clock, timer
class FakeClock:
    """A clock that only moves when told: ``clock()`` returns ``now`` seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeTimer:
    """A loop timer whose calls cost what ``cost_of_call(index)`` says, in fake seconds.

    Each call of ``fn`` is numbered from 0 (the first, cold one); the timer runs ``fn`` for real (so
    the harness's bookkeeping of calls can be checked), advances the fake clock by the calls' cost and
    returns it. ``loops_seen`` records the loop count of every timer call, in order.
    """

    clock: FakeClock
    cost_of_call: Callable[[int], float]
    calls: int = 0
    loops_seen: list[int] = field(default_factory=list)
    gc_enabled_seen: list[bool] = field(default_factory=list)

    def __call__(self, fn: Callable[[], object], loops: int) -> float:
        self.loops_seen.append(loops)
        self.gc_enabled_seen.append(gc.isenabled())
        elapsed = 0.0
        for _ in range(loops):
            fn()
            elapsed += self.cost_of_call(self.calls)
            self.calls += 1
        self.clock.advance(elapsed)
        return elapsed


@pytest.fixture
def fake_timing() -> Callable[[Callable[[int], float]], tuple[FakeClock, FakeTimer]]:
    """``fake_timing(cost_of_call)`` → a fresh ``(clock, timer)`` pair, the timer driving the clock.

    A factory rather than a fixed pair so that each hypothesis example starts from a new clock.
    """

    def make(cost_of_call: Callable[[int], float]) -> tuple[FakeClock, FakeTimer]:
        clock = FakeClock()
        return clock, FakeTimer(clock=clock, cost_of_call=cost_of_call)

    return make


# ------------------------------------------------------------------------------ real-kernel policy
@pytest.fixture(scope="session")
def quick_policy():  # type: ignore[no-untyped-def]
    """A timing policy for tests that run real kernels: a handful of short samples, no budget
    (frozen, so one for the session). Imported here, not at the top: gru_sim.measure loads torch."""
    from gru_sim.measure.timing import TimingPolicy

    return TimingPolicy(min_sample_s=2e-4, warmup_s=0.0, min_warmups=1, min_samples=3, max_samples=5,
                        budget_s=0.0)


@pytest.fixture
def tiny_shape() -> dict[str, int]:
    """A GRU shape small enough that every implementation runs it in milliseconds."""
    return {"batch": 2, "seq_len": 3, "input_size": 4, "hidden_size": 5}


# The columns of a benchmark's --shapes CSV (benchmarks/data/*_shapes.csv).
SHAPE_COLUMNS = ("name", "batch", "seq_len", "input_size", "hidden_size", "num_layers", "bidirectional", "mode")


@pytest.fixture
def shapes_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write named shapes, each a row in :data:`SHAPE_COLUMNS` order, as a --shapes CSV; its path."""
    import csv

    def write(*rows: Sequence[object]) -> Path:
        path = tmp_path / "shapes.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(SHAPE_COLUMNS)
            w.writerows(rows)
        return path

    return write


# ------------------------------------------------------------------------------------------- CLI
@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli() -> Callable[[Sequence[str]], CliResult]:
    """Run the installed ``gru-sim`` console script in a subprocess, from the project root."""
    if not GRU_SIM_EXE.exists():
        pytest.fail(f"console script {GRU_SIM_EXE} is missing: install the project (pip install -e .)")

    def run(args: Sequence[str]) -> CliResult:
        proc = subprocess.run([str(GRU_SIM_EXE), *args], capture_output=True, text=True, timeout=300,
                              cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def restore_threads():  # type: ignore[no-untyped-def]
    """measure_gru sets torch's intra-op thread count for the process; put it back afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client():
    """Two in-process Dask workers, shared by one test module (the module skips itself without Dask)."""
    from gru_sim.distributed import cluster_client

    with cluster_client(workers=2, processes=False) as c:
        yield c


@pytest.fixture
def benchmark_script() -> Callable[[str], object]:
    """``name`` → the module of ``benchmarks/<name>.py`` (its sibling scripts importable while it loads)."""
    import importlib

    def load(name: str) -> object:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(ROOT / "benchmarks"))

    return load
