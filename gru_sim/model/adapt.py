"""Adapting a profile's unit tables to another machine from a few re-timed units.

A full calibration times hundreds of step units and GEMMs. Another machine of a similar kind keeps
their shape — where the batch steps up, where the cache cliffs are relative to each other — but not
their level: so a quick adaptation re-times a coarse sub-grid, forms the ratio new / old at each of
its points, and scales every point of the full table by that ratio interpolated in log space. The
fine structure comes from the full calibration, the level from this machine.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .units import GemmTable, MemoryLevels, StepTable, interp_log_grid, intercepts_at


def _fill_nan_nearest(values: np.ndarray) -> np.ndarray:
    """NaN entries (sub-grid points not timed) take the nearest timed entry's value (by index)."""
    out = values.copy()
    known = np.argwhere(np.isfinite(out))
    if known.size == 0:
        return np.zeros_like(out)
    for idx in np.argwhere(~np.isfinite(out)):
        d = np.abs(known - idx).sum(axis=1)
        out[tuple(idx)] = out[tuple(known[int(np.argmin(d))])]
    return out


def step_log_ratios(source: StepTable, batches: Sequence[int], hiddens: Sequence[int], step_s: np.ndarray
                    ) -> np.ndarray:
    """log(new / source) at each sub-grid point ``[h][b]`` (NaN where not timed)."""
    out = np.full((len(hiddens), len(batches)), np.nan)
    for i, h in enumerate(hiddens):
        for j, b in enumerate(batches):
            if np.isfinite(step_s[i][j]) and step_s[i][j] > 0:
                out[i, j] = math.log(step_s[i][j] / source.step_parts_s(b, h)[0])
    return out


def adapt_intercepts(source: StepTable, measured: dict[int, float]) -> tuple[float, ...] | None:
    """The source's per-call intercepts (by its hidden sizes) on this machine: scaled by the median
    ratio of the ones measured here (``measured``, by hidden size) to the source's at the same sizes;
    the measured ones placed on the source's hidden sizes (log-linear) where the source has none; the
    source's as they are where nothing was measured here."""
    own = source.intercepts_by_hidden()
    if not measured:
        return source.call_fixed_by_hidden_s
    if not own:
        return tuple(intercepts_at(measured, source.hidden).values())
    at_own = intercepts_at(own, list(measured))
    ratio = float(np.exp(np.median([math.log(v / at_own[h]) for h, v in measured.items()])))
    return tuple(v * ratio if np.isfinite(v) else v for v in np.asarray(source.call_fixed_by_hidden_s, dtype=float))


def adapt_step_table(source: StepTable, batches: Sequence[int], hiddens: Sequence[int], step_s: np.ndarray,
                     matmul_s: np.ndarray, levels: MemoryLevels | None,
                     intercepts: dict[int, float] | None = None) -> StepTable:
    """``source`` scaled point by point by the ratio of the sub-grid's new times (``[h][b]``, NaN where
    not timed) to the source's, interpolated in log space; ``levels`` are this machine's, and
    ``intercepts`` (by hidden size) the per-call intercepts measured here (:func:`adapt_intercepts`)."""
    step_ratio = _fill_nan_nearest(step_log_ratios(source, batches, hiddens, np.asarray(step_s, dtype=float)))
    mm_ratio = np.full_like(step_ratio, np.nan)
    mm = np.asarray(matmul_s, dtype=float)
    for i, h in enumerate(hiddens):
        for j, b in enumerate(batches):
            old = source.step_parts_s(b, h)[1]
            if np.isfinite(mm[i][j]) and mm[i][j] > 0 and old > 0:
                mm_ratio[i, j] = math.log(mm[i][j] / old)
    mm_ratio = _fill_nan_nearest(mm_ratio) if np.isfinite(mm_ratio).any() else step_ratio
    grids = (hiddens, batches)
    new_step = np.array([[v * math.exp(interp_log_grid(grids, step_ratio, (h, b))) if np.isfinite(v) else np.nan
                          for b, v in zip(source.batch, row)] for h, row in zip(source.hidden, source.step_s)])
    new_mm = np.array([[v * math.exp(interp_log_grid(grids, mm_ratio, (h, b))) if np.isfinite(v) else np.nan
                        for b, v in zip(source.batch, row)] for h, row in zip(source.hidden, source.matmul_s)])
    # The twins' slowdowns are the source's: each a ratio of two sizes' steps on one machine.
    return StepTable(source.batch, source.hidden, new_step, new_mm, source.element_bytes, levels,
                     source.matmuls_per_step, source.call_fixed_s, adapt_intercepts(source, intercepts or {}),
                     source.weight_grad_each_step, unaligned_ratio=source.unaligned_ratio,
                     odd_batch_ratio=source.odd_batch_ratio)


def adapt_gemm_table(source: GemmTable, ms: Sequence[int], ks: Sequence[int], ns: Sequence[int],
                     seconds: np.ndarray) -> GemmTable:
    """``source`` scaled by the ratio of the sub-grid's new GEMM times (``[m][k][n]``, NaN where not
    timed) to the source's, interpolated in log space; the source's unaligned slowdowns kept (a
    shape dependence, like the rest of the table)."""
    sec = np.asarray(seconds, dtype=float)
    ratio = np.full(sec.shape, np.nan)
    for a, m in enumerate(ms):
        for b, k in enumerate(ks):
            for c, n in enumerate(ns):
                if np.isfinite(sec[a, b, c]) and sec[a, b, c] > 0:
                    ratio[a, b, c] = math.log(sec[a, b, c] / source.seconds_for(m, k, n))
    ratio = _fill_nan_nearest(ratio)
    grids = (ms, ks, ns)
    new = np.array([[[v * math.exp(interp_log_grid(grids, ratio, (m, k, n))) if np.isfinite(v) else np.nan
                      for n, v in zip(source.n, row)] for k, row in zip(source.k, plane)]
                    for m, plane in zip(source.m, source.seconds)])
    return GemmTable(source.m, source.k, source.n, new, source.unaligned_ratio)
