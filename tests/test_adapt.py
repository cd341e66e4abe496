"""Adapting a profile to another machine from a re-timed sub-grid (calibrate --quick)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru_sim.model.adapt import adapt_gemm_table, adapt_step_table
from gru_sim.model.units import StepTable

from model_fixtures import LEVELS, gemm_table, step_table


def test_a_uniformly_faster_machine_scales_the_whole_table() -> None:
    source = step_table("inference")
    faster = StepTable(source.batch, source.hidden, source.step_s / 1.3, source.matmul_s / 1.3, 4, LEVELS)
    bs, hs = [1, 4, 16, 64], list(source.hidden[::3])
    sub_step = np.array([[faster.step_parts_s(b, h)[0] for b in bs] for h in hs])
    sub_mm = np.array([[faster.step_parts_s(b, h)[1] for b in bs] for h in hs])
    adapted = adapt_step_table(source, bs, hs, sub_step, sub_mm, LEVELS)
    for b in (1, 3, 7, 16, 100):
        for h in source.hidden:
            assert adapted.step_parts_s(b, h)[0] == pytest.approx(source.step_parts_s(b, h)[0] / 1.3, rel=1e-6)


def test_the_fine_structure_of_the_source_is_kept_between_sub_grid_points() -> None:
    source = step_table("inference")
    bs, hs = [1, 16, 128], [source.hidden[0], source.hidden[-1]]
    # The new machine is 2× slower at small hidden sizes and as fast at large ones.
    sub = np.array([[2.0 * source.step_parts_s(b, hs[0])[0] for b in bs], [source.step_parts_s(b, hs[1])[0] for b in bs]])
    adapted = adapt_step_table(source, bs, hs, sub, np.full_like(sub, np.nan), LEVELS)
    b = 5  # a batch size the sub-grid skipped: its jump in the source survives
    ratio = adapted.step_parts_s(b, hs[0])[0] / source.step_parts_s(b, hs[0])[0]
    assert ratio == pytest.approx(2.0, rel=0.05)  # less only where a bigger problem is now faster
    mid = source.hidden[len(source.hidden) // 2]
    assert 1.0 < adapted.step_parts_s(b, mid)[0] / source.step_parts_s(b, mid)[0] < 2.0


def test_a_gemm_table_adapts_to_the_ratio_of_the_re_timed_points() -> None:
    source = gemm_table()
    ms, ks, ns = [source.m[0], source.m[-1]], [source.k[0], source.k[-1]], [source.n[0], source.n[-1]]
    sub = np.array([[[0.5 * source.seconds_for(m, k, n) for n in ns] for k in ks] for m in ms])
    adapted = adapt_gemm_table(source, ms, ks, ns, sub)
    assert adapted.seconds_for(1000, 100, 300) == pytest.approx(0.5 * source.seconds_for(1000, 100, 300), rel=1e-6)


@pytest.mark.slow
def test_a_quick_adaptation_of_a_tiny_profile_writes_a_profile_that_says_where_it_came_from(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "gru-sim")
    job = Path(__file__).parent / "data" / "tiny-job.yaml"
    source = tmp_path / "source.json"
    subprocess.run([exe, "calibrate", "--job", str(job), "--out", str(source)], check=True, capture_output=True)
    quick = tmp_path / "quick.json"
    proc = subprocess.run([exe, "calibrate", "--quick", "--from", str(source), "--out", str(quick)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from gru_sim.model.profile import load_profile

    adapted = load_profile(quick)
    assert adapted.adapted_from["path"] == str(source)
    assert "adapt_check" in adapted.self_check
    proc = subprocess.run([exe, "predict", "--profile", str(quick), "--batch", "2", "--seq-len", "8",
                           "--input-size", "8", "--hidden-size", "16", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("flags,says", [(["--from", "x.json"], "use it with --quick"),
                                        (["--quick", "--budget", "5"], "belong to a full calibration"),
                                        (["--quick", "--from", "/nonexistent/p.json"], "profile not found")])
def test_quick_adaptation_flags_used_wrongly_are_one_line_and_exit_2(flags: list[str], says: str, tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "gru-sim")
    proc = subprocess.run([exe, "calibrate", *flags, "--out", str(tmp_path / "q.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "q.sqlite").exists()


def test_the_check_calls_spread_over_durations_and_modes() -> None:
    from gru_sim.calibrate.adapt import CHECK_TARGETS_S, _spread_by_cost

    calls = [(t, {"config": {"mode": mode}, "id": f"{mode}-{t}"})
             for mode in ("inference", "training") for t in (1e-4, 2e-4, 3e-4, 0.0031, 0.014, 0.08)]
    picks = _spread_by_cost(calls, 6)
    assert len(picks) == 6 and len({id(p) for p in picks}) == 6
    # per mode, the call nearest each target duration: none of the sub-millisecond ones
    assert sorted(p["id"] for p in picks) == sorted(f"{m}-{t}" for m in ("inference", "training")
                                                    for t in (0.0031, 0.014, 0.08))
    assert len(CHECK_TARGETS_S) * 2 == 6
    few = _spread_by_cost(calls[:2], 6)  # fewer held-out calls than wanted: all of them, once each
    assert sorted(p["id"] for p in few) == ["inference-0.0001", "inference-0.0002"]
