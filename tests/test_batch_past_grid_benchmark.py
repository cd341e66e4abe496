"""benchmarks/batch_past_grid.py times the step past the tables' largest batch and prints it beside the
profile's price (tiny sizes: this checks the plumbing, not the machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_it_prints_measured_and_priced_steps_past_the_grid() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batch_past_grid.py"), "--hidden", "16",
                          "--batch", "4", "1100", "--threads", "1", "--mode", "inference", "--steps", "2"],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=300).stdout
    assert re.search(r"inference t1 H\s+16: B\s+4\s+-?[\d.]+ µs \(table\s+[\d.]+, x-?[\d.]+\); B\s+1100\* ", out), out
    # Timed with glibc's large-block mapping off, as the units are: fresh memory has a term of its own.
    assert "large blocks held" in out.splitlines()[0], out


def test_it_times_with_large_blocks_held_whatever_the_caller_set() -> None:
    """The script re-runs itself with glibc's large-block mapping off, replacing any MALLOC_* setting the
    caller left (a Dask LocalCluster leaves MALLOC_TRIM_THRESHOLD_=65536 behind)."""
    probe = ("import os, sys; sys.path.insert(0, 'benchmarks'); import batch_past_grid as b\n"
             "def execve(exe, argv, env):\n"
             "    print(sorted((k, v) for k, v in env.items() if k.startswith('MALLOC_')))\n"
             "    raise SystemExit(0)\n"
             "os.execve = execve\n"
             "b.main()")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_TOP_PAD_": "1"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120, check=True).stdout
    assert out.strip() == ("[('MALLOC_MMAP_THRESHOLD_', '1099511627776'), "
                           "('MALLOC_TRIM_THRESHOLD_', '2199023255552')]"), out


def test_a_missing_profile_or_a_bad_size_is_one_line_and_exit_2(tmp_path: Path) -> None:
    script = str(ROOT / "benchmarks" / "batch_past_grid.py")
    for extra in (["--profile", str(tmp_path / "none.json")], ["--batch", "-4", "--hidden", "16", "--threads", "1",
                                                                "--mode", "inference"]):
        proc = subprocess.run([sys.executable, script, *extra], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
