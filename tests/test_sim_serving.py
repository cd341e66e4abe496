"""The serving simulation: queueing theory, the batcher's rules, padding, memory cap, load sweep."""

from __future__ import annotations


import numpy as np
import pytest

from gru_sim.errors import ConfigError, OutOfMemoryError
from gru_sim.sim.load_sweep import sweep_load
from gru_sim.sim.serving import simulate_serving
from gru_sim.sim.serving_spec import ArrivalSpec, BatchingSpec, ServingSpec, SeqLenSpec, generate_requests

SERVICE_S = 0.01


def poisson(rate_per_s: float, requests: int, seed: int = 1, max_batch: int = 1, max_wait_s: float = 0.0,
            replicas: int = 1, **extra: object) -> ServingSpec:
    return ServingSpec(arrival=ArrivalSpec("poisson", rate_per_s=rate_per_s),
                       seq_len=SeqLenSpec("fixed", value=10), batching=BatchingSpec(max_batch, max_wait_s),
                       replicas=replicas, requests=requests, seed=seed, **extra)  # type: ignore[arg-type]


def trace(rows: list[tuple[float, int]], max_batch: int, max_wait_s: float, padding: str = "pad",
          **extra: object) -> ServingSpec:
    return ServingSpec(arrival=ArrivalSpec("trace", trace=tuple(rows)),
                       batching=BatchingSpec(max_batch, max_wait_s, padding, **extra),  # type: ignore[arg-type]
                       requests=len(rows))


# ------------------------------------------------------------------------------------------ theory
def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    # M/D/1: Wq = ρ·S / (2(1 − ρ)) (Pollaczek–Khinchine with a deterministic service time S).
    rho = 0.5
    result = simulate_serving(poisson(rho / SERVICE_S, 100_000), lambda b, n: SERVICE_S)
    expected = rho * SERVICE_S / (2 * (1 - rho))
    assert result.queue_wait_s.mean == pytest.approx(expected, rel=0.03)
    assert result.utilization == pytest.approx(rho, rel=0.03)
    assert result.mean_batch_size == 1


def test_mm1_mean_wait_matches_theory_with_exponential_service() -> None:
    # M/M/1: Wq = ρ·S / (1 − ρ).
    rho = 0.5
    rng = np.random.default_rng(2024)
    result = simulate_serving(poisson(rho / SERVICE_S, 100_000, seed=3),
                              lambda b, n: float(rng.exponential(SERVICE_S)))
    expected = rho * SERVICE_S / (1 - rho)
    assert result.queue_wait_s.mean == pytest.approx(expected, rel=0.03)


def test_requests_below_capacity_at_a_constant_rate_never_wait() -> None:
    spec = ServingSpec(arrival=ArrivalSpec("constant", rate_per_s=50.0), seq_len=SeqLenSpec("fixed", value=4),
                       requests=500)
    result = simulate_serving(spec, lambda b, n: SERVICE_S)
    assert result.queue_wait_s.p99 == 0.0
    assert result.latency_s.mean == pytest.approx(SERVICE_S)
    assert result.throughput_req_per_s == pytest.approx(50.0, rel=0.01)


def test_a_second_replica_absorbs_load_one_replica_cannot_carry() -> None:
    # Arrivals every 10 ms, 15 ms of service: one replica falls behind, two never queue.
    base = ServingSpec(arrival=ArrivalSpec("constant", rate_per_s=100.0), seq_len=SeqLenSpec("fixed", value=4),
                       requests=300)
    one = simulate_serving(base, lambda b, n: 0.015)
    two = simulate_serving(ServingSpec(**{**base.__dict__, "replicas": 2}), lambda b, n: 0.015)
    assert one.queue_wait_s.p99 > 1.0
    assert two.queue_wait_s.p99 == 0.0
    assert set(two.log.replica.tolist()) == {0, 1}


# ----------------------------------------------------------------------------------------- batcher
def test_a_batch_leaves_when_full_or_when_its_oldest_request_waited_max_wait() -> None:
    rows = [(0.0, 5), (0.001, 5), (0.002, 5), (0.010, 5)]
    result = simulate_serving(trace(rows, max_batch=3, max_wait_s=0.005), lambda b, n: 0.001)
    # The first three fill a batch at 2 ms; the fourth waits alone until 10 + 5 ms.
    assert result.log.dispatch_s.tolist() == pytest.approx([0.002, 0.002, 0.002, 0.015])
    assert result.batch_size_histogram == ((1, 1), (3, 1))


