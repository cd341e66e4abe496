"""Whole-or-nothing writes: a file gru-sim writes (results, reports, CSVs) is either the old one or
the complete new one, never half of it, even when the process is killed mid-write."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO


def write_atomic(path: str | Path, write: Callable[[TextIO], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path`` (a
    rename within one folder is atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    return write_atomic(path, lambda fh: fh.write(text))


def write_csv_atomic(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows of flat dicts as CSV, whole or not at all; columns in order of first appearance."""
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def write(fh: TextIO) -> None:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    return write_atomic(path, write)
