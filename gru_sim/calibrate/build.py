"""From a calibration store to a profile: read the unit tables, fit the cost model's residual on the
whole-call training points, the memory model on the peak-memory probes, self-check on the held-out
and beyond-range points, and pick the canaries of the drift check. Measures nothing."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ..errors import GruSimError
from ..machine import simd_bytes
from ..model.costmodel import CACHE_LINE_BYTES, GruCostModel, gemm_key, step_key
from ..model.memory_model import MemoryModel
from ..model.metrics import error_summary
from ..model.profile import Profile
from ..model.units import GemmTable, StepTable
from .drift import GEMM_ELASTICITY, SpeedModel
from .jobs import JobSpec
from .prior import UnitPrior
from .store import MeasurementStore, StoredPoint, StoredUnit, point_key
from .unit_grid import gemm_table, step_table, store_intercepts

CANARIES = 4


def _groups(spec: JobSpec) -> list[tuple[str, str, str, int]]:
    return [(f"{spec.device}/{d}/{i}/t{t}", d, i, t) for d in spec.dtypes for i in spec.impls for t in spec.threads]


def fit_ranges(spec: JobSpec, model_modes: dict[str, list[str]]) -> dict[str, dict[str, list[Any]]]:
    """The calibrated range of every group: the job's axes (the unit grids span them; the design of
    whole calls covers seq_len, input size and layers)."""
    return {g: {"batch": list(spec.batch), "seq_len": list(spec.seq_len), "input_size": list(spec.input_size),
                "hidden_size": list(spec.hidden_size), "num_layers": list(spec.num_layers),
                "bidirectional": sorted(spec.bidirectional), "mode": sorted(model_modes.get(g, spec.modes))}
            for g in model_modes}


def fit_model(spec: JobSpec, store: MeasurementStore, train: list[StoredPoint], seed: int,
              cv_folds: int = 5) -> GruCostModel:
    """The cost model from the store's unit tables and the whole-call points ``train``, every timing
    taken at the machine's typical speed of the run (:mod:`.drift`); the prediction interval is
    widened by that speed's spread."""
    return fit_runs(spec, [(store, train)], seed, cv_folds)


def run_tables(spec: JobSpec, stores: Sequence[MeasurementStore], speeds: Sequence[SpeedModel]
               ) -> tuple[list[dict[str, StepTable]], list[dict[str, GemmTable]]]:
    """Each run's unit tables (step tables by :func:`step_key`, GEMM tables by :func:`gemm_key`), every
    timing at its run's typical speed. Runs timed before the per-call intercepts were read their step
    units net of the runs' that measured them (the median of those, per hidden size)."""
    steps: list[dict[str, StepTable]] = [{} for _ in stores]
    gemms: list[dict[str, GemmTable]] = [{} for _ in stores]
    for key, dtype, _impl, threads in _groups(spec):
        for mode in spec.modes:
            measured = [store_intercepts(store, key, mode, speed.corrector(key)) for store, speed in zip(stores, speeds)]
            pooled = {h: float(np.exp(np.median(np.log([m[h] for m in measured if h in m]))))
                      for h in sorted({h for m in measured for h in m})}
            for k, (store, speed) in enumerate(zip(stores, speeds)):
                table = step_table(store, spec, key, mode, dtype, threads, speed.corrector(key), pooled or None)
                if table is not None:
                    steps[k][step_key(key, mode)] = table
        gk = gemm_key(spec.device, dtype, threads)
        for k, (store, speed) in enumerate(zip(stores, speeds)):
            if gk not in gemms[k] and (g := gemm_table(store, spec.device, dtype, threads,
                                                        speed.corrector(key, GEMM_ELASTICITY))) is not None:
                gemms[k][gk] = g
    return steps, gemms


