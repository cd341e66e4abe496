"""Data-parallel training: N devices each run forward and backward on their own batch, the gradients
are averaged across devices by an all-reduce, and each device then takes the same optimizer step — as
PyTorch's DistributedDataParallel (DDP) does.

DDP does not wait for the whole backward before communicating: it groups gradients into buckets (in
reverse parameter order, about the order backward produces them; the first bucket capped at 1 MiB, the
rest at 25 MiB — ``kDefaultFirstBucketBytes`` and ``kDefaultBucketBytesCap`` in
torch/csrc/distributed/c10d/reducer.hpp) and starts a bucket's all-reduce as soon as all its gradients
are ready, in bucket order, on one communication stream. Communication then hides behind the rest of
backward; what is left after backward ends is *exposed* and lengthens the step.

An all-reduce of ``b`` bytes over ``N`` devices with a ring costs, in the α–β model,
``2(N−1)/N · b / bandwidth + 2(N−1) · latency`` (a reduce-scatter then an all-gather, each of N−1
steps moving b/N bytes; Patarasuk & Yuan 2009, Thakur et al. 2005). Devices are identical and
synchronous, so one device's timeline is every device's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generator, Sequence

import simpy

from ..config import GATES
from ..errors import ConfigError
from ..model.kernel_times import CallTimes
from .graph_build import build_graph

DDP_BUCKET_CAP_BYTES = 25 * 1024 * 1024
DDP_FIRST_BUCKET_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Interconnect:
    """The link between devices: bandwidth of one device's link and the latency of one message."""

    bandwidth_bytes_per_s: float
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bandwidth_bytes_per_s) and self.bandwidth_bytes_per_s > 0):
            raise ConfigError(f"bandwidth_bytes_per_s(={self.bandwidth_bytes_per_s}) "
                                "must be > 0")
        if not (math.isfinite(self.latency_s) and self.latency_s >= 0):
            raise ConfigError(f"latency_s(={self.latency_s}) must be >= 0")


def ring_allreduce_s(nbytes: int, devices: int, interconnect: Interconnect) -> float:
    """Seconds of a ring all-reduce of ``nbytes`` over ``devices``: 2(N−1)/N·bytes/bandwidth +
    2(N−1)·latency (0 for one device)."""
    if devices < 1:
        raise ConfigError(f"devices(={devices}) must be >= 1")
    if nbytes < 0:
        raise ConfigError(f"nbytes(={nbytes}) must be >= 0")
    if devices == 1:
        return 0.0
    n = devices
    return 2 * (n - 1) / n * nbytes / interconnect.bandwidth_bytes_per_s + 2 * (n - 1) * interconnect.latency_s


@dataclass(frozen=True)
class BackwardPiece:
    """A stretch of backward (``duration_s``) after which the gradients of some parameter tensors are
    final (``gradient_tensor_bytes``, in the order DDP buckets them)."""

    duration_s: float
    gradient_tensor_bytes: tuple[int, ...]


@dataclass(frozen=True)
class DeviceStepTimes:
    """One device's training step on its own batch: forward, backward in pieces (in the order backward
    runs them), the optimizer step, and the peak memory of the step without DDP."""

    forward_s: float
    backward: tuple[BackwardPiece, ...]
    optimizer_step_s: float
    peak_memory_bytes: int

    def __post_init__(self) -> None:
        durations = [self.forward_s, self.optimizer_step_s, *(p.duration_s for p in self.backward)]
        if any(not math.isfinite(d) or d < 0 for d in durations):
            raise ConfigError(f"step durations(={durations}) must be finite and >= 0")
        if any(b < 0 for p in self.backward for b in p.gradient_tensor_bytes):
            raise ConfigError("gradient tensor sizes must be >= 0 bytes")

    @property
    def backward_s(self) -> float:
        return sum(p.duration_s for p in self.backward)

    @property
    def compute_s(self) -> float:
        """Forward + backward + optimizer: the step with no communication."""
        return self.forward_s + self.backward_s + self.optimizer_step_s

    @property
    def gradient_bytes(self) -> int:
        return sum(sum(p.gradient_tensor_bytes) for p in self.backward)


