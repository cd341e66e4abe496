"""benchmarks/call_intercepts.py times a call's intercept in a fresh and a warm process and a whole call
both ways, each in a process of its own (tiny sizes: this checks the plumbing, not the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_it_prints_fresh_and_warm_intercepts_and_calls(shapes_csv: Callable[..., Path]) -> None:
    shapes = shapes_csv(["tiny-train", 2, 3, 4, 8, 1, "false", "training"])
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "call_intercepts.py"), "--hidden", "16",
                          "--steps", "2", "--shapes", str(shapes)], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=300).stdout
    assert re.search(r"H =\s+16\s+fresh: intercept\s+-?[\d.]+ ms.*warm: intercept\s+-?[\d.]+ ms", out), out
    assert re.search(r"tiny-train\s+fresh\s+[\d.]+ ms\s+warm\s+[\d.]+ ms\s+fresh/warm\s+[\d.]+", out), out
