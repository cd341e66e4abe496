"""The input-projection GEMM grid reaches the projections people run: one row (a decoding or streaming
step of batch 1) and inputs of a few features, whatever the job's smallest sizes; a projection there
is priced from those points, not from the grid's larger neighbour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gru_sim.calibrate.jobs import load_job
from gru_sim.calibrate.unit_grid import gemm_axes
from gru_sim.calibrate.grids import SMALLEST_GEMM_K, SMALLEST_GEMM_M, gemm_grid
from gru_sim.model.units import GemmTable

JOBS = Path(__file__).resolve().parent.parent / "gru_sim" / "data" / "jobs"


def test_the_default_jobs_grid_times_one_row_and_a_few_inputs() -> None:
    spec = load_job(JOBS / "cpu-default.yaml")
    assert spec.seq_len[0] * spec.batch[0] > 1 and spec.input_size[0] > 4  # the job's own ranges stop short
    ms, ks, _ = gemm_axes(spec)
    assert ms[0] == 1 and 2 in ms  # one row, and the job's smallest T·B
    assert ks[:3] == [1, 4, 16]
    # A grid that does not reach that far keeps to its own ends.
    m, k, _ = gemm_grid((1, 1), (1, 2), (48, 96))
    assert m == [1] and k == [1, 2]
    assert set(SMALLEST_GEMM_M) <= set(gemm_grid((2, 64), (16, 64), (48, 96))[0])
    assert set(SMALLEST_GEMM_K) <= set(gemm_grid((2, 64), (16, 64), (48, 96))[1])


def output_bound_s(m: float, k: float, n: float) -> float:
    """A made-up BLAS: a matrix-vector product for one row, GEMMs that write their output at 10 GB/s
    and compute at 50 GFLOP/s."""
    rows = 0.5 if m == 1 else m
    return 4e-6 + max(rows * n * 4 / 10e9, 2.0 * rows * k * n / 50e9)


def test_a_projection_of_one_row_or_few_inputs_reads_its_own_points() -> None:
    ms, ks, ns = [1, 2, 8, 64, 512], [1, 4, 16, 64], [48, 192, 768]
    table = GemmTable(tuple(ms), tuple(ks), tuple(ns),
                      [[[output_bound_s(m, k, n) for n in ns] for k in ks] for m in ms])
    for m, k, n in [(512, 1, 192), (64, 4, 48), (8, 2, 768), (512, 2, 768)]:  # fewer inputs: never dearer
        assert table.seconds_for(m, k, n) == pytest.approx(output_bound_s(m, k, n))
        assert table.seconds_for(m, k, n) < output_bound_s(m, 16, n)
    np.testing.assert_allclose(table.seconds_for(512, 4, 768), output_bound_s(512, 4, 768))
    np.testing.assert_allclose(table.seconds_for(1, 64, 768), output_bound_s(1, 64, 768))
    # Without those points the grid's ends price them as the larger neighbour.
    coarse = GemmTable((2, 8, 64, 512), (16, 64), tuple(ns),
                       [[[output_bound_s(m, k, n) for n in ns] for k in (16, 64)] for m in (2, 8, 64, 512)])
    assert coarse.seconds_for(1, 64, 768) > 1.5 * table.seconds_for(1, 64, 768)