def step_times_from_call(call_times: CallTimes, optimizer_step_s: float,
                         peak_memory_bytes: int | None = None) -> DeviceStepTimes:
    """A device step from a training call's kernel times: forward = call overhead + forward kernels;
    one backward piece per layer-direction, in autograd's order (top layer first), whose end makes
    that layer-direction's four tensors final (listed in reverse ``nn.GRU.parameters()`` order: b_hh,
    b_ih, W_hh, W_ih). ``peak_memory_bytes``: None takes the kernel graph's serial peak (weights,
    activations, gradients; add optimizer state yourself)."""
    config = call_times.config
    if config.mode != "training":
        raise ConfigError(f"step_times_from_call needs a training call, not mode {config.mode}")
    t, h, s = config.seq_len, config.hidden_size, config.dtype_bytes
    by_key = {(lt.layer, lt.direction): lt for lt in call_times.layers}
    pieces = []
    for layer in reversed(range(config.num_layers)):
        i = config.layer_input_size(layer)
        for direction in reversed(range(config.directions)):
            lt = by_key[(layer, direction)]
            duration = lt.backward_input_projection_s + t * lt.backward_per_step_s + lt.recurrent_weight_grad_s
            tensors = (GATES * h * s, GATES * h * s, GATES * h * h * s, GATES * h * i * s)
            pieces.append(BackwardPiece(duration, tensors))
    if peak_memory_bytes is None:
        peak_memory_bytes = build_graph(call_times).serial_peak_memory_bytes()
    return DeviceStepTimes(forward_s=call_times.call_overhead_s + call_times.forward_s(), backward=tuple(pieces),
                           optimizer_step_s=optimizer_step_s, peak_memory_bytes=peak_memory_bytes)


@dataclass(frozen=True)
class Bucket:
    """A DDP gradient bucket: its tensors' sizes and the backward piece after which all are final."""

    index: int
    nbytes: int
    tensors: int
    ready_after_piece: int


def ddp_buckets(backward: Sequence[BackwardPiece], bucket_cap_bytes: int = DDP_BUCKET_CAP_BYTES,
                first_bucket_bytes: int = DDP_FIRST_BUCKET_BYTES) -> tuple[Bucket, ...]:
    """Group gradient tensors into buckets as DDP's ``compute_bucket_assignment_by_size`` does: tensors
    in order, a bucket closed once its size reaches its cap (the first bucket's cap is
    ``first_bucket_bytes``), a tensor never split."""
    if bucket_cap_bytes <= 0 or first_bucket_bytes <= 0:
        raise ConfigError(f"bucket caps (={first_bucket_bytes}, {bucket_cap_bytes}) must be > 0 bytes")
    buckets: list[Bucket] = []
    size, count, cap = 0, 0, first_bucket_bytes
    last_piece = -1
    for piece_index, piece in enumerate(backward):
        for nbytes in piece.gradient_tensor_bytes:
            size += nbytes
            count += 1
            last_piece = piece_index
            if size >= cap:
                buckets.append(Bucket(len(buckets), size, count, last_piece))
                size, count, cap = 0, 0, bucket_cap_bytes
    if count:
        buckets.append(Bucket(len(buckets), size, count, last_piece))
    return tuple(buckets)


@dataclass(frozen=True)
class TrainingSpec:
    """A training study (CONTRACT.md's ``training:``): sequences per device and step, device counts to
    compare, the interconnect, steps per run, and DDP's bucket caps."""

    batch_per_device: int
    seq_len: int
    devices: tuple[int, ...]
    interconnect: Interconnect
    steps: int = 10
    bucket_cap_bytes: int = DDP_BUCKET_CAP_BYTES
    first_bucket_bytes: int = DDP_FIRST_BUCKET_BYTES

    def __post_init__(self) -> None:
        for name in ("batch_per_device", "seq_len", "steps", "bucket_cap_bytes", "first_bucket_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}(={value!r}) must be a whole number >= 1")
        if not self.devices or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.devices):
            raise ConfigError(f"devices(={list(self.devices)}) must be device counts >= 1")


