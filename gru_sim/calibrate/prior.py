"""A fresh calibration read against the stored calibrations of its machine kind.

One calibration times each unit once, in whatever spell of the machine's speed that moment falls:
on a shared VM a unit lies from the median of many runs, once its run's level is divided out, by a
log standard deviation of 0.05-0.19 (the AMD EPYC pool's ``unit_scatter_log_sd``), which is most of a
single calibration's error in how time depends on the shape. Where a pool of
earlier runs of the same job on the same kind of machine is at hand, each table of the fresh run is
compared with the pool's cell by cell: the fresh run's level (the median log ratio) is this machine's
now, and the cells' scatter about that level is either chance — as large as one pooled run's scatter
about the pool — or shape the pool does not have (another machine, other caches). The scatter is kept
in the proportion it exceeds chance (an empirical-Bayes shrinkage, one weight per table):

    log unit = log pool + level + w · (log fresh − log pool − level),  w = max(0, 1 − σ²_chance / σ²_seen)

so on a machine like the pool's the fresh run contributes its level and the pool its shape, and on
one unlike it the fresh units stand as they were timed.
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


@dataclass(frozen=True)
class Shrinkage:
    """What reading one table against the pool did: the fresh run's level against the pool (×), the
    scatter about it (log sd), the chance scatter (log sd), and the weight kept."""

    level_x: float
    seen_log_sd: float
    chance_log_sd: float
    weight: float
    cells: int

    def to_dict(self) -> dict[str, Any]:
        return {"level_x": self.level_x, "seen_log_sd": self.seen_log_sd, "chance_log_sd": self.chance_log_sd,
                "weight": self.weight, "cells": self.cells}


def robust_log_sd(values: np.ndarray) -> float:
    """The scatter of ``values`` about their median (log units), from the median absolute deviation."""
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    return float(MAD_TO_SD * np.median(np.abs(values - np.median(values))))


def shrink_cells(fresh: np.ndarray, prior: np.ndarray, chance_log_sd: float) -> tuple[np.ndarray, Shrinkage]:
    """``fresh`` (seconds, NaN where not timed) read against ``prior`` (the pool's seconds at the same
    cells, NaN where it has none): cells either lacks are returned as timed."""
    fresh = np.asarray(fresh, dtype=float)
    both, d = _log_ratios(fresh, prior)
    if both.sum() < 3:
        return fresh, Shrinkage(1.0, 0.0, chance_log_sd, 1.0, int(both.sum()))
    prior = np.asarray(prior, dtype=float)
    level = float(np.median(d))
    seen = robust_log_sd(d)
    weight = 1.0 if seen <= 0 else float(min(max(1.0 - (chance_log_sd / seen) ** 2, 0.0), 1.0))
    out = fresh.copy()
    out[both] = np.exp(np.log(prior[both]) + level + weight * (d - level))
    return out, Shrinkage(math.exp(level), seen, chance_log_sd, weight, int(both.sum()))


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


def step_deviations(fresh: StepTable, prior: StepTable) -> dict[str, np.ndarray]:
    """Log (fresh / prior) over the cells both timed, less their median, per part of the table."""
    cells = step_prior_cells(fresh, prior)
    own = {"step_s": fresh.step_s, "matmul_s": fresh.matmul_s,
           "intercepts": np.asarray(fresh.call_fixed_by_hidden_s if fresh.call_fixed_by_hidden_s is not None else [],
                                    dtype=float)}
    return {part: _deviation(own[part], p) for part, p in cells.items()}


def gemm_deviations(fresh: GemmTable, prior: GemmTable) -> dict[str, np.ndarray]:
    return {"seconds": _deviation(fresh.seconds, _cells(fresh.seconds, (fresh.m, fresh.k, fresh.n),
                                                        (prior.m, prior.k, prior.n), prior.seconds))}


def _log_ratios(fresh: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells both timed (a mask) and log(fresh / prior) over them."""
    fresh, prior = np.asarray(fresh, dtype=float), np.asarray(prior, dtype=float)
    both = np.isfinite(fresh) & np.isfinite(prior) & (fresh > 0) & (prior > 0)
    return both, np.log(fresh[both]) - np.log(prior[both])


