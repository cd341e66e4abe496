"""Several calibration runs of one job on one kind of machine, pooled into one profile
(``gru-sim calibrate --pool``). Measures nothing.

A shared machine's speed wanders by the minute: one calibration carries the speed of its five
minutes into every unit it times, and a burst of other tenants' work can leave a whole row of a
unit table too slow. Runs taken at different times of the day disagree by that much; the geometric
median of each unit over the runs, and a residual fitted on all their whole calls, describe the
machine at its typical speed (:func:`.build.fit_runs`).

Over days the speed moves further, and stays moved: on the AMD EPYC VM of the README, each run's own
profile put the typical shapes a median 32% slower than the pool of all its runs did for the runs of
2026-12-03, and 8% faster for those of 2026-12-05 (other tenants come and go). A pool of every run then
describes no day's machine, and its interval carries the slow days' calls as if they could come back
any minute. ``recent`` keeps the runs that measured
last: their median is the machine as it runs now, their scatter its spread now.

A run is named by its profile (``x.json``: its store ``x.sqlite`` beside it), its store, or a
gzip-compressed store (``x.sqlite.gz``, as the repository keeps the runs of its shipped profiles).
All runs must come from the same job (the budget aside) and the same kind of machine.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import GruSimError
from ..model.library import describe, mismatch
from ..model.profile import Profile, save_profile
from .build import build_profile
from .jobs import JobSpec, job_differences
from .store import MeasurementStore


def store_of(path: str | Path) -> Path:
    """The store a run is named by: a profile's ``.json`` → the ``.sqlite`` beside it; a store as it is."""
    path = Path(path)
    return path.with_suffix(".sqlite") if path.suffix == ".json" else path


def readable_store(path: Path, folder: Path, prefix: str = "") -> Path:
    """``path`` as a store SQLite can open: a gzip-compressed one (``x.sqlite.gz``, as the repository
    keeps stored runs) decompressed into ``folder`` (named ``prefix`` + its plain name), any other as
    it is."""
    if not path.name.endswith(".gz"):
        return path
    plain = folder / f"{prefix}{path.name[:-3]}"
    try:
        with gzip.open(path, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError) as err:
        raise GruSimError(f"{path}: not a readable gzip-compressed store: {err}") from None
    return plain


@contextlib.contextmanager
def open_runs(paths: Sequence[str | Path], minimum: int = 2) -> Iterator[list[MeasurementStore]]:
    """The stores of ``paths`` (at least ``minimum``), checked to be runs of one job on one kind of
    machine; compressed stores are read from a temporary copy. Any problem is one GruSimError naming
    the run."""
    if len(paths) < minimum:
        runs = {1: "one calibration run", 2: "two calibration runs"}.get(minimum, f"{minimum} calibration runs")
        raise GruSimError(f"--pool needs at least {runs} (profiles or their stores)")
    with tempfile.TemporaryDirectory(prefix="gru-sim-pool-") as tmp, contextlib.ExitStack() as stack:
        stores = []
        for k, given in enumerate(paths):
            path = store_of(given)
            if not path.is_file():
                hint = " (a profile's measurements are in the .sqlite store beside it)" if Path(given).suffix == ".json" else ""
                raise GruSimError(f"{path}: no such calibration store{hint}")
            path = readable_store(path, Path(tmp), f"{k}-")
            store = stack.enter_context(MeasurementStore(path))
            store.path = Path(given)  # name the run as the user did
            if store.get_meta("job") is None or store.get_meta("fingerprint") is None:
                raise GruSimError(f"{given}: not a full calibration's store (no job or machine recorded); "
                                  "pool the stores of 'gru-sim calibrate' runs")
            stores.append(store)
        _check_same(stores)
        yield stores


def _check_same(stores: list[MeasurementStore]) -> None:
    first = stores[0]
    for store in stores[1:]:
        if differ := job_differences(first.get_meta("job"), store.get_meta("job")):
            raise GruSimError(f"{store.path} ran another job than {first.path} (they differ in {', '.join(differ)}): "
                              "pool runs of one job")
        diff = mismatch(first.get_meta("fingerprint"), store.get_meta("fingerprint"))
        if diff:
            raise GruSimError(f"{store.path} was measured on {describe(store.get_meta('fingerprint'))}, {first.path} on "
                              f"{describe(first.get_meta('fingerprint'))} ({', '.join(sorted(diff))} differ): "
                              "pool runs of one kind of machine")


def latest(ends: Sequence[float | None], count: int | None) -> list[int]:
    """The indexes of the ``count`` runs that ended last (``ends``: each run's last measurement, None
    where it measured nothing, never among the latest), in the order given; all of them with ``None``.
    The rule of ``--pool --recent``, which the benchmarks judging pools apply to runs they read alike."""
    if count is None:
        return list(range(len(ends)))
    kept = {k for _, k in sorted((end, k) for k, end in enumerate(ends) if end is not None)[-count:]}
    return [k for k in range(len(ends)) if k in kept]


def most_recent(stores: list[MeasurementStore], count: int | None) -> list[MeasurementStore]:
    """The ``count`` stores whose last measurement is the latest, in the order given (all of them
    with ``None``). A store that measured nothing is never among the latest."""
    spans = [store.measured_span() for store in stores]
    return [stores[k] for k in latest([None if span is None else span[1] for span in spans], count)]


def pool_profile(paths: Sequence[str | Path], out: str | Path, recent: int | None = None) -> Profile:
    """One profile from the calibration runs ``paths``, written to ``out``; with ``recent``, from the
    ``recent`` of them that measured last (see the module's docstring)."""
    if recent is not None and recent < 2:
        raise GruSimError(f"--recent {recent}: a pool needs at least two runs (give --recent 2 or more)")
    if any(store_of(p).resolve() == store_of(out).resolve() for p in paths):
        raise GruSimError(f"--out {out} would replace one of the pooled runs: write the pooled profile elsewhere")
    with open_runs(paths) as stores:
        kept = most_recent(stores, recent)
        if len(kept) < 2:
            raise GruSimError("--pool: fewer than two of these runs measured anything: pool finished runs")
        spec = JobSpec.model_validate(kept[0].get_meta("job"))
        profile = build_profile(spec, kept, kept[0].get_meta("fingerprint"))
    if len(kept) < len(paths):
        profile.self_check["runs_left_out"] = len(paths) - len(kept)
    save_profile(profile, out)
    return profile
