"""A fresh calibration read against the stored calibrations of its machine kind.

One calibration times each unit once, in whatever spell of the machine's speed that moment falls:
on a shared VM a unit lies from the median of many runs, once its run's level is divided out, by a
log standard deviation of 0.05-0.19 (the AMD EPYC pool's ``unit_scatter_log_sd``), which is most of a
single calibration's error in how time depends on the shape. Where a pool of
earlier runs of the same job on the same kind of machine is at hand, each table of the fresh run is
compared with the pool's cell by cell: the fresh run's level (the median log ratio) is this machine's
now, and the cells' deviations about that level are either chance or shape the pool does not have
(another machine, other caches).

The two differ in how they lie on the grid. A table's rows (or columns) are timed in turns drawn at
random (:func:`gru_sim.calibrate.unit_grid.interleaved`), so a disturbance of the machine slows cells
scattered over the table, one here and one there; a machine that differs — a smaller cache, another
BLAS kernel at some batch sizes — moves neighbouring cells together. So each deviation is split into
the median of its neighbourhood (``NEIGHBOURS`` grid points either way along each axis: the shape it
shares with its neighbours) and the rest. The shared shape is kept in the proportion its scatter
exceeds what one pooled run's shared shape shows by chance (an empirical-Bayes shrinkage, one weight
per table); the rest — a cell unlike its own neighbours — is the pool's:

    log unit = log pool + level + w · shared,  w = max(0, 1 − σ²_chance,shared / σ²_seen,shared)

so on a machine like the pool's the fresh run contributes its level and the pool its shape, and on
one unlike it the fresh run's shape stands. The shared shape's scatter is its standard deviation (the
neighbourhood median has already set the odd cells aside, and a shape that moves a minority of the
table — a cache level at the largest hidden sizes — must count; a median absolute deviation reads a
minority as nothing); each cell's whole deviation, as a pool written before this split is read, by
its median absolute deviation.

Read so, the 55 stored runs of the AMD EPYC VM, each against the fifteen made before it
(``python benchmarks/fresh_runs.py --prior earlier --prior-recent 15``), predicted the typical shapes
after their level 5.5% off the record where cell-by-cell reading had 6.0% (median over runs; 36 runs
closer, 11 further) and 6.9% where it had 7.2% against the typical run right after them (23 closer,
12 further); before the level both read alike (7.9% and 7.8%, 7.6% and 6.9%: the machine's pace at
the hour decides that figure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import GruSimError
from ..model.profile import Profile
from ..model.units import GemmTable, StepTable

MAD_TO_SD = 1.4826
# A cell's neighbourhood: this many grid points either way along each axis (a step table's (hidden,
# batch); the intercepts' hidden; a GEMM table's (M, K, N)).
NEIGHBOURS = {1: (1,), 2: (1, 2), 3: (1, 1, 1)}
# The chance scatter of the shape a run's cells share with their neighbours is stored under the
# table's name with this suffix (a pool written before has none: its tables are read cell by cell).
SHARED_SUFFIX = "~shared"


@dataclass(frozen=True)
class Shrinkage:
    """What reading one table against the pool did: the fresh run's level against the pool (×), the
    scatter of what was weighed (log sd) and its chance scatter, and the weight kept. ``shared``: what
    was weighed is the shape cells share with their neighbours (the rest is the pool's); else each
    cell's whole deviation about the level."""

    level_x: float
    seen_log_sd: float
    chance_log_sd: float
    weight: float
    cells: int
    shared: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"level_x": self.level_x, "seen_log_sd": self.seen_log_sd, "chance_log_sd": self.chance_log_sd,
                "weight": self.weight, "cells": self.cells, "shared": self.shared}


def robust_log_sd(values: np.ndarray) -> float:
    """The scatter of ``values`` about their median (log units), from the median absolute deviation."""
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    return float(MAD_TO_SD * np.median(np.abs(values - np.median(values))))


def neighbourhood_median(grid: np.ndarray) -> np.ndarray:
    """Each finite cell's median over the finite cells of its neighbourhood (``NEIGHBOURS``); NaN elsewhere."""
    grid = np.asarray(grid, dtype=float)
    reach = NEIGHBOURS[grid.ndim]
    out = np.full(grid.shape, np.nan)
    for pos in zip(*np.nonzero(np.isfinite(grid))):
        window = grid[tuple(slice(max(p - r, 0), p + r + 1) for p, r in zip(pos, reach))]
        out[pos] = np.median(window[np.isfinite(window)])
    return out


