"""The CSV files a scenario points to: lists of configurations and arrival traces (``time_s,seq_len``
per request). Each problem names the file by its name and the line, so that the scenario loader can
report it under the field that named the file.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .errors import ScenarioError

Rows = tuple[list[str], list[tuple[int, list[str]]]]
"""A CSV's header and its non-empty rows, each with its line number."""


class CsvFileError(ScenarioError):
    """A CSV file is missing, unreadable or malformed. ``missing`` is True when there is no such file
    (the caller may say where it looked); the message otherwise names the file and line."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def read_rows(path: str | Path) -> Rows:
    """The header and non-empty rows of a CSV that must have at least one row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CsvFileError(f"{path}: no such file", missing=True) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CsvFileError(f"cannot be read: {getattr(err, 'strerror', None) or err}") from None
    reader = csv.reader(io.StringIO(text))
    try:
        lines = [(reader.line_num, row) for row in reader if row]
    except csv.Error as err:
        raise CsvFileError(f"{path.name}:{reader.line_num}: {err}") from None
    if not lines:
        raise CsvFileError(f"{path.name} is empty: it needs a header line and one row per entry")
    (_, header), body = lines[0], lines[1:]
    if not body:
        raise CsvFileError(f"{path.name} has a header but no rows")
    return header, body


def read_arrival_trace(path: str | Path) -> tuple[tuple[float, int], ...]:
    """``(time_s, seq_len)`` per request from a CSV with header ``time_s,seq_len``: times finite,
    >= 0 and non-decreasing, lengths whole numbers > 0."""
    path = Path(path)
    header, body = read_rows(path)
    if [h.strip() for h in header] != ["time_s", "seq_len"]:
        raise CsvFileError(f"{path.name}:1: the header must be time_s,seq_len (got {','.join(header)})")
    out: list[tuple[float, int]] = []
    for lineno, row in body:
        where = f"{path.name}:{lineno}"
        if len(row) != 2:
            raise CsvFileError(f"{where}: needs 2 fields (time_s,seq_len), has {len(row)}")
        try:
            time_s = float(row[0])
        except ValueError:
            time_s = math.nan
        if not math.isfinite(time_s) or time_s < 0:
            raise CsvFileError(f"{where}: time_s {row[0].strip()!r} must be a number >= 0")
        try:
            seq_len = int(row[1])
        except ValueError:
            seq_len = 0
        if seq_len <= 0:
            raise CsvFileError(f"{where}: seq_len {row[1].strip()!r} must be a whole number > 0")
        if out and time_s < out[-1][0]:
            raise CsvFileError(f"{where}: time_s {time_s:g} is before the previous row's {out[-1][0]:g}: "
                               "times must be non-decreasing")
        out.append((time_s, seq_len))
    return tuple(out)
