"""``gru-sim calibrate --quick``: adapt another machine's profile to this one in about a minute.

The source profile keeps what a full calibration learned about shapes — the fine structure of its
unit tables and the residual on whole calls. This machine re-times what sets the level: a coarse
sub-grid of step units (with points either side of *this* machine's cache sizes; each timed twice,
seconds apart, and read as the source's units were timed), a coarse grid of projection GEMMs, the
bandwidth of each memory level and the roofline ceilings; the tables are scaled by the new / old ratios
(:mod:`gru_sim.model.adapt`). A few whole calls the source held out are then
measured here: their errors are the adapted profile's self-check, and widen its interval when they
are worse than the source's. Everything goes to a store beside the output, so an interrupted
adaptation resumes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import GruConfig
from ..errors import GruSimError
from ..groups import GroupKey
from ..machine import cache_levels, differences, simd_bytes
from ..measure import measure_gru
from ..measure.fingerprint import fingerprint
from ..measure.primitives import quick_ceilings
from ..measure.timing import TimingPolicy
from ..model.adapt import adapt_gemm_table, adapt_step_table
from ..model.costmodel import GruCostModel, gemm_key, step_key
from ..model.metrics import error_summary
from ..model.profile import Profile, save_profile
from .build import _ceilings
from .jobs import JobSpec
from .runner import store_path_for
from .store import MeasurementStore
from .unit_grid import UnitTimer, gemm_axes, gemm_table, memory_levels, step_table

Progress = Callable[[str], None]
QUICK_BATCHES = (1, 4, 16, 64, 256)
CHECK_CALLS = 6            # whole calls per group measured to check the adapted profile
CHECK_MAX_CALL_S = 0.1
# The check calls of each group and mode: the held-out calls predicted nearest these durations. Picked
# at random, half of them took under 3 ms, where a call is mostly fixed costs that a change of kernels
# hardly moves (on the emulated machine of the README they said 5.6% where the typical shapes gave 16.7%).
CHECK_TARGETS_S = (0.003, 0.015, 0.07)
CHECK_POLICY = TimingPolicy(min_sample_s=0.002, budget_s=0.3, min_samples=7, max_samples=25)


def _nearest_subset(values: tuple[int, ...], wanted: list[float]) -> list[int]:
    return sorted({min(values, key=lambda v: abs(math.log(v / w))) for w in wanted})


def quick_step_grid(batch: tuple[int, ...], hidden: tuple[int, ...], element_bytes: int) -> tuple[list[int], list[int]]:
    """The sub-grid a quick adaptation times: batch sizes a power of four apart, every third hidden size
    of the source, and the hidden sizes either side of this machine's cache sizes."""
    batches = _nearest_subset(batch, [b for b in QUICK_BATCHES if batch[0] <= b <= batch[-1]] or [batch[0]])
    hiddens = set(hidden[::3]) | {hidden[-1]}
    for c in cache_levels():
        if c["level"] >= 2:
            cliff = math.sqrt(c["size_bytes"] / (3.0 * element_bytes))
            hiddens |= {int(round(cliff * s / 16.0)) * 16 for s in (0.85, 1.15) if hidden[0] <= cliff * s <= hidden[-1]}
    return batches, sorted(hiddens)


def _quick_gemm_grid(source_grid: tuple[tuple[int, ...], ...], regular_m: Sequence[int]
                     ) -> tuple[list[int], list[int], list[int]]:
    """Every other point of the source's (round) grid, and its ends; of M only the job's regular grid
    (the source's columns were also timed at their own saturation M, see unit_grid.saturation_m)."""
    m, k, n = source_grid
    regular = set(regular_m)
    m = tuple(v for v in m if v in regular) or m
    return [sorted({*g[::2], g[-1]}) for g in (m, k, n)]  # type: ignore[return-value]


