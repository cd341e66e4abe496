"""The grids a calibration times its units on: round batch, hidden and GEMM sizes, dense where BLAS
changes kernels and on either side of each cache size the OS reports (:mod:`.unit_grid` times them;
the tables of :mod:`gru_sim.model.units` read between and beyond them)."""

from __future__ import annotations

import math
from typing import Sequence


def log_grid(lo: float, hi: float, factor: float) -> list[int]:
    """Integers from ``lo`` to ``hi`` (both included) about ``factor`` apart in log space."""
    if hi <= lo:
        return [int(lo)]
    count = max(1, round(math.log(hi / lo) / math.log(factor)))
    return sorted({int(round(lo * (hi / lo) ** (i / count))) for i in range(count + 1)})


def round_grid(lo: int, hi: int, factor: float = 1.5) -> list[int]:
    """The sizes people use between ``lo`` and ``hi`` (both included): powers of two, and with
    ``factor`` < 2 also 1.5 × a power of two (16, 24, 32, 48, 64, 96, ...).

    Round sizes, not a log-spaced sweep: BLAS and the vectorised gate kernels run sizes that are
    multiples of the vector width markedly faster than their odd neighbours (on AVX-512, a 2048×128
    by 128×384 GEMM takes 2.3 ms and the same with 390 columns 4.0 ms), so a table timed at odd sizes
    prices the round sizes most models use too slow."""
    points = {lo, hi}
    k = 1
    while k <= hi:
        for v in ((k,) if factor >= 2 else (k, k + k // 2)):
            if lo <= v <= hi:
                points.add(v)
        k *= 2
    return sorted(points)


def batch_grid(lo: int, hi: int, dense_up_to: int = 16, factor: float = 1.5) -> list[int]:
    """Every batch size up to ``dense_up_to`` (BLAS switches kernels there: matrix-vector at 1, then
    blockings that jump with the row count), then round sizes about ``factor`` apart up to ``hi``."""
    dense = [b for b in range(lo, min(hi, dense_up_to) + 1)]
    if hi <= dense_up_to:
        return dense
    return sorted(set(dense) | set(round_grid(max(dense_up_to, lo), hi, factor)))


def hidden_grid(lo: int, hi: int, cache_bytes: Sequence[float], element_bytes: int, factor: float = 1.5) -> list[int]:
    """Round hidden sizes (:func:`round_grid`) from ``lo`` to ``hi``, plus one each side (±15 %, rounded
    to a multiple of 16) of every hidden size whose recurrent weights 3·H²·bytes just fill a cache
    level: the step time steps up there."""
    points = set(round_grid(lo, hi, factor))
    for cap in cache_bytes:
        h_cliff = math.sqrt(cap / (3.0 * element_bytes))
        for side in (0.85, 1.15):
            h = int(round(h_cliff * side / 16.0)) * 16
            if lo <= h <= hi:
                points.add(h)
    out: list[int] = []
    for h in sorted(points):  # drop near-duplicates (closer than 8 %), keeping the ends
        if out and h < out[-1] * 1.08 and h != hi:
            continue
        if out and h == hi and h < out[-1] * 1.08 and len(out) > 1:
            out.pop()
        out.append(h)
    return out


# A projection of one row (one step of batch 1: streaming and greedy decoding) runs BLAS's
# matrix-vector path, about half the time of two rows ([1,256]×[256,1536]: 44 µs against 81 µs on one
# AMD EPYC thread); inputs of a few features (sensors, time series) run a GEMM that mostly writes its
# output, far cheaper than at K = 16 ([16000,1]×[1,96]: 234 µs against 646 µs). The grid times both
# whatever the job's smallest sequence, batch and input sizes: read off the grid's end they were
# priced as the larger neighbour (a decoding step 40 % too slow).
SMALLEST_GEMM_M = (1,)
SMALLEST_GEMM_K = (1, 4)


def gemm_grid(m: tuple[int, int], k: tuple[int, int], n: tuple[int, int]) -> tuple[list[int], list[int], list[int]]:
    """The input-projection GEMM grid on round sizes: M (= T·B) powers of two 8× apart, K powers of
    two 4× apart, N = 3H for H a power of two (2× apart: the projection's width is where alignment
    costs most); M and K also at ``SMALLEST_GEMM_M`` and ``SMALLEST_GEMM_K``, whatever the smallest
    sizes asked for."""
    def powers(lo: int, hi: int, step: int, scale: int = 1) -> list[int]:
        out = {lo, hi}
        v = scale
        while v <= hi:
            if v >= lo:
                out.add(v)
            v *= step
        return sorted(out)

    return (sorted(set(powers(*m, 8)) | {v for v in SMALLEST_GEMM_M if v <= m[1]}),
            sorted(set(powers(*k, 4)) | {v for v in SMALLEST_GEMM_K if v <= k[1]}),
            powers(*n, 2, scale=3))
