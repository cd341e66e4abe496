"""The machine's speed while a calibration measures: a small reference call of each hardware group,
timed every few seconds between the measurements (:class:`DriftTracker`), and the speed it gives at
any moment relative to the whole run's (:class:`SpeedModel`).

A shared machine does not run at one speed: other tenants' bursts slow every kernel for seconds to
minutes (on a 2-core VM the same step unit was seen 1.3–1.6× slower ten minutes apart). Units and
whole calls taken minutes apart would then disagree by that much, and the cost model's residual
would absorb the disagreement as if it were a property of the shapes. The build divides every
measurement by the machine's relative speed at the moment it was taken, so that units and whole
calls describe one machine at its typical speed for the run, and widens the prediction interval by
the speed's own spread (fresh measurements meet the same drift).

The reference call is a small one and feels a disturbance more than the kernels it stands for: a
kernel is slowed by the reference's slowdown to the power ``KERNEL_ELASTICITY``, a measured figure.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .store import MeasurementStore

# A reference call is timed at most this often per group (seconds), before the next measurement.
EVERY_S = 2.0
# The reference call: one inference layer, batch 8, hidden 128, 16 steps (about a third of a ms).
REFERENCE = {"batch": 8, "hidden": 128, "steps": 16}
# Readings smoothed over this many neighbours in time (a running median: one disturbed reading
# must not set the speed of its moment).
SMOOTH = 3
# Fewest readings before the speed is corrected for at all.
MIN_READINGS = 5
# How far the kernels follow the reference call: log kernel slowdown = this × log reference slowdown.
# Measured over the calibration runs on AMD EPYC (2 cores) that tracked their speed: each run's step
# units against the median of the runs that timed the same cell (their geometric median) against the
# run's reference call's median time. Over the first 39 runs, a Theil–Sen slope of 0.69 at 1 thread
# and 0.77 at 2 (95 % bands 0.57–0.81, 0.63–0.90); over 41, 0.71 and 0.76 (0.60–0.82, 0.64–0.88;
# `python benchmarks/drift_elasticity.py`). A run's reference call moves with its units from run to
# run (correlation 0.9), but by more. Divided out in full, a slow moment's timings were made too fast:
# each run alone predicted the typical shapes 9.6 % off after the level (24 runs, each against the
# typical run measured right after it), 8.8 % at 0.75.
KERNEL_ELASTICITY = 0.75
# The projection GEMMs (MKL's, compute-bound and vectorised) follow the reference call less. Over the 49
# runs of the same machine kind, by the same slope on the runs' GEMM units instead of their step units:
# 0.47–0.54 at 1 thread and 0.32–0.44 at 2 for GEMMs of 20 µs and more (`python
# benchmarks/drift_elasticity.py`, "by kind of unit"). Corrected by the steps' power, a GEMM timed in a
# slow moment was made too fast (by about 10 % at the slowest twentieth of a run's moments).
GEMM_ELASTICITY = 0.4


class DriftTracker:
    """Times each group's reference call before a measurement when ``EVERY_S`` have passed."""

    def __init__(self, store: MeasurementStore, device: str) -> None:
        self.store = store
        self.device = device
        self._last: dict[str, float] = {}

    def tick(self, group: str, dtype: str, impl: str, threads: int) -> None:
        if time.time() - self._last.get(group, -np.inf) < EVERY_S:
            return
        from ..measure.units import reference_call_s

        seconds = reference_call_s(REFERENCE["batch"], REFERENCE["hidden"], REFERENCE["steps"], dtype, impl,
                                   self.device, threads)
        self.store.add_drift(group, seconds)
        self._last[group] = time.time()


class SpeedModel:
    """The slowdown of each group's kernels at any moment of the run: its smoothed reference-call time
    then over the median of the run's, to the power ``KERNEL_ELASTICITY`` (1: typical speed; 1.3:
    every kernel 30 % slower than typical) — or to another power for kernels that follow the
    reference call less (``GEMM_ELASTICITY``)."""

    def __init__(self, readings: dict[str, list[tuple[float, float]]]) -> None:
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._typical_s: dict[str, float] = {}
        for group, rows in readings.items():
            if len(rows) < MIN_READINGS:
                continue
            at = np.array([a for a, _ in rows])
            v = np.array([s for _, s in rows])
            smooth = np.array([np.median(v[max(0, k - SMOOTH // 2): k + SMOOTH // 2 + 1]) for k in range(len(v))])
            self._series[group] = (at, np.log(smooth / np.median(smooth)))
            self._typical_s[group] = float(np.median(smooth))

    @classmethod
    def from_store(cls, store: MeasurementStore, groups: list[str]) -> "SpeedModel":
        return cls({g: store.drift(g) for g in groups})

    def slowdown(self, group: str, at: float, elasticity: float = KERNEL_ELASTICITY) -> float:
        """How much slower than typical ``group``'s kernels of ``elasticity`` ran at ``at`` (1 where
        not tracked)."""
        series = self._series.get(group)
        if series is None or at <= 0:
            return 1.0
        return float(np.exp(elasticity * np.interp(at, *series)))

    def corrector(self, group: str, elasticity: float = KERNEL_ELASTICITY) -> Callable[[float, float], float]:
        """``(seconds, at) → seconds at typical speed`` for ``group``'s kernels of ``elasticity``."""
        return lambda seconds, at: seconds / self.slowdown(group, at, elasticity)

    def spread(self, group: str, interval: float = 0.9) -> tuple[float, float]:
        """The central ``interval`` of log slowdowns over the run (0, 0 when not tracked)."""
        series = self._series.get(group)
        if series is None:
            return 0.0, 0.0
        alpha = (1.0 - interval) / 2.0
        lo, hi = np.quantile(KERNEL_ELASTICITY * series[1], [alpha, 1.0 - alpha])
        return float(min(lo, 0.0)), float(max(hi, 0.0))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per group: readings, the kernels' slowest and fastest moments against typical (×), and the
        reference call's seconds at the run's typical speed (``typical_reference_s``: the speed every
        unit and whole call was taken to, against which ``gru-sim validate`` reads the machine's pace)."""
        return {g: {"readings": int(len(at)), "fastest_x": float(np.exp(KERNEL_ELASTICITY * np.min(x))),
                    "slowest_x": float(np.exp(KERNEL_ELASTICITY * np.max(x))),
                    "typical_reference_s": self._typical_s[g]}
                for g, (at, x) in self._series.items()}
