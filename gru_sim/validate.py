"""Validation: how wrong the profile's predictions are on this machine, measured now.

``choose_configs`` picks configurations the profile was never fitted on — a random sample inside the
calibrated ranges and slices beyond them along each axis — and ``validate`` measures them with the
real kernels and compares. A measurement flagged noisy is taken again; one still noisy is reported
apart rather than mixed in. ``quick_check`` re-measures the profile's canary configurations to tell
whether the profile still describes this machine (after a driver or torch upgrade, say).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .config import GruConfig
from .errors import GruSimError, OutOfMemoryError
from .measure import measure_gru
from .measure.fingerprint import fingerprint
from .measure.memory import peak_memory_cpu
from .measure.timing import TimingPolicy
from .machine import differences
from .model.costmodel import AXES
from .model.metrics import ape, bootstrap_median_ci, error_summary
from .predict import Predictor
from .model.profile import Profile

LOG_AXES = ("batch", "seq_len", "input_size", "hidden_size")
# Drift verdict: canaries whose median latency moved by more than this share of the calibrated value.
DRIFT_THRESHOLD = 0.20
Progress = Callable[[int, int, str], None]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _groups(profile: Profile) -> list[tuple[str, str, str, int]]:
    out = []
    for key in profile.cost_model.coef_:
        device, dtype, impl, t = key.split("/")
        out.append((device, dtype, impl, int(t[1:])))
    return sorted(out)


def choose_configs(profile: Profile, sample: int, seed: int = 0, max_call_s: float | None = None) -> list[GruConfig]:
    """``sample`` random configs inside the calibrated ranges, plus one beyond the range along each
    axis per group; each one predicted to take at most ``max_call_s`` (default: the job's)."""
    rng = np.random.default_rng(seed + 99991)
    predictor = Predictor(profile)
    limit = max_call_s or float(profile.job.get("max_call_s", 0.25))
    fitted = {(m["group"], m["role"], tuple(sorted(m["config"].items()))) for m in profile.measurements}
    groups = _groups(profile)
    out: list[GruConfig] = []

    def draw(group: tuple[str, str, str, int], overrides: dict[str, Any]) -> GruConfig | None:
        device, dtype, impl, threads = group
        rngs = profile.cost_model.fit_range_[f"{device}/{dtype}/{impl}/t{threads}"]
        for _ in range(200):
            sizes = {a: _log_uniform(rng, *rngs[a]) for a in LOG_AXES}
            lo, hi = rngs["num_layers"]
            c = GruConfig(**{**sizes, "num_layers": int(rng.integers(lo, hi + 1)),
                             "bidirectional": bool(rng.choice(rngs["bidirectional"])),
                             "mode": str(rng.choice(rngs["mode"])), "dtype": dtype, "impl": impl,
                             "device": device, "threads": threads, **overrides})
            key = (f"{device}/{dtype}/{impl}/t{threads}", "train", tuple(sorted(c.to_dict().items())))
            if key in fitted:
                continue
            if predictor.service_time_s(c) <= limit:
                return c
        return None

    for k in range(sample):
        c = draw(groups[k % len(groups)], {})
        if c is not None:
            out.append(c)
    for group in groups:
        rngs = profile.cost_model.fit_range_[f"{group[0]}/{group[1]}/{group[2]}/t{group[3]}"]
        for axis in AXES:
            hi = rngs[axis][1]
            c = draw(group, {axis: _log_uniform(rng, hi * 1.25, hi * 2)})
            if c is not None:
                out.append(c)
        for flag, values in (("bidirectional", [True, False]), ("mode", ["inference", "training"])):
            missing = [v for v in values if v not in rngs[flag]]
            if missing and (c := draw(group, {flag: missing[0]})) is not None:
                out.append(c)
    return out


@dataclass(frozen=True)
class ValidationPolicy:
    """How to measure: the harness policy, how many peak-memory probes, re-measuring noisy points."""

    timing: TimingPolicy = TimingPolicy(min_sample_s=0.002, budget_s=0.5, min_samples=9, max_samples=40)
    memory_probes: int = 4
    remeasure_noisy: bool = True


def validate(profile: Profile, configs: list[GruConfig], policy: ValidationPolicy = ValidationPolicy(),
             progress: Progress | None = None) -> dict[str, Any]:
    """Measure ``configs`` and compare with ``profile``'s predictions; returns the validation document."""
    progress = progress or (lambda done, total, what: None)
    predictor = Predictor(profile)
    rows: list[dict[str, Any]] = []
    probes_left = policy.memory_probes
    for n, config in enumerate(configs):
        progress(n, len(configs), str(config.to_dict()))
        pred = predictor.predict(config)
        try:
            m = measure_gru(config, policy=policy.timing, probe_memory=False, check_error=False)
            if m.noisy and policy.remeasure_noisy:
                m = measure_gru(config, policy=policy.timing, probe_memory=False, check_error=False)
        except OutOfMemoryError as err:
            rows.append({"config": config.to_dict(), "status": "oom", "message": str(err)})
            continue
        measured_mem = None
        if probes_left > 0 and config.device == "cpu" and pred["peak_memory_bytes"] >= 8 * 2**20:
            measured_mem = peak_memory_cpu(config)
            probes_left -= 1
        rows.append({
            "config": config.to_dict(),
            "status": "ok",
            "measured_latency_s": m.latency_s,
            "measured_iqr_s": m.latency_iqr_s,
            "predicted_latency_s": pred["latency_s"],
            "latency_interval_s": pred["latency_interval_s"],
            "ape": float(ape([m.latency_s], [pred["latency_s"]])[0]),
            "extrapolated": pred["extrapolated"],
            "extrapolated_axes": pred["extrapolated_axes"],
            "noisy": m.noisy,
            "measured_peak_memory_bytes": measured_mem,
            "predicted_peak_memory_bytes": pred["peak_memory_bytes"],
        })
    progress(len(configs), len(configs), "done")
    return {"profile": profile.summary(), "fingerprint": fingerprint(configs[0].device if configs else "cpu"),
            "summary": summarise(rows), "rows": rows}


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    s = error_summary([r["measured_latency_s"] for r in rows], [r["predicted_latency_s"] for r in rows],
                      [r["latency_interval_s"] for r in rows] if rows else None)
    s["median_ape_ci95"] = bootstrap_median_ci([r["ape"] for r in rows])
    return s


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall, inside-range and extrapolated figures, per axis, and noisy points apart."""
    ok = [r for r in rows if r["status"] == "ok"]
    quiet = [r for r in ok if not r["noisy"]]
    inside = [r for r in quiet if not r["extrapolated"]]
    beyond = [r for r in quiet if r["extrapolated"]]
    per_axis: dict[str, Any] = {}
    for axis in (*AXES, "bidirectional", "mode", "threads"):
        along = [r for r in beyond if axis in r["extrapolated_axes"]]
        entry: dict[str, Any] = {"beyond": _stats(along)}
        if axis in AXES and inside:
            values = np.array([r["config"][axis] for r in inside], dtype=float)
            cuts = np.quantile(values, [1 / 3, 2 / 3])
            for name, sel in (("low", values <= cuts[0]), ("mid", (values > cuts[0]) & (values <= cuts[1])),
                              ("high", values > cuts[1])):
                entry[f"inside_{name}"] = _stats([r for r, s in zip(inside, sel) if s])
        else:
            for v in sorted({r["config"][axis] for r in inside}, key=str):
                entry[f"inside_{v}"] = _stats([r for r in inside if r["config"][axis] == v])
        per_axis[axis] = entry
    mem = [r for r in ok if r["measured_peak_memory_bytes"]]
    return {
        "overall": _stats(quiet),
        "inside_range": _stats(inside),
        "extrapolated": _stats(beyond),
        "per_axis": per_axis,
        "noisy": _stats([r for r in ok if r["noisy"]]),
        "memory": error_summary([r["measured_peak_memory_bytes"] for r in mem],
                                [r["predicted_peak_memory_bytes"] for r in mem]),
        "oom": sum(r["status"] == "oom" for r in rows),
    }


def quick_check(profile: Profile, timing: TimingPolicy = TimingPolicy(budget_s=0.5)) -> dict[str, Any]:
    """Re-measure the profile's canaries; say whether the profile still describes this machine."""
    if not profile.canaries:
        raise GruSimError(f"{profile.path}: the profile stores no canary configurations to re-measure")
    ratios = []
    for canary in profile.canaries:
        config = GruConfig(**canary["config"])
        m = measure_gru(config, policy=timing, probe_memory=False, check_error=False)
        ratios.append(m.latency_s / canary["latency_s"])
    device = GruConfig(**profile.canaries[0]["config"]).device
    diff = differences(profile.fingerprint, fingerprint(device))
    drift = float(np.median(ratios)) - 1.0
    ok = abs(drift) <= DRIFT_THRESHOLD and not diff
    if ok:
        line = (f"profile OK: {len(ratios)} canaries run {drift:+.1%} against calibration "
                f"(within ±{DRIFT_THRESHOLD:.0%}); the profile still describes this machine")
    else:
        why = [f"canaries run {drift:+.1%} against calibration"] + ([f"stack differs ({'; '.join(diff)})"] if diff else [])
        line = f"profile DRIFTED: {', '.join(why)}; recalibrate with 'gru-sim calibrate'"
    return {"ok": ok, "drift": drift, "ratios": ratios, "differences": diff, "line": line}
