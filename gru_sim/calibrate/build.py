"""From a calibration store to a profile: read the unit tables, fit the cost model's residual on the
whole-call training points, the memory model on the peak-memory probes, self-check on the held-out
and beyond-range points, and pick the canaries of the drift check. Measures nothing."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ..errors import GruSimError
from ..machine import simd_bytes
from ..model.costmodel import CACHE_LINE_BYTES, GruCostModel, gemm_key, step_key
from ..model.memory_model import MemoryModel
from ..model.metrics import error_summary
from ..model.profile import Profile
from .drift import SpeedModel
from .jobs import JobSpec
from .store import MeasurementStore, StoredPoint
from .unit_grid import gemm_table, step_table

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
    groups = _groups(spec)
    speed = SpeedModel.from_store(store, [key for key, *_ in groups])
    steps, gemms, modes = {}, {}, {}
    for key, dtype, _impl, threads in groups:
        correct = speed.corrector(key)
        for mode in spec.modes:
            table = step_table(store, spec, key, mode, dtype, threads, correct)
            if table is not None:
                steps[step_key(key, mode)] = table
                modes.setdefault(key, []).append(mode)
        gk = gemm_key(spec.device, dtype, threads)
        if gk not in gemms and (g := gemm_table(store, spec.device, dtype, threads, correct)) is not None:
            gemms[gk] = g
    if not steps:
        raise GruSimError(f"{store.path}: no step units were timed: raise --budget")
    usable = [p for p in train if p.group in modes]
    alignment = simd_bytes() if spec.device == "cpu" else CACHE_LINE_BYTES
    model = GruCostModel(cv_folds=cv_folds, seed=seed, alignment_bytes=alignment).fit(
        [p.config for p in usable], [speed.corrector(p.group)(p.latency_s, p.at) for p in usable], steps, gemms,
        fit_ranges(spec, modes))
    # The model's error (the out-of-fold residuals, of timings already corrected for the speed) and the
    # machine's speed when a fresh measurement is taken are independent: their log spreads add in
    # quadrature (added outright, the typical shapes' coverage was 100% with an interval 6x wide).
    for key in model.coef_:
        lo, hi = speed.spread(key)
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


def _canaries(train: list[StoredPoint]) -> list[dict[str, Any]]:
    """A few quick, quiet training points re-measured by ``validate --quick`` to detect drift."""
    quiet = sorted((p for p in train if not p.noisy and p.latency_s and p.latency_s < 0.05),
                   key=lambda p: p.latency_s or 0.0)
    if not quiet:
        return []
    picks = [quiet[int(k * (len(quiet) - 1) / max(CANARIES - 1, 1))] for k in range(min(CANARIES, len(quiet)))]
    return [{"config": p.config.to_dict(), "latency_s": p.latency_s} for p in picks]


def build_profile(spec: JobSpec, store: MeasurementStore, fingerprint: dict[str, Any]) -> Profile:
    """Fit on the training points; self-check on the held-out and beyond-range points."""
    ok = [p for p in store.points() if p.status == "ok" and p.latency_s]
    # Points still noisy after a second try are neither fitted nor mixed into the self-check figures:
    # they are reported apart (as validate does).
    pts = [p for p in ok if not p.noisy]
    train = [p for p in pts if p.role == "train"]
    model = fit_model(spec, store, train, spec.seed)
    self_check: dict[str, Any] = {role: _check(model, [p for p in pts if p.role == role])
                                  for role in ("train", "holdout", "beyond")}
    self_check["noisy"] = _check(model, [p for p in ok if p.noisy and p.role in ("holdout", "beyond")])
    self_check["by_group"] = {
        key: {role: _check(model, [p for p in pts if p.role == role and p.group == key]) for role in ("holdout", "beyond")}
        for key in sorted(model.coef_)}
    mem_pts = [p for p in store.points(role="memory") if p.status == "ok"]
    memory = MemoryModel().fit([p.config for p in mem_pts], [p.peak_memory_bytes for p in mem_pts])
    self_check["memory_in_sample"] = error_summary([p.peak_memory_bytes for p in mem_pts],
                                                   [memory.predict_one(p.config) for p in mem_pts])
    oom = sum(p.status == "oom" for p in store.points())
    return Profile(
        path=None,
        fingerprint=store.get_meta("fingerprint") or fingerprint,
        job=spec.model_dump(mode="json"),
        ranges={key: model.fit_range_[key] for key in model.fit_range_},
        ceilings=_ceilings(spec, store),
        self_check={**self_check, "oom_points": oom, "measuring_s": store.spent_s(),
                    "speed_drift": SpeedModel.from_store(store, [key for key, *_ in _groups(spec)]).summary(),
                    "unit_counts": {k: len(store.units(k)) for k in sorted({u.table for u in store.units()})}},
        cost_model=model,
        memory_model=memory,
        canaries=_canaries(train),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        measurements=[{"group": p.group, "role": p.role, "config": p.config.to_dict(), "status": p.status,
                       "latency_s": p.latency_s, "latency_iqr_s": p.latency_iqr_s, "noisy": p.noisy,
                       "first_call_s": p.first_call_s, "peak_memory_bytes": p.peak_memory_bytes}
                      for p in store.points()],
    )