@dataclass(frozen=True)
class TrainingPoint:
    """One device count. ``scaling_efficiency`` = throughput / (devices × one device's throughput);
    ``allreduce_s`` the communication stream's busy time per step, ``exposed_comm_s`` the part of it
    not hidden behind backward (step time − compute), ``comm_share`` = exposed / step time."""

    devices: int
    step_time_s: float
    throughput_seq_per_s: float
    scaling_efficiency: float
    peak_memory_bytes_per_device: int
    compute_s: float
    allreduce_s: float
    exposed_comm_s: float
    comm_share: float
    buckets: int
    total_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TrainingResult:
    """A training study's results, one point per device count (in the order asked)."""

    spec: TrainingSpec
    points: tuple[TrainingPoint, ...]

    def to_dict(self) -> list[dict[str, Any]]:
        """The ``training`` list of results.json."""
        return [p.to_dict() for p in self.points]


@dataclass(frozen=True)
class StepTimeline:
    """One simulated step: when backward ended, and each bucket's all-reduce (start, finish)."""

    step_time_s: float
    backward_end_s: float
    allreduce_s: float
    bucket_intervals_s: tuple[tuple[float, float], ...]


def simulate_step(step: DeviceStepTimes, devices: int, interconnect: Interconnect,
                  buckets: Sequence[Bucket]) -> StepTimeline:
    """Simulate one synchronous step on ``devices`` devices with SimPy: backward pieces on the compute
    resource, bucket all-reduces launched in order on one communication resource as they become
    ready, the optimizer step once backward and every all-reduce are done."""
    env = simpy.Environment()
    comm = simpy.Resource(env, capacity=1)
    intervals: list[tuple[float, float]] = [(0.0, 0.0)] * len(buckets)
    done_events: list[simpy.Event] = []
    ends: dict[str, float] = {}
    use_comm = devices > 1

    def allreduce(bucket: Bucket) -> Generator[simpy.Event, Any, None]:
        with comm.request() as request:
            yield request
            start = env.now
            yield env.timeout(ring_allreduce_s(bucket.nbytes, devices, interconnect))
            intervals[bucket.index] = (start, env.now)

    def device() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(step.forward_s)
        launched = 0
        for k, piece in enumerate(step.backward):
            yield env.timeout(piece.duration_s)
            while use_comm and launched < len(buckets) and buckets[launched].ready_after_piece <= k:
                done_events.append(env.process(allreduce(buckets[launched])))
                launched += 1
        ends["backward"] = env.now
        if done_events:
            yield env.all_of(done_events)
        yield env.timeout(step.optimizer_step_s)
        ends["step"] = env.now

    env.process(device())
    env.run()
    busy = sum(f - s for s, f in intervals) if use_comm else 0.0
    return StepTimeline(step_time_s=ends["step"], backward_end_s=ends["backward"], allreduce_s=busy,
                        bucket_intervals_s=tuple(intervals) if use_comm else ())


def simulate_training(step: DeviceStepTimes, spec: TrainingSpec) -> TrainingResult:
    """Step time, throughput, scaling efficiency, memory and communication for every device count of
    ``spec``. ``step`` is one device's step on ``spec.batch_per_device`` sequences of ``spec.seq_len``
    steps. With more than one device DDP keeps a flat copy of the gradients for its buckets
    (``gradient_as_bucket_view=False``, the default), which adds the gradient bytes to each device."""
    buckets = ddp_buckets(step.backward, spec.bucket_cap_bytes, spec.first_bucket_bytes)
    single = simulate_step(step, 1, spec.interconnect, buckets).step_time_s
    points = []
    for n in spec.devices:
        timeline = simulate_step(step, n, spec.interconnect, buckets)
        step_time = timeline.step_time_s
        throughput = n * spec.batch_per_device / step_time if step_time > 0 else math.inf
        exposed = max(step_time - step.compute_s, 0.0)
        points.append(TrainingPoint(
            devices=n, step_time_s=step_time, throughput_seq_per_s=throughput,
            scaling_efficiency=single / step_time if step_time > 0 else 1.0,
            peak_memory_bytes_per_device=step.peak_memory_bytes + (step.gradient_bytes if n > 1 else 0),
            compute_s=step.compute_s, allreduce_s=timeline.allreduce_s, exposed_comm_s=exposed,
            comm_share=exposed / step_time if step_time > 0 else 0.0,
            buckets=len(buckets) if n > 1 else 0, total_time_s=spec.steps * step_time))
    return TrainingResult(spec=spec, points=tuple(points))