def adapt_profile(source: Profile, out: str | Path, progress: Progress | None = None) -> Profile:
    """Adapt ``source`` to this machine, write the result to ``out`` and return it."""
    progress = progress or (lambda what: None)
    spec = JobSpec.model_validate(source.job)
    here = fingerprint(spec.device)
    cores = os.cpu_count() or 1
    model = source.cost_model
    groups = [g for g in model.coef_ if GroupKey.parse(g).threads <= cores]
    if not groups:
        raise GruSimError(f"{source.path}: every group needs more threads than this machine's {cores} cores: "
                          "run a full 'gru-sim calibrate' instead")
    start = time.perf_counter()
    out = Path(out)
    with MeasurementStore(store_path_for(out)) as store:
        old = store.get_meta("fingerprint")
        if old is not None and (diff := differences(old, here)):
            raise GruSimError(f"{store.path} was measured on another machine ({'; '.join(diff)}); use another --out")
        store.set_meta("fingerprint", here)
        store.set_meta("adapted_from", str(source.path))
        data = model.to_dict()
        if spec.device == "cpu":  # sizes are aligned or not by this machine's vector width
            data["settings"]["alignment_bytes"] = simd_bytes()
        for g in groups:
            key = GroupKey.parse(g)
            dtype, impl, threads = key.dtype, key.impl, key.threads
            modes = [m for m in ("inference", "training") if step_key(g, m) in model.step_tables_]
            src = model.step_tables_[step_key(g, modes[0])]
            gk = gemm_key(spec.device, dtype, threads)
            src_gemm = model.gemm_tables_[gk]
            sub_spec = spec.model_copy(update={"modes": modes})
            # Each step unit timed twice, seconds apart: one short timing in a slow spell of a shared
            # machine scales its whole region of the table (README, "Profiles for more than one
            # machine": six alternating adaptations on one AMD EPYC VM, the typical shapes' error once
            # the level is divided out 9.2-13.5% with two passes, 12.9-15.8% with one). The new / old
            # ratio needs the source's estimator: the faster of two timings where the source kept the
            # faster of two (unit_passes 2), else their geometric mean, which expects what one timing
            # does. The faster of two against the source's single timings read every unit fast by the
            # machine's own scatter: the typical shapes measured right after four adaptations on an
            # AMD EPYC VM came out -6% to -10% (-8% to -13% at 2 threads); read as one timing, -3% to
            # +1% (README; benchmarks/quick_runs.py).
            timer = UnitTimer(sub_spec, store, progress, quick_step_grid(src.batch, src.hidden, src.element_bytes),
                              _quick_gemm_grid((src_gemm.m, src_gemm.k, src_gemm.n), gemm_axes(spec)[0]),
                              two_passes=True, passes_as_one=spec.unit_passes == 1, intercepts=False)
            timer.run(g, dtype, impl, threads)
            if store.get_primitives(g) is None:
                progress(f"{g}: roofline ceilings")
                t0 = time.perf_counter()
                store.set_primitives(g, quick_ceilings(dtype, threads, spec.device), time.perf_counter() - t0)
            levels = memory_levels(store, spec.device, dtype, threads)
            for mode in modes:
                source_table = model.step_tables_[step_key(g, mode)]
                # Step units read net of the source's per-call intercepts, as the source's units are
                # (an adaptation does not time them: the long calls at large hidden sizes would take
                # its minute to 72 s of measuring); the adapted table keeps the source's.
                sub = step_table(store, sub_spec, g, mode, dtype, threads,
                                 fallback_intercepts=source_table.intercepts_by_hidden() or None)
                if sub is None:
                    continue
                # No intercepts measured here: the sub-table's are the source's own, placed on its hidden
                # sizes, so the source's stand as they are.
                adapted = adapt_step_table(source_table, sub.batch, sub.hidden, sub.step_s, sub.matmul_s, levels)
                adapted.call_fixed_s = sub.call_fixed_s or adapted.call_fixed_s  # this machine's, measured
                data["step_tables"][step_key(g, mode)] = adapted.to_dict()
            sub_gemm = gemm_table(store, spec.device, dtype, threads)
            if sub_gemm is not None:
                data["gemm_tables"][gk] = adapt_gemm_table(src_gemm, sub_gemm.m, sub_gemm.k, sub_gemm.n,
                                                           sub_gemm.seconds).to_dict()
        data["groups"] = {g: data["groups"][g] for g in groups}
        data["step_tables"] = {k: v for k, v in data["step_tables"].items() if k.split("|")[0] in groups}
        adapted_model = GruCostModel.from_dict(data)
        checks = _check_calls(source, adapted_model, groups, store, progress)
        canaries = _canaries(source, store, groups)
        _widen(data, adapted_model, checks)
        adapted_model = GruCostModel.from_dict(data)
        measured = [p for p in checks if p["latency_s"]]
        predicted = [adapted_model.predict_one(GruConfig(**p["config"])) for p in measured]
        intervals = [adapted_model.interval_s(GruConfig(**p["config"]), q) for p, q in zip(measured, predicted)]
        profile = Profile(
            path=None, fingerprint=here, job={**source.job, "name": f"{source.job.get('name')}-quick"},
            ranges={g: adapted_model.fit_range_[g] for g in groups},
            ceilings={g: c for g, c in _ceilings(spec, store).items() if g in groups},
            self_check={"adapt_check": error_summary([p["latency_s"] for p in measured], predicted, intervals),
                        "source_holdout": source.self_check.get("holdout"), "measuring_s": store.spent_s(),
                        "wall_s": time.perf_counter() - start},
            cost_model=adapted_model, memory_model=source.memory_model, canaries=canaries,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            measurements=checks,
            adapted_from={"path": str(source.path), "fingerprint": source.fingerprint,
                          "created_at": source.created_at})
    save_profile(profile, out)
    return profile


