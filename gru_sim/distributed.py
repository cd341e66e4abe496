"""Beyond one machine: the work of a sweep or a grid of predictions spread over a Dask cluster — a
local one of N processes (``--workers N``) or an existing one (``--scheduler tcp://HOST:PORT``, which
may be a LocalCluster, dask-jobqueue on SLURM/PBS, Kubernetes or a cloud cluster).

Dask is the optional extra ``gru-sim[dask]`` and is imported here alone, and only when a cluster is
asked for. Tasks carry the profile's text (sent to every worker once), never a path: a worker on
another host need not share this machine's files. They also carry this machine's fingerprint, so a
worker on another kind of host predicts exactly what this one would (a profile's match with the
machine predicted for is the client's question, not the worker's).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import GruSimError

EXTRA = "gru-sim[dask]"
# Tasks in flight at once per worker thread: enough to keep every worker busy, few enough that the
# client never holds more than a handful of finished chunks it has not written yet.
IN_FLIGHT_PER_WORKER = 2
# How many times a task the cluster cancelled (its worker lost) is submitted again before giving up.
LOST_TASK_RESUBMITS = 3
# Seconds to wait for a scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 20


class ClusterError(GruSimError):
    """Dask is not installed, or the cluster cannot be started or reached."""


def import_distributed() -> Any:
    """``dask.distributed``, or a ClusterError naming the extra that brings it."""
    try:
        import dask.distributed as dd
    except ImportError:
        raise ClusterError(f"--workers and --scheduler need Dask: pip install '{EXTRA}'") from None
    return dd


@contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None, processes: bool = True
                   ) -> Iterator[Any]:
    """A Dask client for ``--workers N`` (a LocalCluster of N single-threaded worker processes; of
    threads with ``processes=False``) or ``--scheduler ADDRESS``; None when neither is given."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise ClusterError("give --workers or --scheduler, not both")
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers(={workers}) must be >= 1")
    dd = import_distributed()
    cluster = None
    try:
        if scheduler is not None:
            client = dd.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        else:
            cluster = dd.LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                      dashboard_address=":0", silence_logs=logging.ERROR)
            client = dd.Client(cluster)
    except (OSError, TimeoutError) as err:
        where = f"the Dask scheduler at {scheduler}" if scheduler else f"a local cluster of {workers} workers"
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"cannot reach {where}: {err}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_count(client: Any) -> int:
    """Threads the cluster's workers offer (at least 1)."""
    return max(1, sum(client.nthreads().values()))


# ---------------------------------------------------------------------------- the profile on workers
_LOADED: dict[tuple[str, str], Any] = {}


def profile_ref(profile_path: str | Path) -> tuple[str, str, str]:
    """What a task needs to load a profile on any worker: its path (as the records name it), its
    checksum and its text."""
    text = Path(profile_path).read_text()
    return str(profile_path), hashlib.sha256(text.encode()).hexdigest(), text


def loaded_profile(ref: tuple[str, str, str]) -> Any:
    """The profile of ``ref``, loaded once per worker process (and per checksum)."""
    from .model.profile import load_profile

    path, digest, text = ref
    key = (path, digest)
    if key not in _LOADED:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "profile.json"
            copy.write_text(text)
            profile = load_profile(copy)
        profile.path = Path(path)  # records name the profile the client gave, not the worker's copy
        _LOADED[key] = profile
    return _LOADED[key]


def _predict_records(ref: tuple[str, str, str], here: dict[str, Any], configs: Sequence[Any],
                     max_chunks: int | None) -> list[dict[str, Any]]:
    from .predict import Predictor

    predictor = Predictor(loaded_profile(ref), here=here)
    return [predictor.predict(c, max_chunks=max_chunks).to_dict() for c in configs]


def map_in_order(client: Any, fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], shared: Sequence[Any] = (),
                 progress: Callable[[int, int], None] | None = None) -> Iterator[Any]:
    """``fn(*shared, *task)`` for every task on the cluster, yielded in the order of ``tasks`` while
    at most a few per worker are in flight. ``shared`` arguments are sent to every worker once.
    A task whose worker is lost is run again by Dask on another one; each result is yielded once."""
    dd = import_distributed()
    # One-element lists: scatter would split a tuple or a dict into futures of their items.
    shared_futures = [client.scatter([value], broadcast=True)[0] for value in shared]
    limit = IN_FLIGHT_PER_WORKER * worker_count(client)
    futures: dict[Any, int] = {}
    done: dict[int, Any] = {}
    pending = dd.as_completed()
    submitted = next_out = 0
    total = len(tasks)

    def submit_task(k: int) -> None:
        fut = client.submit(fn, *shared_futures, *tasks[k], pure=False, retries=2)
        futures[fut] = k
        pending.add(fut)

    def submit() -> None:
        nonlocal submitted
        while submitted < total and submitted - next_out < limit:
            submit_task(submitted)
            submitted += 1

    submit()
    lost: dict[int, int] = {}
    while next_out < total:
        fut = next(pending)
        k = futures.pop(fut)
        try:
            done[k] = fut.result()
        except concurrent.futures.CancelledError as err:
            # A worker lost mid-task can leave its task cancelled ("already forgotten") instead of run
            # again: submit it once more (the shared arguments again too, in case their copies went
            # with the worker).
            lost[k] = lost.get(k, 0) + 1
            if lost[k] > LOST_TASK_RESUBMITS:
                raise ClusterError(f"a task was cancelled {lost[k]} times on the cluster ({err}): "
                                   "check the workers' logs") from None
            shared_futures = [client.scatter([value], broadcast=True)[0] for value in shared]
            submit_task(k)
            continue
        fut.release()
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
            if progress is not None:
                progress(next_out, total)
        submit()


def predict_records_on(client: Any, configs: Sequence[Any], profile_path: str | Path, here: dict[str, Any],
                       max_chunks: int | None, chunk_size: int = 500,
                       progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """The predict record of every config, in order, computed on the cluster in chunks of
    ``chunk_size`` — the same records as ``Predictor(profile, here).predict(c, max_chunks)``."""
    chunks = [(list(configs[i:i + chunk_size]), max_chunks) for i in range(0, len(configs), chunk_size)]

    def count(k: int, total: int) -> None:
        if progress is not None:
            progress(min(k * chunk_size, len(configs)), len(configs))

    for records in map_in_order(client, _predict_records, chunks, shared=(profile_ref(profile_path), here),
                                progress=count):
        yield from records


__all__ = ["EXTRA", "ClusterError", "cluster_client", "import_distributed", "loaded_profile", "map_in_order",
           "predict_records_on", "profile_ref", "worker_count"]
