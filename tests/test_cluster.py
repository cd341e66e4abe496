"""Sweeps and grids of predictions on a Dask cluster give what the same work gives here, and without
the optional extra the cluster flags end with one line naming it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gru_sim.cli import main
from gru_sim.config import GruConfig
from gru_sim.model.library import here_fingerprint
from gru_sim.model.profile import default_profile_path, load_profile
from gru_sim.predict import GRID_MAX_CHUNKS, Predictor
from gru_sim.scenario import load_scenario
from gru_sim.study.large_sweep import GridSweep, run_large_sweep
from gru_sim.study.run import run_scenario

ROOT = Path(__file__).resolve().parents[1]
PROFILE = default_profile_path("cpu")
SMALL_SCENARIO = """name: small
device: cpu
model: {input_size: 32, hidden_size: 64, num_layers: 2}
sweep:
  mode: [inference, training]
  batch: [1, 4, 16]
  seq_len: [10, 50]
  hidden_size: [32, 64, 128]
"""


def test_without_dask_the_cluster_flags_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import dask.distributed → ImportError
    grid = tmp_path / "g.csv"
    grid.write_text("batch,seq_len,input_size,hidden_size\n1,2,3,4\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SMALL_SCENARIO)
    for argv in (["predict", "--grid", str(grid), "--workers", "2"],
                 ["run", str(scenario), "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "gru-sim[dask]" in err[0], err


def test_dask_is_imported_only_when_a_cluster_is_asked_for() -> None:
    code = ("import sys, gru_sim.cli, gru_sim.distributed, gru_sim.study.large_sweep, gru_sim.study.run; "
            "print([m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


distributed = pytest.importorskip("distributed")


def test_grid_records_on_a_cluster_are_the_records_here(client) -> None:
    from gru_sim.distributed import predict_records_on

    here = here_fingerprint("cpu")
    rng = np.random.default_rng(3)
    configs = [GruConfig(batch=int(rng.integers(1, 64)), seq_len=int(rng.integers(1, 300)),
                         input_size=int(rng.integers(1, 300)), hidden_size=int(rng.integers(4, 600)),
                         mode=["inference", "training"][int(rng.integers(0, 2))]) for _ in range(60)]
    want = [p.to_dict() for p in Predictor(load_profile(PROFILE), here=here).predict_many(configs)]
    got = list(predict_records_on(client, configs, PROFILE, here, GRID_MAX_CHUNKS, chunk_size=7))
    assert json.dumps(got) == json.dumps(want)


def _parquet_rows(folder: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*.parquet"))
    tables = [pq.read_table(p).to_pydict() for p in parts]
    return {k: [v for t in tables for v in t[k]] for k in tables[0]}


def test_a_large_sweep_on_a_cluster_writes_and_sums_up_what_it_does_here(client, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    grid = GridSweep.of({"mode": ["inference", "training"], "batch": list(range(1, 41)),
                         "seq_len": [5, 50, 500], "hidden_size": [16, 256, 4096]}, {"input_size": 64})
    here = here_fingerprint("cpu")
    serial = run_large_sweep(grid, PROFILE, here, tmp_path / "serial", chunk_rows=97)
    spread = run_large_sweep(grid, PROFILE, here, tmp_path / "cluster", client, chunk_rows=97)
    assert json.dumps(spread, sort_keys=True) == json.dumps(serial, sort_keys=True)
    rows = _parquet_rows(tmp_path / "cluster" / "sweep.parquet")
    assert rows == _parquet_rows(tmp_path / "serial" / "sweep.parquet")
    assert rows["row"] == list(range(grid.size))  # no gaps, no duplicates


def test_a_large_sweeps_rows_are_the_one_configuration_predictions(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    grid = GridSweep.of({"batch": [1, 7, 300], "seq_len": [3, 2000], "hidden_size": [16, 3000]},
                        {"input_size": 40, "num_layers": 2, "bidirectional": True, "mode": "training"})
    here = here_fingerprint("cpu")
    run_large_sweep(grid, PROFILE, here, tmp_path, chunk_rows=5)
    rows = _parquet_rows(tmp_path / "sweep.parquet")
    predictor = Predictor(load_profile(PROFILE), here=here)
    for k, combo in enumerate(grid.combinations()):
        config = GruConfig(**dict(zip(("batch", "seq_len", "hidden_size"), combo)), input_size=40, num_layers=2,
                           bidirectional=True, mode="training")
        p = predictor.predict(config)
        assert rows["latency_s"][k] == pytest.approx(p.latency_s, rel=1e-9)
        assert [rows["latency_lo_s"][k], rows["latency_hi_s"][k]] == pytest.approx(list(p.latency_interval_s),
                                                                                    rel=1e-9)


def test_run_on_a_cluster_gives_the_serial_results(client, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SCENARIO)
    scenario = load_scenario(path)
    serial = run_scenario(scenario, PROFILE, tmp_path / "serial").results
    spread = run_scenario(scenario, PROFILE, tmp_path / "cluster", client=client).results
    assert spread["sweep"] == serial["sweep"]
    assert spread["warnings"] == serial["warnings"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_run_against_a_dask_scheduler_and_two_workers(tmp_path: Path) -> None:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, and `gru-sim run --scheduler`
    against them: the sweep's records are those of the serial run."""
    dask_exe = Path(sys.executable).parent / "dask"
    gru_sim = Path(sys.executable).parent / "gru-sim"
    if not dask_exe.exists():
        pytest.skip("the dask command is not installed")
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SCENARIO)
    address = f"tcp://127.0.0.1:{_free_port()}"
    started: list[subprocess.Popen] = []
    logs = open(tmp_path / "dask.log", "w")
    try:
        started.append(subprocess.Popen([str(dask_exe), "scheduler", "--host", "127.0.0.1", "--port",
                                         address.rsplit(":", 1)[1], "--dashboard-address", ":0"],
                                        stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        for _ in range(2):
            started.append(subprocess.Popen([str(dask_exe), "worker", address, "--nthreads", "1", "--no-dashboard"],
                                            stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        from distributed import Client

        with Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
        out = {}
        for name, extra in (("serial", []), ("cluster", ["--scheduler", address])):
            proc = subprocess.run([str(gru_sim), "run", str(path), "--out", str(tmp_path / name), *extra],
                                  capture_output=True, text=True, timeout=300, cwd=ROOT)
            assert proc.returncode == 0, proc.stderr
            out[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert out["cluster"]["sweep"] == out["serial"]["sweep"]
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        logs.close()


@pytest.mark.slow
def test_a_worker_lost_mid_sweep_leaves_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    """A worker process killed while the sweep runs: Dask runs its tasks again elsewhere, and the
    written rows are every row once, the same as a sweep here."""
    pytest.importorskip("pyarrow")
    from gru_sim.distributed import cluster_client

    grid = GridSweep.of({"batch": list(range(1, 101)), "seq_len": list(range(1, 101)), "hidden_size": [32, 512]},
                        {"input_size": 16})
    here = here_fingerprint("cpu")
    killed: list[int] = []
    with cluster_client(workers=2) as client:
        pids = client.run(os.getpid)

        def kill_one(done: int, total: int) -> None:
            if not killed and done >= 2_000:
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        spread = run_large_sweep(grid, PROFILE, here, tmp_path / "cluster", client, kill_one, chunk_rows=500)
    assert killed
    serial = run_large_sweep(grid, PROFILE, here, tmp_path / "serial", chunk_rows=500)
    assert json.dumps(spread, sort_keys=True) == json.dumps(serial, sort_keys=True)
    rows = _parquet_rows(tmp_path / "cluster" / "sweep.parquet")
    assert rows["row"] == list(range(grid.size))
    assert rows == _parquet_rows(tmp_path / "serial" / "sweep.parquet")


def _cancels_itself_once(marker: str, value: int) -> int:
    """A task that, on its first try, has the cluster cancel it (as a worker lost mid-task can); the
    marker file says a try was made."""
    from distributed import Future, get_client, get_worker

    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        key = get_worker().get_current_task()
        get_client().cancel(Future(key))
        time.sleep(5.0)
    return value * 10


def test_a_task_the_cluster_cancels_is_submitted_again_and_yielded_once(client, tmp_path: Path) -> None:
    from gru_sim.distributed import map_in_order

    marker = str(tmp_path / "tried")
    out = list(map_in_order(client, _cancels_itself_once, [(k,) for k in range(6)], shared=(marker,)))
    assert out == [0, 10, 20, 30, 40, 50]
    assert Path(marker).exists()
