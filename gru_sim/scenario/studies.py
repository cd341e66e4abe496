"""The serving, training, gradients and plan sections of a scenario turned into what their stages run:
the simulators' own frozen specs, the gradient-flow measurements, the plan's spec."""

from __future__ import annotations

from pathlib import Path

from ..accounting import footprint_bytes
from ..config import GruConfig
from ..csvfiles import CsvFileError, read_arrival_trace
from ..errors import ConfigError
from ..gradient_flow import INITS, GradientSetup
from ..plan import spec as plan_spec
from ..plan.spec import PlanSpec
from ..sim import serving as sim_serving
from ..sim import training as sim_training
from ..units import fmt_bytes
from . import schema
from .locate import Problems, fmt_num
from .model import csv_problem, mode_rule, resolve_path, spec_config
from .schema import FixedSeqLen, LognormalSeqLen, ReplicaRangeSpec, ScenarioSpec, TraceArrival, UniformSeqLen


# ---------------------------------------------------------------------- traffic (serving and plan)
def _traffic(section: str, traffic: schema.ServingSpec | schema.PlanSpec, base_dir: Path, problems: Problems
             ) -> tuple[tuple[float, int], ...] | None:
    """Check the arrival and seq_len of the serving or plan ``section`` (they are written alike), and
    read the arrival trace if there is one."""
    trace = None
    if isinstance(traffic.arrival, TraceArrival):
        if traffic.seq_len is not None:
            problems.bad((section, "seq_len"), traffic.seq_len.model_dump(),
                         "with arrival.process trace, each request's seq_len comes from the trace: remove it")
        try:
            trace = read_arrival_trace(resolve_path(base_dir, traffic.arrival.csv))
        except CsvFileError as err:
            problems.bad((section, "arrival", "csv"), traffic.arrival.csv, csv_problem(err))
    elif traffic.seq_len is None:
        problems.missing((section, "seq_len"), "required unless arrival.process is trace")
    ln = traffic.seq_len
    if isinstance(ln, UniformSeqLen) and ln.low > ln.high:
        problems.bad((section, "seq_len", "high"), ln.high, f"must be >= low ({ln.low})")
    if isinstance(ln, LognormalSeqLen) and ln.max < ln.median:
        problems.bad((section, "seq_len", "max"), ln.max, f"must be >= median ({fmt_num(ln.median)})")
    return trace


def _arrival_spec(traffic: schema.ServingSpec | schema.PlanSpec, trace: tuple[tuple[float, int], ...] | None
                  ) -> sim_serving.ArrivalSpec:
    return sim_serving.ArrivalSpec(process=traffic.arrival.process,
                                   rate_per_s=getattr(traffic.arrival, "rate_per_s", None), trace=trace)


def _seq_len_spec(traffic: schema.ServingSpec | schema.PlanSpec) -> sim_serving.SeqLenSpec | None:
    return None if traffic.seq_len is None else sim_serving.SeqLenSpec(**traffic.seq_len.model_dump())


