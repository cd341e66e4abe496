"""Fleet calibration: one calibration job per kind of machine among a Dask cluster's workers, each
writing its profile (and the SQLite store beside it) into one folder.

How it runs (``gru-sim calibrate --scheduler ADDRESS --out-dir DIR``, or ``--workers N`` for a local
cluster):

1. **Which kinds of machine.** A small probe runs on every worker (``client.run``) and returns the
   worker's host name and its fingerprint, read by gru-sim's own fingerprint code (the torch-free
   :func:`gru_sim.model.library.here_fingerprint`; on CUDA the measuring side's fingerprint, which
   names the GPU). Two workers are the same kind when the identity fields that profile matching
   compares (:data:`gru_sim.model.library.MATCH_WEIGHTS`: device, GPU, CPU model, ISA extensions,
   caches, logical cores, torch version) are equal. :func:`pick_workers` keeps one worker per kind
   (the first by address): several workers on one host, or several hosts of one kind, give one
   calibration and one profile.
2. **Pinning, not resources.** Each kind's job is submitted pinned to its chosen worker
   (``workers=[address], allow_other_workers=False``), so the scheduler never moves it elsewhere.
   Worker resources were not used because they only work when every worker was started declaring
   them, which an existing cluster (``--scheduler``) need not have done. A fleet run submits nothing
   but these jobs, and at most one at a time per host: were two kinds found on one host (worker
   processes of one host in two environments, say with different torch versions), their jobs run
   one after the other, never together. What this cannot hold back is other clients' work sharing
   the scheduler: run a fleet calibration on a cluster that is otherwise idle.
3. **The worker writes, into DIR.** The chosen worker runs :func:`gru_sim.calibrate.runner.calibrate`
   itself, with the profile at ``DIR/<name>.json`` and its store at ``DIR/<name>.sqlite``, so DIR
   must be a path every worker can write and the client can read: a shared filesystem (on a single
   machine, any folder). This is what keeps resume working: each point is committed to the store as
   it is measured, on the host that measures it, and a fleet run interrupted and run again with the
   same flags resumes every kind's store through the same machinery as a single ``gru-sim
   calibrate --out`` (points already stored are not measured twice; a store made by another job or
   on another machine is refused). Returning the profile to the client would lose everything an
   interrupted job had measured.
4. **Names that never collide.** A kind's file name is ``<device>-<cpu model>-<cores>c-<hash>``: the
   hash is of the identity fields above, so two kinds never share a file, and the same kind gets the
   same file on every run (which is what a re-run resumes).

If a chosen worker leaves the cluster while it measures, its job waits for it; interrupt and run
the same command again (another worker of that kind is picked, the store resumes). Interrupting the
client stops a local cluster's workers at once; on an existing cluster the job already running on a
worker finishes on its own (Dask cannot stop a running task), writing into the same store.

Dask is imported by :mod:`gru_sim.distributed` alone, when a cluster is asked for; this module and
the probe run on workers import neither dask nor torch until a job is actually run.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import GruSimError
from ..locations import file_slug
from .jobs import JobSpec

HASH_CHARS = 8
WAIT_FOR_WORKERS_S = 60


# ------------------------------------------------------------------------------- kinds of machine
def kind_identity(fp: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a fingerprint that make a kind of machine: those profile matching compares
    (:data:`gru_sim.model.library.MATCH_WEIGHTS`), the torch version without its build tag."""
    caches = fp.get("caches")
    torch = fp.get("torch")
    return {
        "device": fp.get("device"),
        "gpu_name": fp.get("gpu_name") if fp.get("device") == "cuda" else None,
        "cpu_model": fp.get("cpu_model"),
        "isa": sorted(fp["isa"]) if fp.get("isa") is not None else None,
        "caches": [[c["level"], c["size_bytes"]] for c in caches] if caches else None,
        "logical_cores": fp.get("logical_cores"),
        "torch": torch.split("+")[0] if isinstance(torch, str) else None,
        # Kernel-choosing settings (machine.KERNEL_ENV_VARS) make another kind; left out when none are
        # set, so that a kind's key is what it was before they were recorded.
        **({"kernel_env": dict(sorted(env.items()))} if (env := fp.get("kernel_env")) else {}),
    }


