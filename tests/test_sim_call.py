"""The execution simulator of one call: kernel graph, executors, memory, parallelism, Chrome trace.

CallTimes are built by hand with seeded synthetic durations, so these tests need no cost model."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gru_sim.accounting import account_call, activation_bytes, layer_params
from gru_sim.config import GruConfig
from gru_sim.errors import ConfigError
from gru_sim.model.kernel_times import CallTimes, LayerTimes
from gru_sim.sim import (build_graph, chrome_trace, parallelism, simulate_call, write_chrome_trace)
from gru_sim.sim.graph import FORWARD_KINDS, KINDS

ROOT = Path(__file__).resolve().parent.parent


def make_call_times(config: GruConfig, seed: int = 0) -> CallTimes:
    """Synthetic but uneven durations: every layer-direction different, backward only for training."""
    rng = random.Random(seed)
    training = config.mode == "training"
    layers = []
    for layer in range(config.num_layers):
        for direction in range(config.directions):
            layers.append(LayerTimes(
                layer=layer, direction=direction,
                input_projection_s=rng.uniform(1e-4, 1e-3),
                recurrent_matmul_per_step_s=rng.uniform(1e-5, 1e-4),
                pointwise_per_step_s=rng.uniform(1e-6, 1e-5),
                step_overhead_per_step_s=rng.uniform(1e-7, 1e-6),
                backward_per_step_s=rng.uniform(2e-5, 2e-4) if training else 0.0,
                backward_input_projection_s=rng.uniform(1e-4, 2e-3) if training else 0.0,
                recurrent_weight_grad_s=rng.uniform(1e-4, 1e-3) if training else 0.0))
    return CallTimes(config=config, layers=tuple(layers), call_overhead_s=rng.uniform(1e-6, 5e-5))


def shape(**changes: object) -> GruConfig:
    values: dict[str, object] = dict(batch=2, seq_len=7, input_size=4, hidden_size=5)
    values.update(changes)
    return GruConfig(**values)  # type: ignore[arg-type]


SHAPES = [
    shape(),
    shape(num_layers=3),
    shape(bidirectional=True),
    shape(num_layers=2, bidirectional=True, seq_len=9),
    shape(mode="training"),
    shape(num_layers=3, mode="training", seq_len=5),
    shape(num_layers=2, bidirectional=True, mode="training", seq_len=8),
]
configs = st.builds(
    lambda t, layers, bidir, mode, seed: (shape(seq_len=t, num_layers=layers, bidirectional=bidir, mode=mode), seed),
    st.integers(1, 12), st.integers(1, 3), st.booleans(), st.sampled_from(["inference", "training"]),
    st.integers(0, 1000))


def longest_path_s(graph) -> float:  # type: ignore[no-untyped-def]
    """Critical path by the textbook recurrence over a topological order, independent of the graph's
    own vectorised dynamic programming."""
    preds = graph.predecessors()
    finish = [0.0] * graph.n_kernels
    for i in range(graph.n_kernels):
        finish[i] = max((finish[p] for p in preds[i]), default=0.0) + float(graph.duration_s[i])
    return max(finish)


# --------------------------------------------------------------------------------- import rules
@pytest.mark.slow
def test_importing_the_simulator_leaves_torch_and_plotly_out() -> None:
    code = "import sys, gru_sim.sim; print('torch' in sys.modules, 'plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------------ invariants
@given(configs)
def test_one_resource_makespan_equals_sum_of_kernel_durations(case: tuple[GruConfig, int]) -> None:
    config, seed = case
    times = make_call_times(config, seed)
    for executor, limit in (("cpu", None), ("gpu", 1)):
        sim = simulate_call(times, executor=executor, max_concurrency=limit)
        total = sum(k.duration_s for k in sim.kernels)
        assert abs(sim.makespan_s - total) <= 1e-9 * total
        assert abs(sim.makespan_s - times.serial_s()) <= 1e-9 * times.serial_s()


@given(configs)
def test_unlimited_resources_makespan_equals_critical_path(case: tuple[GruConfig, int]) -> None:
    config, seed = case
    times = make_call_times(config, seed)
    sim = simulate_call(times, executor="gpu", max_concurrency=None, chunk_steps=1)
    reference = longest_path_s(build_graph(times, chunk_steps=1, wavefront=True))
    assert abs(sim.makespan_s - reference) <= 1e-9 * reference
    assert abs(sim.critical_path_s - reference) <= 1e-9 * reference


@pytest.mark.parametrize("mode", ["inference", "training"])
@pytest.mark.parametrize("executor", ["cpu", "gpu"])
def test_single_layer_unidirectional_call_equals_the_closed_form(mode: str, executor: str) -> None:
    times = make_call_times(shape(seq_len=50, mode=mode), seed=3)
    sim = simulate_call(times, executor=executor, chunk_steps=1)
    assert abs(sim.makespan_s - times.serial_s()) <= 1e-12 * times.serial_s()


@given(configs)
def test_parallelism_by_dynamic_programming_equals_simpy_with_unlimited_resources(
        case: tuple[GruConfig, int]) -> None:
    config, seed = case
    times = make_call_times(config, seed)
    fast = parallelism(times, executor="gpu", chunk_steps=2)
    sim = simulate_call(times, executor="gpu", max_concurrency=None, chunk_steps=2)
    assert abs(fast.critical_path_s - sim.makespan_s) <= 1e-9 * sim.makespan_s
    assert abs(fast.work_s - sim.work_s) <= 1e-9 * sim.work_s
    assert abs(fast.avg_concurrency - sim.avg_concurrency) <= 1e-9 * sim.avg_concurrency


def test_same_inputs_give_the_same_trace() -> None:
    times = make_call_times(SHAPES[-1], seed=11)
    for executor, limit in (("cpu", None), ("gpu", 2), ("gpu", None)):
        first = simulate_call(times, executor=executor, max_concurrency=limit, chunk_steps=3)
        second = simulate_call(times, executor=executor, max_concurrency=limit, chunk_steps=3)
        assert first.kernels == second.kernels
        assert first.memory_timeline == second.memory_timeline
        assert chrome_trace(first) == chrome_trace(second)


# ----------------------------------------------------------------------------------------- memory
def test_inference_peak_memory_worked_by_hand_unidirectional() -> None:
    # B=2, T=3, I=4, H=5, one layer, float32. Weights: 3·5·(4+5+2) = 165 parameters = 660 bytes.
    # ATen holds at once the input projection (3·T·B·H = 90 elements), the per-step outputs (30) and
    # their stacked copy (30): 150 elements = 600 bytes. Peak = 660 + 600.
    sim = simulate_call(make_call_times(shape(seq_len=3)), executor="cpu", chunk_steps=1)
    assert sim.peak_memory_bytes == 1260


def test_inference_peak_memory_worked_by_hand_two_layer_bidirectional() -> None:
    # B=2, T=3, I=4, H=5, two bidirectional layers, float32; T·B·H = 30 elements.
    # Weights: layer 0: 2 × 3·5·(4+5+2) = 330; layer 1 (input 2H = 10): 2 × 3·5·(10+5+2) = 510;
    # 840 parameters = 3360 bytes. The peak is layer 1's concatenation: layer 0's output (2·30), and
    # of layer 1 the forward per-step outputs (30) and stack (30), the reverse projection (90), per-step
    # outputs (30) and stack (30), and the 2H-wide result (60): 330 elements = 1320 bytes.
    sim = simulate_call(make_call_times(shape(seq_len=3, num_layers=2, bidirectional=True)), executor="cpu",
                        chunk_steps=1)
    assert sim.weight_bytes == 3360
    assert sim.peak_memory_bytes == 3360 + 1320


@pytest.mark.parametrize("config", [c for c in SHAPES if c.mode == "inference"], ids=str)
def test_inference_peak_memory_equals_weights_plus_accounted_activations(config: GruConfig) -> None:
    sim = simulate_call(make_call_times(config), executor="cpu", chunk_steps=2)
    assert sim.weight_bytes == account_call(config).weight_bytes
    assert sim.peak_memory_bytes == account_call(config).weight_bytes + activation_bytes(config)
    assert sim.peak_call_memory_bytes == activation_bytes(config)


@pytest.mark.parametrize("wavefront", [False, True])
@pytest.mark.parametrize("config", [c for c in SHAPES if c.mode == "training"], ids=str)
def test_training_keeps_saved_activations_until_backward_and_ends_with_gradients(
        config: GruConfig, wavefront: bool) -> None:
    graph = build_graph(make_call_times(config), chunk_steps=3, wavefront=wavefront)
    memory = graph.serial_memory_bytes()
    last_forward = max(i for i in range(graph.n_kernels) if graph.kind[i] in FORWARD_KINDS)
    tbh_bytes = config.tokens * config.hidden_size * config.dtype_bytes
    # Per layer-direction autograd keeps 8·B·H per step and the layer's output (T·B·H per direction).
    saved = config.num_layers * config.directions * (8 + 1) * tbh_bytes
    assert memory[2 * last_forward + 1] == graph.weight_bytes + saved
    # Afterwards only the weight gradients and the call's output remain.
    assert memory[-1] == 2 * graph.weight_bytes + config.directions * tbh_bytes


def test_serial_peak_of_the_graph_equals_the_cpu_simulation() -> None:
    for config in SHAPES:
        times = make_call_times(config, seed=5)
        assert build_graph(times, chunk_steps=2).serial_peak_memory_bytes() == \
            simulate_call(times, executor="cpu", chunk_steps=2).peak_memory_bytes


# -------------------------------------------------------------------------------------- structure
def test_a_layer_needs_both_directions_of_the_layer_below_at_the_same_time_step() -> None:
    config = shape(seq_len=6, num_layers=2, bidirectional=True)
    graph = build_graph(make_call_times(config), chunk_steps=1, wavefront=True)
    names = [graph.kernel_name(i) for i in range(graph.n_kernels)]
    preds = graph.predecessors()
    for t in range(6):
        deps = {names[p] for p in preds[names.index(f"L1 input_projection {t}-{t + 1}")]}
        # The reverse direction produces time t at its own step T−1−t.
        assert deps == {f"L0 recurrent_steps {t}-{t + 1}", f"L0.rev recurrent_steps {5 - t}-{6 - t}"}
    for p in range(6):
        # The reverse direction of layer 1 runs time 5 − p at its step p.
        deps = {names[q] for q in preds[names.index(f"L1.rev input_projection {p}-{p + 1}")]}
        assert deps == {f"L0 recurrent_steps {5 - p}-{6 - p}", f"L0.rev recurrent_steps {p}-{p + 1}"}
    step_deps = {names[p] for p in preds[names.index("L1.rev recurrent_steps 2-3")]}
    assert step_deps == {"L1.rev input_projection 2-3", "L1.rev recurrent_steps 1-2"}


def test_backward_of_a_layer_needs_the_gradient_from_both_directions_above_at_the_same_time() -> None:
    config = shape(seq_len=4, num_layers=2, bidirectional=True, mode="training")
    graph = build_graph(make_call_times(config), chunk_steps=1, wavefront=True)
    names = [graph.kernel_name(i) for i in range(graph.n_kernels)]
    preds = graph.predecessors()
    for p in range(4):
        deps = {names[q] for q in preds[names.index(f"L0.rev backward_steps {p}-{p + 1}")]}
        chain = {f"L0.rev backward_steps {p + 1}-{p + 2}"} if p < 3 else set()
        # Time 3 − p: layer 1's forward direction made its gradient at step 3 − p, the reverse at step p.
        assert deps == chain | {f"L1 backward_input_projection {3 - p}-{4 - p}",
                                f"L1.rev backward_input_projection {p}-{p + 1}"}


def test_backward_starts_after_the_whole_forward() -> None:
    sim = simulate_call(make_call_times(SHAPES[-1]), executor="gpu", chunk_steps=1)
    forward_end = max(k.finish_s for k in sim.kernels if KINDS.index(k.kind) in FORWARD_KINDS)
    backward_start = min(k.start_s for k in sim.kernels if KINDS.index(k.kind) not in FORWARD_KINDS)
    assert backward_start >= forward_end


def test_the_wavefront_overlaps_layers_and_the_cpu_path_does_not() -> None:
    times = make_call_times(shape(seq_len=40, num_layers=3), seed=2)
    assert parallelism(times, executor="cpu").critical_path_s == pytest.approx(times.serial_s(), rel=1e-12)
    wavefront = simulate_call(times, executor="gpu", chunk_steps=1)
    assert wavefront.makespan_s < 0.8 * times.serial_s()
    assert wavefront.peak_concurrency >= 2


def test_a_concurrency_limit_bounds_the_kernels_running_at_once() -> None:
    times = make_call_times(shape(seq_len=30, num_layers=4, bidirectional=True, mode="training"), seed=4)
    sim = simulate_call(times, executor="gpu", max_concurrency=2, chunk_steps=1)
    assert sim.peak_concurrency == 2
    assert sim.critical_path_s <= sim.makespan_s <= sim.work_s
    assert 0 < sim.utilization["gpu"] <= 1


def test_the_cpu_executor_keeps_its_one_pool_busy() -> None:
    sim = simulate_call(make_call_times(SHAPES[3]), executor="cpu")
    assert sim.utilization == {"cpu": pytest.approx(1.0, rel=1e-12)}
    assert sim.peak_concurrency == 1


# ------------------------------------------------------------------------------------ granularity
@pytest.mark.parametrize("config", SHAPES, ids=str)
def test_merged_steps_equal_step_by_step_when_nothing_overlaps(config: GruConfig) -> None:
    times = make_call_times(config, seed=9)
    fine = simulate_call(times, executor="cpu", chunk_steps=1)
    for chunk in (2, 4, config.seq_len):
        merged = simulate_call(times, executor="cpu", chunk_steps=chunk)
        assert merged.kernels_simulated <= fine.kernels_simulated
        assert merged.makespan_s == pytest.approx(fine.makespan_s, rel=1e-12)
        assert merged.peak_memory_bytes == fine.peak_memory_bytes
        one = simulate_call(times, executor="gpu", max_concurrency=1, chunk_steps=chunk)
        assert one.makespan_s == pytest.approx(fine.makespan_s, rel=1e-12)


def test_merging_steps_can_only_lengthen_the_wavefront() -> None:
    times = make_call_times(shape(seq_len=32, num_layers=3, bidirectional=True, mode="training"), seed=6)
    paths = [parallelism(times, executor="gpu", chunk_steps=k).critical_path_s for k in (1, 2, 4, 8)]
    assert paths == sorted(paths)
    assert all(p <= times.serial_s() for p in paths)


def test_a_long_call_is_merged_into_a_few_thousand_kernels() -> None:
    config = shape(seq_len=10_000, num_layers=4, bidirectional=True, mode="training")
    sim = simulate_call(make_call_times(config), executor="gpu")
    assert sim.kernels_simulated <= 10_000
    assert sim.work_s == pytest.approx(make_call_times(config).serial_s(), rel=1e-9)


def test_chunk_steps_must_be_a_positive_whole_number() -> None:
    with pytest.raises(ConfigError, match="chunk_steps"):
        simulate_call(make_call_times(shape()), chunk_steps=0)


# ------------------------------------------------------------------------------------------ input
def test_call_times_missing_a_layer_direction_are_refused() -> None:
    times = make_call_times(shape(bidirectional=True))
    broken = CallTimes(config=times.config, layers=times.layers[:1], call_overhead_s=0.0)
    with pytest.raises(ConfigError, match="lacks layer/direction"):
        simulate_call(broken)


def test_the_cpu_executor_refuses_a_concurrency_above_one() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        simulate_call(make_call_times(shape()), executor="cpu", max_concurrency=4)


def test_weight_bytes_follow_the_accounting() -> None:
    config = shape(num_layers=2, bidirectional=True)
    expected = 2 * (layer_params(4, 5) + layer_params(10, 5)) * 4
    assert build_graph(make_call_times(config)).weight_bytes == expected


# ------------------------------------------------------------------------------------------ trace
def test_chrome_trace_has_one_complete_event_per_kernel_in_microseconds(tmp_path: Path) -> None:
    sim = simulate_call(make_call_times(SHAPES[3]), executor="gpu", max_concurrency=3, chunk_steps=2)
    path = write_chrome_trace(sim, tmp_path / "call.json")
    events = json.loads(path.read_text())["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == sim.kernels_simulated
    by_name = {e["name"]: e for e in complete}
    for k in sim.kernels:
        e = by_name[k.name]
        assert e["ts"] == pytest.approx(k.start_s * 1e6) and e["dur"] == pytest.approx(k.duration_s * 1e6)
        assert isinstance(e["pid"], int) and e["tid"] == k.lane
    counters = [e for e in events if e["ph"] == "C"]
    assert max(e["args"]["bytes"] for e in counters) == sim.peak_memory_bytes
    named = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {"gpu", "host", "memory"} <= named


def test_memory_timeline_starts_with_the_weights_and_is_in_time_order() -> None:
    sim = simulate_call(make_call_times(SHAPES[-1]), executor="gpu", chunk_steps=2)
    times = np.array([t for t, _ in sim.memory_timeline])
    assert sim.memory_timeline[0] == (0.0, sim.weight_bytes)
    assert np.all(np.diff(times) >= 0)
    assert sim.peak_memory_bytes == max(b for _, b in sim.memory_timeline)