def deviation_grid(fresh: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """log(fresh / prior) less its median over the cells both have (NaN elsewhere), and that median."""
    both, d = _log_ratios(fresh, prior)
    out = np.full(np.shape(fresh), np.nan)
    if not both.any():
        return out, 0.0
    level = float(np.median(d))
    out[both] = d - level
    return out, level


def _weight(seen: float, chance: float) -> float:
    """The share of a scatter ``seen`` kept when ``chance`` of it is expected by chance."""
    return 1.0 if seen <= 0 else float(min(max(1.0 - (chance / seen) ** 2, 0.0), 1.0))


def shrink_cells(fresh: np.ndarray, prior: np.ndarray, chance_log_sd: float,
                 shared_chance_log_sd: float | None = None) -> tuple[np.ndarray, Shrinkage]:
    """``fresh`` (seconds, NaN where not timed) read against ``prior`` (the pool's seconds at the same
    cells, NaN where it has none): cells either lacks are returned as timed. With
    ``shared_chance_log_sd`` only the deviation cells share with their neighbours is weighed (against
    that chance scatter); without it (a pool written before), each cell's whole deviation."""
    fresh = np.asarray(fresh, dtype=float)
    both, d = _log_ratios(fresh, prior)
    if both.sum() < 3:
        return fresh, Shrinkage(1.0, 0.0, chance_log_sd, 1.0, int(both.sum()))
    log_prior = np.log(np.asarray(prior, dtype=float)[both])
    level = float(np.median(d))
    seen = robust_log_sd(d)
    out = fresh.copy()
    if shared_chance_log_sd is None:
        weight = _weight(seen, chance_log_sd)
        out[both] = np.exp(log_prior + level + weight * (d - level))
        return out, Shrinkage(math.exp(level), seen, chance_log_sd, weight, int(both.sum()))
    shared = neighbourhood_median(deviation_grid(fresh, prior)[0])[both]
    seen_shared = float(np.std(shared))  # (the module docstring: why not the median absolute deviation)
    weight = _weight(seen_shared, shared_chance_log_sd)
    out[both] = np.exp(log_prior + level + weight * shared)
    return out, Shrinkage(math.exp(level), seen_shared, shared_chance_log_sd, weight, int(both.sum()), shared=True)


def _cells(values: np.ndarray, axes: Sequence[Sequence[int]], prior_axes: Sequence[Sequence[int]],
           prior_values: np.ndarray) -> np.ndarray:
    """``prior_values`` (on ``prior_axes``) at the cells of ``axes``; NaN where the prior has no such cell."""
    out = np.full(np.shape(values), np.nan)
    index = [{v: k for k, v in enumerate(a)} for a in prior_axes]
    for pos in np.ndindex(*out.shape):
        at = [index[a].get(axes[a][p]) for a, p in enumerate(pos)]
        if all(k is not None for k in at):
            out[pos] = prior_values[tuple(at)]
    return out


def step_prior_cells(fresh: StepTable, prior: StepTable) -> dict[str, np.ndarray]:
    """The prior's step, matmul and intercept cells on the fresh table's grid."""
    axes, paxes = (fresh.hidden, fresh.batch), (prior.hidden, prior.batch)
    out = {"step_s": _cells(fresh.step_s, axes, paxes, prior.step_s),
           "matmul_s": _cells(fresh.matmul_s, axes, paxes, prior.matmul_s)}
    if fresh.call_fixed_by_hidden_s is not None and prior.call_fixed_by_hidden_s is not None:
        out["intercepts"] = _cells(np.asarray(fresh.call_fixed_by_hidden_s), (fresh.hidden,), (prior.hidden,),
                                   np.asarray(prior.call_fixed_by_hidden_s, dtype=float))
    return out


def _step_part(table: StepTable, part: str) -> np.ndarray:
    """One part of a step table as an array: ``step_s``, ``matmul_s`` or ``intercepts`` (by hidden size)."""
    if part == "intercepts":
        return np.asarray(table.call_fixed_by_hidden_s if table.call_fixed_by_hidden_s is not None else [], dtype=float)
    return np.asarray(getattr(table, part), dtype=float)


def _log_ratios(fresh: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells both timed (a mask) and log(fresh / prior) over them."""
    fresh, prior = np.asarray(fresh, dtype=float), np.asarray(prior, dtype=float)
    both = np.isfinite(fresh) & np.isfinite(prior) & (fresh > 0) & (prior > 0)
    return both, np.log(fresh[both]) - np.log(prior[both])


@dataclass
class UnitPrior:
    """A pool's unit tables for this job and machine kind, and by how much one of its runs' cells lie
    from the pool's by chance (log sd, per table and part: ``"<table key>:step_s"``, ...)."""

    steps: dict[str, StepTable]
    gemms: dict[str, GemmTable]
    chance_log_sd: dict[str, float]
    source: str = ""
    runs: int = 0
    applied: dict[str, Shrinkage] = field(default_factory=dict)

    @classmethod
    def from_runs(cls, steps_by_run: Sequence[dict[str, StepTable]], gemms_by_run: Sequence[dict[str, GemmTable]]
                  ) -> "UnitPrior":
        """The prior of several runs' tables: each table the runs' geometric median, and each part's
        chance scatter that of one run's cells about the pool's, less the run's level."""
        steps = {key: StepTable.median_of([r[key] for r in steps_by_run if key in r])
                 for key in sorted({k for r in steps_by_run for k in r})}
        gemms = {key: GemmTable.median_of([r[key] for r in gemms_by_run if key in r])
                 for key in sorted({k for r in gemms_by_run for k in r})}
        return cls.from_pool(steps, gemms, steps_by_run, gemms_by_run)

    @classmethod
    def from_pool(cls, steps: dict[str, StepTable], gemms: dict[str, GemmTable],
                  steps_by_run: Sequence[dict[str, StepTable]], gemms_by_run: Sequence[dict[str, GemmTable]]
                  ) -> "UnitPrior":
        """:meth:`from_runs` where the pooled tables (the runs' medians, by the same keys) are at hand."""
        devs: dict[str, list[np.ndarray]] = {}

        def add(name: str, own: np.ndarray, pooled: np.ndarray) -> None:
            dev = deviation_grid(own, pooled)[0]
            timed = np.isfinite(dev)
            # A run timed before the intercepts were read borrows the pool's (build.run_tables): it
            # shows no scatter of its own.
            if not timed.any() or (name.endswith(":intercepts") and np.allclose(dev[timed], 0.0, atol=1e-9)):
                return
            devs.setdefault(name, []).append(dev[timed])
            devs.setdefault(name + SHARED_SUFFIX, []).append(neighbourhood_median(dev)[timed])

        for run in steps_by_run:
            for key, table in run.items():
                for part, pooled in step_prior_cells(table, steps[key]).items():
                    add(f"{key}:{part}", _step_part(table, part), pooled)
        for run in gemms_by_run:
            for key, table in run.items():
                pool = gemms[key]
                add(f"{key}:seconds", table.seconds,
                    _cells(table.seconds, (table.m, table.k, table.n), (pool.m, pool.k, pool.n), pool.seconds))
        # The shared shape's scatter as shrink_cells weighs it (its standard deviation), as one run shows
        # it: the median over the runs (a disturbed run's would set it for all).
        chance = {name: (float(np.median([np.std(d) for d in ds])) if name.endswith(SHARED_SUFFIX)
                         else robust_log_sd(np.concatenate(ds)))
                  for name, ds in devs.items() if sum(d.size for d in ds) >= 3}
        return cls(steps, gemms, chance, runs=len(steps_by_run))

    @classmethod
    def from_profile(cls, profile: Profile, split: bool = True) -> "UnitPrior":
        """The prior a pooled profile holds: its tables and its runs' chance scatter. A GruSimError
        when the profile is not a pool of runs (one run's tables carry that run's spells). ``split``
        False: each cell's whole deviation is weighed (a pool of another kind of machine, whose cells
        may each differ from this one's)."""
        scatter = profile.unit_scatter_log_sd
        runs = len(profile.self_check.get("runs") or [])
        if not scatter or runs < 2:
            raise GruSimError(f"{profile.path}: not a pool of calibration runs (made by 'gru-sim calibrate --pool'): "
                              "a fresh calibration reads its units against a pool only")
        model = profile.cost_model
        chance = {k: v for k, v in scatter.items() if split or not k.endswith(SHARED_SUFFIX)}
        return cls(dict(model.step_tables_), dict(model.gemm_tables_), chance, str(profile.path), runs)

    def summary(self) -> dict[str, Any]:
        """What reading the fresh tables against the pool did, for the profile's self-check."""
        return {"profile": self.source, "runs": self.runs,
                "tables": {name: s.to_dict() for name, s in sorted(self.applied.items())}}

    def describe(self) -> str:
        """One line: the fresh run's level against the pool and the share of its own shape kept."""
        if not self.applied:
            return f"no table of this run was in the pool {self.source}"
        levels = [s.level_x for s in self.applied.values()]
        weights = [s.weight for s in self.applied.values()]
        kept = ("of the shape their cells share with their neighbours (a cell unlike its neighbours reads as "
                "the pool's)" if all(s.shared for s in self.applied.values()) else "of their scatter about that level")
        return (f"units read against the pool of {self.runs} runs in {self.source}: this run's tables at "
                f"{min(levels):.2f}-{max(levels):.2f}x the pool's, keeping {np.median(weights):.0%} (median over "
                f"{len(weights)} tables) {kept}")

    def _shrink(self, name: str, fresh: np.ndarray, pooled: np.ndarray) -> np.ndarray:
        """``fresh`` read against the pool's cells ``pooled`` by the chance scatter stored for ``name``."""
        out, self.applied[name] = shrink_cells(fresh, pooled, self.chance_log_sd.get(name, 0.0),
                                               self.chance_log_sd.get(name + SHARED_SUFFIX))
        return out

    def step(self, key: str, fresh: StepTable) -> StepTable:
        """``fresh`` read against the prior's table of ``key`` (as timed where the prior has none)."""
        prior = self.steps.get(key)
        if prior is None:
            return fresh
        cells = step_prior_cells(fresh, prior)
        step_s = self._shrink(f"{key}:step_s", fresh.step_s, cells["step_s"])
        matmul_s = self._shrink(f"{key}:matmul_s", fresh.matmul_s, cells["matmul_s"])
        intercepts = fresh.call_fixed_by_hidden_s
        if "intercepts" in cells:
            shrunk = self._shrink(f"{key}:intercepts", _step_part(fresh, "intercepts"), cells["intercepts"])
            intercepts = tuple(float(v) for v in shrunk)
        def pool_cells(values: np.ndarray | None) -> np.ndarray | None:
            """The pool's ``values`` at this run's cells (None where the pool has none)."""
            return None if values is None else _cells(fresh.step_s, (fresh.hidden, fresh.batch),
                                                      (prior.hidden, prior.batch), values)

        # The pool's run-to-run scatter of each cell is the machine kind's, not one run's: it stays. The
        # twins' slowdowns are ratios of timings taken together (no run's level in them): this run's as
        # timed, the pool's where it timed none.
        twins = fresh.unaligned_ratio if fresh.unaligned_ratio is not None else pool_cells(prior.unaligned_ratio)
        odd = fresh.odd_batch_ratio if fresh.odd_batch_ratio is not None else pool_cells(prior.odd_batch_ratio)
        return StepTable(fresh.batch, fresh.hidden, step_s, matmul_s, fresh.element_bytes, fresh.levels,
                         fresh.matmuls_per_step, fresh.call_fixed_s, intercepts, fresh.weight_grad_each_step,
                         pool_cells(prior.cell_scatter_log_sd), prior.scatter_runs, twins, odd)

    def gemm(self, key: str, fresh: GemmTable) -> GemmTable:
        prior = self.gemms.get(key)
        if prior is None:
            return fresh
        cells = _cells(fresh.seconds, (fresh.m, fresh.k, fresh.n), (prior.m, prior.k, prior.n), prior.seconds)
        seconds = self._shrink(f"{key}:seconds", fresh.seconds, cells)
        return GemmTable(fresh.m, fresh.k, fresh.n, seconds, fresh.unaligned_ratio)

