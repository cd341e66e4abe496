"""Validation: how wrong the profile's predictions are on this machine, measured now.

``choose_configs`` picks configurations the profile was never fitted on — a random sample inside the
calibrated ranges and slices beyond them along each axis — and ``validate`` measures them with the
real kernels and compares. The random sample draws shapes the way the calibration's design does (odd
sizes, log-uniform): ``application_configs`` adds the shapes people run, shipped with gru-sim
(``gru_sim/data/shapes/typical_shapes.csv``: keyword spotting, speech, NLP, translation, time series,
recommendation), which the design never draws and which are reported apart. Each configuration is
measured once per round (two by default, the second in a shuffled order): its figure is the median of
its rounds, and how far apart they lie is reported as the machine's own spread. A measurement flagged
noisy is taken again; one still noisy in every round is reported apart rather than mixed in.
``quick_check`` re-measures the profile's canary configurations to tell whether the profile still
describes this machine (after a driver or torch upgrade, say).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import write_text_atomic
from .calibrate.drift import KERNEL_ELASTICITY, REFERENCE
from .config import GruConfig, broken_rules, read_named_configs_csv
from .errors import GruSimError, OutOfMemoryError
from .groups import GroupKey
from .measure import measure_gru
from .measure.fingerprint import fingerprint
from .measure.memory import peak_memory_cpu
from .measure.timing import TimingPolicy
from .locations import PACKAGE_DATA_DIR
from .machine import differences
from .model.costmodel import AXES
from .predict import Predictor
from .model.profile import Profile
from .validation import Validation, measured_row, summarise

LOG_AXES = ("batch", "seq_len", "input_size", "hidden_size")
# Drift verdict: canaries whose median latency moved by more than this share of the calibrated value.
DRIFT_THRESHOLD = 0.20
# Timings of the calibration's reference call per group each time the machine's pace is read (before
# each round and after the last): their median is one reading.
PACE_TIMINGS = 3
Progress = Callable[[int, int, str], None]


# The application shapes ``validate`` measures (unless ``--no-apps``): a hold-out no calibration fits on.
APPLICATION_SHAPES = PACKAGE_DATA_DIR / "shapes" / "typical_shapes.csv"


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _groups(profile: Profile) -> list[GroupKey]:
    return sorted(GroupKey.parse(key) for key in profile.cost_model.coef_)


def choose_configs(profile: Profile, sample: int, seed: int = 0, max_call_s: float | None = None) -> list[GruConfig]:
    """``sample`` random configs inside the calibrated ranges, plus one beyond the range along each
    axis per group; each one predicted to take at most ``max_call_s`` (default: the job's)."""
    rng = np.random.default_rng(seed + 99991)
    predictor = Predictor(profile)
    limit = max_call_s or float(profile.job.get("max_call_s", 0.25))
    fitted = {(m["group"], m["role"], tuple(sorted(m["config"].items()))) for m in profile.measurements}
    groups = _groups(profile)
    out: list[GruConfig] = []

    def draw(group: GroupKey, overrides: dict[str, Any]) -> GruConfig | None:
        rngs = profile.cost_model.fit_range_[str(group)]
        for _ in range(200):
            sizes = {a: _log_uniform(rng, *rngs[a]) for a in LOG_AXES}
            lo, hi = rngs["num_layers"]
            c = GruConfig(**{**sizes, "num_layers": int(rng.integers(lo, hi + 1)),
                             "bidirectional": bool(rng.choice(rngs["bidirectional"])),
                             "mode": str(rng.choice(rngs["mode"])), "dtype": group.dtype, "impl": group.impl,
                             "device": group.device, "threads": group.threads, **overrides})
            key = (str(group), "train", tuple(sorted(c.to_dict().items())))
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
        rngs = profile.cost_model.fit_range_[str(group)]
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


def application_configs(profile: Profile, path: Path = APPLICATION_SHAPES) -> list[tuple[str, GruConfig]]:
    """``(name, config)`` for every shape of ``path`` (a ``name`` column, then shape-flag columns) in
    every hardware group of ``profile`` (device, dtype, implementation, threads) that can run it (the
    NumPy reference has no backward pass: it takes the inference shapes only)."""
    shapes = read_named_configs_csv(path, what="application shapes")
    return [(name, replace(c, dtype=g.dtype, impl=g.impl, device=g.device, threads=g.threads))
            for g in _groups(profile) for name, c in shapes if not broken_rules(g.device, g.dtype, g.impl, c.mode)]


@dataclass(frozen=True)
class ValidationPolicy:
    """How to measure: the harness policy, how many peak-memory probes, re-measuring noisy points, and
    in how many rounds (each configuration once per round, the later rounds in a shuffled order: on a
    machine whose speed moves, a configuration's median over rounds minutes apart, and how far apart
    they lie, the floor no model's error can go below)."""

    timing: TimingPolicy = TimingPolicy(min_sample_s=0.002, budget_s=0.5, min_samples=9, max_samples=40)
    memory_probes: int = 4
    remeasure_noisy: bool = True
    rounds: int = 2


def _measure(config: GruConfig, policy: ValidationPolicy) -> Any:
    m = measure_gru(config, policy=policy.timing, probe_memory=False, check_error=False)
    if m.noisy and policy.remeasure_noisy:
        m = measure_gru(config, policy=policy.timing, probe_memory=False, check_error=False)
    return m


def reference_now_s(group: GroupKey) -> float:
    """The calibration's reference call (:data:`gru_sim.calibrate.drift.REFERENCE`) on ``group``, now:
    the median of ``PACE_TIMINGS`` timings."""
    from .measure.units import reference_call_s

    return float(np.median([reference_call_s(REFERENCE["batch"], REFERENCE["hidden"], REFERENCE["steps"],
                                             group.dtype, group.impl, group.device, group.threads)
                            for _ in range(PACE_TIMINGS)]))


def pace_against(readings_s: Sequence[float], typical_s: float) -> dict[str, float]:
    """The machine's pace: the reference call's median reading over its ``typical_s`` (``reference_x``,
    >1: slower now) and the kernels' slowdown that implies (``kernels_x``, to the power the calibration
    takes it to, :data:`gru_sim.calibrate.drift.KERNEL_ELASTICITY`)."""
    ratio = float(np.median(readings_s)) / typical_s
    return {"reference_x": ratio, "kernels_x": ratio ** KERNEL_ELASTICITY}


def typical_reference_s(profile: Profile, configs: list[GruConfig]) -> dict[str, float]:
    """Per group of ``configs``: the reference call's time at the speed the profile was calibrated at
    (``self_check.speed_drift``; {} for a profile that does not record it, as one built before did not)."""
    drift = profile.self_check.get("speed_drift") or {}
    groups = {str(GroupKey.of(c)) for c in configs}
    return {g: float(v["typical_reference_s"]) for g, v in drift.items()
            if g in groups and v.get("typical_reference_s")}


def validate(profile: Profile, configs: list[GruConfig], policy: ValidationPolicy = ValidationPolicy(),
             progress: Progress | None = None, seed: int = 0,
             applications: Sequence[str | None] | None = None) -> Validation:
    """Measure ``configs`` in ``policy.rounds`` rounds and compare with ``profile``'s predictions;
    where the profile records its reference call's time, that call is timed before each round and after
    the last, and the machine's pace against the calibration is reported beside the errors.
    ``applications``: per configuration, the application shape's name (None where it is not one)."""
    if policy.rounds < 1:
        raise GruSimError(f"rounds(={policy.rounds}) must be at least 1")
    names = list(applications) if applications is not None else [None] * len(configs)
    if len(names) != len(configs):
        raise GruSimError(f"{len(names)} application names for {len(configs)} configurations")
    progress = progress or (lambda done, total, what: None)
    predictor = Predictor(profile)
    predictions = [predictor.predict(c) for c in configs]
    taken: list[list[Any]] = [[] for _ in configs]
    failed: dict[int, str] = {}
    rng = np.random.default_rng(seed + 7919)
    total, done = policy.rounds * len(configs), 0
    typical = typical_reference_s(profile, configs)
    paces: dict[str, list[float]] = {g: [] for g in typical}

    def read_pace() -> None:
        for g in typical:
            paces[g].append(reference_now_s(GroupKey.parse(g)))

    for r in range(policy.rounds):
        read_pace()
        for k in (range(len(configs)) if r == 0 else rng.permutation(len(configs))):
            progress(done, total, str(configs[k].to_dict()))
            done += 1
            if k in failed:
                continue
            try:
                taken[k].append(_measure(configs[k], policy))
            except OutOfMemoryError as err:
                failed[int(k)] = str(err)
    read_pace()
    pace = {g: {**pace_against(readings, typical[g]), "readings": len(readings)} for g, readings in paces.items()}
    rows: list[dict[str, Any]] = []
    probes_left = policy.memory_probes
    for k, (config, pred) in enumerate(zip(configs, predictions)):
        if not taken[k]:
            rows.append({"config": config.to_dict(), "application": names[k], "status": "oom", "message": failed[k]})
            continue
        measured_mem = None
        if probes_left > 0 and config.device == "cpu" and pred.peak_memory_bytes >= 8 * 2**20:
            measured_mem = peak_memory_cpu(config)
            probes_left -= 1
        ms = taken[k]
        rounds_s = [m.latency_s for m in ms] if len(ms) > 1 else []
        # The figure is the median of the rounds whose samples were tight enough to trust; noisy: no
        # round's were, even when re-measured.
        trusted = [m for m in ms if not m.noisy] or ms
        rows.append(measured_row(pred, float(np.median([m.latency_s for m in trusted])),
                                 float(np.median([m.latency_iqr_s for m in trusted])), all(m.noisy for m in ms),
                                 measured_mem, rounds_s, names[k]))
    progress(total, total, "done")
    return Validation(profile=profile.summary(), fingerprint=fingerprint(configs[0].device if configs else "cpu"),
                      summary=summarise(rows, pace), rows=tuple(rows))


def write_validation(validation: Validation, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``validation.json`` and its ``report.html`` into ``out_dir`` (created); returns both paths."""
    from .report import render_validation_report  # plotly only when a report is written

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GruSimError(f"{out_dir}: cannot create the output folder: {err.strerror}") from None
    json_path = write_text_atomic(out_dir / "validation.json",
                                  json.dumps(validation.to_dict(), indent=1, allow_nan=False) + "\n")
    return json_path, render_validation_report(validation, out_dir / "report.html")


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
