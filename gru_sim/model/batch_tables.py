"""The calibrated unit tables read for arrays: a :class:`~gru_sim.model.units.StepTable` and a
:class:`~gru_sim.model.units.GemmTable` looked up for many (batch, hidden) and (m, k, n) at once, with
the numbers the one-configuration reads give (bilinear log interpolation over batch × hidden with row
continuation past the largest batch and the weight read re-priced past the largest hidden size;
trilinear log interpolation of the GEMM, linear past its grid).

Pure NumPy: no torch, simpy or plotly.
"""

from __future__ import annotations

import numpy as np

from .units import GemmTable, StepTable, beyond_hidden_step_s

# Floor of a step-table value before its logarithm, as StepTable._lookup takes it.
_TINY_S = 1e-12


def _log_bracket(grid: np.ndarray, log_grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised units._log_bracket: index k and log-space fraction f of each value on ``grid``."""
    k = np.clip(np.searchsorted(grid, values, side="right") - 1, 0, len(grid) - 2)
    lo, hi = log_grid[k], log_grid[k + 1]
    return k, (np.log(values) - lo) / (hi - lo)


class StepLookup:
    """A :class:`StepTable` read for arrays of (batch, hidden), exactly as ``step_parts_s`` reads it."""

    def __init__(self, table: StepTable) -> None:
        self.b = np.asarray(table.batch, dtype=float)
        self.logb = np.log(self.b)
        self.hs = np.asarray(table.hidden, dtype=float)
        self.loghs = np.log(self.hs)
        self.step = table._step
        self.matmul = table._matmul
        with np.errstate(divide="ignore"):
            self.log_step, self.log_matmul = np.log(self.step), np.log(self.matmul)
        self.levels = table.levels
        self.element_bytes = table.element_bytes
        self.matmuls_per_step = table.matmuls_per_step
        self.weight_work_s = table.weight_work_s()
        self.table = table

    def _row(self, arr: np.ndarray, log_arr: np.ndarray, h_index: np.ndarray | int, batch: np.ndarray) -> np.ndarray:
        b = self.b
        rows = arr[h_index]
        if rows.ndim == 1:
            rows = np.broadcast_to(rows, (batch.shape[0], rows.shape[0]))
        if len(b) == 1:
            return rows[:, 0] * np.maximum(batch / b[0], 1.0)
        idx = np.arange(batch.shape[0])
        k, f = _log_bracket(b, self.logb, batch)
        logs = log_arr[h_index]
        if logs.ndim == 1:
            lo, hi = logs[k], logs[k + 1]
        else:
            lo, hi = logs[idx, k], logs[idx, k + 1]
        with np.errstate(invalid="ignore", over="ignore"):
            inside = np.exp((1 - f) * lo + f * hi)
            slope = np.maximum((rows[:, -1] - rows[:, -2]) / (b[-1] - b[-2]), 0.0)
            above = rows[:, -1] + slope * (batch - b[-1])
        return np.where(batch <= b[0], rows[:, 0], np.where(batch >= b[-1], above, inside))

    def _lookup(self, arr: np.ndarray, log_arr: np.ndarray, batch: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        if len(self.hs) == 1:
            return self._row(arr, log_arr, 0, batch)
        k, f = _log_bracket(self.hs, self.loghs, np.maximum(hidden, self.hs[0]))
        lo = self._row(arr, log_arr, k, batch)
        hi = self._row(arr, log_arr, k + 1, batch)
        mixed = np.exp((1 - f) * np.log(np.maximum(lo, _TINY_S)) + f * np.log(np.maximum(hi, _TINY_S)))
        return np.where(hidden <= self.hs[0], self._row(arr, log_arr, 0, batch), mixed)

    def step_parts(self, batch: np.ndarray, hidden: np.ndarray, unaligned: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(whole step, matmul alone) in seconds (StepTable.step_parts_s) for each (batch, hidden);
        ``unaligned`` (bool per row): the hidden size is not whole SIMD vectors — times the slowdown the
        table's twins measured; a batch that is not whole row blocks likewise."""
        out, out_mm = np.empty(batch.shape[0]), np.empty(batch.shape[0])
        inside = hidden <= self.hs[-1]
        if inside.any():
            out[inside] = self._lookup(self.step, self.log_step, batch[inside], hidden[inside])
            out_mm[inside] = self._lookup(self.matmul, self.log_matmul, batch[inside], hidden[inside])
        beyond = ~inside
        if beyond.any():
            last = len(self.hs) - 1
            b = batch[beyond]
            out[beyond], out_mm[beyond] = beyond_hidden_step_s(
                self._row(self.step, self.log_step, last, b), self._row(self.matmul, self.log_matmul, last, b),
                self.weight_work_s, float(self.hs[-1]), hidden[beyond], self.matmuls_per_step, self.element_bytes,
                self.levels)
        log_slowdown = self.table.odd_batch_log_ratio(batch, hidden)
        if unaligned is not None and self.table.unaligned_ratio is not None and np.any(unaligned):
            log_slowdown = log_slowdown + np.where(unaligned, self.table.unaligned_log_ratio(batch, hidden), 0.0)
        if np.any(log_slowdown):
            out, out_mm = out * np.exp(log_slowdown), out_mm * np.exp(log_slowdown)
        return out, out_mm

    def step_s(self, batch: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """The whole step in seconds (StepTable.step_parts_s(...)[0]) for each (batch, hidden)."""
        return self.step_parts(batch, hidden)[0]


class GemmLookup:
    """A :class:`GemmTable` read for arrays of (m, k, n), exactly as ``seconds_for`` reads it."""

    def __init__(self, table: GemmTable) -> None:
        self.grids = [np.asarray(g, dtype=float) for g in (table.m, table.k, table.n)]
        self.log_grids = [np.log(g) for g in self.grids]
        self.log_t = table._t
        self.log_ratio = table._log_ratio

    def seconds(self, m: np.ndarray, k: np.ndarray, n: np.ndarray, unaligned: np.ndarray | None = None
                ) -> np.ndarray:
        """``unaligned`` (bool per row): N is not whole SIMD vectors — times the measured slowdown,
        where the table has it."""
        return self.seconds_and_aligned(m, k, n, unaligned)[0]

    def seconds_and_aligned(self, m: np.ndarray, k: np.ndarray, n: np.ndarray,
                            unaligned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`seconds`, the same GEMMs at the aligned rate) from one lookup: the projection and
        its backward GEMMs, which are priced aligned."""
        scale = np.ones(m.shape[0])
        brackets = []
        for value, grid, log_grid in zip((m, k, n), self.grids, self.log_grids):
            value = np.asarray(value, dtype=float)
            over = value > grid[-1]
            scale = np.where(over, scale * (value / grid[-1]), scale)
            value = np.maximum(np.minimum(value, grid[-1]), grid[0])
            if len(grid) == 1:
                brackets.append((np.zeros(value.shape, dtype=np.intp), np.zeros(value.shape), True))
            else:
                kk, f = _log_bracket(grid, log_grid, value)
                brackets.append((kk, f, False))
        aligned = np.exp(self._interp(self.log_t, brackets, m.shape[0])) * scale
        if unaligned is None or self.log_ratio is None or not np.any(unaligned):
            return aligned, aligned
        slowdown = np.exp(np.where(unaligned, self._interp(self.log_ratio, brackets, m.shape[0]), 0.0))
        return aligned * slowdown, aligned

    @staticmethod
    def _interp(log_values: np.ndarray, brackets: list, rows: int) -> np.ndarray:
        out = np.zeros(rows)
        for corner in range(8):
            w = np.ones(rows)
            pos = []
            skip = False
            for axis, (kk, f, single) in enumerate(brackets):
                upper = (corner >> axis) & 1
                if single:
                    if upper:
                        skip = True
                    pos.append(kk)
                    continue
                w = w * (f if upper else 1.0 - f)
                pos.append(kk + upper)
            if skip:
                continue
            out += w * log_values[pos[0], pos[1], pos[2]]
        return out


__all__ = ["GemmLookup", "StepLookup"]