def fit_runs(spec: JobSpec, runs: Sequence[tuple[MeasurementStore, list[StoredPoint]]], seed: int,
             cv_folds: int = 5, prior: UnitPrior | None = None,
             tables: tuple[list[dict[str, StepTable]], list[dict[str, GemmTable]]] | None = None,
             speeds: Sequence[SpeedModel] | None = None) -> GruCostModel:
    """:func:`fit_model` over several calibration runs of ``spec`` on one kind of machine, each a store
    and its whole-call points: every unit is the geometric median of the runs that timed it (each
    run's timings at its own typical speed), and the residual is fitted on the whole calls of all runs.
    A shared machine's speed wanders from minute to minute, and one run carries the speed of its
    minutes into every unit; the median of runs taken at different times does not. One run's
    interval is widened by its speed's spread; a pool's comes from its out-of-fold errors alone.
    ``prior``: the pooled tables of earlier runs of this job on this machine kind, each table read
    against them (:mod:`.prior`). ``tables`` and ``speeds``: the runs' tables (:func:`run_tables`) and
    speed models, when already read."""
    groups = _groups(spec)
    keys = [key for key, *_ in groups]
    speeds = speeds or [SpeedModel.from_store(store, keys) for store, _ in runs]
    step_runs, gemm_runs = tables or run_tables(spec, [store for store, _ in runs], speeds)
    steps, gemms, modes = {}, {}, {}
    for key, dtype, _impl, threads in groups:
        for mode in spec.modes:
            sk = step_key(key, mode)
            tables = [r[sk] for r in step_runs if sk in r]
            if tables:
                steps[sk] = StepTable.median_of(tables)
                if prior is not None:
                    steps[sk] = prior.step(sk, steps[sk])
                modes.setdefault(key, []).append(mode)
        gk = gemm_key(spec.device, dtype, threads)
        if gk not in gemms:
            found = [r[gk] for r in gemm_runs if gk in r]
            if found:
                gemms[gk] = GemmTable.median_of(found)
                if prior is not None:
                    gemms[gk] = prior.gemm(gk, gemms[gk])
    if not steps:
        raise GruSimError(f"{runs[0][0].path}: no step units were timed: raise --budget")
    configs, latencies_s = [], []
    for (_, train), speed in zip(runs, speeds):
        for p in train:
            if p.group in modes:
                configs.append(p.config)
                latencies_s.append(speed.corrector(p.group)(p.latency_s, p.at))
    alignment = simd_bytes() if spec.device == "cpu" else CACHE_LINE_BYTES
    model = GruCostModel(cv_folds=cv_folds, seed=seed, alignment_bytes=alignment).fit(
        configs, latencies_s, steps, gemms, fit_ranges(spec, modes))
    # One run: the model's error (the out-of-fold residuals, of timings already corrected for the speed)
    # and the machine's speed when a fresh measurement is taken are independent, and the run's whole
    # calls show only its own minutes: their log spreads add in quadrature (added outright, the typical
    # shapes' coverage was 100% with an interval 6x wide). A pool's out-of-fold residuals already hold
    # the spread between its runs (a configuration's runs share a fold, so each is predicted by runs
    # taken at other times): widened again, its interval covered every recorded measurement (100% of
    # 760 typical, 2.9x wide; 98% and 2.4x without).
    if len(runs) == 1:
        for key in model.coef_:
            lo, hi = speeds[0].spread(key)
            for mode, (q_lo, q_hi) in model.log_residual_quantiles_.get(key, {}).items():
                model.log_residual_quantiles_[key][mode] = (-math.hypot(q_lo, lo), math.hypot(q_hi, hi))
    return model


def _check(model: GruCostModel, pts: list[StoredPoint]) -> dict[str, Any]:
    if not pts:
        return error_summary([], [])
    measured = [p.latency_s for p in pts]
    predicted = [model.predict_one(p.config) for p in pts]
    intervals = [model.interval_s(p.config, q) for p, q in zip(pts, predicted)]
    return error_summary(measured, predicted, intervals)


def _ceilings(spec: JobSpec, store: MeasurementStore) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, *_ in _groups(spec):
        prims = store.get_primitives(key) or []
        flops = [p["flops_per_s"] for p in prims if p["kind"] in ("peak_flops", "matmul")]
        bw = [p["bytes_per_s"] for p in prims if p["kind"] == "bandwidth"]
        over = [p for p in prims if p["kind"] == "overheads"]
        out[key] = {"peak_flops_per_s": max(flops) if flops else None,
                    "memory_bandwidth_bytes_per_s": max(bw) if bw else None,
                    "call_overhead_s": over[0]["call_s"] if over else None,
                    "step_overhead_s": over[0]["step_s"] if over else None,
                    "primitives": prims}
    return out


