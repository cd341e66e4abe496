"""The data-parallel training simulation: ring all-reduce, DDP buckets, overlap with backward."""

from __future__ import annotations

import pytest

from gru_sim.accounting import account_call
from gru_sim.config import GruConfig
from gru_sim.errors import ConfigError
from gru_sim.model.kernel_times import CallTimes, LayerTimes
from gru_sim.sim.training import (DDP_BUCKET_CAP_BYTES, DDP_FIRST_BUCKET_BYTES, BackwardPiece, DeviceStepTimes,
                                  Interconnect, TrainingSpec, ddp_buckets, ring_allreduce_s, simulate_step,
                                  simulate_training, step_times_from_call)

MIB = 1024 * 1024


def two_piece_step(first_piece_bytes: int = 2 * MIB) -> DeviceStepTimes:
    return DeviceStepTimes(forward_s=0.5, optimizer_step_s=0.1, peak_memory_bytes=1000,
                           backward=(BackwardPiece(1.0, (first_piece_bytes,)), BackwardPiece(1.0, (2 * MIB,))))


def spec(devices: tuple[int, ...], bandwidth: float, latency_s: float = 0.0) -> TrainingSpec:
    return TrainingSpec(batch_per_device=8, seq_len=10, devices=devices,
                        interconnect=Interconnect(bandwidth, latency_s), steps=5)


def test_ring_allreduce_time_matches_the_alpha_beta_formula() -> None:
    link = Interconnect(bandwidth_bytes_per_s=1e9, latency_s=1e-5)
    # N = 4, 1 MB: 2·3/4 · 1e6 / 1e9 + 2·3 · 1e-5 = 1.5e-3 + 6e-5.
    assert ring_allreduce_s(1_000_000, 4, link) == pytest.approx(1.56e-3, rel=1e-12)
    for n in (2, 3, 8, 64):
        expected = 2 * (n - 1) / n * 12_345 / 1e9 + 2 * (n - 1) * 1e-5
        assert ring_allreduce_s(12_345, n, link) == pytest.approx(expected, rel=1e-12)


def test_one_device_has_no_communication() -> None:
    point = simulate_training(two_piece_step(), spec((1,), bandwidth=1.0)).points[0]
    assert point.allreduce_s == 0.0 and point.exposed_comm_s == 0.0 and point.comm_share == 0.0
    assert point.step_time_s == pytest.approx(two_piece_step().compute_s)
    assert point.scaling_efficiency == 1.0
    assert ring_allreduce_s(10**9, 1, Interconnect(1.0, 1.0)) == 0.0


def test_buckets_overlap_backward_and_queue_on_one_link() -> None:
    # Two 2 MiB buckets (the first closes once past 1 MiB), ready at 1.5 s and 2.5 s. With 2 devices an
    # all-reduce of 2 MiB takes 2·1/2·2 MiB / bandwidth.
    link_08 = 2 * MIB / 0.8
    timeline = simulate_step(two_piece_step(), 2, Interconnect(link_08), ddp_buckets(two_piece_step().backward))
    # 1.5–2.3 hidden behind backward, 2.5–3.3 exposed, then the 0.1 s optimizer step.
    assert [t for pair in timeline.bucket_intervals_s for t in pair] == pytest.approx([1.5, 2.3, 2.5, 3.3])
    assert timeline.step_time_s == pytest.approx(3.4)
    link_12 = 2 * MIB / 1.2
    slow = simulate_step(two_piece_step(), 2, Interconnect(link_12), ddp_buckets(two_piece_step().backward))
    # The second bucket waits for the link: 1.5–2.7, 2.7–3.9, + 0.1.
    assert [t for pair in slow.bucket_intervals_s for t in pair] == pytest.approx([1.5, 2.7, 2.7, 3.9])
    assert slow.step_time_s == pytest.approx(4.0)


def test_exposed_communication_is_step_time_beyond_compute() -> None:
    point = simulate_training(two_piece_step(), spec((2,), bandwidth=2 * MIB / 0.8)).points[0]
    assert point.exposed_comm_s == pytest.approx(0.8)
    assert point.allreduce_s == pytest.approx(1.6)
    assert point.comm_share == pytest.approx(0.8 / 3.4)


