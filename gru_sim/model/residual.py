"""The cost model's residual: the physical terms a composed call is corrected with, and their fit on
whole-call measurements — non-negative coefficients by a robust least-squares fit on relative error,
the measured terms pulled towards 1 and the corrections without a measured unit pulled towards
contributing nothing — with the out-of-fold residuals its interval is taken from."""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
from scipy.optimize import least_squares

RESIDUAL_TERMS = ("steps", "projection", "projection_backward", "call", "layer_direction", "output_bytes",
                  "steps_unaligned", "projection_unaligned", "step_matmuls", "fresh_memory", "saved_spill")
(_STEPS, _PROJ, _PROJ_BWD, _CALL, _LD, _BYTES, _STEPS_UNALIGNED, _PROJ_UNALIGNED, _STEP_MM,
 _FRESH, _SPILL) = range(len(RESIDUAL_TERMS))
# Profiles written before the step's matmuls had their own term: their "steps" coefficient applied to
# the whole step, matmuls included (read back with the same coefficient on both parts: the same model).
PREVIOUS_TERMS = RESIDUAL_TERMS[:_STEP_MM]
# Profiles written before fresh memory was priced: read back with its coefficient 0 (the same model).
BEFORE_FRESH_TERMS = RESIDUAL_TERMS[:_FRESH]
# Profiles written before a training call's spilled saved activations were priced: read back with its
# coefficient 0 (the same model).
BEFORE_SPILL_TERMS = RESIDUAL_TERMS[:_SPILL]
# Coefficients are pulled towards their prior with this weight (in relative-error units: as much as one
# measurement that the coefficient's departure would miss by that share): the call's fixed cost towards
# the measured one, the corrections without a unit towards contributing nothing.
PRIOR_WEIGHT = 0.3
# The unit terms' coefficients are pulled towards 1 harder. A fit has 10 to 30 whole calls per thread
# count and mode, and a call's projection trades off against its steps: at weight 0.3 the projection's
# coefficient ranged 0.60–1.42 over 28 fits (seven stores of one machine), at 1 it ranges 0.76–1.07,
# and the typical shapes' error after each calibration's level went from 11.6% to 10.5% (mean over
# those stores).
UNIT_PRIOR_WEIGHT = 1.0
_UNIT_TERMS = (_STEPS, _STEP_MM, _PROJ, _PROJ_BWD, _FRESH)
# Corrections without a measured unit: each pulled towards contributing nothing. The saved activations a
# training call's backward re-reads from beyond the cache (.saved_spill) are bytes with a fitted rate.
_CORRECTION_TERMS = (_LD, _SPILL)
# Terms no longer fitted (their coefficient stays 0), kept so that profiles fitted with them predict as
# they did. Output bytes: the step units already pay for their outputs' allocation and first touch (a
# unit is a real call writing its whole output), so a per-byte term only soaked up noise — fitted on a
# dozen calls it reached 5 ns a byte, ten times the cost of faulting fresh memory in on the machine it
# was fitted on, and doubled a 2-layer batch-128 call's prediction. The step's unaligned extra: a step
# at a hidden size that is not whole vectors runs at its neighbours' rate (training calls at 1 thread,
# H = 100, 101, 250, 251, 260, 500 against 96, 104, 256, 504, 512 at three batch and input sizes, on
# AMD EPYC: no step slower than its neighbours beyond the spread of the aligned ones). Fitted, it
# soaked up the odd design points' other odd sizes (batch, input) and reached 0.25 of every unaligned
# training step once the projection's slowdown was measured.
UNFITTED_TERMS = (_BYTES, _STEPS_UNALIGNED)
# Relative error at which the fit's loss turns from squared to linear (soft-L1).
ROBUST_SCALE = 0.1