def _measure_point(store: MeasurementStore, group: str, role: str, config: GruConfig) -> float | None:
    have = [p for p in store.points(group, role) if p.config == config]
    if have:
        return have[0].latency_s
    t0 = time.perf_counter()
    m = measure_gru(config, policy=CHECK_POLICY, probe_memory=False, check_error=False)
    store.add(group, role, config, "ok", time.perf_counter() - t0, latency_s=m.latency_s,
              latency_iqr_s=m.latency_iqr_s, noisy=m.noisy)
    return m.latency_s


def _check_calls(source: Profile, model: GruCostModel, groups: list[str], store: MeasurementStore,
                 progress: Progress) -> list[dict[str, Any]]:
    """Whole calls the source held out (predicted under ``CHECK_MAX_CALL_S``, spread over durations and
    modes by :func:`_spread_by_cost`), measured here."""
    out = []
    for g in groups:
        held = [m for m in source.measurements if m.get("group") == g and m.get("role") in ("holdout", "beyond")
                and m.get("status") == "ok" and m.get("latency_s")]
        predicted = [(model.predict_one(GruConfig(**m["config"])), m) for m in held]
        predicted = [(t, m) for t, m in predicted if t <= CHECK_MAX_CALL_S]
        for m in _spread_by_cost(predicted, CHECK_CALLS):
            c = GruConfig(**m["config"])
            progress(f"{g}: check call B{c.batch} T{c.seq_len} H{c.hidden_size}")
            out.append({"group": g, "role": "check", "config": c.to_dict(), "status": "ok",
                        "latency_s": _measure_point(store, g, "check", c)})
    return out


def _spread_by_cost(predicted: list[tuple[float, dict[str, Any]]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` of the ``(predicted seconds, held-out call)`` pairs: per mode, the calls nearest each
    of ``CHECK_TARGETS_S`` (in log time), then others in the order given until ``n``."""
    picks: list[dict[str, Any]] = []
    picked: set[int] = set()  # ids of the picks: two held-out calls may be equal dicts

    def pick(m: dict[str, Any]) -> None:
        picks.append(m)
        picked.add(id(m))

    modes = sorted({m["config"].get("mode", "inference") for _, m in predicted})
    for target in CHECK_TARGETS_S:
        for mode in modes:
            left = [(t, m) for t, m in predicted if m["config"].get("mode", "inference") == mode
                    and id(m) not in picked]
            if left and len(picks) < n:
                pick(min(left, key=lambda tm: abs(math.log(tm[0] / target)) if tm[0] > 0 else math.inf)[1])
    for _, m in predicted:
        if len(picks) >= n:
            break
        if id(m) not in picked:
            pick(m)
    return picks


def _canaries(source: Profile, store: MeasurementStore, groups: list[str]) -> list[dict[str, Any]]:
    """The source's canary configurations, timed on this machine (the drift check's reference)."""
    out = []
    for canary in source.canaries:
        c = GruConfig(**canary["config"])
        g = f"{c.device}/{c.dtype}/{c.impl}/t{c.threads}"
        if g in groups:
            out.append({"config": c.to_dict(), "latency_s": _measure_point(store, g, "canary", c)})
    return out


def _widen(data: dict[str, Any], model: GruCostModel, checks: list[dict[str, Any]]) -> None:
    """Widen each group's interval to cover the check calls' errors (never narrow it)."""
    for g, gv in data["groups"].items():
        errs = [math.log(p["latency_s"] / model.predict_one(GruConfig(**p["config"])))
                for p in checks if p["group"] == g and p["latency_s"]]
        if not errs:
            continue
        lo, hi = float(np.min(errs)), float(np.max(errs))
        for mv in gv["modes"].values():
            q_lo, q_hi = mv["log_residual_quantiles"]
            mv["log_residual_quantiles"] = [min(q_lo, lo), max(q_hi, hi)]

