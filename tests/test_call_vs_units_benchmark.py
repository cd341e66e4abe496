"""benchmarks/call_vs_units.py: a whole call against its step unit and projection GEMMs timed in turns
(tiny sizes: this checks the plumbing and the arithmetic, not the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_composed_call_adds_steps_projections_and_the_fixed_cost(
        benchmark_script: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cu = benchmark_script("call_vs_units")
    config = cu.parse_shape("4,10,3,8,2,training", 1)
    assert (config.batch, config.seq_len, config.input_size, config.hidden_size, config.num_layers) == (4, 10, 3, 8, 2)
    assert config.mode == "training" and not config.bidirectional and cu.parse_shape("4,10,3,8,1,inference,bi", 2).bidirectional
    # Timings by what is called: the unit calls by their step count, the call itself, the GEMMs.
    seconds = {"unit": lambda c: 1e-4 + 2e-5 * c.seq_len, "whole": 5e-3, "gemm": 1e-4}

    def fake_build(c: Any) -> Callable[[], str]:
        return (lambda: ("unit", c.seq_len)) if c.input_size == 1 else (lambda: ("whole", 0))

    def fake_fastest(call: Callable[[], object], repeats: int = 3) -> float:
        out = call()
        if isinstance(out, tuple):
            kind, steps = out
            return seconds["unit"](type("C", (), {"seq_len": steps})) if kind == "unit" else seconds["whole"]
        return seconds["gemm"]

    monkeypatch.setattr(cu, "build_call", fake_build)
    monkeypatch.setattr(cu, "fastest_s", fake_fastest)
    r = cu.compare(config, rounds=3)
    assert r["step_s"] == pytest.approx(2e-5) and r["fixed_s"] == pytest.approx(1e-4)
    # Training: layer 0's projection, its weight gradient; layer 1's, its weight and input gradients.
    assert r["projection_s"] == pytest.approx(1e-4 * (2 + 3))
    assert r["composed_s"] == pytest.approx(2 * 10 * 2e-5 + 5e-4 + 1e-4)
    assert r["excess_per_step_s"] == pytest.approx((5e-3 - r["composed_s"]) / 20)


def test_it_prints_the_ratio_for_a_real_call_and_a_bad_shape_is_one_line_and_exit_2() -> None:
    script = str(ROOT / "benchmarks" / "call_vs_units.py")
    out = subprocess.run([sys.executable, script, "--rounds", "1", "2,6,3,8,1,inference"], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=120).stdout
    assert re.search(r"2,6,3,8,1,inference\s+call\s+[\d.]+ ms .* call/composed\s+-?[\d.]+", out), out
    for bad in ("2,6,3,8", "2,6,x,8,1,inference", "2,6,3,8,1,inference,uni"):
        proc = subprocess.run([sys.executable, script, bad], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
