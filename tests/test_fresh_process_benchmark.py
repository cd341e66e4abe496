"""benchmarks/fresh_process.py: which buffers of a call reach glibc's mmap ceiling, and the script's
plumbing on a tiny shape, timed in a fresh process and in the script's own (this checks the plumbing, not
the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20


def shape(**kw: object) -> dict[str, object]:
    return {"batch": 1, "seq_len": 1, "input_size": 1, "hidden_size": 1, "num_layers": 1, "bidirectional": False,
            "mode": "inference", **kw}


def test_small_calls_allocate_nothing_that_large(benchmark_script) -> None:
    fp = benchmark_script("fresh_process")
    assert fp.fresh_buffer_bytes(shape(batch=32, seq_len=98, input_size=40, hidden_size=128, num_layers=2)) == 0


def test_inference_maps_its_projection_output_and_outputs_past_the_ceiling(benchmark_script) -> None:
    fp = benchmark_script("fresh_process")
    # B = 64, T = 500, H = 256: [T, B, 3H] is 93.75 MiB, [T, B, H] 31.25 MiB (under the ceiling).
    gi = 500 * 64 * 3 * 256 * 4
    assert fp.fresh_buffer_bytes(shape(batch=64, seq_len=500, input_size=80, hidden_size=256)) == gi
    # B = 512, T = 128, H = 128: the stacked outputs are exactly 32 MiB, which glibc maps too.
    big = shape(batch=512, seq_len=128, input_size=8, hidden_size=128)
    assert fp.fresh_buffer_bytes(big) == 512 * 128 * 4 * 128 * 4
    # Bidirectional: each direction's projection output, and the layer's [T, B, 2H] concatenation.
    bi = shape(batch=64, seq_len=300, input_size=80, hidden_size=384, num_layers=2, bidirectional=True)
    per_dir = 300 * 64 * 3 * 384 * 4
    cat = 300 * 64 * 2 * 384 * 4
    assert fp.fresh_buffer_bytes(bi) == 2 * (2 * per_dir + cat)


def test_training_adds_the_gradients(benchmark_script) -> None:
    fp = benchmark_script("fresh_process")
    gi = 500 * 64 * 3 * 256 * 4
    assert fp.fresh_buffer_bytes(shape(batch=64, seq_len=500, input_size=80, hidden_size=256, mode="training")) == 2 * gi
    # H = 2,048: the recurrent weight's gradient (48 MiB) is mapped afresh every call; the input
    # weight's at I = 16 is not.
    assert fp.fresh_buffer_bytes(shape(batch=1, seq_len=4, input_size=16, hidden_size=2048, mode="training")) \
        == 3 * 2048 * 2048 * 4
    assert 3 * 2048 * 2048 * 4 >= fp.MMAP_CEILING_BYTES > 3 * 2048 * 16 * 4


@pytest.mark.slow
def test_it_measures_a_tiny_shape_in_a_fresh_process(tmp_path: Path, shapes_csv: Callable[..., Path]) -> None:
    shapes = shapes_csv(["tiny", 2, 3, 4, 8, 1, "false", "inference"])
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fresh_process.py"), "--shapes", str(shapes),
                          "--threads", "1", "--recorded", str(tmp_path / "none.csv"), "--json", str(tmp_path / "o.json")],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=300).stdout
    assert re.search(r"a fresh 4 KiB page costs [\d.]+ µs", out), out
    assert re.search(r"tiny\s+t1\s+fresh\s+[\d.]+ ms, faults\s+\d+ \(\s*[\d.]+% of it\)\s+long\s+[\d.]+ ms, faults\s+\d+"
                     r"\s+\(buffers >= 32 MiB:\s+0 pages\)\s+fresh/long\s+[\d.]+x\s+predicted: fresh\s+[+-][\d.]+%\s+long\s+[+-][\d.]+%",
                     out), out
    assert re.search(r"1 thread\(s\), n=1: the fresh process [\d.]+x the long one .*the profile against the fresh process", out), out
    assert (tmp_path / "o.json").is_file()


def test_a_missing_shapes_file_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fresh_process.py"), "--shapes",
                           str(tmp_path / "none.csv")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"{tmp_path / 'none.csv'}: no such file of shapes (a name column, then shape flags by name)"
