"""A sweep too large for one record per configuration: millions of grid points priced with the
vectorised predictor (:mod:`gru_sim.model.batch`) in chunks, here or as Dask tasks, each chunk written
to its own file as it arrives (Parquet with pyarrow, else CSV) and folded into a summary — counts,
latency quantiles, the fastest and slowest configurations, an even sample and the Pareto front of
latency against throughput — that ``results.json`` keeps with the files' path.

A chunk is named by its first row: a task run twice (a worker lost) writes the same file again, so
the files have no gaps and no duplicates. Chunks are folded into the summary in row order, so the
summary is the same however many workers ran them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..model.batch import BatchPredictor, ConfigBatch

# Rows per chunk: large enough that NumPy's per-call cost vanishes, small enough that a chunk's columns
# (about 150 bytes a row) stay a few MB in flight.
CHUNK_ROWS = 25_000
# Rows of the even sample results.json keeps (the report plots them).
SAMPLE_ROWS = 2_000
# Latency quantiles come from a histogram of log10(latency) in bins this wide (0.1 %).
LOG10_BIN = 0.0005
LOG10_RANGE = (-9.0, 5.0)
QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
# Pareto rows kept from a chunk and in the summary.
MAX_FRONT = 500


@dataclass(frozen=True)
class GridSweep:
    """A grid sweep as its axes (name → values, the last axis varying fastest) and the fields every
    row shares; row ``r`` is the ``r``-th combination of ``itertools.product`` over the axes."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    fixed: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, axes: dict[str, Sequence[Any]], fixed: dict[str, Any]) -> "GridSweep":
        return cls(tuple((k, tuple(v)) for k, v in axes.items()), tuple((k, v) for k, v in fixed.items()
                                                                        if k not in axes and v is not None))

    @property
    def size(self) -> int:
        return math.prod(len(v) for _, v in self.axes)

    def rows(self, start: int, stop: int) -> ConfigBatch:
        """Rows ``start`` to ``stop`` (excluded) as a batch."""
        shape = tuple(len(v) for _, v in self.axes)
        index = np.unravel_index(np.arange(start, stop, dtype=np.int64), shape)
        columns: dict[str, Any] = {name: np.asarray(values)[ix] for (name, values), ix in zip(self.axes, index)}
        return ConfigBatch.from_columns(columns, dict(self.fixed))

    def combinations(self) -> Iterator[tuple[Any, ...]]:
        return product(*(v for _, v in self.axes))


# ------------------------------------------------------------------------------------------ one chunk
def predict_chunk(predictor: BatchPredictor, grid: GridSweep, start: int, stop: int) -> dict[str, Any]:
    """The columns of rows ``start``..``stop`` (``row`` first) and their partial summary."""
    batch = grid.rows(start, stop)
    pred = predictor.predict(batch)
    columns = {"row": np.arange(start, stop, dtype=np.int64), **batch.columns(), **pred.columns()}
    return {"start": start, "columns": columns, "summary": _chunk_summary(columns)}


def _front(columns: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Of ``rows``, those no other row beats on both latency (lower) and throughput (higher), by
    latency; ties kept in row order."""
    lat, thr = columns["latency_s"][rows], columns["throughput_tokens_per_s"][rows]
    order = np.lexsort((columns["row"][rows], -thr, lat))
    best = np.maximum.accumulate(thr[order])
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = thr[order][1:] > best[:-1]
    return rows[order[keep]][:MAX_FRONT]


def _pick(columns: dict[str, np.ndarray], rows: np.ndarray) -> list[dict[str, Any]]:
    return [{k: v[r].item() if hasattr(v[r], "item") else v[r] for k, v in columns.items()} for r in rows]


def _chunk_summary(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    lat = columns["latency_s"]
    first = int(columns["row"][0])
    n = len(lat)
    edges = int(round((LOG10_RANGE[1] - LOG10_RANGE[0]) / LOG10_BIN))
    bins = np.clip(((np.log10(lat) - LOG10_RANGE[0]) / LOG10_BIN).astype(np.int64), 0, edges - 1)
    all_rows = np.arange(n)
    return {
        "count": n,
        "extrapolated": int(columns["extrapolated"].sum()),
        "histogram": np.bincount(bins, minlength=edges),
        "fastest": _pick(columns, [int(np.argmin(lat))])[0],
        "slowest": _pick(columns, [int(np.argmax(lat))])[0],
        "front": _pick(columns, _front(columns, all_rows)),
        "first_row": first,
    }


# ------------------------------------------------------------------------------------------- summary
class SweepSummary:
    """What results.json keeps of a large sweep, folded chunk by chunk in row order."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.stride = max(1, math.ceil(total / SAMPLE_ROWS))
        self.count = 0
        self.extrapolated = 0
        self.histogram: np.ndarray | None = None
        self.fastest: dict[str, Any] | None = None
        self.slowest: dict[str, Any] | None = None
        self.front: list[dict[str, Any]] = []
        self.sample: list[dict[str, Any]] = []

    def add(self, part: dict[str, Any]) -> None:
        s = part["summary"]
        self.count += s["count"]
        self.extrapolated += s["extrapolated"]
        self.histogram = s["histogram"] if self.histogram is None else self.histogram + s["histogram"]
        if self.fastest is None or s["fastest"]["latency_s"] < self.fastest["latency_s"]:
            self.fastest = s["fastest"]
        if self.slowest is None or s["slowest"]["latency_s"] > self.slowest["latency_s"]:
            self.slowest = s["slowest"]
        cols = part["columns"]
        rows = cols["row"]
        take = np.flatnonzero(rows % self.stride == 0)
        self.sample += _pick(cols, take)
        self.front = self._merge_front(self.front + s["front"])

    @staticmethod
    def _merge_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not rows:
            return rows
        cols = {k: np.array([r[k] for r in rows]) for k in ("row", "latency_s", "throughput_tokens_per_s")}
        keep = _front(cols, np.arange(len(rows)))
        return [rows[k] for k in keep]

    def quantiles_s(self) -> dict[str, float]:
        assert self.histogram is not None
        cum = np.cumsum(self.histogram)
        out = {}
        for q in QUANTILES:
            k = int(np.searchsorted(cum, q * cum[-1], side="left"))
            out[f"p{round(q * 100):g}"] = float(10 ** (LOG10_RANGE[0] + (k + 0.5) * LOG10_BIN))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"configurations": self.count, "extrapolated": self.extrapolated,
                "latency_quantiles_s": self.quantiles_s() if self.count else {},
                "quantile_resolution": f"{10 ** LOG10_BIN - 1:.2%}", "fastest": self.fastest,
                "slowest": self.slowest, "pareto_front": self.front, "sample_every": self.stride,
                "sample": self.sample}


