"""benchmarks/fresh_memory.py times a large call as glibc runs it and with large-block mapping turned off,
each in a process of its own (one small shape: this checks the plumbing, not the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20


@pytest.mark.slow
def test_the_held_call_faults_none_of_the_listed_tensors(tmp_path: Path, shapes_csv: Callable[..., Path]) -> None:
    shapes = shapes_csv(["fleet", 512, 64, 8, 128, 1, "false", "inference"])  # a 48 MiB projection output
    rows_path = tmp_path / "rows.json"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fresh_memory.py"), "--shapes", str(shapes),
                          "--threads", "1", "--repeats", "2", "--json", str(rows_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=300).stdout
    (row,) = json.loads(rows_path.read_text())
    assert row["listed_bytes"] == 48 * MiB
    # As glibc runs, the projection is faulted in on every call; held, it is not.
    assert row["fresh_faulted_bytes"] >= 0.9 * row["listed_bytes"] - 4 * MiB
    assert row["held_faulted_bytes"] < row["fresh_faulted_bytes"]
    assert row["charged_s"] > 0 and row["predicted_s"] > row["predicted_without_fresh_s"]
    assert "t1: fresh memory paid a median" in out or "t1: nothing fresh" in out