def test_one_bucket_at_the_end_of_backward_cannot_overlap() -> None:
    step = DeviceStepTimes(forward_s=0.2, optimizer_step_s=0.05, peak_memory_bytes=0,
                           backward=(BackwardPiece(0.3, (100,)), BackwardPiece(0.4, (200,))))
    link = Interconnect(1e4, 1e-3)
    point = simulate_training(step, spec((4,), bandwidth=1e4, latency_s=1e-3)).points[0]
    assert point.buckets == 1
    assert point.step_time_s == pytest.approx(step.compute_s + ring_allreduce_s(300, 4, link))


def test_ddp_buckets_close_at_their_caps_without_splitting_tensors() -> None:
    pieces = (BackwardPiece(1.0, (MIB // 2, MIB // 2 + 1)), BackwardPiece(1.0, (10 * MIB, 20 * MIB)),
              BackwardPiece(1.0, (MIB,)))
    buckets = ddp_buckets(pieces, DDP_BUCKET_CAP_BYTES, DDP_FIRST_BUCKET_BYTES)
    assert [b.nbytes for b in buckets] == [MIB + 1, 30 * MIB, MIB]
    assert [b.ready_after_piece for b in buckets] == [0, 1, 2]
    assert [b.tensors for b in buckets] == [2, 2, 1]


def test_scaling_efficiency_is_throughput_over_devices_times_one_device_throughput() -> None:
    result = simulate_training(two_piece_step(), spec((1, 2, 4, 8), bandwidth=4 * MIB, latency_s=1e-3))
    one = result.points[0]
    for p in result.points:
        assert p.throughput_seq_per_s == pytest.approx(p.devices * 8 / p.step_time_s)
        assert p.scaling_efficiency == pytest.approx(p.throughput_seq_per_s / (p.devices * one.throughput_seq_per_s))
    assert [p.step_time_s for p in result.points] == sorted(p.step_time_s for p in result.points)
    assert result.to_dict()[2]["devices"] == 4


def test_ddp_adds_a_gradient_copy_to_each_device_beyond_one() -> None:
    result = simulate_training(two_piece_step(), spec((1, 2), bandwidth=1e9))
    assert result.points[0].peak_memory_bytes_per_device == 1000
    assert result.points[1].peak_memory_bytes_per_device == 1000 + 4 * MIB


def make_training_call_times() -> CallTimes:
    config = GruConfig(batch=4, seq_len=6, input_size=3, hidden_size=5, num_layers=2, bidirectional=True,
                       mode="training")
    layers = tuple(LayerTimes(layer=l, direction=d, input_projection_s=1e-3 * (l + 1), recurrent_matmul_per_step_s=2e-4,
                              pointwise_per_step_s=1e-5, step_overhead_per_step_s=1e-6, backward_per_step_s=3e-4 + d * 1e-5,
                              backward_input_projection_s=2e-3, recurrent_weight_grad_s=1e-3 * (d + 1))
                   for l in range(2) for d in range(2))
    return CallTimes(config=config, layers=layers, call_overhead_s=5e-5)


def test_a_device_step_from_kernel_times_keeps_their_sums_and_the_gradient_bytes() -> None:
    times = make_training_call_times()
    step = step_times_from_call(times, optimizer_step_s=1e-3)
    assert step.forward_s + step.backward_s == pytest.approx(times.serial_s(), rel=1e-12)
    assert step.gradient_bytes == account_call(times.config).weight_bytes
    assert len(step.backward) == 4
    # Autograd runs the top layer first.
    assert step.backward[0].gradient_tensor_bytes[-1] == 3 * 5 * 10 * 4  # W_ih of layer 1: [3H, 2H]


def test_a_device_step_needs_a_training_call() -> None:
    times = make_training_call_times()
    inference = CallTimes(config=times.config.with_(mode="inference"), layers=times.layers, call_overhead_s=0.0)
    with pytest.raises(ConfigError, match="training"):
        step_times_from_call(inference, optimizer_step_s=0.0)


def test_a_training_spec_refuses_a_device_count_below_one() -> None:
    with pytest.raises(ConfigError, match=r"^devices\(=\[0\]\)"):
        TrainingSpec(batch_per_device=1, seq_len=1, devices=(0,), interconnect=Interconnect(1.0))