def fit_robust(x: np.ndarray, y: np.ndarray, prior_ones: Sequence[int], prior_zeros: Sequence[int] = ()
                ) -> np.ndarray:
    """Non-negative coefficients minimising a soft-L1 loss of the relative errors (x·θ − y)/y, with
    the ``prior_ones`` coefficients pulled towards 1 (the unit terms among them with
    ``UNIT_PRIOR_WEIGHT``) and the ``prior_zeros`` terms' largest share of a call pulled towards 0 (a
    correction no measurement needs stays out). A ``prior_ones`` term no measured call has (fresh
    memory where no call reaches 32 MiB) keeps its prior, 1: the calls that have it pay it as measured."""
    z = x / y[:, None]
    used = np.any(z != 0, axis=0)
    theta = np.zeros(x.shape[1])
    theta[[c for c in prior_ones if not used[c]]] = 1.0
    if not used.any():
        return theta
    scale = np.max(np.abs(z[:, used]), axis=0)
    zs = z[:, used] / scale
    cols = np.flatnonzero(used)
    ones = [j for j, c in enumerate(cols) if c in prior_ones]
    zeros = [j for j, c in enumerate(cols) if c in prior_zeros]
    pull = np.array([UNIT_PRIOR_WEIGHT if cols[j] in _UNIT_TERMS else PRIOR_WEIGHT for j in ones])

    def residual(d: np.ndarray) -> np.ndarray:
        pulls = pull * (d[ones] / scale[ones] - 1.0)
        return np.concatenate([zs @ d - 1.0, pulls, PRIOR_WEIGHT * d[zeros]])

    start = np.array([scale[j] if j in ones else 1e-9 for j in range(len(cols))])
    sol = least_squares(residual, start, bounds=(0.0, np.inf), loss="soft_l1", f_scale=ROBUST_SCALE,
                        method="trf", max_nfev=400)
    theta[cols] = sol.x / scale
    return theta


def fit_residual(x: np.ndarray, y: np.ndarray, call_fixed_s: float | None = None) -> np.ndarray:
    """The coefficients (by ``RESIDUAL_TERMS``) of one (group, mode) from its composed terms ``x`` and
    measured seconds ``y``. With the call's fixed cost measured, the call term is that cost times a
    coefficient pulled towards 1, like the units; else a free constant."""
    measured_call = call_fixed_s is not None and call_fixed_s > 0
    x = x.copy()
    x[:, list(UNFITTED_TERMS)] = 0.0
    if len(y) == 0:
        theta = np.zeros(len(RESIDUAL_TERMS))
        theta[list(_UNIT_TERMS)] = 1.0  # nothing to correct with: the units as measured
        theta[_CALL] = call_fixed_s if measured_call else 0.0
        return theta
    if not measured_call:
        return fit_robust(x, y, _UNIT_TERMS, _CORRECTION_TERMS)
    xs = x
    xs[:, _CALL] *= call_fixed_s
    theta = fit_robust(xs, y, (*_UNIT_TERMS, _CALL), _CORRECTION_TERMS)
    theta[_CALL] *= call_fixed_s
    return theta


def cv_log_residuals(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, cv_folds: int,
                     call_fixed_s: float | None = None, same: Sequence[Hashable] | None = None) -> np.ndarray:
    """log(measured / predicted) for every point, predicted by a fit that did not see it. ``same``
    labels points of one configuration (measured in several runs): they share a fold, so that no
    point is predicted by a fit that saw its configuration."""
    n = len(y)
    labels = list(range(n)) if same is None else list(same)
    first_seen: dict[Hashable, int] = {}
    group = np.array([first_seen.setdefault(label, len(first_seen)) for label in labels])
    folds = min(cv_folds, len(first_seen))
    if folds < 2:
        return np.zeros(0)
    order = rng.permutation(len(first_seen))
    out = np.zeros(n)
    for f in range(folds):
        test = np.flatnonzero(np.isin(group, order[f::folds]))
        train = np.setdiff1d(np.arange(n), test)
        coef = fit_residual(x[train], y[train], call_fixed_s)
        out[test] = np.log(y[test] / np.maximum(x[test] @ coef, 1e-12))
    return out
