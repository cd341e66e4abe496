"""Fleet calibration (``calibrate --scheduler/--workers --out-dir``): one job per kind of machine among
a Dask cluster's workers, pinned to one worker of that kind and one at a time per host, each writing
its profile and store into the folder, resumable like a single calibration."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gru_sim.calibrate.fleet import kind_key, one_at_a_time_per_host, pick_workers, profile_name
from gru_sim.cli import main
from gru_sim.model.library import here_fingerprint, mismatch

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "data" / "tiny-job.yaml"
GRU_SIM = str(Path(sys.executable).parent / "gru-sim")


def _fp(cpu: str = "AMD EPYC 7B13", cores: int = 2, torch: str = "2.4.0+cpu", isa: tuple[str, ...] = ("avx2", "fma"),
        **extra: object) -> dict[str, object]:
    return {"device": "cpu", "cpu_model": cpu, "logical_cores": cores, "physical_cores": cores, "torch": torch,
            "isa": list(isa), "caches": [{"level": 1, "size_bytes": 32768, "shared_by_cpus": "0"}],
            "os": "Linux", "python": "3.11.4", **extra}


# ------------------------------------------------------------------------------- grouping, no cluster
def test_one_worker_is_picked_per_kind_of_machine() -> None:
    facts = {
        "tcp://10.0.0.2:4001": {"host": "a", "fingerprint": _fp()},
        "tcp://10.0.0.2:4000": {"host": "a", "fingerprint": _fp(python="3.12.1")},  # not an identity field
        "tcp://10.0.0.3:4000": {"host": "b", "fingerprint": _fp(torch="2.4.0")},    # same kind, another host
        "tcp://10.0.0.4:4000": {"host": "c", "fingerprint": _fp(cpu="Intel Xeon Gold 6338", cores=8,
                                                                isa=("avx2", "avx512f"))},
        "tcp://10.0.0.4:4001": {"host": "c", "fingerprint": _fp(cpu="Intel Xeon Gold 6338", cores=8,
                                                                isa=("avx2", "avx512f"), torch="2.5.1")},
    }
    picks = pick_workers(facts)
    assert [(p.address, p.host) for p in picks] == [("tcp://10.0.0.2:4000", "a"), ("tcp://10.0.0.4:4000", "c"),
                                                    ("tcp://10.0.0.4:4001", "c")]
    assert picks[0].others == ("tcp://10.0.0.2:4001", "tcp://10.0.0.3:4000")
    assert picks[1].others == picks[2].others == ()
    names = [p.name for p in picks]
    assert len(set(names)) == 3  # two kinds never share a file ...
    assert names[0].startswith("cpu-amd-epyc-7b13-2c-") and names[1].startswith("cpu-intel-xeon-gold-6338-8c-")
    assert names[1][:-9] == names[2][:-9]  # ... even of the same CPU: the hash tells them apart
    assert pick_workers(dict(reversed(facts.items()))) == picks  # the same picks whatever the order
    queues = one_at_a_time_per_host(picks)
    assert {h: [p.address for p in q] for h, q in queues.items()} == {
        "a": ["tcp://10.0.0.2:4000"], "c": ["tcp://10.0.0.4:4000", "tcp://10.0.0.4:4001"]}


def test_the_kind_ignores_what_does_not_identify_a_machine() -> None:
    assert kind_key(_fp()) == kind_key(_fp(torch="2.4.0", python="3.9", os="other", physical_cores=1))
    # no kernel-choosing settings, recorded as none or not recorded: the same kind
    assert kind_key(_fp(kernel_env={})) == kind_key(_fp())
    for other in (_fp(cores=4), _fp(cpu="AMD EPYC 9654"), _fp(torch="2.5.0"), _fp(isa=("avx2",)),
                  _fp(kernel_env={"MKL_CBWR": "COMPATIBLE"}),
                  {**_fp(), "device": "cuda", "gpu_name": "NVIDIA H100"}):
        assert kind_key(other) != kind_key(_fp())
    assert profile_name(here_fingerprint("cpu")) == profile_name(here_fingerprint("cpu"))


def test_the_fleet_module_imports_neither_dask_nor_torch() -> None:
    code = ("import sys, gru_sim.calibrate.fleet, gru_sim.commands.calibrate; "
            "print([m for m in ('dask', 'distributed', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------- the command's flags
def test_calibrate_help_names_the_fleet_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out-dir DIR" in text and "--scheduler ADDRESS" in text and "--workers N" in text
    assert "shared filesystem" in text


@pytest.mark.parametrize("flags,says", [
    (["--out-dir", "{tmp}/fleet"], "give --scheduler ADDRESS or --workers N"),
    (["--workers", "2"], "give --out-dir DIR"),
    (["--scheduler", "tcp://127.0.0.1:1"], "give --out-dir DIR"),
    (["--workers", "2", "--out-dir", "{tmp}/fleet", "--out", "{tmp}/fleet/p.json"], "give one of them"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1", "--out-dir", "{tmp}/fleet"], "not both"),
    (["--workers", "2", "--out-dir", "{tmp}/fleet", "--quick"], "not with --out-dir"),
])
def test_fleet_flags_used_wrongly_are_one_line_exit_2_and_create_nothing(
        flags: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["calibrate", "--job", str(TINY), *(f.format(tmp=tmp_path) for f in flags)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_without_dask_a_fleet_calibration_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import dask.distributed → ImportError
    assert main(["calibrate", "--job", str(TINY), "--workers", "2", "--out-dir", str(tmp_path / "fleet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gru-sim[dask]" in err[0], err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- on a cluster
RAN: list[tuple[str, str, float, float]] = []  # (profile name, worker, start, end) of each fake job
_RAN_LOCK = threading.Lock()


def _fake_job(job: dict, out: str) -> dict:
    """In place of a calibration on a worker (of a cluster of threads in this process): record where
    and when it ran."""
    from distributed import get_worker

    start = time.monotonic()
    time.sleep(0.4)
    with _RAN_LOCK:
        RAN.append((Path(out).stem, get_worker().address, start, time.monotonic()))
    return {"profile": out, "measured_before_s": 0.0, "measured_s": 0.4}


def _failing_job(job: dict, out: str) -> dict:
    from gru_sim.errors import GruSimError

    if "intel" in Path(out).stem:
        raise GruSimError("device(=cuda) is not available")
    return _fake_job(job, out)


def test_a_kind_whose_job_fails_is_reported_and_the_others_go_on(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from gru_sim.calibrate import fleet
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.distributed import cluster_client

    with cluster_client(workers=2, processes=False) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        picks = fleet.pick_workers({addresses[0]: {"host": "h1", "fingerprint": _fp()},
                                    addresses[1]: {"host": "h2", "fingerprint": _fp(cpu="Intel Xeon")}})
        monkeypatch.setattr(fleet, "find_kinds", lambda client, device: picks)
        monkeypatch.setattr(fleet, "calibrate_on_worker", _failing_job)
        lines: list[str] = []
        result = fleet.calibrate_fleet(client, load_job(TINY), tmp_path, lines.append)
    assert [w["profile"] for w in result.written] == [str(tmp_path / f"{picks[0].name}.json")]
    assert [(p.name, why) for p, why in result.failed] == [(picks[1].name, "device(=cuda) is not available")]
    assert any(line.startswith("failed Intel Xeon") and "h2" in line for line in lines)


def test_jobs_run_pinned_to_their_worker_and_one_at_a_time_per_host(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Three kinds, two of them on one host: each job runs on the worker picked for it, and the two
    of one host never overlap (the job itself is replaced by one that records where and when it ran)."""
    pytest.importorskip("distributed")
    from gru_sim.calibrate import fleet
    from gru_sim.calibrate.jobs import load_job
    from gru_sim.distributed import cluster_client

    RAN.clear()
    with cluster_client(workers=3, processes=False) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        facts = {addresses[0]: {"host": "h1", "fingerprint": _fp()},
                 addresses[1]: {"host": "h1", "fingerprint": _fp(torch="2.5.0")},
                 addresses[2]: {"host": "h2", "fingerprint": _fp(cpu="Intel Xeon")}}
        picks = fleet.pick_workers(facts)
        monkeypatch.setattr(fleet, "find_kinds", lambda client, device: picks)
        monkeypatch.setattr(fleet, "calibrate_on_worker", _fake_job)
        lines: list[str] = []
        result = fleet.calibrate_fleet(client, load_job(TINY), tmp_path, lines.append)
    assert sorted(w["profile"] for w in result.written) == sorted(str(tmp_path / f"{p.name}.json") for p in picks)
    assert {name: address for name, address, *_ in RAN} == {p.name: p.address for p in picks}
    (_, _, s1, e1), (_, _, s2, e2) = sorted(r for r in RAN if r[0] in {p.name for p in picks if p.host == "h1"})
    assert e1 <= s2 or e2 <= s1  # never together on one host
    assert sum(line.startswith("started") for line in lines) == sum(line.startswith("finished") for line in lines) == 3


