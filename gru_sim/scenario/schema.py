"""The scenario file's schema: every key a scenario may hold, its type, its limits and its help text.

Pydantic models, strict (no ``"8"`` for 8, no unknown keys) and frozen; ``gru-sim schema`` prints them
as JSON Schema. The format is the one in CONTRACT.md. Checks that span several fields, and reading the
files a scenario names, are the loader's (:mod:`gru_sim.scenario.load`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..config import DEVICES, DTYPES, IMPLS, MODES

SCHEMA_ID = "https://gru-sim.invalid/scenario.schema.json"

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
# The choices are config.py's, so that a scenario accepts exactly what a GruConfig does.
Mode = Literal[MODES]  # type: ignore[valid-type]
Dtype = Literal[DTYPES]  # type: ignore[valid-type]
Impl = Literal[IMPLS]  # type: ignore[valid-type]
Device = Literal[DEVICES]  # type: ignore[valid-type]


class _Spec(BaseModel):
    """Strict: no unknown keys, no '8' for 8, no true for 1; frozen once read."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------------------------- model
class ModelSpec(_Spec):
    """The GRU network every study runs."""

    input_size: PositiveInt = Field(description="input features per time step (I)")
    hidden_size: PositiveInt = Field(description="hidden units per layer and direction (H)")
    num_layers: PositiveInt = Field(1, le=1024, description="stacked layers")
    bidirectional: bool = Field(False, description="run both directions")
    dtype: Dtype = Field("float32", description="number format; cpu supports float32 and float64")
    impl: Impl = Field("torch-gru", description="implementation the profile was calibrated for")
    threads: PositiveInt = Field(1, le=4096, description="intra-op threads of one call (sweep)")


# ------------------------------------------------------------------------------------------- sweep
class SweepConfigSpec(_Spec):
    """One explicit configuration of a sweep; fields left out are taken from ``model``."""

    batch: PositiveInt = Field(description="sequences per call (B)")
    seq_len: PositiveInt = Field(description="time steps (T)")
    mode: Mode = Field("inference", description="inference = forward; training = forward + backward")
    input_size: PositiveInt | None = Field(None, description="default: model.input_size")
    hidden_size: PositiveInt | None = Field(None, description="default: model.hidden_size")
    num_layers: PositiveInt | None = Field(None, description="default: model.num_layers")
    threads: PositiveInt | None = Field(None, description="default: model.threads")


def _axis(description: str) -> Any:
    return Field(None, min_length=1, description=description + " (a list: every value is a point of the grid)")


class SweepSpec(_Spec):
    """Configurations to predict: a grid (every list is an axis), or an explicit list of them
    (``configs``, or ``configs_csv``: a CSV whose columns are GruConfig field names)."""

    mode: list[Mode] = Field(["inference"], min_length=1, description="inference and/or training")
    batch: list[PositiveInt] | None = _axis("sequences per call (B)")
    seq_len: list[PositiveInt] | None = _axis("time steps (T)")
    hidden_size: list[PositiveInt] | None = _axis("overrides model.hidden_size as an axis")
    input_size: list[PositiveInt] | None = _axis("overrides model.input_size as an axis")
    num_layers: list[PositiveInt] | None = _axis("overrides model.num_layers as an axis")
    threads: list[PositiveInt] | None = _axis("overrides model.threads as an axis")
    configs: list[SweepConfigSpec] | None = Field(
        None, min_length=1, description="explicit configurations instead of a grid")
    configs_csv: str | None = Field(
        None, min_length=1,
        description="CSV of configurations instead of a grid, one per row; columns are GruConfig fields "
                    "(batch, seq_len, input_size, hidden_size, num_layers, mode, threads), missing ones come "
                    "from model. A relative path is read from the scenario's folder, else the current one.")


GRID_AXES = ("mode", "batch", "seq_len", "hidden_size", "input_size", "num_layers", "threads")


# ----------------------------------------------------------------------------------------- serving
class PoissonArrival(_Spec):
    """Requests arriving independently at a mean rate (exponential gaps)."""

    process: Literal["poisson"]
    rate_per_s: PositiveFloat = Field(description="mean requests per second")


class ConstantArrival(_Spec):
    """Requests arriving at a fixed interval."""

    process: Literal["constant"]
    rate_per_s: PositiveFloat = Field(description="requests per second")


class TraceArrival(_Spec):
    """Requests replayed from a CSV with columns ``time_s,seq_len``."""

    process: Literal["trace"]
    csv: str = Field(min_length=1, description="CSV with header time_s,seq_len; times non-decreasing. A "
                                               "relative path is read from the scenario's folder, else the "
                                               "current one.")