def test_requests_that_queue_behind_a_busy_replica_leave_together() -> None:
    rows = [(0.0, 5), (0.001, 5), (0.002, 5)]
    result = simulate_serving(trace(rows, max_batch=8, max_wait_s=0.0), lambda b, n: 0.010)
    # The first leaves at once; the other two have waited past max_wait when the replica frees at 10 ms.
    assert result.log.dispatch_s.tolist() == pytest.approx([0.0, 0.010, 0.010])
    assert result.log.finish_s.tolist() == pytest.approx([0.010, 0.020, 0.020])


def test_padding_to_the_longest_request_is_reported_and_buckets_avoid_it() -> None:
    rows = [(0.0, 10), (0.0, 30)]
    padded = simulate_serving(trace(rows, max_batch=2, max_wait_s=0.0), lambda b, n: 0.001)
    assert padded.log.padded_len.tolist() == [30, 30]
    assert padded.padding_share == pytest.approx(1 - 40 / 60)
    bucketed = simulate_serving(trace(rows, max_batch=2, max_wait_s=0.0, padding="bucket", bucket_edges=(16, 32)),
                                lambda b, n: 0.001)
    assert bucketed.padding_share == 0.0
    assert bucketed.batches == 2


def test_the_service_time_is_asked_for_the_batch_size_and_padded_length() -> None:
    seen: list[tuple[int, int]] = []

    def service(batch: int, seq_len: int) -> float:
        seen.append((batch, seq_len))
        return 0.001

    simulate_serving(trace([(0.0, 7), (0.0, 3), (0.0, 9), (0.5, 4)], max_batch=3, max_wait_s=0.0), service)
    assert seen == [(3, 9), (1, 4)]


def test_a_batch_is_cut_to_fit_under_the_memory_cap() -> None:
    spec = ServingSpec(**{**poisson(2000.0, 2000, max_batch=8, max_wait_s=0.01).__dict__,
                          "memory_cap_bytes": 2_500})
    result = simulate_serving(spec, lambda b, n: 0.001, memory_bytes=lambda b, n: 100 * b * n)
    assert max(size for size, _ in result.batch_size_histogram) == 2


def test_a_request_too_big_for_the_memory_cap_is_refused() -> None:
    spec = ServingSpec(**{**poisson(10.0, 10).__dict__, "memory_cap_bytes": 500})
    with pytest.raises(OutOfMemoryError, match="memory_cap_bytes"):
        simulate_serving(spec, lambda b, n: 0.001, memory_bytes=lambda b, n: 100 * b * n)


def test_a_memory_cap_without_a_memory_function_is_refused() -> None:
    spec = ServingSpec(**{**poisson(10.0, 10).__dict__, "memory_cap_bytes": 500})
    with pytest.raises(ConfigError, match="memory_bytes"):
        simulate_serving(spec, lambda b, n: 0.001)


def test_a_negative_service_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="service_time_s"):
        simulate_serving(poisson(10.0, 10), lambda b, n: -1.0)


# -------------------------------------------------------------------------------------- requests
def test_same_seed_gives_the_same_results_and_another_seed_others() -> None:
    spec = ServingSpec(arrival=ArrivalSpec("poisson", rate_per_s=300.0),
                       seq_len=SeqLenSpec("lognormal", median=100, sigma=0.5, max=400),
                       batching=BatchingSpec(16, 0.004, "bucket"), replicas=2, requests=3000, seed=7)

    def service(b: int, n: int) -> float:
        return 1e-3 + 2e-6 * b * n

    first, second = simulate_serving(spec, service), simulate_serving(spec, service)
    assert first.to_dict() == second.to_dict()
    other = simulate_serving(ServingSpec(**{**spec.__dict__, "seed": 8}), service)
    assert other.to_dict() != first.to_dict()