# -------------------------------------------------------------------------------------------- files
def _writer(out_dir: Path) -> tuple[Path, str, Callable[[int, dict[str, np.ndarray]], None]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        folder = out_dir / "sweep.parquet"

        def write(start: int, columns: dict[str, np.ndarray]) -> None:
            table = pa.table({k: (v.astype(str) if v.dtype == object else v) for k, v in columns.items()})
            tmp = folder / f".part-{start:012d}.parquet.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, folder / f"part-{start:012d}.parquet")

        fmt = "parquet"
    else:
        folder = out_dir / "sweep-csv"

        def write(start: int, columns: dict[str, np.ndarray]) -> None:
            names = list(columns)
            tmp = folder / f".part-{start:012d}.csv.tmp"
            with open(tmp, "w") as f:
                f.write(",".join(names) + "\n")
                for row in zip(*(columns[n].tolist() for n in names)):
                    f.write(",".join(map(str, row)) + "\n")
            os.replace(tmp, folder / f"part-{start:012d}.csv")

        fmt = "csv"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("part-*"):  # a previous run's chunks, which may not line up with these
        stale.unlink()
    return folder, fmt, write


def _chunk_on_worker(ref: tuple[str, str, str], here: dict[str, Any], grid: GridSweep, start: int, stop: int
                     ) -> dict[str, Any]:
    from ..distributed import loaded_profile

    return predict_chunk(BatchPredictor(loaded_profile(ref), here=here), grid, start, stop)


def run_large_sweep(grid: GridSweep, profile_path: Path, here: dict[str, Any], out_dir: Path, client: Any = None,
                    progress: Callable[[int, int], None] | None = None, chunk_rows: int = CHUNK_ROWS
                    ) -> dict[str, Any]:
    """Price every row of ``grid`` in chunks — here, or on ``client``'s Dask cluster — writing each
    chunk's rows into ``out_dir`` as it comes back; returns the summary with the files' path."""
    total = grid.size
    spans = [(start, min(start + chunk_rows, total)) for start in range(0, total, chunk_rows)]
    folder, fmt, write = _writer(out_dir)
    summary = SweepSummary(total)
    if client is None:
        from ..model.profile import load_profile

        predictor = BatchPredictor(load_profile(profile_path), here=here)
        parts: Iterator[dict[str, Any]] = (predict_chunk(predictor, grid, a, b) for a, b in spans)
    else:
        from ..distributed import map_in_order, profile_ref

        parts = map_in_order(client, _chunk_on_worker, [(grid, a, b) for a, b in spans],
                             shared=(profile_ref(profile_path), here))
    done = 0
    for part in parts:
        write(part["start"], part["columns"])
        summary.add(part)
        done += len(part["columns"]["row"])
        if progress is not None:
            progress(done, total)
    return {**summary.to_dict(), "path": folder.name, "format": fmt, "chunks": len(spans), "chunk_rows": chunk_rows}


__all__ = ["CHUNK_ROWS", "GridSweep", "SweepSummary", "predict_chunk", "run_large_sweep"]
