"""Completing a step table where it was not measured.

A step table (:class:`.units.StepTable`) is timed on a (hidden × batch) grid, but not everywhere: a
point whose call would run too long is skipped, so the rows of large hidden sizes stop at small batch
sizes (a training row at H = 2048 may hold one point). This module fills those gaps from the
step's physical parts rather than from the last two points of a row:

* the **matmuls** — ``matmuls_per_step`` matmuls ``[B,H]×[H,3H]``, whose own row is timed further and,
  past that, grows by each further sequence's FLOPs at the fastest rate the table's matmuls reached
  (:func:`saturated_flops_per_s`): a GEMM that large is compute-bound, and the row's last timed point
  need not be (at H = 2,048 on one AMD EPYC thread the matmul ran 52 GFLOP/s at B = 32, its last timed
  point, and 83 at B = 128: grown in proportion to B = 32, B = 128 was priced 62 ms where it takes 39);
* the **rest** — gate pointwise ops, allocations and, in training, the gradients' pointwise work —
  ``rest(B) = a(H) + κ·B·H``: a per-step part that does not grow with the batch (dispatch, the weight
  gradient's accumulation into ``3H×H``) and a part proportional to the elements the gates touch.
  Its per-sequence slope is read from the row itself where the row was timed over a wide enough range
  of batch sizes, else from κ, the median slope per hidden unit of the rows that were.

A row extended by its last two points instead takes their noise, and the fixed part of a one-point row,
as if every further sequence cost that much (a training step at H = 2048 then grew 21 ms per sequence
where it grows about 0.4 ms).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import isotonic_regression

# Log distance from the monotone fit past which a step reading counts as disturbed and is down-weighted
# (a tenth: about the spread of one unit's repeats on a quiet machine).
ROBUST_LOG_SCALE = 0.1
# Batch sizes below this run BLAS's matrix-vector or narrow kernels, whose steps do not yet follow the
# per-sequence slope: a row's slope is read from its points at this batch size and above.
SLOPE_MIN_BATCH = 8
# A row gives its own slope with at least this many timed points spanning at least this ratio of
# batch sizes; otherwise it takes κ·H from the rows that do.
MIN_SLOPE_POINTS = 4
MIN_SLOPE_SPAN = 4.0


def fill_holes(batch: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Points missing between measured ones (a measurement that failed): log-space interpolation."""
    out = row.copy()
    holes = ~np.isfinite(out)
    ok = np.flatnonzero(~holes)
    inner = holes & (np.arange(len(row)) < (ok[-1] if ok.size else -1))
    if inner.any():
        out[inner] = np.exp(np.interp(np.log(batch[inner]), np.log(batch[ok]), np.log(out[ok])))
    return out


# The share of a table's matmul FLOP rates (over its timed cells of at least SATURATION_MIN_BATCH
# sequences) taken as the rate a compute-bound matmul reaches: a high percentile rather than the
# maximum, so that one reading taken in a fast moment does not set it.
SATURATION_PERCENTILE = 90.0
SATURATION_MIN_BATCH = 16


def saturated_flops_per_s(batch: np.ndarray, hidden: Sequence[int], matmul: np.ndarray) -> float | None:
    """The FLOP rate the table's recurrent matmuls ``[B,H]×[H,3H]`` reach once compute-bound: the
    ``SATURATION_PERCENTILE``th percentile of their timed cells' rates at ``SATURATION_MIN_BATCH``
    sequences or more (None when there are none)."""
    flops = 2.0 * 3.0 * np.outer(np.asarray(hidden, dtype=float) ** 2, batch)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = flops / matmul
    use = np.isfinite(rates) & (rates > 0) & (batch[None, :] >= SATURATION_MIN_BATCH)
    return float(np.percentile(rates[use], SATURATION_PERCENTILE)) if use.any() else None


