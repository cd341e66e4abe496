"""The measurement store of a calibration job: an SQLite file written point by point.

Every measurement is committed as soon as it is taken, so Ctrl-C or a crash loses at most the point
in flight, and running the job again resumes: points already in the store are not measured twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import GruConfig
from ..errors import GruSimError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,           -- role + config, canonical JSON: a point is measured once
    grp TEXT NOT NULL,
    role TEXT NOT NULL,             -- train | holdout | beyond | memory
    config TEXT NOT NULL,
    status TEXT NOT NULL,           -- ok | oom
    latency_s REAL, latency_iqr_s REAL, noisy INTEGER, first_call_s REAL,
    samples_s TEXT, peak_memory_bytes INTEGER,
    wall_s REAL NOT NULL,           -- time spent measuring it: the job's budget is counted in these
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS primitives (grp TEXT PRIMARY KEY, data TEXT NOT NULL, wall_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    key TEXT PRIMARY KEY,           -- table + kind + parameters, canonical JSON: a unit is timed once
    tbl TEXT NOT NULL,              -- the table it belongs to (a step table's group|mode, a GEMM table's key)
    kind TEXT NOT NULL,             -- step | call | fixed | matmul | gemm | bandwidth
    params TEXT NOT NULL,
    value REAL,                     -- seconds (bytes/s for bandwidth); NULL when it could not be run
    noisy INTEGER NOT NULL,
    grp TEXT NOT NULL,              -- the hardware group whose budget paid for it
    wall_s REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drift (
    grp TEXT NOT NULL,              -- the hardware group whose reference call this is
    at REAL NOT NULL,               -- when it was timed (time.time())
    seconds REAL NOT NULL           -- the reference call's median seconds
);
"""


@dataclass(frozen=True)
class StoredPoint:
    """One row of the store."""

    group: str
    role: str
    config: GruConfig
    status: str
    latency_s: float | None
    latency_iqr_s: float | None
    noisy: bool
    first_call_s: float | None
    samples_s: tuple[float, ...]
    peak_memory_bytes: int | None
    wall_s: float
    at: float = 0.0                  # when it was stored (time.time())


def point_key(role: str, config: GruConfig) -> str:
    return role + ":" + json.dumps(config.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class StoredUnit:
    """One timed unit (see gru_sim.model.units): its table, kind, parameters and value."""

    table: str
    kind: str
    params: dict[str, Any]
    value: float | None
    noisy: bool
    at: float = 0.0                  # when it was timed (time.time())


def _where(**columns: str | None) -> tuple[str, list[str]]:
    """A WHERE clause matching every column given a value (None: any), and its arguments."""
    given = {c: v for c, v in columns.items() if v is not None}
    return (" WHERE " + " AND ".join(f"{c} = ?" for c in given) if given else ""), list(given.values())


def unit_key(table: str, kind: str, params: dict[str, Any]) -> str:
    return f"{table}:{kind}:" + json.dumps(params, sort_keys=True)


class MeasurementStore:
    """A calibration job's measurements on disk (SQLite)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise GruSimError(f"{self.path}: cannot open the measurement store: {err}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "MeasurementStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # points ----------------------------------------------------------------------------------
    def has(self, role: str, config: GruConfig) -> bool:
        return self._db.execute("SELECT 1 FROM points WHERE key = ?", (point_key(role, config),)).fetchone() is not None

    def add(self, group: str, role: str, config: GruConfig, status: str, wall_s: float,
            latency_s: float | None = None, latency_iqr_s: float | None = None, noisy: bool = False,
            first_call_s: float | None = None, samples_s: tuple[float, ...] = (),
            peak_memory_bytes: int | None = None) -> None:
        """Record one measured point and commit at once."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (point_key(role, config), group, role, json.dumps(config.to_dict()), status, latency_s,
                 latency_iqr_s, int(noisy), first_call_s, json.dumps(list(samples_s)), peak_memory_bytes,
                 wall_s, time.time()))

    def points(self, group: str | None = None, role: str | None = None) -> list[StoredPoint]:
        where, args = _where(grp=group, role=role)
        rows = self._db.execute("SELECT grp, role, config, status, latency_s, latency_iqr_s, noisy, first_call_s, "
                                f"samples_s, peak_memory_bytes, wall_s, created_at FROM points{where} ORDER BY created_at",
                                args)
        return [StoredPoint(g, r, GruConfig(**json.loads(c)), st, lat, iqr, bool(nz), fc,
                            tuple(json.loads(smp)), mem, w, at)
                for g, r, c, st, lat, iqr, nz, fc, smp, mem, w, at in rows]

    def spent_s(self, group: str | None = None) -> float:
        """Seconds of measuring recorded so far (for one group, or all)."""
        where, args = _where(grp=group)
        return float(sum(self._db.execute(f"SELECT COALESCE(SUM(wall_s), 0) FROM {table}{where}", args).fetchone()[0]
                         for table in ("points", "primitives", "units")))

    def measured_span(self) -> tuple[float, float] | None:
        """When the first and the last point or unit was recorded (``time.time()``); None when empty."""
        first, last = self._db.execute(
            "SELECT MIN(at), MAX(at) FROM (SELECT created_at AS at FROM points UNION ALL "
            "SELECT created_at FROM units)").fetchone()
        return None if first is None else (float(first), float(last))

    # units ------------------------------------------------------------------------------------
    def get_unit(self, table: str, kind: str, params: dict[str, Any]) -> StoredUnit | None:
        row = self._db.execute("SELECT value, noisy, created_at FROM units WHERE key = ?",
                               (unit_key(table, kind, params),)).fetchone()
        return None if row is None else StoredUnit(table, kind, params, row[0], bool(row[1]), row[2])

    def add_unit(self, group: str, table: str, kind: str, params: dict[str, Any], value: float | None,
                 noisy: bool, wall_s: float, at: float | None = None) -> None:
        """Record one timed unit and commit at once; ``at``: when what it is derived from was timed
        (default now)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO units VALUES (?,?,?,?,?,?,?,?,?)",
                             (unit_key(table, kind, params), table, kind, json.dumps(params, sort_keys=True),
                              value, int(noisy), group, wall_s, time.time() if at is None else at))

    def units(self, table: str | None = None, kind: str | None = None) -> list[StoredUnit]:
        where, args = _where(tbl=table, kind=kind)
        rows = self._db.execute(f"SELECT tbl, kind, params, value, noisy, created_at FROM units{where} "
                                "ORDER BY created_at", args)
        return [StoredUnit(t, k, json.loads(p), v, bool(n), at) for t, k, p, v, n, at in rows]

    # drift ------------------------------------------------------------------------------------
    def add_drift(self, group: str, seconds: float) -> None:
        """Record one timing of ``group``'s reference call."""
        with self._db:
            self._db.execute("INSERT INTO drift VALUES (?, ?, ?)", (group, time.time(), seconds))

    def drift(self, group: str) -> list[tuple[float, float]]:
        """(when, seconds) of every timing of ``group``'s reference call, in time order."""
        return [(a, v) for a, v in self._db.execute("SELECT at, seconds FROM drift WHERE grp = ? ORDER BY at",
                                                    (group,))]

    # primitives -------------------------------------------------------------------------------
    def get_primitives(self, group: str) -> list[dict[str, Any]] | None:
        row = self._db.execute("SELECT data FROM primitives WHERE grp = ?", (group,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_primitives(self, group: str, data: list[dict[str, Any]], wall_s: float) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO primitives VALUES (?, ?, ?)", (group, json.dumps(data), wall_s))