def test_sequence_lengths_follow_their_distribution() -> None:
    uniform = generate_requests(ServingSpec(arrival=ArrivalSpec("constant", rate_per_s=1.0),
                                            seq_len=SeqLenSpec("uniform", low=5, high=9), requests=5000))
    assert uniform.seq_len.min() == 5 and uniform.seq_len.max() == 9
    lognormal = generate_requests(ServingSpec(arrival=ArrivalSpec("constant", rate_per_s=1.0),
                                              seq_len=SeqLenSpec("lognormal", median=200, sigma=1.0, max=600),
                                              requests=20_000))
    assert lognormal.seq_len.max() == 600
    assert np.median(lognormal.seq_len) == pytest.approx(200, rel=0.05)


def test_poisson_arrivals_have_the_asked_mean_rate() -> None:
    reqs = generate_requests(poisson(250.0, 40_000))
    assert (len(reqs.arrival_s) - 1) / (reqs.arrival_s[-1] - reqs.arrival_s[0]) == pytest.approx(250.0, rel=0.02)


def test_a_trace_can_be_replayed_at_another_rate() -> None:
    rows = ((0.0, 10), (0.5, 20), (1.0, 30))
    faster = generate_requests(ServingSpec(arrival=ArrivalSpec("trace", rate_per_s=4.0, trace=rows), requests=3))
    assert faster.arrival_s.tolist() == pytest.approx([0.0, 0.25, 0.5])
    assert faster.seq_len.tolist() == [10, 20, 30]


# ---------------------------------------------------------------------------------------- results
def test_results_carry_the_contract_keys() -> None:
    result = simulate_serving(poisson(50.0, 500, slo_p99_latency_s=0.05), lambda b, n: SERVICE_S)
    d = result.to_dict()
    for key in ("throughput_req_per_s", "utilization", "mean_batch_size", "slo_attainment"):
        assert isinstance(d[key], float)
    for key in ("latency_s", "queue_wait_s"):
        assert set(d[key]) == {"mean", "p50", "p90", "p99"}
    assert set(d["service_time_s"]) == {"mean"}
    assert d["slo_attainment"] == pytest.approx(float((result.log.latency_s <= 0.05).mean()))


def test_timelines_agree_with_the_request_log() -> None:
    result = simulate_serving(poisson(80.0, 2000, max_batch=4, max_wait_s=0.02), lambda b, n: 0.02)
    util = np.array([u for _, u in result.utilization_timeline])
    assert np.all((util >= 0) & (util <= 1 + 1e-9))
    t, queued = result.queue_length_timeline[len(result.queue_length_timeline) // 2]
    log = result.log
    assert queued == int(((log.arrival_s <= t) & (log.dispatch_s > t)).sum())
    assert sum(c for _, c in result.batch_size_histogram) == result.batches


def test_a_bad_spec_is_refused_naming_the_field_not_a_scenario_path() -> None:
    with pytest.raises(ConfigError, match=r"^max_batch\(=0\)"):
        BatchingSpec(max_batch=0)
    with pytest.raises(ConfigError, match=r"^rate_per_s\(=-1"):
        ArrivalSpec("poisson", rate_per_s=-1.0)


# ------------------------------------------------------------------------------------- load sweep
def test_load_sweep_p99_grows_with_load_and_the_found_rate_is_the_edge_of_the_slo() -> None:
    spec = poisson(10.0, 4000)
    slo = 0.05
    sweep = sweep_load(spec, lambda b, n: SERVICE_S, slo_p99_latency_s=slo, rel_tolerance=0.01)
    p99 = [p.latency_p99_s for p in sweep.points]
    assert p99 == sorted(p99)  # common random numbers: each request's wait grows with the rate
    best = sweep.max_rate_meeting_slo_per_s
    assert best is not None and 0 < best < 1 / SERVICE_S
    assert simulate_serving(spec.with_rate(best), lambda b, n: SERVICE_S).latency_s.p99 <= slo
    above = simulate_serving(spec.with_rate(best * 1.02), lambda b, n: SERVICE_S)
    assert above.latency_s.p99 > slo


def test_an_slo_shorter_than_the_service_time_is_met_at_no_rate() -> None:
    sweep = sweep_load(poisson(10.0, 500), lambda b, n: SERVICE_S, slo_p99_latency_s=SERVICE_S / 2, points=3)
    assert sweep.max_rate_meeting_slo_per_s is None