class FixedSeqLen(_Spec):
    distribution: Literal["fixed"]
    value: PositiveInt = Field(description="time steps of every request")


class UniformSeqLen(_Spec):
    distribution: Literal["uniform"]
    low: PositiveInt = Field(description="shortest request (time steps, inclusive)")
    high: PositiveInt = Field(description="longest request (time steps, inclusive)")


class LognormalSeqLen(_Spec):
    distribution: Literal["lognormal"]
    median: PositiveFloat = Field(description="median time steps")
    sigma: PositiveFloat = Field(le=10, description="standard deviation of log(seq_len)")
    max: PositiveInt = Field(description="cap: longer draws are cut to this many steps")


class BatchingSpec(_Spec):
    """The dynamic batcher in front of each replica."""

    max_batch: PositiveInt = Field(le=1_000_000, description="largest batch a replica runs")
    max_wait_s: NonNegativeFloat = Field(0.0, le=3600, description="longest a request waits for others")
    padding: Literal["pad", "bucket"] = Field(
        "pad", description="pad: a batch is padded to its longest request; bucket: requests are batched "
                           "only with others of a similar length")


class SloSpec(_Spec):
    p99_latency_s: PositiveFloat = Field(description="99th-percentile latency the service must meet")


class LoadSweepSpec(_Spec):
    rates_per_s: list[PositiveFloat] = Field(min_length=1, description="arrival rates to simulate")


class ServingSpec(_Spec):
    """Requests arriving at a deployed model: batcher, replicas, latency percentiles."""

    arrival: Annotated[Union[PoissonArrival, ConstantArrival, TraceArrival], Field(discriminator="process")]
    seq_len: Annotated[Union[FixedSeqLen, UniformSeqLen, LognormalSeqLen],
                       Field(discriminator="distribution")] | None = Field(
        None, description="request lengths (required unless arrival.process is trace)")
    batching: BatchingSpec
    replicas: PositiveInt = Field(1, le=65536, description="copies of the model serving in parallel")
    threads_per_replica: PositiveInt = Field(1, le=4096, description="intra-op threads of each replica")
    requests: PositiveInt = Field(10_000, le=10_000_000, description="requests to simulate")
    seed: int = Field(0, ge=0, description="random seed: the same seed gives the same results")
    slo: SloSpec | None = None
    memory_cap_bytes: PositiveInt | None = Field(None, description="a batch must fit under this memory")
    load_sweep: LoadSweepSpec | None = Field(
        None, description="arrival rates for the p99-vs-load curve (default: spread up to capacity)")


# ---------------------------------------------------------------------------------------- training
class InterconnectSpec(_Spec):
    bandwidth_bytes_per_s: PositiveFloat = Field(description="link bandwidth of one device")
    latency_s: NonNegativeFloat = Field(le=1.0, description="latency of one message")


class TrainingSpec(_Spec):
    """Data-parallel training: forward + backward per device, then a gradient all-reduce."""

    batch_per_device: PositiveInt = Field(description="sequences per device per step")
    seq_len: PositiveInt = Field(description="time steps of every sequence")
    devices: list[Annotated[int, Field(gt=0, le=65536)]] = Field(min_length=1,
                                                                 description="device counts to compare")
    interconnect: InterconnectSpec
    steps: PositiveInt = Field(10, le=100_000, description="training steps to simulate")
    optimizer: Literal["sgd", "sgd-momentum", "adam"] = Field(
        "adam", description="optimizer whose step (a pass over weights, gradients and state) ends each step")


# ---------------------------------------------------------------------------------------- scenario
class ScenarioSpec(_Spec):
    """A gru-sim scenario: a GRU model and the studies to run on it (at least one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, title="gru-sim scenario")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=100,
                      description="letters, digits, - and _; names the output folder")
    description: str | None = Field(None, max_length=10_000, description="free text shown in the report")
    device: Device = Field(description="cpu or cuda")
    profile: str | None = Field(
        None, min_length=1, description="calibration profile (default: the shipped one for device). A relative "
                                        "path is read from the scenario's folder, else the current one.")
    model: ModelSpec
    sweep: SweepSpec | None = None
    serving: ServingSpec | None = None
    training: TrainingSpec | None = None



def scenario_json_schema() -> dict[str, Any]:
    """The scenario format as JSON Schema (draft 2020-12), for editors and CI linters."""
    schema = ScenarioSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}



# The tagged unions of the schema: the key holding the tag, and the models it picks between.
TAGGED = {"arrival": ("process", (PoissonArrival, ConstantArrival, TraceArrival)),
          "seq_len": ("distribution", (FixedSeqLen, UniformSeqLen, LognormalSeqLen))}
