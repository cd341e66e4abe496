"""The capacity planner's search (gru_sim.plan): it finds what simulating every deployment finds,
says in one line why nothing fits, and gives the same answer for the same seeds. Service times come
from small closed-form models, so every test runs in seconds."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from gru_sim.errors import ConfigError
from gru_sim.plan import (Deployment, Hardware, PlanSpec, ReplicaModel, SearchSpace, Slo, TrainingPlanSpec,
                          pareto_front, plan_serving, plan_training)
from gru_sim.sim.serving import ArrivalSpec, SeqLenSpec
from gru_sim.sim.training import BackwardPiece, DeviceStepTimes, Interconnect

WEIGHTS = 2_000_000


def linear_model(overhead_s: float = 0.002, per_item_step_s: float = 2e-5, thread_speedup: float = 0.6,
                 weight_bytes: int = WEIGHTS) -> ReplicaModel:
    """A batch costs a fixed overhead plus a per-(request x step) cost; a second thread cuts that by
    ``thread_speedup``; memory is the weights plus 4 KB per request-step."""
    def service(batch: int, seq_len: int, threads: int) -> float:
        return overhead_s + per_item_step_s * batch * seq_len * (thread_speedup ** (threads - 1))

    def memory(batch: int, seq_len: int) -> int:
        return weight_bytes + 4096 * batch * seq_len

    return ReplicaModel(service, memory, weight_bytes)


def small_spec(rate: float = 60.0, slo_s: float = 0.08, seq: SeqLenSpec | None = None, seeds: tuple[int, ...] = (1, 2),
               **changes: object) -> PlanSpec:
    space = SearchSpace(replicas=tuple(range(1, 9)), max_batch=(1, 4), max_wait_s=(0.0, 0.005),
                        padding=("pad", "bucket"), bucket_edges=(20, 40, 80), threads_per_replica=(1, 2))
    spec = PlanSpec(arrival=ArrivalSpec("poisson", rate_per_s=rate),
                    seq_len=seq or SeqLenSpec("uniform", low=10, high=60), slo=Slo(slo_s),
                    hardware=(Hardware("small", cost_per_hour=1.0, cores=2),
                              Hardware("big", cost_per_hour=3.5, cores=8)),
                    space=space, requests=600, seeds=seeds)
    return replace(spec, **changes)  # type: ignore[arg-type]


MODELS = {"small": linear_model(), "big": linear_model(per_item_step_s=1.6e-5)}


@pytest.mark.parametrize("rate, slo_s, seq, seeds", [
    (60.0, 0.08, SeqLenSpec("uniform", low=10, high=60), (1, 2)),
    (150.0, 0.05, SeqLenSpec("fixed", value=40), (3, 4)),
    (40.0, 0.2, SeqLenSpec("lognormal", median=30, sigma=0.6, max=120), (5,)),
    (250.0, 0.1, SeqLenSpec("uniform", low=5, high=30), (7, 8)),
])
def test_search_finds_the_brute_force_optimum(rate: float, slo_s: float, seq: SeqLenSpec,
                                              seeds: tuple[int, ...]) -> None:
    spec = small_spec(rate, slo_s, seq, seeds)
    searched = plan_serving(spec, MODELS)
    brute = plan_serving(spec, MODELS, exhaustive=True)
    assert brute.recommended is not None
    assert searched.recommended is not None
    assert searched.recommended.deployment == brute.recommended.deployment
    assert searched.recommended.cost_per_hour == brute.recommended.cost_per_hour
    assert searched.evaluations < brute.evaluations


def test_every_feasible_candidate_costs_at_least_the_recommendation() -> None:
    result = plan_serving(small_spec(), MODELS, exhaustive=True)
    assert result.recommended is not None
    cheapest = min(c.cost_per_hour for c in result.candidates if c.feasible)
    assert result.recommended.cost_per_hour == cheapest


def test_slo_below_one_requests_service_time_is_infeasible_with_a_reason() -> None:
    # One request of ~35 steps alone takes 2 ms + 0.7 ms even on two threads: a 1 ms p99 is impossible.
    result = plan_serving(small_spec(slo_s=0.001), MODELS)
    assert result.recommended is None
    assert result.reason is not None and "\n" not in result.reason
    assert "served alone" in result.reason and "0.001 s SLO" in result.reason
    assert result.evaluations == 0


def test_memory_cap_below_the_weights_is_infeasible_with_a_reason() -> None:
    result = plan_serving(small_spec(memory_cap_bytes=WEIGHTS // 2), MODELS)
    assert result.recommended is None
    assert result.reason is not None and "below the model's weights" in result.reason
    assert str(WEIGHTS) in result.reason


def test_too_much_traffic_for_the_largest_deployment_is_infeasible_with_a_reason() -> None:
    result = plan_serving(small_spec(rate=20000.0), MODELS)
    assert result.recommended is None
    assert result.reason is not None and "even 8 replicas" in result.reason and "\n" not in result.reason


def test_same_spec_and_seeds_give_the_same_plan() -> None:
    a = plan_serving(small_spec(), MODELS)
    b = plan_serving(small_spec(), MODELS)
    assert a == b


def test_other_seeds_may_change_figures_but_not_the_shape_of_the_answer() -> None:
    a = plan_serving(small_spec(seeds=(1, 2)), MODELS)
    b = plan_serving(small_spec(seeds=(11, 12)), MODELS)
    assert a.recommended is not None and b.recommended is not None
    assert a.recommended.latency_p99_s != b.recommended.latency_p99_s
    assert a.recommended.cost_per_hour == b.recommended.cost_per_hour


def test_the_next_cheaper_setting_fails_and_says_why() -> None:
    result = plan_serving(small_spec(rate=3000.0, slo_s=0.1, seq=SeqLenSpec("uniform", low=5, high=30)), MODELS)
    assert result.recommended is not None and result.recommended.deployment.machines > 1
    neighbours = result.cheaper_neighbours
    assert neighbours and all(not c.feasible and c.reason for c in neighbours)
    assert all(c.cost_per_hour < result.recommended.cost_per_hour for c in neighbours)
    same = neighbours[0].deployment
    rec = result.recommended.deployment
    assert (same.hardware, same.batching, same.machines) == (rec.hardware, rec.batching, rec.machines - 1)


def test_headroom_is_a_rate_the_recommendation_still_meets() -> None:
    result = plan_serving(small_spec(), MODELS)
    assert result.recommended is not None and result.headroom_rate_per_s is not None
    assert result.headroom_rate_per_s >= result.rate_per_s
    at_headroom = [c for c in plan_serving(small_spec(rate=result.headroom_rate_per_s), MODELS, exhaustive=True)
                   .candidates if c.deployment == result.recommended.deployment]
    assert at_headroom and at_headroom[0].feasible


def test_replicas_fill_the_machines_they_are_packed_on() -> None:
    result = plan_serving(small_spec(), MODELS, exhaustive=True)
    for c in result.candidates:
        d = c.deployment
        per = {"small": 2, "big": 8}[d.hardware] // d.threads_per_replica
        assert c.replicas_per_machine == per
        assert d.machines == math.ceil(d.replicas / per)
        assert d.replicas == min(8, d.machines * per)
        assert c.cost_per_hour == pytest.approx(d.machines * {"small": 1.0, "big": 3.5}[d.hardware])


def test_machine_memory_limits_replicas_per_machine() -> None:
    spec = small_spec(hardware=(Hardware("small", cost_per_hour=1.0, cores=8, memory_bytes=3 * WEIGHTS),))
    result = plan_serving(spec, {"small": linear_model()}, exhaustive=True)
    for c in result.candidates:
        assert c.replicas_per_machine * c.memory_bytes_per_replica <= 3 * WEIGHTS
        assert c.replicas_per_machine < 8


def test_threads_beyond_the_cores_are_ruled_out() -> None:
    spec = small_spec(hardware=(Hardware("one-core", cost_per_hour=1.0, cores=1),))
    result = plan_serving(spec, {"one-core": linear_model()})
    assert [(r.threads_per_replica, "cores" in r.reason) for r in result.ruled_out] == [(2, True)]
    assert result.recommended is not None and result.recommended.deployment.threads_per_replica == 1


def test_pareto_front_has_no_dominated_candidate() -> None:
    result = plan_serving(small_spec(), MODELS, exhaustive=True)
    front = result.pareto
    assert front == pareto_front(result.candidates)
    for f in front:
        assert not any(c.stable and c.cost_per_hour <= f.cost_per_hour and c.latency_p99_s < f.latency_p99_s
                       for c in result.candidates)
    costs = [f.cost_per_hour for f in front]
    assert costs == sorted(set(costs))


def test_a_list_of_rates_is_planned_for_its_peak_with_a_schedule() -> None:
    result = plan_serving(small_spec(rates_per_s=(20.0, 250.0, 120.0)), MODELS)
    assert result.rate_per_s == 250.0
    assert [s.rate_per_s for s in result.schedule] == [20.0, 120.0, 250.0]
    machines = [s.candidate.deployment.machines for s in result.schedule if s.candidate is not None]
    assert machines == sorted(machines) and len(machines) == 3


def test_plan_json_has_the_contract_keys() -> None:
    from gru_sim.plan import PlanResult

    data = json.loads(json.dumps(PlanResult(plan_serving(small_spec(), MODELS), None).to_dict()))
    assert {"slo", "rate_per_s", "recommended", "candidates", "pareto", "training"} <= set(data)
    keys = {"hardware", "machines", "replicas", "threads_per_replica", "max_batch", "max_wait_s", "padding",
            "cost_per_hour", "latency_s", "slo_attainment", "utilization", "memory_bytes", "feasible"}
    assert keys | {"headroom_rate_per_s"} <= set(data["recommended"])
    assert all(keys <= set(c) for c in data["candidates"])
    assert {"p50", "p99"} <= set(data["recommended"]["latency_s"])
    assert data["slo"]["p99_latency_s"] == 0.08 and data["slo"]["min_attainment"] == 0.99


def test_min_attainment_stricter_than_the_percentile_needs_more() -> None:
    loose = plan_serving(small_spec(rate=250.0, slo_s=0.1, seq=SeqLenSpec("uniform", low=5, high=30)), MODELS)
    strict = plan_serving(small_spec(rate=250.0, seq=SeqLenSpec("uniform", low=5, high=30),
                                     slo=Slo(0.1, min_attainment=0.9999)), MODELS)
    assert loose.recommended is not None and strict.recommended is not None
    assert strict.recommended.cost_per_hour >= loose.recommended.cost_per_hour
    assert strict.recommended.slo_attainment >= 0.9999


# ------------------------------------------------------------------------------------------- training
def fake_step(batch: int) -> DeviceStepTimes:
    """Compute grows with the batch; 4 MB of gradients to all-reduce."""
    return DeviceStepTimes(forward_s=0.001 * batch, backward=(BackwardPiece(0.002 * batch, (4_000_000,)),),
                           optimizer_step_s=0.001, peak_memory_bytes=10_000_000 * batch)


def training_spec(**changes: object) -> TrainingPlanSpec:
    spec = TrainingPlanSpec(sequences_per_epoch=100_000, seq_len=100, target_epoch_time_s=120.0,
                            batch_per_device=(16, 32, 64), devices=(1, 2, 4, 8, 16),
                            interconnect=Interconnect(1.25e9, 5e-6), cost_per_device_hour=2.0)
    return replace(spec, **changes)  # type: ignore[arg-type]


def test_training_plan_picks_the_cheapest_option_in_time() -> None:
    plan = plan_training(training_spec(), fake_step)
    assert plan.chosen is not None
    in_time = [o for o in plan.options if o.epoch_time_s <= 120.0]
    assert plan.chosen.cost == min(o.cost for o in in_time)
    assert len(plan.options) == 15
    for o in plan.options:
        assert o.steps_per_epoch == math.ceil(100_000 / (o.devices * o.batch_per_device))
        assert o.cost == pytest.approx(o.devices * 2.0 * o.epoch_time_s / 3600)


def test_training_plan_respects_device_memory() -> None:
    plan = plan_training(training_spec(device_memory_bytes=400_000_000), fake_step)
    assert plan.chosen is not None and plan.chosen.batch_per_device <= 32


def test_training_target_out_of_reach_is_infeasible_with_a_reason() -> None:
    plan = plan_training(training_spec(target_epoch_time_s=0.5), fake_step)
    assert plan.chosen is None
    assert plan.reason is not None and "0.5 s target" in plan.reason


# ------------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("make, message", [
    (lambda: Slo(-1.0), "slo.p99_latency_s(=-1.0) must be a number > 0"),
    (lambda: Slo(0.5, percentile=90), "percentile(=90) must be one of 95, 99"),
    (lambda: SearchSpace(padding=("squash",)), "padding(='squash')"),
    (lambda: SearchSpace(replicas=()), "search.replicas must list at least one value"),
    (lambda: Hardware("vm", 0.2, 0), "hardware[vm].cores(=0)"),
    (lambda: small_spec(requests=0), "requests(=0) must be a whole number >= 1"),
    (lambda: small_spec(hardware=(Hardware("a", 1.0, 2), Hardware("a", 2.0, 4))), "names must differ"),
])
def test_bad_values_name_the_field_and_value(make, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value)


def test_deployment_description_reads_as_a_sentence() -> None:
    result = plan_serving(small_spec(), MODELS)
    assert result.recommended is not None
    text = result.recommended.deployment.describe()
    assert "replica" in text and "machine" in text and "max_batch" in text
    assert isinstance(result.recommended.deployment, Deployment)


def test_a_replayed_trace_is_planned_at_its_own_rate_with_one_seed() -> None:
    trace = tuple((i / 200.0, 10 + (7 * i) % 50) for i in range(600))
    spec = small_spec(arrival=ArrivalSpec("trace", trace=trace), seq=None, seeds=(1, 2, 3))
    spec = replace(spec, seq_len=None)
    result = plan_serving(spec, MODELS)
    assert result.rate_per_s == pytest.approx(200.0, rel=0.01)
    assert result.seeds == (1,)
    assert result.recommended is not None


def test_a_feasible_candidate_meets_the_slo_in_every_seed_and_a_failing_one_names_its_seed() -> None:
    result = plan_serving(small_spec(rate=3000.0, slo_s=0.1, seq=SeqLenSpec("uniform", low=5, high=30),
                                     seeds=(1, 2, 3)), MODELS, exhaustive=True)
    feasible = [c for c in result.candidates if c.feasible]
    assert feasible and all(len(c.latency_p99_by_seed_s) == 3 and max(c.latency_p99_by_seed_s) <= 0.1
                            for c in feasible)
    failing = [c for c in result.candidates if not c.feasible]
    assert failing and all(c.reason is not None and "(seed " in c.reason for c in failing)


# ------------------------------------------------------------------------------- max_machines per kind
LIMITED = (Hardware("small", cost_per_hour=1.0, cores=2, max_machines=2),
           Hardware("big", cost_per_hour=3.5, cores=8, max_machines=1))
BUSY = {"rate": 5000.0, "slo_s": 0.1, "seq": SeqLenSpec("uniform", low=5, high=30)}


def test_the_search_keeps_to_max_machines_and_finds_the_brute_force_optimum_within_it() -> None:
    unlimited = plan_serving(small_spec(**BUSY), MODELS)
    assert unlimited.recommended is not None and unlimited.recommended.deployment.machines > 2  # 3 small ones
    spec = small_spec(**BUSY, hardware=LIMITED)
    searched = plan_serving(spec, MODELS)
    brute = plan_serving(spec, MODELS, exhaustive=True)
    assert brute.recommended is not None and searched.recommended is not None
    assert searched.recommended.deployment == brute.recommended.deployment
    assert searched.recommended.cost_per_hour == brute.recommended.cost_per_hour
    assert searched.recommended.cost_per_hour > unlimited.recommended.cost_per_hour  # the limit costs something
    limits = {h.name: h.max_machines for h in LIMITED}
    for result in (searched, brute):
        everything = [*result.candidates, *result.cheaper_neighbours,
                      *(s.candidate for s in result.schedule if s.candidate is not None)]
        assert everything and all(c.deployment.machines <= limits[c.deployment.hardware] for c in everything)
        small = [r for r in result.ruled_out if r.hardware == "small"]
        assert small and all("needs more than max_machines(=2) small machines at 5000 req/s" in r.reason
                             for r in small)
    # Brute force over the space without the limit, then the limit applied: the same optimum.
    free = plan_serving(small_spec(**BUSY), MODELS, exhaustive=True)
    within = [c for c in free.candidates if c.feasible and c.deployment.machines <= limits[c.deployment.hardware]]
    assert min(c.cost_per_hour for c in within) == brute.recommended.cost_per_hour


def test_needing_more_than_max_machines_is_infeasible_with_a_one_line_reason_naming_it() -> None:
    spec = small_spec(**BUSY, hardware=(LIMITED[0],))
    result = plan_serving(spec, {"small": MODELS["small"]})
    assert result.recommended is None
    assert result.reason is not None and "\n" not in result.reason
    assert result.reason.startswith("no deployment meets p99 <= 0.1 s at 5000 req/s")
    assert "small x 1 thread: needs more than max_machines(=2) small machines at 5000 req/s" in result.reason
    assert all(c.deployment.machines <= 2 for c in result.candidates)


def test_a_limit_below_the_fewest_replicas_searched_says_so() -> None:
    spec = small_spec(hardware=(Hardware("small", 1.0, 2, max_machines=1),),
                      space=replace(small_spec().space, replicas=(4, 8), threads_per_replica=(1,)))
    result = plan_serving(spec, {"small": MODELS["small"]})
    assert result.recommended is None and result.evaluations == 0
    assert result.reason is not None and ("needs more than max_machines(=1) small machines at 60 req/s (the fewest "
                                          "replicas searched, 4, need 2 machines)") in result.reason


def test_a_limit_the_space_never_reaches_changes_nothing() -> None:
    roomy = (replace(LIMITED[0], max_machines=100), replace(LIMITED[1], max_machines=100))
    assert (plan_serving(small_spec(**BUSY, hardware=roomy), MODELS).recommended
            == plan_serving(small_spec(**BUSY), MODELS).recommended)


# ----------------------------------------------------------------------- service_time_margin: interval
def interval_model(**kwargs: float) -> ReplicaModel:
    """linear_model whose 90% interval reaches 1.25x the prediction plus 0.5 ms."""
    point = linear_model(**kwargs)
    return replace(point, service_time_upper_s=lambda b, n, t: 1.25 * point.service_time_s(b, n, t) + 5e-4)


def test_interval_margin_prices_every_simulated_batch_at_the_intervals_upper_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import gru_sim.plan.evaluate as evaluate

    model = interval_model()
    seen: list[tuple[float, float]] = []  # (service time simulated, point prediction)
    real = evaluate.simulate_serving

    def recording(spec, service, *args, **kwargs):  # type: ignore[no-untyped-def]
        def timed(batch: int, seq_len: int) -> float:
            t = service(batch, seq_len)
            seen.append((t, model.service_time_s(batch, seq_len, spec.threads_per_replica)))
            return t
        return real(spec, timed, *args, **kwargs)

    monkeypatch.setattr(evaluate, "simulate_serving", recording)
    spec = small_spec(hardware=(Hardware("small", 1.0, 2),), service_time_margin="interval")
    result = plan_serving(spec, {"small": model})
    assert result.recommended is not None and seen
    assert all(t >= p for t, p in seen)
    assert all(t == pytest.approx(1.25 * p + 5e-4) for t, p in seen)


@pytest.mark.parametrize("rate, slo_s, seq", [
    (60.0, 0.08, SeqLenSpec("uniform", low=10, high=60)),
    (3000.0, 0.1, SeqLenSpec("uniform", low=5, high=30)),
    (5000.0, 0.1, SeqLenSpec("uniform", low=5, high=30)),
])
def test_the_interval_margin_never_needs_fewer_machines_than_the_point_prediction(
        rate: float, slo_s: float, seq: SeqLenSpec) -> None:
    hardware = (Hardware("small", 1.0, 2),)
    models = {"small": interval_model()}
    point = plan_serving(small_spec(rate, slo_s, seq, hardware=hardware), models)
    margin = plan_serving(small_spec(rate, slo_s, seq, hardware=hardware, service_time_margin="interval"), models)
    assert point.recommended is not None and margin.recommended is not None
    assert margin.recommended.cost_per_hour >= point.recommended.cost_per_hour
    assert margin.recommended.deployment.machines >= point.recommended.deployment.machines
    if rate == 5000.0:
        assert margin.recommended.cost_per_hour > point.recommended.cost_per_hour


def test_the_interval_margin_never_prices_below_the_point_prediction() -> None:
    from gru_sim.plan.evaluate import Evaluator

    low = replace(linear_model(), service_time_upper_s=lambda b, n, t: 0.5 * linear_model().service_time_s(b, n, t))
    ev = Evaluator(small_spec(hardware=(Hardware("small", 1.0, 2),), service_time_margin="interval"), {"small": low})
    assert ev.service("small", 1)(4, 30) == linear_model().service_time_s(4, 30, 1)


def test_the_margin_and_the_limits_are_in_plan_json() -> None:
    from gru_sim.plan import PlanResult

    spec = small_spec(hardware=LIMITED, service_time_margin="interval")
    models = {"small": interval_model(), "big": interval_model(per_item_step_s=1.6e-5)}
    data = json.loads(json.dumps(PlanResult(plan_serving(spec, models), None).to_dict()))
    assert data["service_time_margin"] == "interval" and data["service_time_factor"] == 1.0
    assert [(h["name"], h["max_machines"]) for h in data["hardware"]] == [("small", 2), ("big", 1)]
    data = json.loads(json.dumps(PlanResult(plan_serving(small_spec(), MODELS), None).to_dict()))
    assert data["service_time_margin"] == "factor" and data["hardware"][0]["max_machines"] is None


@pytest.mark.parametrize("make, message", [
    (lambda: Hardware("vm", 0.2, 2, max_machines=0), "hardware[vm].max_machines(=0) must be a whole number >= 1"),
    (lambda: Hardware("vm", 0.2, 2, max_machines=-3), "hardware[vm].max_machines(=-3)"),
    (lambda: small_spec(service_time_margin="quantile"), "service_time_margin(='quantile') must be one of"),
    (lambda: small_spec(service_time_margin="interval", service_time_factor=1.15),
     "service_time_margin: interval and service_time_factor(=1.15) both set the margin"),
])
def test_bad_limits_and_margins_name_the_field_and_value(make, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_interval_margin_needs_a_model_that_states_its_error() -> None:
    with pytest.raises(ConfigError, match="states no prediction interval"):
        plan_serving(small_spec(service_time_margin="interval"), MODELS)
