"""The measured units a GRU call is composed of, and how to read them between and beyond the points
where they were measured.

A native GRU call is, per layer and direction, one input-projection GEMM over all ``T·B`` rows and
``T`` recurrent steps (ATen's ``FullLayer`` on CPU, ``aten/src/ATen/native/RNN.cpp``; cuDNN's
persistent or per-step kernels on CUDA). A step — the ``[B,H]×[H,3H]`` matmul, the gate pointwise
ops and the framework's dispatch and allocations — is far too short and too dependent on the cache
state to be predicted from FLOPs: it is measured, as one unit, inside a real call.

* :class:`StepTable` — seconds of one recurrent step over a grid of batch sizes (every batch up to
  16, where BLAS changes kernels, then log-spaced) and hidden sizes (log-spaced, with points on
  either side of each cache size read from the OS), with the matmul alone timed on the same grid so
  that a step can be split into matmul, gates and overhead; completed past the batch sizes timed by
  :mod:`.table_fill` (the step's matmuls plus a per-sequence slope of the rest).
* :class:`GemmTable` — seconds of the input-projection GEMM ``[M,K]×[K,N]`` over a log grid, and
  how much slower each runs when N is not a whole number of SIMD vectors (timed beside it).
* :class:`MemoryLevels` — the cache sizes and the copy bandwidth measured in each level: beyond the
  largest measured hidden size the step's weight read is re-priced at the bandwidth of the level
  the larger matrix falls into, never held flat.

Everything here is plain NumPy: the tables are data a profile carries, read without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.stats import chi2

from ..config import GATES
from .table_fill import complete_step_rows, fill_matmul_row, monotone_fit, saturated_flops_per_s


def _log_bracket(grid: np.ndarray, value: float) -> tuple[int, float]:
    """Index ``k`` and fraction ``f`` with ``value`` between ``grid[k]`` and ``grid[k+1]`` in log space
    (``grid`` ascending, at least two points, ``value`` inside it)."""
    k = int(np.searchsorted(grid, value, side="right") - 1)
    k = min(max(k, 0), len(grid) - 2)
    lo, hi = math.log(grid[k]), math.log(grid[k + 1])
    return k, (math.log(value) - lo) / (hi - lo)


def interp_log_grid(grids: Sequence[Sequence[float]], values: np.ndarray, point: Sequence[float]) -> float:
    """Multilinear interpolation of ``values`` (one axis per grid) at ``point``, in log coordinates of
    the grid axes, each coordinate clamped to its grid's ends."""
    idx = []
    for g, v in zip(grids, point):
        g = np.asarray(g, dtype=float)
        if len(g) == 1:
            idx.append((0, 0.0, True))
            continue
        k, f = _log_bracket(g, min(max(v, g[0]), g[-1]))
        idx.append((k, f, False))
    out = 0.0
    for corner in range(2 ** len(grids)):
        w, pos = 1.0, []
        for axis, (k, f, single) in enumerate(idx):
            upper = (corner >> axis) & 1
            if single:
                if upper:
                    w = 0.0
                pos.append(0)
                continue
            w *= f if upper else 1.0 - f
            pos.append(k + upper)
        if w:
            out += w * values[tuple(pos)]
    return float(out)


def _on_grid(axes: Sequence[Sequence[float]], own: Sequence[Sequence[float]], values: np.ndarray) -> np.ndarray:
    """``values`` (indexed by the ``own`` axes) placed on the larger grid ``axes``, NaN elsewhere."""
    out = np.full(tuple(len(a) for a in axes), np.nan)
    out[np.ix_(*[[list(a).index(v) for v in o] for a, o in zip(axes, own)])] = values
    return out


def log_median(arrays: Sequence[np.ndarray], level: bool = True) -> np.ndarray:
    """The cell-wise median of ``arrays`` in log space (a geometric median), ignoring NaN; NaN where
    no array has the cell.

    With ``level`` (timings of runs at their own speeds), a cell that fewer than half the arrays have
    (a unit a later grid added, timed by the newer runs alone) is first put on the level of the whole:
    each of those arrays divided by how much slower or faster it runs than the median over the cells
    every array has. Else a point timed only by runs of a fast spell would sit below its neighbours by
    that spell's speed; a cell most arrays have is already at the median's level. Ratios of timings
    taken together carry no run's speed: they are pooled without it."""
    logs = np.log(np.stack([np.asarray(a, dtype=float) for a in arrays]))
    finite = np.isfinite(logs)
    known = finite.any(axis=0)
    median = np.full(logs.shape[1:], np.nan)
    median[known] = np.nanmedian(logs[:, known], axis=0)
    common = finite.all(axis=0)
    partial = known & (finite.sum(axis=0) * 2 < len(logs))
    if level and partial.any() and common.any():
        offsets = np.median(logs[:, common] - median[common], axis=1)
        median[partial] = np.nanmedian(logs[:, partial] - offsets[:, None], axis=0)
    return np.exp(median)