def _pooled_ceilings(spec: JobSpec, stores: Sequence[MeasurementStore]) -> dict[str, Any]:
    """The runs' ceilings as one: each figure the median of the runs that have it; the first run's
    micro-benchmarks as they were measured."""
    runs = [_ceilings(spec, store) for store in stores]
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        out[key] = dict(first)
        for name in ("peak_flops_per_s", "memory_bandwidth_bytes_per_s", "call_overhead_s", "step_overhead_s"):
            values = [run[key][name] for run in runs if run[key][name] is not None]
            out[key][name] = float(np.median(values)) if values else None
    return out


def _pooled_points(points: list[StoredPoint]) -> list[StoredPoint]:
    """One point per (group, role, configuration) measured in several runs: the median of the runs'
    latencies (and memory), noisy when most of its runs were."""
    by_key: dict[tuple[str, str, str], list[StoredPoint]] = {}
    for p in points:
        by_key.setdefault((p.group, p.role, point_key(p.role, p.config)), []).append(p)
    out = []
    for same in by_key.values():
        ok = [p for p in same if p.status == "ok"]
        if not ok:
            out.append(same[0])
            continue

        def median(name: str) -> Any:
            values = [getattr(p, name) for p in ok if getattr(p, name) is not None]
            return type(values[0])(np.median(values)) if values else None

        out.append(replace(ok[0], latency_s=median("latency_s"), latency_iqr_s=median("latency_iqr_s"),
                           first_call_s=median("first_call_s"), peak_memory_bytes=median("peak_memory_bytes"),
                           noisy=2 * sum(p.noisy for p in ok) > len(ok), samples_s=(),
                           wall_s=float(sum(p.wall_s for p in same))))
    return out


def _canaries(train: list[StoredPoint]) -> list[dict[str, Any]]:
    """A few quick, quiet training points re-measured by ``validate --quick`` to detect drift."""
    quiet = sorted((p for p in train if not p.noisy and p.latency_s and p.latency_s < 0.05),
                   key=lambda p: p.latency_s or 0.0)
    if not quiet:
        return []
    picks = [quiet[int(k * (len(quiet) - 1) / max(CANARIES - 1, 1))] for k in range(min(CANARIES, len(quiet)))]
    return [{"config": p.config.to_dict(), "latency_s": p.latency_s} for p in picks]


def _speed_summary(speeds: list[SpeedModel]) -> dict[str, dict[str, float]]:
    """Per group, over every run: readings, the slowest and fastest moments against each run's typical,
    and the reference call's typical seconds — the median over the runs of each run's own (a pool's
    units are the median of the runs' units, each taken to its run's typical speed)."""
    out: dict[str, dict[str, float]] = {}
    typical: dict[str, list[float]] = {}
    for summary in (speed.summary() for speed in speeds):
        for group, s in summary.items():
            have = out.setdefault(group, {"readings": 0, "fastest_x": s["fastest_x"], "slowest_x": s["slowest_x"]})
            have["readings"] += s["readings"]
            have["fastest_x"] = min(have["fastest_x"], s["fastest_x"])
            have["slowest_x"] = max(have["slowest_x"], s["slowest_x"])
            typical.setdefault(group, []).append(s["typical_reference_s"])
    for group, values in typical.items():
        out[group]["typical_reference_s"] = float(np.median(values))
    return out


