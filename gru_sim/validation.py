"""What a validation found: for configurations the profile was never fitted on, the measured and the
predicted latency of each, and the error figures over them — overall, inside and beyond the
calibrated range, on the shipped application shapes, per axis, noisy measurements apart, and how far
apart the machine put the same configuration's rounds — as frozen records and as validation.json.

No torch here (measuring is :mod:`gru_sim.validate`'s job), so the report can read these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .groups import GroupKey
from .model.costmodel import AXES
from .model.metrics import ape, bootstrap_median_ci, common_level, error_summary

# Figures of every summary, in validation.json's order.
FIGURES = ("n", "median_ape", "mape", "p90_ape", "within_5pct", "within_10pct", "within_15pct", "rmsle",
           "interval_coverage", "median_ape_ci95", "common_level", "median_ape_after_level")


@dataclass(frozen=True)
class ErrorFigures:
    """How wrong a set of predictions is: APEs in percent, ``within_*`` and ``interval_coverage`` as
    fractions, ``median_ape_ci95`` a bootstrap 95% interval of the median APE (None under 2 points).

    ``common_level`` is the median ratio predicted / measured (geometric): for latencies on a machine
    whose speed moves, the part of the error that is the machine's current speed against the profile's
    typical one, shared by every configuration; ``median_ape_after_level`` the median APE once it is
    divided out — the error in how time depends on the shape."""

    n: int
    median_ape: float | None = None
    mape: float | None = None
    p90_ape: float | None = None
    within_5pct: float | None = None
    within_10pct: float | None = None
    within_15pct: float | None = None
    rmsle: float | None = None
    interval_coverage: float | None = None
    median_ape_ci95: tuple[float, float] | None = None
    common_level: float | None = None
    median_ape_after_level: float | None = None

    @classmethod
    def of(cls, measured: Sequence[float], predicted: Sequence[float],
           intervals: Sequence[Sequence[float]] | None = None) -> "ErrorFigures":
        s = error_summary(measured, predicted, intervals if len(measured) else None)
        errors = ape(measured, predicted) if len(measured) else np.empty(0)
        level, after = common_level(measured, predicted) if len(measured) else (None, None)
        return cls(**s, median_ape_ci95=bootstrap_median_ci(errors), common_level=level,  # type: ignore[arg-type]
                   median_ape_after_level=after)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["median_ape_ci95"] = None if self.median_ape_ci95 is None else list(self.median_ape_ci95)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ErrorFigures":
        values = {k: data.get(k) for k in FIGURES}
        values["n"] = int(values["n"] or 0)
        ci = values["median_ape_ci95"]
        values["median_ape_ci95"] = None if ci is None else (float(ci[0]), float(ci[1]))
        return cls(**values)


@dataclass(frozen=True)
class RoundSpread:
    """How far apart the same configuration measured in separate rounds lies: per configuration the
    slowest round over the fastest, less 1, in percent — the machine's own spread, a floor under any
    model's error on this machine (``n`` configurations measured in at least two rounds)."""

    n: int
    median_pct: float | None = None
    p90_pct: float | None = None

    @classmethod
    def of(cls, rounds_s: Sequence[Sequence[float]]) -> "RoundSpread":
        spreads = [100.0 * (max(r) / min(r) - 1.0) for r in rounds_s if len(r) >= 2 and min(r) > 0]
        if not spreads:
            return cls(0)
        return cls(len(spreads), float(np.median(spreads)), float(np.percentile(spreads, 90)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RoundSpread":
        """A validation.json written before rounds were taken has none: n = 0."""
        if not data:
            return cls(0)
        return cls(int(data.get("n") or 0), data.get("median_pct"), data.get("p90_pct"))


@dataclass(frozen=True)
class MachinePace:
    """How fast the machine ran while it was validated, against the speed the profile was calibrated at:
    per hardware group, the calibration's reference call timed before each round and after the last,
    its median over the profile's typical time (``reference_x``, >1: slower now) and the kernels'
    slowdown that implies (``kernels_x``: that to the measured power the calibration takes it to,
    :data:`gru_sim.calibrate.drift.KERNEL_ELASTICITY`). ``inside_range`` and ``extrapolated`` are the
    error figures with each measurement divided by its group's ``kernels_x``: the profile's error at the
    pace it was made at — read from a measurement of the machine, not fitted to the configurations'
    own errors as the common level is."""

    groups: dict[str, dict[str, float]]
    inside_range: ErrorFigures
    extrapolated: ErrorFigures
    applications: ErrorFigures = ErrorFigures(0)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": {g: dict(v) for g, v in self.groups.items()}, "inside_range": self.inside_range.to_dict(),
                "extrapolated": self.extrapolated.to_dict(), "applications": self.applications.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MachinePace | None":
        """None for a validation.json written without it (a profile that does not say its pace)."""
        if not data:
            return None
        return cls({g: dict(v) for g, v in data["groups"].items()}, ErrorFigures.from_dict(data["inside_range"]),
                   ErrorFigures.from_dict(data["extrapolated"]),
                   ErrorFigures.from_dict(data.get("applications") or {"n": 0}))


@dataclass(frozen=True)
class ValidationSummary:
    """The error figures of a validation. Points flagged noisy even when re-measured are kept apart
    (``noisy``) and out of the others. ``inside_range`` and ``extrapolated`` are the sampled (or given)
    configurations inside and beyond the calibrated range, ``applications`` the shipped application
    shapes (rows with an ``application`` name, see :func:`gru_sim.validate.application_configs`),
    ``overall`` all of them;
    ``per_axis`` splits the inside points into thirds (low, mid,
    high) of each size axis, or by value for the others, and the beyond points by the axis they leave
    the range along; ``memory`` compares the peak memory probed; ``oom`` counts configurations that did
    not fit; ``machine_spread`` how far apart each configuration's rounds were (:class:`RoundSpread`);
    ``machine_pace`` the machine's speed against the profile's calibration (:class:`MachinePace`; None
    where the profile does not record its reference call's time)."""

    overall: ErrorFigures
    inside_range: ErrorFigures
    extrapolated: ErrorFigures
    per_axis: dict[str, dict[str, ErrorFigures]]
    noisy: ErrorFigures
    memory: ErrorFigures
    oom: int
    machine_spread: RoundSpread = RoundSpread(0)
    machine_pace: MachinePace | None = None
    applications: ErrorFigures = ErrorFigures(0)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(), "inside_range": self.inside_range.to_dict(),
                "extrapolated": self.extrapolated.to_dict(), "applications": self.applications.to_dict(),
                "per_axis": {axis: {k: f.to_dict() for k, f in parts.items()} for axis, parts in self.per_axis.items()},
                "noisy": self.noisy.to_dict(), "memory": self.memory.to_dict(), "oom": self.oom,
                "machine_spread": self.machine_spread.to_dict(),
                "machine_pace": None if self.machine_pace is None else self.machine_pace.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ValidationSummary":
        f = ErrorFigures.from_dict
        return cls(overall=f(data["overall"]), inside_range=f(data["inside_range"]),
                   extrapolated=f(data["extrapolated"]),
                   per_axis={axis: {k: f(v) for k, v in parts.items()} for axis, parts in data["per_axis"].items()},
                   noisy=f(data["noisy"]), memory=f(data["memory"]), oom=int(data["oom"]),
                   machine_spread=RoundSpread.from_dict(data.get("machine_spread")),
                   machine_pace=MachinePace.from_dict(data.get("machine_pace")),
                   applications=f(data.get("applications") or {"n": 0}))


@dataclass(frozen=True)
class Validation:
    """A validation run: the profile's summary, this machine's fingerprint, the summary figures and one
    row per configuration (the rows of validation.json: ``config``, ``status``, measured and predicted
    latency, ``latency_interval_s``, ``ape``, ``extrapolated``, ``noisy``, peak memory)."""

    profile: dict[str, Any]
    fingerprint: dict[str, Any]
    summary: ValidationSummary
    rows: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """The content of validation.json."""
        return {"profile": self.profile, "fingerprint": self.fingerprint, "summary": self.summary.to_dict(),
                "rows": [dict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Validation":
        """Read validation.json's content back."""
        return cls(profile=dict(data.get("profile") or {}), fingerprint=dict(data.get("fingerprint") or {}),
                   summary=ValidationSummary.from_dict(data["summary"]), rows=tuple(data.get("rows") or ()))


def measured_row(prediction: Any, measured_latency_s: float, measured_iqr_s: float, noisy: bool,
                 measured_peak_memory_bytes: int | None = None, rounds_s: Sequence[float] = (),
                 application: str | None = None) -> dict[str, Any]:
    """The validation.json row of a configuration measured and predicted (``prediction``: a
    :class:`gru_sim.predict.Prediction`); ``rounds_s``: its median latency in each round, when it was
    measured in several (``measured_latency_s`` is then their median); ``application``: the name of
    the shipped application shape it is (None for a sampled or given configuration)."""
    return {
        "config": prediction.config.to_dict(),
        "application": application,
        "status": "ok",
        "measured_latency_s": measured_latency_s,
        **({"measured_rounds_s": [float(x) for x in rounds_s]} if rounds_s else {}),
        "measured_iqr_s": measured_iqr_s,
        "predicted_latency_s": prediction.latency_s,
        "latency_interval_s": list(prediction.latency_interval_s),
        "ape": float(ape([measured_latency_s], [prediction.latency_s])[0]),
        "extrapolated": prediction.extrapolated,
        "extrapolated_axes": dict(prediction.extrapolated_axes),
        "noisy": noisy,
        "measured_peak_memory_bytes": measured_peak_memory_bytes,
        "predicted_peak_memory_bytes": prediction.peak_memory_bytes,
        "profile_match": prediction.profile_match,
        **({"profile_mismatch": prediction.profile_mismatch} if not prediction.profile_match else {}),
        "fits_in_memory": prediction.fits_in_memory,
    }


def _figures(rows: list[dict[str, Any]]) -> ErrorFigures:
    return ErrorFigures.of([r["measured_latency_s"] for r in rows], [r["predicted_latency_s"] for r in rows],
                           [r["latency_interval_s"] for r in rows])


def _at_pace(rows: list[dict[str, Any]], kernels_x: Mapping[str, float]) -> ErrorFigures:
    """The figures of ``rows`` with each measurement divided by its group's kernel slowdown."""
    def group(r: dict[str, Any]) -> str:
        c = r["config"]
        return str(GroupKey(c["device"], c["dtype"], c["impl"], c["threads"]))

    paced = [r for r in rows if group(r) in kernels_x]
    return ErrorFigures.of([r["measured_latency_s"] / kernels_x[group(r)] for r in paced],
                           [r["predicted_latency_s"] for r in paced], [r["latency_interval_s"] for r in paced])


def _machine_pace(pace: Mapping[str, Mapping[str, float]], inside: list[dict[str, Any]],
                  beyond: list[dict[str, Any]], apps: list[dict[str, Any]]) -> MachinePace:
    kernels_x = {g: v["kernels_x"] for g, v in pace.items()}
    return MachinePace({g: dict(v) for g, v in pace.items()}, _at_pace(inside, kernels_x), _at_pace(beyond, kernels_x),
                       _at_pace(apps, kernels_x))


def summarise(rows: Sequence[dict[str, Any]], pace: Mapping[str, Mapping[str, float]] | None = None
              ) -> ValidationSummary:
    """Overall, inside-range and extrapolated figures, per axis, and noisy points apart; with ``pace``
    (per group: ``reference_x`` and ``kernels_x``, see :class:`MachinePace`) the figures at the
    profile's pace too."""
    ok = [r for r in rows if r["status"] == "ok"]
    quiet = [r for r in ok if not r["noisy"]]
    apps = [r for r in quiet if r.get("application")]
    inside = [r for r in quiet if not r["extrapolated"] and not r.get("application")]
    beyond = [r for r in quiet if r["extrapolated"] and not r.get("application")]
    per_axis: dict[str, dict[str, ErrorFigures]] = {}
    for axis in (*AXES, "bidirectional", "mode", "threads"):
        along = [r for r in beyond if axis in r["extrapolated_axes"]]
        entry: dict[str, ErrorFigures] = {"beyond": _figures(along)}
        if axis in AXES and inside:
            values = np.array([r["config"][axis] for r in inside], dtype=float)
            cuts = np.quantile(values, [1 / 3, 2 / 3])
            for name, sel in (("low", values <= cuts[0]), ("mid", (values > cuts[0]) & (values <= cuts[1])),
                              ("high", values > cuts[1])):
                entry[f"inside_{name}"] = _figures([r for r, s in zip(inside, sel) if s])
        else:
            for v in sorted({r["config"][axis] for r in inside}, key=str):
                entry[f"inside_{v}"] = _figures([r for r in inside if r["config"][axis] == v])
        per_axis[axis] = entry
    mem = [r for r in ok if r["measured_peak_memory_bytes"]]
    return ValidationSummary(
        overall=_figures(quiet), inside_range=_figures(inside), extrapolated=_figures(beyond), per_axis=per_axis,
        noisy=_figures([r for r in ok if r["noisy"]]),
        memory=ErrorFigures.of([r["measured_peak_memory_bytes"] for r in mem],
                               [r["predicted_peak_memory_bytes"] for r in mem]),
        oom=sum(r["status"] == "oom" for r in rows),
        machine_spread=RoundSpread.of([r.get("measured_rounds_s") or () for r in quiet]),
        machine_pace=None if not pace else _machine_pace(pace, inside, beyond, apps),
        applications=_figures(apps))