@dataclass
class MemoryLevels:
    """Cache capacities (bytes, ascending; the last level is main memory, capacity None) and the copy
    bandwidth measured in each (bytes/s)."""

    names: tuple[str, ...]
    capacity_bytes: tuple[float | None, ...]
    bandwidth_bytes_per_s: tuple[float, ...]
    # Seconds per byte of writing memory the system hands over fresh, beyond writing memory already
    # held (page faults and zeroing; see .fresh_memory). None where not measured.
    fresh_s_per_byte: float | None = None

    def bandwidth_for(self, working_set_bytes: float) -> float:
        """Bandwidth of the smallest level that holds ``working_set_bytes``."""
        for cap, bw in zip(self.capacity_bytes, self.bandwidth_bytes_per_s):
            if cap is None or working_set_bytes <= cap:
                return bw
        return self.bandwidth_bytes_per_s[-1]

    def bandwidth_for_many(self, working_set_bytes: np.ndarray) -> np.ndarray:
        """:meth:`bandwidth_for` of every working set in an array."""
        out = np.full(working_set_bytes.shape, float(self.bandwidth_bytes_per_s[-1]))
        placed = np.zeros(working_set_bytes.shape, dtype=bool)
        for cap, bw in zip(self.capacity_bytes, self.bandwidth_bytes_per_s):
            fits = ~placed if cap is None else (~placed & (working_set_bytes <= cap))
            out[fits] = bw
            placed |= fits
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "capacity_bytes": list(self.capacity_bytes),
                "bandwidth_bytes_per_s": list(self.bandwidth_bytes_per_s),
                **({"fresh_s_per_byte": self.fresh_s_per_byte} if self.fresh_s_per_byte is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MemoryLevels":
        return cls(tuple(data["names"]), tuple(data["capacity_bytes"]), tuple(data["bandwidth_bytes_per_s"]),
                   data.get("fresh_s_per_byte"))

    @classmethod
    def median_of(cls, levels: Sequence["MemoryLevels"]) -> "MemoryLevels":
        """Several runs' levels as one: the median bandwidth of each level (the levels must be the same)."""
        first = levels[0]
        if any(lv.names != first.names or lv.capacity_bytes != first.capacity_bytes for lv in levels):
            raise ValueError("memory levels of different machines cannot be pooled")
        fresh = [lv.fresh_s_per_byte for lv in levels if lv.fresh_s_per_byte is not None]
        bandwidths = tuple(float(np.median([lv.bandwidth_bytes_per_s[k] for lv in levels]))
                           for k in range(len(first.names)))
        return cls(first.names, first.capacity_bytes, bandwidths, float(np.median(fresh)) if fresh else None)


# A cell's run-to-run scatter is read from at least this many runs that timed it.
SCATTER_MIN_RUNS = 3


def cell_scatter(arrays: Sequence[np.ndarray], pooled: np.ndarray) -> np.ndarray | None:
    """Per cell, the log standard deviation of the runs' timings about the pooled one once each run's
    level (its median log ratio to the pool over the cells it timed) is divided out; NaN where fewer
    than :data:`SCATTER_MIN_RUNS` runs timed the cell; None for fewer runs than that."""
    if len(arrays) < SCATTER_MIN_RUNS:
        return None
    logs = np.log(np.stack([np.asarray(a, dtype=float) for a in arrays])) - np.log(pooled)[None]
    with np.errstate(all="ignore"):
        levels = np.array([np.nanmedian(run) if np.isfinite(run).any() else 0.0 for run in logs])
        dev = logs - levels[:, None, None]
        n = np.isfinite(dev).sum(axis=0)
        sd = np.sqrt(np.nansum(dev ** 2, axis=0) / np.maximum(n - 1, 1))
    return np.where(n >= SCATTER_MIN_RUNS, sd, np.nan)


def _nearest_in_log(grid: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Index of the grid point nearest each value in log space (the edge's past either end)."""
    g = np.log(np.asarray(grid, dtype=float))
    v = np.log(np.maximum(np.asarray(values, dtype=float), 1e-12))
    return np.abs(v[..., None] - g).argmin(axis=-1)


# Along the batch, a step (and its matmul) is never cheaper than the same step with this many fewer
# sequences — but can be cheaper than with one fewer: BLAS runs the rows in blocks and a remainder in
# narrower, slower passes (on an AMD EPYC VM at H = 512, one thread: B = 7 took 350 µs a step and B = 8
# 293 µs; B = 32, 33, 35, 36: 723, 782, 838, 793 µs). The monotone fit of a table links only batch
# sizes a multiple of this apart, so that a round batch keeps its measured speed.
BATCH_BLOCK_ROWS = 4


@dataclass
class StepTable:
    """Seconds of one recurrent time step, measured on a (batch × hidden) grid.

    ``step_s[h][b]`` is the whole step (matmul, gates, dispatch, allocations) as it runs inside a real
    call; ``matmul_s[h][b]`` the recurrent matmul alone; NaN where a point was not measured.
    ``element_bytes`` prices the weight read when extrapolating past the largest hidden size;
    ``matmuls_per_step`` is how many matmuls of the step's size a step runs (1; 3 for training:
    forward, data and weight gradients). ``call_fixed_s`` is the measured fixed cost of a call of
    this mode (one layer and direction, the smallest sizes; None when not measured).
    ``weight_grad_each_step``: a training step writes its recurrent weight gradient itself (ATen's CPU
    path, where autograd records every step's matmul), so past the largest hidden size that part of
    the step grows with the weights (:meth:`weight_work_s`); cuDNN computes it once per call instead.

    ``call_fixed_by_hidden_s`` (one per hidden size, NaN where not measured; None in tables timed
    before it was) is the fixed cost of a one-layer call at each hidden size with the smallest batch:
    the intercept of the call's time against its steps, from two calls of n and 4n steps. It grows
    with the weights: a training call allocates, fills and sums gradient buffers the size of W_hh once
    per call, whatever its length (on an AMD EPYC thread: 0.5 ms at H = 256, 3.7 ms at 512, 15 ms at
    1024, against 0.4, 0.8 and 1.7 ms per step at B = 4). The step units are read net of it, and a
    layer pays :meth:`layer_fixed_s` once per call.

    ``cell_scatter_log_sd`` (a pool's tables; None otherwise): how far one run's step lies from the
    pool's in each cell once each run's level is divided out — the log standard deviation over the
    runs that timed it (NaN where fewer than :data:`SCATTER_MIN_RUNS` did), ``scatter_runs`` the number
    of runs pooled. On a shared VM most cells scatter by 2-6 %, but a step whose W_hh lives in the L3 by
    15-40 %: how much of the L3 the guest gets moves between spells. :meth:`excess_scatter_log_sd` is
    what a cell scatters beyond what the table's typical cell reaches by chance, which the interval of a
    call made of such steps carries (``GruCostModel.interval_s``).

    ``unaligned_ratio`` (same grid, NaN where not timed; None in tables timed before it was): how much
    slower a step runs at a hidden size :data:`UNALIGNED_EXTRA_HIDDEN` above the grid's (rows that are
    not whole SIMD vectors) than the table, timed at whole vectors, reads there — the twin's step over
    the table's step at the twin's size. The grid's hidden sizes are whole vectors, and a call at a size
    between them is read from them; on an AMD EPYC (Zen 5) the twins read a median 1.00-1.03, one-row
    steps 0.94-1.03, B = 256 at small H up to 1.2.
    :meth:`unaligned_log_ratio` reads it between the twins (held at the edges).

    ``odd_batch_ratio`` (likewise): how much slower a step runs with one sequence more than a grid batch
    past the dense start (a batch that is not whole blocks of :data:`BATCH_BLOCK_ROWS` rows, which BLAS
    runs in narrower passes) than the table reads there. Past the dense start the grid's batches are
    round (24, 32, 48, 64 ...), and a batch between them is read from them: on an AMD EPYC (Zen 5) the
    design's inference calls at such batches ran 5 % slower, against the rest, than those on the grid.
    A step at a batch past the dense start that is not whole blocks pays it (:meth:`odd_batch_log_ratio`).
    """

    batch: tuple[int, ...]
    hidden: tuple[int, ...]
    step_s: np.ndarray
    matmul_s: np.ndarray
    element_bytes: int = 4
    levels: MemoryLevels | None = None
    matmuls_per_step: int = 1
    call_fixed_s: float | None = None
    call_fixed_by_hidden_s: tuple[float, ...] | None = None
    weight_grad_each_step: bool = True
    cell_scatter_log_sd: np.ndarray | None = None
    scatter_runs: int = 0
    unaligned_ratio: np.ndarray | None = None
    odd_batch_ratio: np.ndarray | None = None
    _step: np.ndarray = field(init=False, repr=False)
    _matmul: np.ndarray = field(init=False, repr=False)
    _scatter_bound: float = field(init=False, repr=False, default=math.inf)

    def __post_init__(self) -> None:
        self.step_s = np.asarray(self.step_s, dtype=float).reshape(len(self.hidden), len(self.batch))
        self.matmul_s = np.asarray(self.matmul_s, dtype=float).reshape(len(self.hidden), len(self.batch))
        if self.cell_scatter_log_sd is not None:
            self.cell_scatter_log_sd = np.asarray(self.cell_scatter_log_sd, dtype=float).reshape(self.step_s.shape)
            if np.isfinite(self.cell_scatter_log_sd).any() and self.scatter_runs >= SCATTER_MIN_RUNS:
                # What a cell of the table's median scatter reaches one time in twenty, read from this
                # many runs (chi-square); inf: no cell scatters beyond it.
                dof = self.scatter_runs - 1
                self._scatter_bound = float(np.nanmedian(self.cell_scatter_log_sd)) * math.sqrt(
                    chi2.ppf(0.95, dof) / dof)
        self.unaligned_ratio, self._unaligned = self._twins(self.unaligned_ratio)
        self.odd_batch_ratio, self._odd_batch = self._twins(self.odd_batch_ratio)
        # The dense start of the batch grid: every batch up to it is a cell of its own.
        self.dense_batch = max((b for k, b in enumerate(self.batch, start=1) if b == k), default=0)
        b = np.asarray(self.batch, dtype=float)
        if len(self.batch) < 1 or len(self.hidden) < 1:
            raise ValueError("a step table needs at least one batch and one hidden size")
        matmul = monotone_fit(self.matmul_s, batch=self.batch, batch_block=BATCH_BLOCK_ROWS)
        rate = saturated_flops_per_s(b, self.hidden, matmul)
        self._matmul = np.array([fill_matmul_row(b, r, h, rate) for h, r in zip(self.hidden, matmul)])
        step = monotone_fit(self.step_s, batch=self.batch, batch_block=BATCH_BLOCK_ROWS)
        self._step = complete_step_rows(b, self.hidden, step, self._matmul,
                                        self.matmuls_per_step)
        if not np.isfinite(self.step_s).any():
            raise ValueError("a step table needs at least one measured point")
        # A hidden size with no measurement at all borrows from its neighbours (log-space interpolation).
        for j in range(len(self.batch)):
            for arr in (self._step, self._matmul):
                col = arr[:, j]
                ok = np.isfinite(col)
                if ok.any() and not ok.all():
                    h = np.log(np.asarray(self.hidden, dtype=float))
                    col[~ok] = np.exp(np.interp(h[~ok], h[ok], np.log(np.maximum(col[ok], 1e-12))))
        self._matmul = np.minimum(np.nan_to_num(self._matmul, nan=0.0), self._step)
        self.floor_step_s = float(np.nanmin(self._step))
        self.floor_matmul_s = float(np.nanmin(self._matmul))
        # Seconds per byte of weights the smallest batch's matmul spends, by the matrix's bytes: what
        # reading a weight matrix costs from the memory level a matrix of that size stays in.
        weight_bytes = GATES * np.asarray(self.hidden, dtype=float) ** 2 * self.element_bytes
        per_byte = self._matmul[:, 0] / weight_bytes
        ok = np.isfinite(per_byte) & (per_byte > 0)
        self._read_log_bytes, self._read_log_s = np.log(weight_bytes[ok]), np.log(per_byte[ok])
        self._layer_fixed = _layer_fixed_by_hidden(self.intercepts_by_hidden())

    def _twins(self, ratio: np.ndarray | None
               ) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """A twin ratio on the table's grid and its :func:`_twin_grid` (both None where no twin was timed)."""
        if ratio is None:
            return None, None
        ratio = np.asarray(ratio, dtype=float).reshape(self.step_s.shape)
        grid = _twin_grid(self.hidden, self.batch, ratio)
        return (ratio, grid) if grid is not None else (None, None)

    def intercepts_by_hidden(self) -> dict[int, float]:
        """The measured per-call intercepts by hidden size ({} when the table has none)."""
        if self.call_fixed_by_hidden_s is None:
            return {}
        return {h: float(v) for h, v in zip(self.hidden, self.call_fixed_by_hidden_s) if math.isfinite(v) and v > 0}

    def excess_scatter_log_sd(self, batch: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """For each (batch, hidden), how much more its step scatters from run to run than a typical cell
        can by chance (a log standard deviation; 0 where no more, or where the table has no scatter):
        sqrt(sd² - bound²) of the grid cell nearest in log space (a call past the grid takes the edge's),
        where ``bound`` is what a cell of the table's median scatter reaches one time in twenty when read
        from ``scatter_runs`` runs (chi-square). The typical cell's scatter is already in the whole calls
        the interval was fitted on; a cell read from a few runs scatters by chance alone."""
        batch, hidden = np.asarray(batch, dtype=float), np.asarray(hidden, dtype=float)
        if self.cell_scatter_log_sd is None or not math.isfinite(self._scatter_bound):
            return np.zeros(np.broadcast(batch, hidden).shape)
        cell = self.cell_scatter_log_sd[_nearest_in_log(self.hidden, hidden), _nearest_in_log(self.batch, batch)]
        return np.sqrt(np.maximum(np.nan_to_num(cell, nan=0.0) ** 2 - self._scatter_bound ** 2, 0.0))

    def unaligned_log_ratio(self, batch: np.ndarray | float, hidden: np.ndarray | float) -> np.ndarray:
        """Log of how much slower a step at a hidden size that is not whole SIMD vectors runs than the
        table reads at that size (0 where the table timed no twins): bilinear in log batch and log hidden
        between the twins' cells, held at the edges of the cells timed."""
        return _twin_log_ratio(self._unaligned, batch, hidden)

    def odd_batch_log_ratio(self, batch: np.ndarray | float, hidden: np.ndarray | float) -> np.ndarray:
        """Log of how much slower a step runs at ``batch`` than the table reads there: where the batch lies
        past the dense start and is not whole blocks of BATCH_BLOCK_ROWS rows, the odd-batch twins'
        slowdown read between them as :meth:`unaligned_log_ratio` reads its twins; 0 elsewhere, and in a
        table that timed none."""
        batch, hidden = np.broadcast_arrays(np.asarray(batch, dtype=float), np.asarray(hidden, dtype=float))
        if self._odd_batch is None:  # most tables: nothing to read
            return np.zeros(batch.shape)
        odd = (batch > self.dense_batch) & (np.mod(batch, BATCH_BLOCK_ROWS) != 0)
        if not odd.any():
            return np.zeros(batch.shape)
        return np.where(odd, _twin_log_ratio(self._odd_batch, batch, hidden), 0.0)

    def layer_fixed_s(self, hidden: float) -> float:
        """Seconds a layer (one direction) of ``hidden`` units pays once per call beyond the smallest
        call's fixed cost: the measured intercept at its hidden size less the table's smallest, linear in
        log H between the hidden sizes measured, growing with the weights (H²) past the largest, 0
        below the smallest and in a table that did not measure it."""
        return float(self.layer_fixed_many(np.array([hidden], dtype=float))[0])

    def layer_fixed_many(self, hidden: np.ndarray) -> np.ndarray:
        """:meth:`layer_fixed_s` of every hidden size in ``hidden`` (an array)."""
        hidden = np.asarray(hidden, dtype=float)
        if self._layer_fixed is None:
            return np.zeros_like(hidden)
        hs, w = self._layer_fixed
        inside = np.interp(np.log(np.maximum(hidden, 1.0)), np.log(hs), w)
        past = w[-1] * (hidden / hs[-1]) ** 2
        return np.where(hidden <= hs[0], 0.0, np.where(hidden >= hs[-1], past, inside))

    def read_s_per_byte(self, weight_bytes: float | np.ndarray) -> float | np.ndarray:
        """Seconds per byte of reading a weight matrix of ``weight_bytes`` as a step's matmul does with
        the matrix staying in whatever level holds it alone: measured on the smallest batch, where the
        matmul is a weight read, log-interpolated between the table's hidden sizes and held at its ends."""
        if self._read_log_bytes.size == 0:
            return np.zeros_like(np.asarray(weight_bytes, dtype=float)) if np.ndim(weight_bytes) else 0.0
        out = np.exp(np.interp(np.log(weight_bytes), self._read_log_bytes, self._read_log_s))
        return out if np.ndim(weight_bytes) else float(out)

    def cold_read_s(self, matrix_bytes: float | np.ndarray, call_weight_bytes: float | np.ndarray
                    ) -> float | np.ndarray:
        """Extra seconds of reading a ``matrix_bytes`` matrix once from the level that holds the call's
        whole weight set (``call_weight_bytes``) instead of the level that holds the matrix alone, as
        the units were timed: the first read of each matrix in a call whose weights together outgrow a
        cache (they evict each other between calls). Never negative."""
        extra = matrix_bytes * (self.read_s_per_byte(call_weight_bytes) - self.read_s_per_byte(matrix_bytes))
        return np.maximum(extra, 0.0) if np.ndim(extra) else max(float(extra), 0.0)

    def fresh_s_per_byte(self) -> float:
        """Seconds per byte of fresh memory on this table's machine and threads (0 where not measured)."""
        return (self.levels.fresh_s_per_byte or 0.0) if self.levels is not None else 0.0

    @property
    def batch_range(self) -> tuple[int, int]:
        return self.batch[0], self.batch[-1]

    @property
    def hidden_range(self) -> tuple[int, int]:
        return self.hidden[0], self.hidden[-1]

    def _row(self, arr: np.ndarray, h_index: int, batch: float) -> float:
        b = np.asarray(self.batch, dtype=float)
        row = arr[h_index]
        if len(b) == 1:
            return float(row[0] * max(batch / b[0], 1.0))
        if batch <= b[0]:
            return float(row[0])
        if batch >= b[-1]:
            slope = max((row[-1] - row[-2]) / (b[-1] - b[-2]), 0.0)
            return float(row[-1] + slope * (batch - b[-1]))
        k, f = _log_bracket(b, batch)
        return float(math.exp((1 - f) * math.log(row[k]) + f * math.log(row[k + 1])))

    def _lookup(self, arr: np.ndarray, batch: float, hidden: float) -> float:
        hs = np.asarray(self.hidden, dtype=float)
        if len(hs) == 1 or hidden <= hs[0]:
            return self._row(arr, 0, batch)
        if hidden <= hs[-1]:
            k, f = _log_bracket(hs, hidden)
            lo, hi = self._row(arr, k, batch), self._row(arr, k + 1, batch)
            return float(math.exp((1 - f) * math.log(max(lo, 1e-12)) + f * math.log(max(hi, 1e-12))))
        return float("nan")  # beyond: see step_parts_s

    def step_parts_s(self, batch: float, hidden: float, unaligned: bool = False) -> tuple[float, float]:
        """(whole step, matmul alone) in seconds at ``batch`` × ``hidden``; past the largest measured
        hidden size, see :func:`beyond_hidden_step_s`. ``unaligned``: the hidden size is not whole SIMD
        vectors — both times the measured slowdown (:meth:`unaligned_log_ratio`); a batch past the dense
        start that is not whole row blocks, likewise (:meth:`odd_batch_log_ratio`)."""
        hs = self.hidden
        if hidden <= hs[-1]:
            step, mm = self._lookup(self._step, batch, hidden), self._lookup(self._matmul, batch, hidden)
        else:
            last = len(hs) - 1
            beyond = beyond_hidden_step_s(np.array([self._row(self._step, last, batch)]),
                                          np.array([self._row(self._matmul, last, batch)]), self.weight_work_s(),
                                          hs[-1], np.array([float(hidden)]), self.matmuls_per_step,
                                          self.element_bytes, self.levels)
            step, mm = float(beyond[0][0]), float(beyond[1][0])
        log_slowdown = float(self.odd_batch_log_ratio(batch, hidden))
        if unaligned:
            log_slowdown += float(self.unaligned_log_ratio(batch, hidden))
        if log_slowdown:
            step, mm = step * math.exp(log_slowdown), mm * math.exp(log_slowdown)
        return step, mm

    def weight_work_s(self) -> float:
        """Seconds a training step at the largest measured hidden size spends on its weights whatever the
        batch: the smallest batch's step less its matmuls (``matmuls_per_step`` of them). Autograd
        writes each step's recurrent weight gradient, 3H² values, and adds it to the gradient buffer (a
        buffer past glibc's mmap threshold faulted in afresh), so this part grows as H², not with the
        batch's gate work. 0 for an inference table, whose steps touch the weights only in the matmul."""
        if self.matmuls_per_step <= 1 or not self.weight_grad_each_step:
            return 0.0
        last = len(self.hidden) - 1
        return max(float(self._step[last, 0]) - self.matmuls_per_step * float(self._matmul[last, 0]), 0.0)

    def to_dict(self) -> dict[str, Any]:
        def listed(a: np.ndarray) -> list[list[float | None]]:
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]

        return {"batch": list(self.batch), "hidden": list(self.hidden), "step_s": listed(self.step_s),
                "matmul_s": listed(self.matmul_s), "element_bytes": self.element_bytes,
                "levels": self.levels.to_dict() if self.levels else None, "matmuls_per_step": self.matmuls_per_step,
                "call_fixed_s": self.call_fixed_s,
                **({"call_fixed_by_hidden_s": [None if not math.isfinite(v) else float(v)
                                               for v in self.call_fixed_by_hidden_s]}
                   if self.call_fixed_by_hidden_s is not None else {}),
                **({} if self.weight_grad_each_step else {"weight_grad_each_step": False}),
                **({"cell_scatter_log_sd": listed(self.cell_scatter_log_sd), "scatter_runs": self.scatter_runs}
                   if self.cell_scatter_log_sd is not None else {}),
                **({"unaligned_ratio": listed(self.unaligned_ratio)} if self.unaligned_ratio is not None else {}),
                **({"odd_batch_ratio": listed(self.odd_batch_ratio)} if self.odd_batch_ratio is not None else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepTable":
        def arr(rows: list[list[float | None]]) -> np.ndarray:
            return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)

        return cls(tuple(data["batch"]), tuple(data["hidden"]), arr(data["step_s"]), arr(data["matmul_s"]),
                   int(data.get("element_bytes", 4)),
                   MemoryLevels.from_dict(data["levels"]) if data.get("levels") else None,
                   int(data.get("matmuls_per_step", 1)), data.get("call_fixed_s"),
                   tuple(math.nan if v is None else float(v) for v in data["call_fixed_by_hidden_s"])
                   if data.get("call_fixed_by_hidden_s") is not None else None,
                   bool(data.get("weight_grad_each_step", True)),
                   arr(data["cell_scatter_log_sd"]) if data.get("cell_scatter_log_sd") is not None else None,
                   int(data.get("scatter_runs", 0)),
                   arr(data["unaligned_ratio"]) if data.get("unaligned_ratio") is not None else None,
                   arr(data["odd_batch_ratio"]) if data.get("odd_batch_ratio") is not None else None)

    @classmethod
    def median_of(cls, tables: Sequence["StepTable"]) -> "StepTable":
        """Several calibration runs' tables of one mode as one: every unit the geometric median of
        the runs that timed it (on the union of their grids), so that a slow spell in one run moves
        no point; the call's fixed cost likewise. One table is returned as it is."""
        if len(tables) == 1:
            return tables[0]
        first = tables[0]
        if any(t.matmuls_per_step != first.matmuls_per_step or t.element_bytes != first.element_bytes for t in tables):
            raise ValueError("step tables of different modes or dtypes cannot be pooled")
        hidden = tuple(sorted({h for t in tables for h in t.hidden}))
        batch = tuple(sorted({b for t in tables for b in t.batch}))
        on_grid = [_on_grid((hidden, batch), (t.hidden, t.batch), t.step_s) for t in tables]
        step = log_median(on_grid)
        matmul = log_median([_on_grid((hidden, batch), (t.hidden, t.batch), t.matmul_s) for t in tables])
        fixed = [t.call_fixed_s for t in tables if t.call_fixed_s]
        levels = [t.levels for t in tables if t.levels is not None]
        by_hidden = [_on_grid((hidden, (1,)), (t.hidden, (1,)), np.asarray(t.call_fixed_by_hidden_s)[:, None])
                     for t in tables if t.call_fixed_by_hidden_s is not None]
        # Each twin's slowdown the geometric median of the runs that timed it (a ratio of two timings
        # seconds apart: the run's level is in both).
        twins = [_on_grid((hidden, batch), (t.hidden, t.batch), t.unaligned_ratio)
                 for t in tables if t.unaligned_ratio is not None]
        odd = [_on_grid((hidden, batch), (t.hidden, t.batch), t.odd_batch_ratio)
               for t in tables if t.odd_batch_ratio is not None]
        return cls(batch, hidden, step, matmul, first.element_bytes,
                   MemoryLevels.median_of(levels) if levels else None, first.matmuls_per_step,
                   float(np.exp(np.median(np.log(fixed)))) if fixed else None,
                   tuple(float(v) for v in log_median(by_hidden)[:, 0]) if by_hidden else None,
                   first.weight_grad_each_step, cell_scatter(on_grid, step), len(tables),
                   log_median(twins, level=False) if twins else None,
                   log_median(odd, level=False) if odd else None)



def _twin_log_ratio(grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None, batch: np.ndarray | float,
                    hidden: np.ndarray | float) -> np.ndarray:
    """A twin grid (:func:`_twin_grid`) read at each (batch, hidden): bilinear in log batch and log hidden
    between its cells, held at their edges; 0 everywhere without one."""
    batch, hidden = np.broadcast_arrays(np.asarray(batch, dtype=float), np.asarray(hidden, dtype=float))
    if grid is None:
        return np.zeros(batch.shape)
    log_h, log_b, values = grid
    qh = np.clip(np.log(np.maximum(hidden.ravel(), 1.0)), log_h[0], log_h[-1])
    qb = np.clip(np.log(np.maximum(batch.ravel(), 1.0)), log_b[0], log_b[-1])
    rows = np.array([np.interp(qb, log_b, row) for row in values])  # [twin hidden][query]
    if len(log_h) == 1:
        return rows[0].reshape(batch.shape)
    k = np.clip(np.searchsorted(log_h, qh, side="right") - 1, 0, len(log_h) - 2)
    f = (qh - log_h[k]) / (log_h[k + 1] - log_h[k])
    at = np.arange(qh.size)
    return ((1.0 - f) * rows[k, at] + f * rows[k + 1, at]).reshape(batch.shape)


def _twin_grid(hidden: Sequence[int], batch: Sequence[int], ratio: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A twin ratio's log slowdowns on the sub-grid of the hidden sizes and batches that have any twin
    (log hidden, log batch, ``[hidden][batch]`` with each row's gaps interpolated in log batch and held at
    its ends); None where no twin was timed."""
    ok = np.isfinite(ratio) & (ratio > 0)
    if not ok.any():
        return None
    rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
    log_b = np.log(np.asarray(batch, dtype=float)[cols])
    sub = np.log(np.where(ok, ratio, 1.0))[np.ix_(rows, cols)]
    fine = ok[np.ix_(rows, cols)]
    values = np.array([np.interp(log_b, log_b[f], r[f]) for r, f in zip(sub, fine)])
    return np.log(np.asarray(hidden, dtype=float)[rows]), log_b, values


def intercepts_at(measured: dict[int, float], hiddens: Sequence[int]) -> dict[int, float]:
    """Per-call intercepts (``measured``, by hidden size) at ``hiddens``: log-linear between the sizes
    measured, held below the smallest, and past the largest growing with the weights (H²) from its
    share above the smallest's: the part of a call's fixed cost its weights' buffers make."""
    hs = sorted(measured)
    base, top = measured[hs[0]], measured[hs[-1]]
    out = {}
    for h in hiddens:
        if h > hs[-1]:
            out[h] = base + (top - base) * (h / hs[-1]) ** 2
        else:
            out[h] = float(np.exp(np.interp(math.log(h), np.log(hs), np.log([measured[k] for k in hs]))))
    return out


def beyond_hidden_step_s(step0: np.ndarray, matmul0: np.ndarray, weight_work0_s: float, hidden0: float,
                         hidden: np.ndarray, matmuls_per_step: int, element_bytes: int,
                         levels: MemoryLevels | None) -> tuple[np.ndarray, np.ndarray]:
    """(whole step, matmul alone) past the largest measured hidden size ``hidden0``, from that row's
    step and matmul at the same batch (``step0``, ``matmul0``), at ratio ``r = H / hidden0``:

    * the step's matmuls (``matmuls_per_step`` of them: the forward, and in training the two backward)
      grow as r² (FLOPs B·3H·H), and the forward's weight read W(H) = 3H²·bytes is re-priced at the
      measured bandwidth of the level W(H) falls into instead of the one W(hidden0) lived in;
    * a training step's weight work (``weight_work0_s``, :meth:`StepTable.weight_work_s`: writing and
      accumulating its 3H² weight gradient) grows as r² — grown as r with the gates, a training step at
      H = 4,096, B = 4 was priced at 98 ms where it takes 182 ms on one AMD EPYC thread (2026-12-05);
    * the rest — the gate ops, ATen's dispatch — grows as r.
    """
    r = hidden / hidden0
    mm = matmul0 * r * r
    if levels is not None:
        w0, w1 = 3.0 * hidden0 ** 2 * element_bytes, 3.0 * hidden ** 2 * element_bytes
        mm = mm + np.maximum(w1 * (1.0 / levels.bandwidth_for_many(w1) - 1.0 / levels.bandwidth_for(w0)), 0.0)
    rest0 = np.maximum(step0 - matmul0, 0.0)  # all but the forward matmul; at r = 1 the step is step0
    quadratic = np.minimum((matmuls_per_step - 1) * matmul0 + weight_work0_s, rest0)
    return mm + quadratic * r * r + (rest0 - quadratic) * r, mm


def _layer_fixed_by_hidden(measured: dict[int, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(hidden sizes, seconds beyond the smallest's) of the measured per-call intercepts (by hidden
    size), made non-decreasing in H (bigger weights never cost a call less; a lower reading was a
    quieter moment): None when fewer than two were measured."""
    if len(measured) < 2:
        return None
    hs = np.array(sorted(measured), dtype=float)
    logs = isotonic_regression(np.log([measured[h] for h in sorted(measured)])).x
    values = np.exp(logs)
    return hs, values - values[0]


def _nested(values: np.ndarray) -> list:
    """A 3-D array as nested lists for JSON, NaN as None."""
    return [[[None if not np.isfinite(v) else float(v) for v in row] for row in plane] for plane in values]


def _from_nested(data: list) -> np.ndarray:
    return np.array([[[np.nan if v is None else v for v in row] for row in plane] for plane in data], dtype=float)


def _filled_log_ratio(log_ratio: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Log slowdowns (``[m][k][n]``, NaN where not timed) completed: each (K, N) column held at its
    last timed M beyond it, interpolated in log M between timed ones, held at its first below it; a
    column never timed takes the median of all timed cells."""
    out = log_ratio.copy()
    fallback = float(np.nanmedian(log_ratio))
    for a in range(out.shape[1]):
        for c in range(out.shape[2]):
            col = out[:, a, c]
            ok = np.flatnonzero(np.isfinite(col))
            if ok.size == 0:
                col[:] = fallback
            else:
                col[:] = np.interp(np.log(m), np.log(m[ok]), col[ok])
    return out


def _marginal_row_s(m: np.ndarray, col: np.ndarray, known: np.ndarray, ceiling_row_s: float) -> float:
    """Seconds each row past a column's largest timed M adds: the slope between its last two timed
    points (the GEMM's fixed part — packing the weights, dispatch — paid once, not per row), never
    more than the last point's average per row and never less than the rows' FLOPs at the table's
    ceiling (``ceiling_row_s``); the average per row where only one point was timed."""
    last = known[-1]
    per_row = col[last] / m[last]
    if known.size < 2:
        return float(per_row)
    prev = known[-2]
    slope = (col[last] - col[prev]) / (m[last] - m[prev])
    return float(min(max(slope, ceiling_row_s), per_row))


# The unaligned twin of a grid GEMM (:class:`GemmTable`): 3H columns for a hidden size 4 above the
# grid's, half a 32-byte vector (three quarters of a 64-byte one) past a whole number of them, the
# commonest misalignment of the hidden sizes people use (100, 300, 500, 700 ...; others, such as 50 or
# 650, ran within the same band in a probe on AMD EPYC). A step table's twins (StepTable.unaligned_ratio)
# are timed at the same hidden size.
UNALIGNED_EXTRA_HIDDEN = 4
UNALIGNED_EXTRA_COLUMNS = GATES * UNALIGNED_EXTRA_HIDDEN


@dataclass
class GemmTable:
    """Seconds of ``[M,K]×[K,N]`` + bias (the input projection) on a log grid; NaN where a point was
    too costly to time (filled from the largest M timed by the column's marginal seconds per row,
    :func:`_marginal_row_s`: the GEMM's fixed part is paid once and further rows run at no better than
    the table's fastest rate) or not timed in its column (a column's own saturation M is on the grid
    of all: filled between measured M in log space).

    Scaled from the last point's average instead, a column the FLOP cap stops at a few dozen rows
    (K = 4096, N = 1536: M = 64, 74 GFLOP/s on one AMD EPYC thread, where the table's fastest GEMM ran
    at 100) priced every long projection near that sub-saturated rate: ``[12800,2048]×[2048,1536]``
    at 0.97 s, where it ran in 0.84 s (0.84 s priced now; at two threads 0.57 s priced before, 0.45 now).

    The grid's N are whole SIMD vectors. ``unaligned_ratio`` (same grid, NaN where not timed; None in
    tables timed before it was) is the measured slowdown of the same GEMM when N is not: the time of
    ``N + UNALIGNED_EXTRA_COLUMNS`` columns over the time of N (scaled by the columns, at least 1), each
    pair timed back to back. Output rows that start mid-vector cost a GEMM that mostly writes its
    output 3.5x per column (``[8192,40]×[40,300]`` against 288 columns on one AMD EPYC thread) and a
    compute-bound one a few per cent, so the slowdown is a table, not one factor. Beyond the timed M
    it is held at the last timed M; a column never timed takes the median of the others."""

    m: tuple[int, ...]
    k: tuple[int, ...]
    n: tuple[int, ...]
    seconds: np.ndarray
    unaligned_ratio: np.ndarray | None = None
    _t: np.ndarray = field(init=False, repr=False)
    _log_ratio: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = (len(self.m), len(self.k), len(self.n))
        self.seconds = np.asarray(self.seconds, dtype=float).reshape(shape)
        t = self.seconds.copy()
        m = np.asarray(self.m, dtype=float)
        ceiling: float | None = None  # read once, when a column first needs it (an empty table has none)
        for a in range(len(self.k)):
            for c in range(len(self.n)):
                col = t[:, a, c]
                known = np.flatnonzero(np.isfinite(col))
                if known.size == 0:
                    continue
                last = known[-1]
                if last + 1 < len(m):
                    ceiling = ceiling or self.best_flops_per_s()
                    row_s = _marginal_row_s(m, col, known, 2.0 * self.k[a] * self.n[c] / ceiling)
                    col[last + 1:] = col[last] + (m[last + 1:] - m[last]) * row_s
                holes = ~np.isfinite(col)
                if holes.any():
                    ok = np.flatnonzero(~holes)
                    col[holes] = np.exp(np.interp(np.log(m[holes]), np.log(m[ok]), np.log(col[ok])))
        if not np.isfinite(t).all():
            raise ValueError("a GEMM table needs a measurement in every (K, N) column")
        self._t = np.log(t)
        self._log_ratio = None
        if self.unaligned_ratio is not None:
            self.unaligned_ratio = np.asarray(self.unaligned_ratio, dtype=float).reshape(shape)
            if np.isfinite(self.unaligned_ratio).any():
                self._log_ratio = _filled_log_ratio(np.log(self.unaligned_ratio), m)
            else:
                self.unaligned_ratio = None

    def best_flops_per_s(self) -> float:
        """The fastest rate any timed GEMM of the table ran at (FLOP/s): the machine's GEMM ceiling
        as the projection reaches it."""
        m, k, n = (np.asarray(v, dtype=float) for v in (self.m, self.k, self.n))
        flops = 2.0 * m[:, None, None] * k[None, :, None] * n[None, None, :]
        timed = np.isfinite(self.seconds) & (self.seconds > 0)
        return float(np.max(flops[timed] / self.seconds[timed]))

    @property
    def has_unaligned(self) -> bool:
        """Whether the slowdown of rows that are not whole vectors was measured."""
        return self._log_ratio is not None

    def seconds_for(self, m: float, k: float, n: float, unaligned: bool = False) -> float:
        """Seconds of one ``[m,k]×[k,n]`` GEMM: trilinear in log space inside the grid; below it the
        smallest measured shape (a floor of dispatch and call cost); past it, linear in each size.
        ``unaligned``: N is not a whole number of SIMD vectors — times the measured slowdown, where
        the table has it."""
        scale = 1.0
        point = []
        for value, grid in ((m, self.m), (k, self.k), (n, self.n)):
            if value > grid[-1]:
                scale *= value / grid[-1]
                value = grid[-1]
            point.append(value)
        grids = (self.m, self.k, self.n)
        log_s = interp_log_grid(grids, self._t, point)
        if unaligned and self._log_ratio is not None:
            log_s += interp_log_grid(grids, self._log_ratio, point)
        return float(math.exp(log_s) * scale)

    @property
    def ranges(self) -> dict[str, tuple[int, int]]:
        return {"m": (self.m[0], self.m[-1]), "k": (self.k[0], self.k[-1]), "n": (self.n[0], self.n[-1])}

    def to_dict(self) -> dict[str, Any]:
        out = {"m": list(self.m), "k": list(self.k), "n": list(self.n), "seconds": _nested(self.seconds)}
        if self.unaligned_ratio is not None:
            out["unaligned_ratio"] = _nested(self.unaligned_ratio)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GemmTable":
        ratio = data.get("unaligned_ratio")
        return cls(tuple(data["m"]), tuple(data["k"]), tuple(data["n"]), _from_nested(data["seconds"]),
                   None if ratio is None else _from_nested(ratio))

    @classmethod
    def median_of(cls, tables: Sequence["GemmTable"]) -> "GemmTable":
        """Several runs' GEMM tables as one: each GEMM the geometric median of the runs that timed it,
        each unaligned slowdown the geometric median of the runs that measured it (a ratio of two
        timings taken together: no run's level to even out)."""
        if len(tables) == 1:
            return tables[0]
        m, k, n = (tuple(sorted({v for t in tables for v in getattr(t, a)})) for a in "mkn")
        grid = (m, k, n)
        ratios = [_on_grid(grid, (t.m, t.k, t.n), t.unaligned_ratio) for t in tables if t.unaligned_ratio is not None]
        return cls(m, k, n, log_median([_on_grid(grid, (t.m, t.k, t.n), t.seconds) for t in tables]),
                   log_median(ratios, level=False) if ratios else None)