def kind_key(fp: Mapping[str, Any]) -> str:
    """A short hash of :func:`kind_identity`: equal for two workers of one kind, different otherwise."""
    text = json.dumps(kind_identity(fp), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def profile_name(fp: Mapping[str, Any]) -> str:
    """The file name (without suffix) of a kind's profile: ``<device>-<cpu or gpu model>-<cores>c-<hash>``."""
    device = str(fp.get("device") or "cpu")
    model = fp.get("gpu_name") if device == "cuda" and fp.get("gpu_name") else fp.get("cpu_model")
    cores = fp.get("logical_cores")
    return f"{device}-{file_slug(str(model or 'unknown'))}-{cores or 0}c-{kind_key(fp)}"


def describe_kind(fp: Mapping[str, Any]) -> str:
    """A kind in a few words (as profile choice says it): its CPU (or GPU) model and core count."""
    from ..model.library import describe

    return describe(dict(fp))


@dataclass(frozen=True)
class Pick:
    """The worker chosen to calibrate one kind of machine, and the others of that kind."""

    key: str
    name: str
    address: str
    host: str
    fingerprint: dict[str, Any]
    others: tuple[str, ...] = field(default=())


def pick_workers(facts: Mapping[str, Mapping[str, Any]]) -> list[Pick]:
    """One worker per distinct kind among ``facts`` (``{address: {"host", "fingerprint"}}``, what
    :func:`worker_facts` returns on each worker): the first by address, the kinds in the order of
    their first worker."""
    groups: dict[str, list[str]] = {}
    for address in sorted(facts):
        groups.setdefault(kind_key(facts[address]["fingerprint"]), []).append(address)
    picks = []
    for key, addresses in groups.items():
        chosen = facts[addresses[0]]
        fp = dict(chosen["fingerprint"])
        picks.append(Pick(key, profile_name(fp), addresses[0], str(chosen["host"]), fp, tuple(addresses[1:])))
    return picks


def one_at_a_time_per_host(picks: list[Pick]) -> dict[str, deque[Pick]]:
    """The picks queued by host: a host runs the first of its queue, then the next."""
    queues: dict[str, deque[Pick]] = {}
    for p in picks:
        queues.setdefault(p.host, deque()).append(p)
    return queues


# ------------------------------------------------------------------------------- run on the workers
def worker_facts(device: str) -> dict[str, Any]:
    """On a worker: its host name and fingerprint (gru-sim's own fingerprint code; on CUDA the
    measuring side's, which names the GPU — and imports torch)."""
    if device == "cuda":
        from ..measure.fingerprint import fingerprint

        fp = fingerprint(device)
    else:
        from ..model.library import here_fingerprint

        fp = here_fingerprint(device)
    return {"host": socket.gethostname(), "fingerprint": fp}


def calibrate_on_worker(job: dict[str, Any], out: str) -> dict[str, Any]:
    """On a worker: run (or resume) the job with its profile at ``out`` and the store beside it — the
    very :func:`gru_sim.calibrate.runner.calibrate` of a single calibration. Returns what the client
    reports: the profile path, its fingerprint, and the seconds measured before and after."""
    from .runner import calibrate, store_path_for
    from .store import MeasurementStore

    spec = JobSpec.model_validate(job)
    store = store_path_for(out)
    before_s = 0.0
    if store.exists():
        with MeasurementStore(store) as s:
            before_s = s.spent_s()
    profile = calibrate(spec, out)
    return {"profile": out, "store": str(store), "host": socket.gethostname(), "fingerprint": profile.fingerprint,
            "measured_before_s": before_s, "measured_s": float(profile.self_check.get("measuring_s", 0.0))}


# ------------------------------------------------------------------------------- the client's side
@dataclass
class FleetResult:
    """What a fleet calibration did: the profiles written (one per kind) and the kinds that failed."""

    written: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[Pick, str]] = field(default_factory=list)


def find_kinds(client: Any, device: str, wait_s: float = WAIT_FOR_WORKERS_S) -> list[Pick]:
    """Every worker's fingerprint, and one worker per kind (a GruSimError when there is no worker)."""
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        raise GruSimError(f"the Dask cluster has no workers (waited {wait_s:.0f} s)") from None
    facts = client.run(worker_facts, device)
    if not facts:
        raise GruSimError("the Dask cluster has no workers")
    return pick_workers(facts)


def calibrate_fleet(client: Any, spec: JobSpec, out_dir: str | Path,
                    say: Callable[[str], None] = lambda line: None) -> FleetResult:
    """Run (or resume) ``spec`` once per kind of machine among the cluster's workers, each pinned
    to one worker of its kind and at most one at a time per host; profiles and stores go to
    ``out_dir`` (a folder every worker can write). ``say`` gets one line per job started and
    finished. A job that fails (a GruSimError on its worker) is reported and the others go on."""
    from ..distributed import import_distributed

    dd = import_distributed()
    out_dir = Path(out_dir).absolute()
    picks = find_kinds(client, spec.device)
    say(f"{len(picks)} kind{'s' * (len(picks) != 1)} of machine among "
        f"{sum(1 + len(p.others) for p in picks)} workers")
    queues = one_at_a_time_per_host(picks)
    job = spec.model_dump(mode="json")
    running: dict[Any, Pick] = {}
    pending = dd.as_completed()
    result = FleetResult()

    def start(host: str) -> None:
        p = queues[host].popleft()
        out = out_dir / f"{p.name}.json"
        fut = client.submit(calibrate_on_worker, job, str(out), key=f"gru-sim-calibrate-{p.name}",
                            workers=[p.address], allow_other_workers=False, pure=False)
        running[fut] = p
        pending.add(fut)
        say(f"started {describe_kind(p.fingerprint)} on {p.host} ({p.address}): {out}")

    for host in queues:
        start(host)
    for fut in pending:
        p = running.pop(fut)
        try:
            done = fut.result()
        except GruSimError as err:
            result.failed.append((p, str(err)))
            say(f"failed {describe_kind(p.fingerprint)} on {p.host}: {err}")
        else:
            result.written.append(done)
            before, now = done["measured_before_s"], done["measured_s"]
            resumed = (f"resumed a store of {before:.0f} s, measured {max(now - before, 0.0):.0f} s more"
                       if before > 0 else f"measured {now:.0f} s")
            say(f"finished {describe_kind(p.fingerprint)} on {p.host}: {done['profile']} ({resumed})")
        finally:
            fut.release()
        if queues[p.host]:
            start(p.host)
    return result


__all__ = ["FleetResult", "Pick", "calibrate_fleet", "calibrate_on_worker", "find_kinds", "kind_identity", "kind_key",
           "one_at_a_time_per_host", "pick_workers", "profile_name", "worker_facts"]