def fill_matmul_row(batch: np.ndarray, row: np.ndarray, hidden: float | None = None,
                    flops_per_s: float | None = None) -> np.ndarray:
    """Complete one hidden size's matmul row: past the largest batch timed, each further sequence
    costs its FLOPs (2·H·3H) at ``flops_per_s`` (:func:`saturated_flops_per_s`) — or what a sequence
    cost at that last point, where that is less (a row already running faster than the table's rate
    keeps its own); without a rate, time grows in proportion to B from the last point."""
    out = fill_holes(batch, row)
    known = np.flatnonzero(np.isfinite(out))
    if known.size:
        last = known[-1]
        per_sequence = out[last] / batch[last]
        if hidden is not None and flops_per_s:
            per_sequence = min(per_sequence, 2.0 * 3.0 * hidden * hidden / flops_per_s)
        out[last + 1:] = out[last] + per_sequence * (batch[last + 1:] - batch[last])
    return out


def theil_sen_slope(x: np.ndarray, y: np.ndarray) -> float:
    """The median of the slopes between every pair of points: a line's slope that a few disturbed
    points do not move."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx > 0
    return float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else float("nan")


def rest_slope_s(batch: np.ndarray, row: np.ndarray, matmul: np.ndarray, matmuls_per_step: float) -> float | None:
    """Seconds each further sequence adds to one row's step beyond its matmuls, read from the row's own
    timed points at ``SLOPE_MIN_BATCH`` and above (Theil–Sen, at least 0); None when those points are
    fewer than ``MIN_SLOPE_POINTS`` or span less than ``MIN_SLOPE_SPAN``× in batch size."""
    use = np.isfinite(row) & np.isfinite(matmul) & (batch >= SLOPE_MIN_BATCH)
    b = batch[use]
    if b.size < MIN_SLOPE_POINTS or b[-1] < MIN_SLOPE_SPAN * b[0]:
        return None
    return max(theil_sen_slope(b, row[use] - matmuls_per_step * matmul[use]), 0.0)


def per_hidden_unit_slope_s(batch: np.ndarray, hidden: Sequence[int], rows: np.ndarray, matmuls: np.ndarray,
                            matmuls_per_step: float) -> float | None:
    """κ: seconds per sequence per hidden unit of a step's non-matmul part — the median over the rows
    that give their own slope of that slope / H; None when no row does."""
    per_unit = [s / h for h, r, m in zip(hidden, rows, matmuls)
                if (s := rest_slope_s(batch, r, m, matmuls_per_step)) is not None]
    return float(np.median(per_unit)) if per_unit else None


def fill_step_row(batch: np.ndarray, row: np.ndarray, matmul: np.ndarray, matmuls_per_step: float,
                  slope_s: float | None = None) -> np.ndarray:
    """Complete one hidden size's step row past the largest batch timed: the step grows by its
    matmuls' growth (from ``matmul``, the completed matmul row) plus ``slope_s`` seconds per further
    sequence for the rest. Without a slope, the rest's slope over the row's last two timed points."""
    out = fill_holes(batch, row)
    known = np.flatnonzero(np.isfinite(out))
    if known.size == 0:
        return out
    last = known[-1]
    have_mm = np.isfinite(matmul[last])
    mm = matmul if have_mm else np.zeros_like(matmul)
    if slope_s is None:
        rest = out - matmuls_per_step * mm
        if known.size >= 2:
            prev = known[-2]
            slope_s = (rest[last] - rest[prev]) / (batch[last] - batch[prev])
        else:
            slope_s = rest[last] / batch[last]
    slope_s = max(slope_s, 0.0)
    for j in range(last + 1, len(batch)):
        grow = matmuls_per_step * (mm[j] - mm[last]) if have_mm and np.isfinite(mm[j]) else 0.0
        out[j] = out[last] + max(grow, 0.0) + slope_s * (batch[j] - batch[last])
    return out


def complete_step_rows(batch: np.ndarray, hidden: Sequence[int], rows: np.ndarray, matmuls: np.ndarray,
                       matmuls_per_step: float) -> np.ndarray:
    """Every row of a step table completed past its largest timed batch (:func:`fill_step_row`), each
    with its own slope where it gives one, else κ·H (:func:`per_hidden_unit_slope_s`)."""
    kappa = per_hidden_unit_slope_s(batch, hidden, rows, matmuls, matmuls_per_step)
    out = []
    for h, r, m in zip(hidden, rows, matmuls):
        own = rest_slope_s(batch, r, m, matmuls_per_step)
        slope = own if own is not None else (kappa * h if kappa is not None else None)
        out.append(fill_step_row(batch, r, m, matmuls_per_step, slope))
    return np.array(out)


def monotone_fit(values: np.ndarray, robust_scale: float = ROBUST_LOG_SCALE, reweights: int = 4,
                 max_rounds: int = 200, tol: float = 1e-9, batch: Sequence[int] | None = None,
                 batch_block: int = 1) -> np.ndarray:
    """The closest table, in log seconds, that never falls as any of its axes grows (a step table's
    hidden size and batch): a bigger problem never costs less, so a point
    that says otherwise was disturbed — and so, as likely, was its neighbour. Every line along every
    axis is made non-decreasing in turn (weighted isotonic regression) until none moves; then points
    far off the fit (beyond ``robust_scale`` in log) are down-weighted (Huber) and the fit redone, so
    that one reading slowed fivefold is lowered without lifting its neighbours. NaN (not measured)
    stays NaN.

    Lowering every point to the fastest point of any bigger problem instead (a lower envelope) lets
    one fast reading pull down every smaller problem's cell while cells with no such neighbour keep
    their slow readings: a table of two machines' speeds at once.

    ``batch`` (the last axis's sizes) and ``batch_block``: along the batch, only sizes a multiple of
    ``batch_block`` apart are linked (each residue class is a line of its own). BLAS runs rows in
    blocks and a remainder in narrower passes, so one more sequence can cost less (B = 8 against 7),
    while a block more never does; linked row by row, the fit averaged each round batch with its
    slower odd neighbour and priced B = 8 like B = 7."""
    finite = np.isfinite(values) & (values > 0)
    logs = np.where(finite, np.log(np.where(finite, values, 1.0)), np.nan)
    weights = np.where(finite, 1.0, 0.0)
    for _ in range(reweights + 1):
        out = _alternating_isotonic(logs, weights, finite, max_rounds, tol, _classes(batch, batch_block))
        off = np.abs(np.where(finite, logs - out, 0.0))
        weights = np.where(finite, np.minimum(1.0, robust_scale / np.maximum(off, 1e-12)), 0.0)
    return np.where(finite, np.exp(out), values)


def _classes(batch: Sequence[int] | None, block: int) -> list[np.ndarray] | None:
    """Masks of the batch sizes in each residue class modulo ``block`` (None: one line)."""
    if batch is None or block <= 1:
        return None
    b = np.asarray(batch)
    return [b % block == r for r in range(block)]


def _alternating_isotonic(logs: np.ndarray, weights: np.ndarray, finite: np.ndarray, max_rounds: int,
                          tol: float, batch_classes: list[np.ndarray] | None = None) -> np.ndarray:
    out = logs.copy()
    for _ in range(max_rounds):
        before = out.copy()
        for axis in range(out.ndim):
            lines = np.moveaxis(out, axis, -1)  # a view: writing a line writes ``out``
            w = np.moveaxis(weights, axis, -1)
            ok_all = np.moveaxis(finite, axis, -1)
            members = batch_classes if (axis == out.ndim - 1 and batch_classes is not None) else [None]
            for index in np.ndindex(lines.shape[:-1]):
                for member in members:
                    ok = ok_all[index] if member is None else ok_all[index] & member
                    if ok.sum() > 1:
                        line = lines[index]
                        line[ok] = isotonic_regression(line[ok], weights=w[index][ok]).x
        if np.nanmax(np.abs(out - before), initial=0.0) < tol:
            break
    return out