def _run_summary(store: MeasurementStore, points: list[StoredPoint], units: list[StoredUnit]) -> dict[str, Any]:
    """One run of a pooled profile (its points and units as read): its store, seconds of measuring,
    and when it measured."""
    at = [p.at for p in points] + [u.at for u in units]
    when = [dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds") for t in (min(at), max(at))] \
        if at else [None, None]
    return {"store": store.path.name, "measuring_s": store.spent_s(), "first_at": when[0], "last_at": when[1]}


def build_profile(spec: JobSpec, stores: MeasurementStore | Sequence[MeasurementStore],
                  fingerprint: dict[str, Any], prior: UnitPrior | None = None) -> Profile:
    """Fit on the training points; self-check on the held-out and beyond-range points. Several stores
    (runs of ``spec`` on one kind of machine, see :mod:`.pool`) make one profile: units the median of
    the runs, the residual fitted on all their whole calls, the self-check over all their held-out
    calls, one measurement per configuration (the median of its runs)."""
    runs = [stores] if isinstance(stores, MeasurementStore) else list(stores)
    points = [store.points() for store in runs]
    units = [store.units() for store in runs]
    everything = [p for run in points for p in run]
    ok = [p for p in everything if p.status == "ok" and p.latency_s]
    # Points still noisy after a second try are neither fitted nor mixed into the self-check figures:
    # they are reported apart (as validate does).
    pts = [p for p in ok if not p.noisy]
    trains = [[p for p in run if p.role == "train" and p.status == "ok" and p.latency_s and not p.noisy]
              for run in points]
    keys = [key for key, *_ in _groups(spec)]
    speeds = [SpeedModel.from_store(store, keys) for store in runs]
    tables = run_tables(spec, runs, speeds)
    model = fit_runs(spec, list(zip(runs, trains)), spec.seed, prior=prior, tables=tables, speeds=speeds)
    self_check: dict[str, Any] = {role: _check(model, [p for p in pts if p.role == role])
                                  for role in ("train", "holdout", "beyond")}
    self_check["noisy"] = _check(model, [p for p in ok if p.noisy and p.role in ("holdout", "beyond")])
    self_check["by_group"] = {
        key: {role: _check(model, [p for p in pts if p.role == role and p.group == key]) for role in ("holdout", "beyond")}
        for key in sorted(model.coef_)}
    mem_pts = [p for p in everything if p.role == "memory" and p.status == "ok"]
    memory = MemoryModel().fit([p.config for p in mem_pts], [p.peak_memory_bytes for p in mem_pts])
    self_check["memory_in_sample"] = error_summary([p.peak_memory_bytes for p in mem_pts],
                                                   [memory.predict_one(p.config) for p in mem_pts])
    oom = sum(p.status == "oom" for p in everything)
    pooled = len(runs) > 1
    listed = _pooled_points(everything) if pooled else everything
    extra = {"runs": [_run_summary(*run) for run in zip(runs, points, units)]} if pooled else {}
    if prior is not None:
        extra["prior"] = prior.summary()
    return Profile(
        path=None,
        fingerprint=runs[0].get_meta("fingerprint") or fingerprint,
        job=spec.model_dump(mode="json"),
        ranges={key: model.fit_range_[key] for key in model.fit_range_},
        ceilings=_pooled_ceilings(spec, runs) if pooled else _ceilings(spec, runs[0]),
        self_check={**self_check, "oom_points": oom, "measuring_s": float(sum(store.spent_s() for store in runs)),
                    "speed_drift": _speed_summary(speeds),
                    "unit_counts": dict(sorted(Counter(u.table for run in units for u in run).items())),
                    **extra},
        cost_model=model,
        memory_model=memory,
        canaries=_canaries([p for p in listed if p.role == "train" and p.status == "ok" and p.latency_s]),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        measurements=[{"group": p.group, "role": p.role, "config": p.config.to_dict(), "status": p.status,
                       "latency_s": p.latency_s, "latency_iqr_s": p.latency_iqr_s, "noisy": p.noisy,
                       "first_call_s": p.first_call_s, "peak_memory_bytes": p.peak_memory_bytes}
                      for p in listed],
        # A pool's chance scatter about its tables: the model's own, unless they were read against a prior.
        unit_scatter_log_sd=(None if not pooled else
                             UnitPrior.from_runs(*tables).chance_log_sd if prior is not None else
                             UnitPrior.from_pool(model.step_tables_, model.gemm_tables_, *tables).chance_log_sd),
    )