# ------------------------------------------------------------------------------------------ serving
def build_serving(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> sim_serving.ServingSpec | None:
    """The simulator's spec of the serving study, or None after reporting why there is none."""
    sv = spec.serving
    assert sv is not None
    before = len(problems.found)
    trace = _traffic("serving", sv, base_dir, problems)
    if sv.load_sweep is not None:
        rates = sv.load_sweep.rates_per_s
        if any(b <= a for a, b in zip(rates, rates[1:])):
            problems.bad(("serving", "load_sweep", "rates_per_s"), rates, "rates must increase")
    if sv.memory_cap_bytes is not None:
        _check_memory_cap(spec, trace, problems)
    if len(problems.found) > before:
        return None
    try:
        return sim_serving.ServingSpec(
            arrival=_arrival_spec(sv, trace), seq_len=_seq_len_spec(sv),
            batching=sim_serving.BatchingSpec(**sv.batching.model_dump()),
            replicas=sv.replicas, threads_per_replica=sv.threads_per_replica, requests=sv.requests, seed=sv.seed,
            slo_p99_latency_s=None if sv.slo is None else sv.slo.p99_latency_s,
            memory_cap_bytes=sv.memory_cap_bytes,
            load_sweep_rates_per_s=None if sv.load_sweep is None else tuple(sv.load_sweep.rates_per_s))
    except ConfigError as err:  # the schema should have caught it; say where anyway
        problems.about(("serving",), f"cannot be simulated: {err}")
        return None


def _check_memory_cap(spec: ScenarioSpec, trace: tuple[tuple[float, int], ...] | None, problems: Problems) -> None:
    sv = spec.serving
    assert sv is not None and sv.memory_cap_bytes is not None
    ln = sv.seq_len
    if isinstance(ln, FixedSeqLen):
        longest: int | None = ln.value
    elif isinstance(ln, UniformSeqLen):
        longest = ln.high
    elif isinstance(ln, LognormalSeqLen):
        longest = ln.max
    else:
        longest = max(t for _, t in trace) if trace else None
    if longest is None:
        return
    try:
        one = spec_config(spec, {"batch": 1, "seq_len": longest, "mode": "inference",
                                 "threads": sv.threads_per_replica})
    except ConfigError:
        return  # reported under model already
    need = footprint_bytes(one)
    if need > sv.memory_cap_bytes:
        problems.bad(("serving", "memory_cap_bytes"), sv.memory_cap_bytes,
                     f"one request of {longest} steps alone needs about {fmt_bytes(need)}, so no batch fits")


# ----------------------------------------------------------------------------------------- training
def build_training(spec: ScenarioSpec, problems: Problems) -> sim_training.TrainingSpec | None:
    """The simulator's spec of the training study, or None after reporting why there is none."""
    t = spec.training
    assert t is not None
    before = len(problems.found)
    dupes = sorted({d for d in t.devices if t.devices.count(d) > 1})
    if dupes:
        problems.bad(("training", "devices"), t.devices, f"device counts must be unique ({dupes[0]} appears twice)")
    rule = mode_rule(spec, "training")
    if rule:
        problems.bad(("model", "impl"), spec.model.impl, f"{rule}, so it cannot train")
    if len(problems.found) > before:
        return None
    try:
        return sim_training.TrainingSpec(
            batch_per_device=t.batch_per_device, seq_len=t.seq_len, devices=tuple(t.devices), steps=t.steps,
            interconnect=sim_training.Interconnect(t.interconnect.bandwidth_bytes_per_s, t.interconnect.latency_s))
    except ConfigError as err:  # the schema should have caught it; say where anyway
        problems.about(("training",), f"cannot be simulated: {err}")
        return None


# ---------------------------------------------------------------------------------------- gradients
def seq_lens_in_use(spec: ScenarioSpec, serving: sim_serving.ServingSpec | None) -> tuple[tuple[str, int], ...]:
    """The lengths the serving and training studies run, labelled for the report: the typical and the
    longest request served, the length trained on."""
    out: list[tuple[str, int]] = []
    ln = spec.serving.seq_len if spec.serving is not None else None
    if isinstance(ln, FixedSeqLen):
        out.append(("served", ln.value))
    elif isinstance(ln, UniformSeqLen):
        out += [("served (shortest)", ln.low), ("served (longest)", ln.high)]
    elif isinstance(ln, LognormalSeqLen):
        out += [("served (median)", max(1, round(ln.median))), ("served (longest)", ln.max)]
    elif serving is not None and serving.arrival.trace:
        lengths = sorted(t for _, t in serving.arrival.trace)
        out += [("served (median)", lengths[len(lengths) // 2]), ("served (longest)", lengths[-1])]
    if spec.training is not None:
        out.append(("trained", spec.training.seq_len))
    return tuple(out)


def build_gradients(spec: ScenarioSpec, base_dir: Path, sweep_configs: tuple[GruConfig, ...],
                     in_use: tuple[tuple[str, int], ...], problems: Problems) -> tuple[GradientSetup, ...]:
    """One gradient-flow measurement per initialisation of the study, or () after reporting why not."""
    g = spec.gradients
    assert g is not None
    before = len(problems.found)
    if g.seq_len is not None:
        dupes = [v for i, v in enumerate(g.seq_len) if v in g.seq_len[:i]]
        if dupes:
            problems.bad(("gradients", "seq_len"), g.seq_len, f"lengths must be unique ({dupes[0]} appears twice)")
        seq_lens = tuple(g.seq_len)
    else:
        seq_lens = tuple(sorted({c.seq_len for c in sweep_configs} | {t for _, t in in_use}))
        if not seq_lens:
            problems.missing(("gradients", "seq_len"),
                             "no other study gives sequence lengths: list the lengths to measure")
    inits = []
    for i, init in enumerate(g.init):
        if init in g.init[:i]:
            problems.bad(("gradients", "init", i), init, "each initialisation once")
        elif init in INITS:
            inits.append(init)
        else:
            weights = resolve_path(base_dir, init)
            if weights.is_file():
                inits.append(str(weights))
            else:
                problems.bad(("gradients", "init", i), init,
                             f"must be {' or '.join(INITS)}, or a state_dict file that exists "
                             "(looked in the scenario's folder and the current folder)")
    if len(problems.found) > before:
        return ()
    m = spec.model
    try:
        return tuple(GradientSetup(input_size=m.input_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
                                   bidirectional=m.bidirectional, dtype=m.dtype, init=init, seq_lens=seq_lens,
                                   inputs=g.inputs, seed=g.seed, threads=g.threads,
                                   error_dtypes=tuple(g.error_dtypes))
                     for init in inits)
    except ConfigError as err:  # the schema should have caught it; say where anyway
        problems.about(("gradients",), f"cannot be measured: {err}")
        return ()


# --------------------------------------------------------------------------------------------- plan
def build_plan(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> PlanSpec | None:
    """The planner's spec of the ``plan`` section, or None after reporting why there is none."""
    pl = spec.plan
    assert pl is not None
    before = len(problems.found)
    trace = _traffic("plan", pl, base_dir, problems)
    given = [p for p in (99, 95) if getattr(pl.slo, f"p{p}_latency_s") is not None]
    if len(given) != 1:
        problems.about(("plan", "slo"), "give one of p99_latency_s and p95_latency_s")
    search = pl.search
    if isinstance(search.replicas, ReplicaRangeSpec) and search.replicas.max < search.replicas.min:
        problems.bad(("plan", "search", "replicas", "max"), search.replicas.max,
                     f"must be >= min ({search.replicas.min})")
    edges = search.bucket_edges
    if edges is not None and any(b <= a for a, b in zip(edges, edges[1:])):
        problems.bad(("plan", "search", "bucket_edges"), edges, "edges must increase")
    hardware = []
    for i, hw in enumerate(pl.hardware or ()):
        if any(other.name == hw.name for other in (pl.hardware or ())[:i]):
            problems.bad(("plan", "hardware", i, "name"), hw.name, "every machine kind needs its own name")
        profile = None
        if hw.profile is not None:
            found = resolve_path(base_dir, hw.profile)
            if not found.is_file():
                problems.bad(("plan", "hardware", i, "profile"), hw.profile,
                             f"no such file (looked in {base_dir or '.'} and the current folder)")
            profile = str(found)
        hardware.append(plan_spec.Hardware(name=hw.name, cost_per_hour=hw.cost_per_hour, cores=hw.cores,
                                           memory_bytes=hw.memory_bytes, profile=profile,
                                           max_machines=hw.max_machines))
    if pl.service_time_margin == "interval" and pl.service_time_factor != 1:
        problems.bad(("plan", "service_time_margin"), pl.service_time_margin,
                     plan_spec.interval_and_factor_rule(pl.service_time_factor))
    if pl.training is not None:
        rule = mode_rule(spec, "training")
        if rule:
            problems.bad(("model", "impl"), spec.model.impl, f"{rule}, so it cannot train")
    if len(problems.found) > before:
        return None
    if not hardware:
        # No machine kinds named: one replica per machine at 1 per hour, so the cost counts replicas.
        hardware.append(plan_spec.Hardware(name="replica", cost_per_hour=1.0, cores=max(search.threads_per_replica)))
    replicas = (tuple(range(search.replicas.min, search.replicas.max + 1))
                if isinstance(search.replicas, ReplicaRangeSpec) else tuple(sorted(set(search.replicas))))
    seeds = tuple(range(1, pl.seeds + 1)) if isinstance(pl.seeds, int) else tuple(pl.seeds)
    t = pl.training
    try:
        return plan_spec.PlanSpec(
            arrival=_arrival_spec(pl, trace), seq_len=_seq_len_spec(pl),
            slo=plan_spec.Slo(latency_s=getattr(pl.slo, f"p{given[0]}_latency_s"), percentile=given[0],
                              min_attainment=pl.slo.min_attainment),
            hardware=tuple(hardware),
            space=plan_spec.SearchSpace(replicas=replicas, max_batch=tuple(search.max_batch),
                                        max_wait_s=tuple(search.max_wait_s), padding=tuple(search.padding),
                                        bucket_edges=None if edges is None else tuple(edges),
                                        threads_per_replica=tuple(search.threads_per_replica)),
            rates_per_s=tuple(pl.rates_per_s or ()), memory_cap_bytes=pl.memory_cap_bytes, requests=pl.requests,
            seeds=seeds, service_time_factor=pl.service_time_factor, service_time_margin=pl.service_time_margin,
            training=None if t is None else plan_spec.TrainingPlanSpec(
                sequences_per_epoch=t.sequences_per_epoch, seq_len=t.seq_len,
                target_epoch_time_s=t.target_epoch_time_s, batch_per_device=tuple(t.batch_per_device),
                devices=tuple(t.devices),
                interconnect=sim_training.Interconnect(t.interconnect.bandwidth_bytes_per_s, t.interconnect.latency_s),
                cost_per_device_hour=t.cost_per_device_hour, device_memory_bytes=t.device_memory_bytes,
                optimizer=t.optimizer))
    except ConfigError as err:  # the schema should have caught it; say where anyway
        problems.about(("plan",), f"cannot be planned: {err}")
        return None