def _deviation(fresh: np.ndarray, prior: np.ndarray) -> np.ndarray:
    d = _log_ratios(fresh, prior)[1]
    return d - np.median(d) if d.size else d


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
        for run in steps_by_run:
            for key, table in run.items():
                for part, d in step_deviations(table, steps[key]).items():
                    # A run timed before the intercepts were read borrows the pool's (build.run_tables):
                    # it shows no scatter of its own.
                    if part == "intercepts" and np.allclose(d, 0.0, atol=1e-9):
                        continue
                    devs.setdefault(f"{key}:{part}", []).append(d)
        for run in gemms_by_run:
            for key, table in run.items():
                for part, d in gemm_deviations(table, gemms[key]).items():
                    devs.setdefault(f"{key}:{part}", []).append(d)
        chance = {name: robust_log_sd(np.concatenate(ds)) for name, ds in devs.items() if sum(d.size for d in ds) >= 3}
        return cls(steps, gemms, chance, runs=len(steps_by_run))

    @classmethod
    def from_profile(cls, profile: Profile) -> "UnitPrior":
        """The prior a pooled profile holds: its tables and its runs' chance scatter. A GruSimError
        when the profile is not a pool of runs (one run's tables carry that run's spells)."""
        scatter = profile.unit_scatter_log_sd
        runs = len(profile.self_check.get("runs") or [])
        if not scatter or runs < 2:
            raise GruSimError(f"{profile.path}: not a pool of calibration runs (made by 'gru-sim calibrate --pool'): "
                              "a fresh calibration reads its units against a pool only")
        model = profile.cost_model
        return cls(dict(model.step_tables_), dict(model.gemm_tables_), dict(scatter), str(profile.path), runs)

    def summary(self) -> dict[str, Any]:
        """What reading the fresh tables against the pool did, for the profile's self-check."""
        return {"profile": self.source, "runs": self.runs,
                "tables": {name: s.to_dict() for name, s in sorted(self.applied.items())}}

    def describe(self) -> str:
        """One line: the fresh run's level against the pool and the share of its own scatter kept."""
        if not self.applied:
            return f"no table of this run was in the pool {self.source}"
        levels = [s.level_x for s in self.applied.values()]
        weights = [s.weight for s in self.applied.values()]
        return (f"units read against the pool of {self.runs} runs in {self.source}: this run's tables at "
                f"{min(levels):.2f}-{max(levels):.2f}x the pool's, keeping {np.median(weights):.0%} (median over "
                f"{len(weights)} tables) of their scatter about that level")

    def _chance(self, name: str) -> float:
        return self.chance_log_sd.get(name, 0.0)

    def step(self, key: str, fresh: StepTable) -> StepTable:
        """``fresh`` read against the prior's table of ``key`` (as timed where the prior has none)."""
        prior = self.steps.get(key)
        if prior is None:
            return fresh
        cells = step_prior_cells(fresh, prior)
        step_s, self.applied[f"{key}:step_s"] = shrink_cells(fresh.step_s, cells["step_s"], self._chance(f"{key}:step_s"))
        matmul_s, self.applied[f"{key}:matmul_s"] = shrink_cells(fresh.matmul_s, cells["matmul_s"],
                                                                 self._chance(f"{key}:matmul_s"))
        intercepts = fresh.call_fixed_by_hidden_s
        if "intercepts" in cells:
            shrunk, self.applied[f"{key}:intercepts"] = shrink_cells(np.asarray(intercepts, dtype=float),
                                                                     cells["intercepts"], self._chance(f"{key}:intercepts"))
            intercepts = tuple(float(v) for v in shrunk)
        return StepTable(fresh.batch, fresh.hidden, step_s, matmul_s, fresh.element_bytes, fresh.levels,
                         fresh.matmuls_per_step, fresh.call_fixed_s, intercepts, fresh.weight_grad_each_step)

    def gemm(self, key: str, fresh: GemmTable) -> GemmTable:
        prior = self.gemms.get(key)
        if prior is None:
            return fresh
        cells = _cells(fresh.seconds, (fresh.m, fresh.k, fresh.n), (prior.m, prior.k, prior.n), prior.seconds)
        seconds, self.applied[f"{key}:seconds"] = shrink_cells(fresh.seconds, cells, self._chance(f"{key}:seconds"))
        return GemmTable(fresh.m, fresh.k, fresh.n, seconds, fresh.unaligned_ratio)

