"""The calibrated side of a run: a loaded profile, described as plain data for results.json and the
report, and the cost model the studies ask for times (``gru_sim.predict.Predictor``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..config import GruConfig
from ..model.kernel_times import CallTimes
from ..model.profile import load_profile
from ..predict import Prediction, Predictor

ProgressFn = Callable[[str, int, int], None]
"""``progress(task, done, total)``: called as a study advances (the CLI draws a bar from it)."""


class CostModel(Protocol):
    """What the studies ask of the calibrated cost model (``gru_sim.predict.Predictor``)."""

    def predict(self, config: GruConfig) -> Prediction: ...

    def predict_many(self, configs: list[GruConfig]) -> list[Prediction]: ...

    def call_times(self, config: GruConfig) -> CallTimes: ...

    def service_time_s(self, config: GruConfig) -> float: ...


@dataclass(frozen=True)
class Engine:
    """A loaded profile, described as plain data for the report, and the cost model it holds."""

    profile: dict[str, Any]
    model: CostModel


EngineFactory = Callable[[Path], Engine]


def load_engine(profile_path: Path) -> Engine:
    """Load a calibration profile and its cost model (raises ProfileError)."""
    profile = load_profile(profile_path)
    return Engine(profile=profile_info(profile.path or profile_path, profile.fingerprint, profile.self_check,
                                       profile.ranges, profile.ceilings, profile.created_at),
                  model=Predictor(profile))


def profile_info(path: Path | str, fingerprint: dict[str, Any], self_check: dict[str, Any],
                 ranges: dict[str, Any], ceilings: dict[str, Any], created_at: str | None) -> dict[str, Any]:
    """What results.json and the report say about a profile. Ranges, self-check and ceilings are kept
    per hardware group (``device/dtype/impl/tN``) as the profile holds them; a ceiling's raw
    micro-benchmarks are left out."""
    def scalars(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}

    return {"path": str(path), "created_at": created_at, "fingerprint": dict(fingerprint),
            "self_check": dict(self_check), "ranges": dict(ranges),
            "ceilings": {k: scalars(v) if isinstance(v, dict) else v for k, v in ceilings.items()}}
