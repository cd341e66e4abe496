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


# --------------------------------------------------------------------------------------- gradients
class GradientsSpec(_Spec):
    """Gradient flow through time: how much of the gradient of a loss on the last step reaches each
    earlier step of the model, measured with torch on this CPU; and the forward pass's error in half
    precision. Tells whether training at these sequence lengths can learn long dependencies."""

    seq_len: list[PositiveInt] | None = Field(
        None, min_length=1, description="sequence lengths to measure (default: those the sweep, serving and "
                                        "training studies use)")
    init: list[Annotated[str, Field(min_length=1)]] = Field(
        ["default"], min_length=1,
        description="the weights, one configuration each: default (PyTorch's initialisation), orthogonal "
                    "(orthogonal recurrent weights) or a state_dict .pt file of an nn.GRU's trained weights. A "
                    "relative path is read from the scenario's folder, else the current one.")
    inputs: PositiveInt = Field(4, le=1024, description="random input sequences tried (averaged)")
    seed: int = Field(0, ge=0, description="seed of the weights, inputs and loss")
    threads: PositiveInt = Field(1, le=4096, description="intra-op threads while measuring")
    error_dtypes: list[Dtype] = Field(
        ["float16", "bfloat16"], description="number formats whose forward error against the float64 "
                                             "reference is measured ([] for none)")


# -------------------------------------------------------------------------------------------- plan
class PlanSloSpec(_Spec):
    """The latency objective of a plan: give one of p99_latency_s and p95_latency_s."""

    p99_latency_s: PositiveFloat | None = Field(None, description="99th-percentile latency to meet")
    p95_latency_s: PositiveFloat | None = Field(None, description="95th-percentile latency to meet")
    min_attainment: float | None = Field(
        None, gt=0, le=1, description="share of requests that must finish within the latency (default: the "
                                      "percentile's, e.g. 0.99)")


class ReplicaRangeSpec(_Spec):
    min: PositiveInt = Field(1, le=65536, description="fewest replicas")
    max: PositiveInt = Field(le=65536, description="most replicas")


class PlanSearchSpec(_Spec):
    """The deployments to choose among (every list is a choice)."""

    replicas: Union[ReplicaRangeSpec, list[Annotated[int, Field(gt=0, le=65536)]]] = Field(
        default_factory=lambda: ReplicaRangeSpec(min=1, max=64),
        description="replica counts: {min, max} or a list (default 1 to 64)")
    max_batch: list[Annotated[int, Field(gt=0, le=1_000_000)]] = Field(
        [1, 4, 16], min_length=1, description="largest batch a replica runs")
    max_wait_s: list[Annotated[float, Field(ge=0, le=3600)]] = Field(
        [0.0, 0.01], min_length=1, description="longest a request waits for others")
    padding: list[Literal["pad", "bucket"]] = Field(["pad"], min_length=1, description="pad and/or bucket")
    bucket_edges: list[PositiveInt] | None = Field(
        None, min_length=1, description="upper bounds of the length buckets (default: powers of two)")
    threads_per_replica: list[Annotated[int, Field(gt=0, le=4096)]] = Field(
        [1], min_length=1, description="intra-op threads of each replica")


class HardwareSpec(_Spec):
    """A machine kind replicas may be packed onto."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100, description="names the kind in the plan")
    cost_per_hour: PositiveFloat = Field(description="price of one machine per hour (any currency)")
    cores: PositiveInt = Field(le=65536, description="cores of one machine")
    memory_bytes: PositiveInt | None = Field(None, description="memory of one machine (default: not a limit)")
    max_machines: PositiveInt | None = Field(
        None, le=1_000_000, description="most machines of this kind a deployment may use (default: no limit); "
                                        "a kind that would need more is ruled out, saying so")
    profile: str | None = Field(
        None, min_length=1, description="calibration profile made on this kind (default: the plan's profile). A "
                                        "relative path is read from the scenario's folder, else the current one.")


class PlanTrainingSpec(_Spec):
    """Train an epoch in time: the cheapest device count and batch per device."""

    sequences_per_epoch: PositiveInt = Field(description="sequences in one epoch")
    seq_len: PositiveInt = Field(description="time steps of every sequence")
    target_epoch_time_s: PositiveFloat = Field(description="an epoch must take at most this long")
    batch_per_device: list[Annotated[int, Field(gt=0, le=1_000_000)]] = Field(
        min_length=1, description="batches per device to choose among (ones the training recipe accepts)")
    devices: list[Annotated[int, Field(gt=0, le=65536)]] = Field(min_length=1, description="device counts")
    interconnect: InterconnectSpec
    cost_per_device_hour: PositiveFloat = Field(1.0, description="price of one device per hour")
    device_memory_bytes: PositiveInt | None = Field(None, description="memory of one device (default: no limit)")
    optimizer: Literal["sgd", "sgd-momentum", "adam"] = Field("adam", description="as in training")


class PlanSpec(_Spec):
    """The cheapest deployment meeting a latency SLO (``gru-sim plan``), and optionally the cheapest
    training setup meeting an epoch time. Traffic is written as in serving."""

    arrival: Annotated[Union[PoissonArrival, ConstantArrival, TraceArrival], Field(discriminator="process")]
    seq_len: Annotated[Union[FixedSeqLen, UniformSeqLen, LognormalSeqLen],
                       Field(discriminator="distribution")] | None = Field(
        None, description="request lengths (required unless arrival.process is trace)")
    rates_per_s: list[PositiveFloat] | None = Field(
        None, min_length=1, description="rates to plan for (e.g. a day's hours): sized for the highest, "
                                        "the others get a schedule")
    slo: PlanSloSpec
    memory_cap_bytes: PositiveInt | None = Field(None, description="memory one replica may use")
    search: PlanSearchSpec = Field(default_factory=PlanSearchSpec)
    hardware: list[HardwareSpec] | None = Field(
        None, min_length=1, description="machine kinds (default: one replica per machine at 1 per hour)")
    requests: PositiveInt = Field(4000, le=1_000_000, description="requests per simulation of a candidate")
    seeds: Union[list[Annotated[int, Field(ge=0)]], PositiveInt] = Field(
        [1, 2, 3], description="seeds each candidate is simulated with (a list, or how many)")
    service_time_factor: PositiveFloat = Field(
        1.0, le=100, description="multiplies every predicted service time: a margin for real serving loops "
                                 "(with service_time_margin: factor)")
    service_time_margin: Literal["factor", "interval"] = Field(
        "factor", description="how a batch's service time is priced: factor = the point prediction x "
                              "service_time_factor; interval = the upper end of the profile's 90% prediction "
                              "interval (never below the point prediction; service_time_factor must then be 1)")
    training: PlanTrainingSpec | None = None


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
    plan: PlanSpec | None = None
    gradients: GradientsSpec | None = None



def scenario_json_schema() -> dict[str, Any]:
    """The scenario format as JSON Schema (draft 2020-12), for editors and CI linters."""
    schema = ScenarioSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}



# The tagged unions of the schema: the key holding the tag, and the models it picks between.
TAGGED = {"arrival": ("process", (PoissonArrival, ConstantArrival, TraceArrival)),
          "seq_len": ("distribution", (FixedSeqLen, UniformSeqLen, LognormalSeqLen))}
