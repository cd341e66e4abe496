"""Calibration job specs: which device, number formats, modes, implementations and thread counts to
calibrate, over which range of each shape axis, and how much time to spend.

Specs are YAML files (``calibration/jobs/*.yaml``), read with a safe loader and validated; the
default spec of each device ships with gru-sim (inside the package, ``gru_sim/data/jobs/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import GruSimError
from ..locations import jobs_dir

# The default specs: a checkout's calibration/jobs/ (a link to gru_sim/data/jobs/), or the installed
# package's own copy (see gru_sim.locations).
JOBS_DIR = jobs_dir()

Dtype = Literal["float32", "float16", "bfloat16", "float64"]
Mode = Literal["inference", "training"]
Impl = Literal["torch-gru", "torch-gru-cell", "numpy-reference"]


class TimingSettings(BaseModel):
    """The harness settings used for whole-GRU points (see gru_sim.measure.timing)."""

    model_config = ConfigDict(extra="forbid")
    min_sample_s: float = Field(0.002, gt=0)
    budget_s: float = Field(0.2, gt=0)
    min_samples: int = Field(7, ge=1)
    max_samples: int = Field(25, ge=1)


class JobSpec(BaseModel):
    """One calibration job. Axis ranges are [low, high], inclusive."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    device: Literal["cpu", "cuda"]
    dtypes: list[Dtype] = Field(min_length=1)
    modes: list[Mode] = Field(min_length=1)
    impls: list[Impl] = Field(min_length=1)
    threads: list[int] = Field(min_length=1)
    batch: tuple[int, int]
    seq_len: tuple[int, int]
    input_size: tuple[int, int]
    hidden_size: tuple[int, int]
    num_layers: tuple[int, int]
    bidirectional: list[bool] = Field(min_length=1)
    budget_s: float = Field(240.0, gt=0, description="seconds of measuring for the whole job")
    max_call_s: float = Field(0.25, gt=0, description="skip design points whose call would take longer")
    holdout_fraction: float = Field(0.2, ge=0, lt=1)
    beyond_factor: float = Field(2.0, gt=1)
    beyond_points: int = Field(6, ge=0, description="per axis (hidden_size, seq_len) and group")
    memory_probes: int = Field(8, ge=0, description="peak-memory probes per mode and dtype (a subprocess each)")
    primitives: bool = Field(True, description="run the micro-benchmarks (roofline ceilings)")
    design_share: float = Field(0.7, gt=0, le=1, description="share of the budget left after the unit "
                                "tables that the space-filling design of whole calls gets")
    step_batch_dense_up_to: int = Field(16, ge=1, description="step tables time every batch size up to this")
    step_grid_factor: float = Field(1.5, gt=1, description="step tables: ratio of neighbouring hidden sizes "
                                    "(and batch sizes above the dense part)")
    unit_passes: int = Field(1, ge=1, le=2, description="times each step unit is timed, seconds apart "
                             "(2: the faster is kept, for machines whose speed drifts; about 40% more unit time)")
    unit_max_call_s: float = Field(0.1, gt=0, description="step units whose call would take longer are "
                                   "not timed: their row continues with the step's matmuls and the rest's per-sequence slope")
    seed: int = 0
    timing: TimingSettings = TimingSettings()

    @model_validator(mode="after")
    def _check(self) -> "JobSpec":
        for axis in ("batch", "seq_len", "input_size", "hidden_size", "num_layers"):
            lo, hi = getattr(self, axis)
            if not 0 < lo <= hi:
                raise ValueError(f"{axis}(={[lo, hi]}) must be [low, high] with 0 < low <= high")
        if any(t <= 0 for t in self.threads):
            raise ValueError(f"threads(={self.threads}) must all be > 0")
        if self.device == "cpu" and any(d not in ("float32", "float64") for d in self.dtypes):
            raise ValueError(f"dtypes(={self.dtypes}): cpu measures float32 and float64 only")
        return self


def job_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The fields in which two stored jobs (``JobSpec.model_dump(mode="json")``) differ, the budget
    aside: a run resumed with more time ("raise --budget"), or pooled with a run given another
    budget, is the same job."""
    return sorted(k for k in (set(a) | set(b)) - {"budget_s"} if a.get(k) != b.get(k))


def default_job_path(device: str) -> Path:
    """The shipped default job spec of ``device``."""
    return JOBS_DIR / f"{device}-default.yaml"


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job spec; any problem is a GruSimError naming the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GruSimError(f"{path}: job spec not found") from None
    except yaml.YAMLError as err:
        raise GruSimError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise GruSimError(f"{path}: a job spec is a mapping of settings, got {type(data).__name__}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise GruSimError(f"{path}: {where}: {first['msg']} (got {first.get('input')!r})") from None