def _rows(store: Path) -> dict[str, float]:
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT key, created_at FROM points"))


@pytest.mark.slow
def test_a_fleet_of_two_local_workers_writes_one_profile_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from gru_sim.model.profile import load_profile

    out_dir = tmp_path / "fleet"
    cmd = [GRU_SIM, "calibrate", "--job", str(TINY), "--budget", "2", "--workers", "2", "--out-dir", str(out_dir)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    here = here_fingerprint("cpu")
    profiles = sorted(out_dir.glob("*.json"))
    assert [p.name for p in profiles] == [f"{profile_name(here)}.json"]  # one kind: one profile
    store = profiles[0].with_suffix(".sqlite")
    assert store.exists()
    profile = load_profile(profiles[0])
    assert mismatch(profile.fingerprint, here) == {}
    assert profile.self_check["holdout"]["n"] >= 1
    started = [line for line in first.stderr.splitlines() if "started" in line]
    finished = [line for line in first.stderr.splitlines() if "finished" in line]
    assert len(started) == len(finished) == 1
    for line in started + finished:
        assert socket.gethostname() in line and (here["cpu_model"] or "unknown CPU") in line
        assert str(profiles[0]) in line
    assert first.stdout.strip() == f"1 profile written: {profiles[0]}"

    before = _rows(store)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert "resumed a store" in again.stderr and "measured 0 s more" in again.stderr
    assert _rows(store) == before  # nothing measured again, nothing new
    assert sorted(out_dir.glob("*.json")) == profiles
    assert load_profile(profiles[0]).fingerprint == profile.fingerprint
