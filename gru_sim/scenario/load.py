"""Reading a scenario file: YAML (safe loader) → the schema → checks across fields and the files it
names → a frozen :class:`Scenario` holding what the stages run: the sweep's configurations, the
simulators' own specs (:class:`gru_sim.sim.serving.ServingSpec`, :class:`gru_sim.sim.training.TrainingSpec`)
and the gradient-flow measurements (:class:`gru_sim.gradient_flow.GradientSetup`).

Every problem is reported as ``file:line: field.path: value is not valid: rule`` (see
:mod:`gru_sim.scenario.locate`); the simulators never see a scenario's field paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..accounting import footprint_bytes
from ..config import GruConfig, broken_rules
from ..csvfiles import CsvFileError, read_arrival_trace, read_rows
from ..errors import ConfigError, ScenarioError
from ..gradient_flow import INITS, GradientSetup
from ..plan import spec as plan_spec
from ..plan.spec import PlanSpec
from ..sim import serving as sim_serving
from ..sim import training as sim_training
from ..units import fmt_bytes
from .locate import (Problems, YamlLoader, duplicate_keys, fmt_num, format_problems, keys_at,
                     problem_from_pydantic, show, yaml_kind)
from .schema import (GRID_AXES, FixedSeqLen, LognormalSeqLen, ReplicaRangeSpec, ScenarioSpec, SweepConfigSpec,
                     TraceArrival, UniformSeqLen)

# The studies a scenario may hold (at least one).
STUDIES = ("sweep", "serving", "training", "gradients", "plan")

# A sweep this large takes minutes even on many cores, and its report would be unreadable.
MAX_SWEEP_CONFIGS = 200_000
# With a Dask cluster (--workers, --scheduler) a grid is priced in vectorised chunks and written to disk
# as it goes, never held as records: up to this many.
MAX_CLUSTER_SWEEP_CONFIGS = 20_000_000
# Columns a configs_csv may have; the others come from the model.
CSV_FIELDS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "mode", "threads")


@dataclass(frozen=True)
class Scenario:
    """A checked scenario file: the spec as written, plus what it points to, resolved and read, and
    the studies as the stages take them."""

    path: Path
    spec: ScenarioSpec
    profile_path: Path | None
    sweep_configs: tuple[GruConfig, ...]
    serving: sim_serving.ServingSpec | None
    training: sim_training.TrainingSpec | None
    # The plan section, for `gru-sim plan` (`run` leaves it alone).
    plan: PlanSpec | None = None
    # One measurement per initialisation of the gradients study (none without one).
    gradients: tuple[GradientSetup, ...] = ()
    # The sequence lengths the serving and training studies run, labelled ("served (median)", 300).
    seq_lens_in_use: tuple[tuple[str, int], ...] = ()
    # A grid larger than MAX_SWEEP_CONFIGS (allowed when loaded for a cluster): its axes, name → values
    # in the order itertools.product walks them, instead of sweep_configs.
    sweep_grid: dict[str, tuple[Any, ...]] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def config(self, **changes: Any) -> GruConfig:
        """A GruConfig of the scenario's model on its device with some fields changed (at least batch
        and seq_len)."""
        return spec_config(self.spec, changes)


def model_values(spec: ScenarioSpec) -> dict[str, Any]:
    """The GruConfig fields that ``spec.model`` and ``spec.device`` fix (all but batch, seq_len, mode)."""
    m = spec.model
    return dict(input_size=m.input_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
                bidirectional=m.bidirectional, dtype=m.dtype, impl=m.impl, device=spec.device, threads=m.threads)


def spec_config(spec: ScenarioSpec, changes: dict[str, Any]) -> GruConfig:
    """The GruConfig of ``spec.model`` on ``spec.device`` with some fields changed (None: keep)."""
    values = model_values(spec)
    values.update({k: v for k, v in changes.items() if v is not None})
    return GruConfig(**values)


def load_scenario(path: str | Path, max_sweep_configs: int = MAX_SWEEP_CONFIGS) -> Scenario:
    """Read and check a scenario file; raises ScenarioError naming file, line, field, value and rule.
    ``max_sweep_configs`` above MAX_SWEEP_CONFIGS (a run on a cluster) lets a grid that large through as
    ``sweep_grid``."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{shown}: is a folder, not a scenario file") from None
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{shown}: is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ScenarioError(f"{shown}: cannot be read: {err.strerror}") from None
    try:
        root = yaml.compose(text, Loader=YamlLoader)
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = err.problem or err.context or "cannot be parsed"
        if err.context and err.context_mark is not None and err.context_mark.line + 1 != line:
            what += f" ({err.context} that starts on line {err.context_mark.line + 1})"
        elif err.context and err.problem:
            what += f" ({err.context})"
        raise ScenarioError(f"{shown}:{line}: is not valid YAML: {what}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{shown}: is not valid YAML: {err}") from None
    if root is None:
        raise ScenarioError(f"{shown}:1: the file is empty: a scenario needs name, device, model and a study")
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ScenarioError(f"{shown}:{root.start_mark.line + 1}: a scenario is a mapping of keys (name, "
                            f"device, model, sweep, serving, training), not a {yaml_kind(root)}")
    problems = duplicate_keys(root, ())
    if not problems:
        try:
            spec = ScenarioSpec.model_validate(data)
        except ValidationError as err:
            problems = [problem_from_pydantic(e, root) for e in err.errors()]
        else:
            return _check_and_build(path, spec, Problems(root), max_sweep_configs)
    raise ScenarioError(format_problems(shown, problems))


def resolve_path(base_dir: Path, text: str) -> Path:
    """A path from the scenario: absolute as is; relative from the scenario's folder, else the current one."""
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    beside = base_dir / p
    if beside.exists() or not p.exists():
        return beside
    return p


# ------------------------------------------------------------------ checks across fields, and files
def _check_and_build(path: Path, spec: ScenarioSpec, problems: Problems,
                     max_sweep_configs: int = MAX_SWEEP_CONFIGS) -> Scenario:
    base_dir = path.parent
    m = spec.model
    if all(getattr(spec, study) is None for study in STUDIES):
        problems.about((), f"the scenario has no study: add {', '.join(STUDIES[:-1])} or {STUDIES[-1]}")
    for name, rule in broken_rules(spec.device, m.dtype, m.impl):
        problems.bad(("model", name), getattr(m, name), rule)

    profile_path = None
    if spec.profile is not None:
        profile_path = resolve_path(base_dir, spec.profile)
        if not profile_path.is_file():
            problems.bad(("profile",), spec.profile,
                         f"no such file (looked in {base_dir or '.'} and the current folder)")

    grid: dict[str, tuple[Any, ...]] = {}
    sweep_configs = _sweep_configs(spec, base_dir, problems, max_sweep_configs, grid) if spec.sweep is not None else ()
    serving = _serving_spec(spec, base_dir, problems) if spec.serving is not None else None
    training = _training_spec(spec, problems) if spec.training is not None else None
    plan = _plan_spec(spec, base_dir, problems) if spec.plan is not None else None
    in_use = _seq_lens_in_use(spec, serving)
    gradients = (_gradient_setups(spec, base_dir, sweep_configs, in_use, problems)
                 if spec.gradients is not None else ())
    if problems:
        raise ScenarioError(format_problems(str(path), problems.found))
    return Scenario(path=path, spec=spec, profile_path=profile_path, sweep_configs=sweep_configs,
                    serving=serving, training=training, plan=plan, gradients=gradients, seq_lens_in_use=in_use,
                    sweep_grid=grid or None)


def _mode_rule(spec: ScenarioSpec, mode: str) -> str | None:
    """The rule of config.py that ``mode`` breaks with the scenario's model, if any."""
    m = spec.model
    return next((rule for name, rule in broken_rules(spec.device, m.dtype, m.impl, mode) if name == "mode"), None)


# -------------------------------------------------------------------------------------------- sweep
def _sweep_configs(spec: ScenarioSpec, base_dir: Path, problems: Problems, limit: int = MAX_SWEEP_CONFIGS,
                   large_grid: dict[str, tuple[Any, ...]] | None = None) -> tuple[GruConfig, ...]:
    """The sweep's configurations; a grid larger than MAX_SWEEP_CONFIGS but within ``limit`` goes into
    ``large_grid`` (its axes) instead."""
    s = spec.sweep
    assert s is not None
    for axis in GRID_AXES:
        values = getattr(s, axis)
        if values is not None:
            dupes = [v for i, v in enumerate(values) if v in values[:i]]
            if dupes:
                problems.bad(("sweep", axis), values, f"axis values must be unique ({show(dupes[0])} appears twice)")
    rule = next((r for r in (_mode_rule(spec, mode) for mode in s.mode) if r), None)
    if rule:
        problems.bad(("sweep", "mode"), s.mode, f"{rule}: use [inference]")
    explicit = [k for k in ("configs", "configs_csv") if getattr(s, k) is not None]
    grid_set = [a for a in GRID_AXES if a != "mode" and getattr(s, a) is not None]
    if len(explicit) == 2:
        problems.bad(("sweep", "configs_csv"), s.configs_csv, "give configs or configs_csv, not both")
        return ()
    if explicit:
        if grid_set:
            problems.bad(("sweep", grid_set[0]), getattr(s, grid_set[0]),
                         f"a sweep is either a grid or a list ({explicit[0]}), not both")
            return ()
        if "mode" in keys_at(problems.root, ("sweep",)):
            problems.bad(("sweep", "mode"), s.mode, f"with {explicit[0]}, each configuration names its own mode")
            return ()
        if s.configs is not None:
            return _explicit_configs(spec, s.configs, problems)
        return _csv_configs(spec, base_dir, problems)
    for axis in ("batch", "seq_len"):
        if getattr(s, axis) is None:
            problems.missing(("sweep", axis), "a grid needs batch and seq_len (or give configs / configs_csv)")
    if problems:
        return ()
    axes = {a: getattr(s, a) for a in GRID_AXES if getattr(s, a) is not None}
    size = math.prod(len(v) for v in axes.values())
    if size > max(limit, MAX_SWEEP_CONFIGS):
        problems.about(("sweep",), f"the grid has {size} configurations: a sweep has at most "
                                   f"{max(limit, MAX_SWEEP_CONFIGS)}" + (
                                       f" ({MAX_CLUSTER_SWEEP_CONFIGS} with --workers or --scheduler)"
                                       if limit < MAX_CLUSTER_SWEEP_CONFIGS else ""))
        return ()
    names = list(axes)
    if size > MAX_SWEEP_CONFIGS and large_grid is not None:
        try:  # every value of every axis once (the checks above hold the rest)
            for name, values in axes.items():
                for v in values:
                    spec_config(spec, {"batch": 1, "seq_len": 1, name: v})
        except ConfigError as err:
            problems.about(("sweep",), f"a configuration of the grid is impossible: {err}")
            return ()
        large_grid.update({name: tuple(values) for name, values in axes.items()})
        return ()
    try:
        return tuple(spec_config(spec, dict(zip(names, combo))) for combo in product(*axes.values()))
    except ConfigError as err:  # the checks above should have caught it; say where anyway
        problems.about(("sweep",), f"a configuration of the grid is impossible: {err}")
        return ()


def _explicit_configs(spec: ScenarioSpec, configs: list[SweepConfigSpec], problems: Problems
                      ) -> tuple[GruConfig, ...]:
    out = []
    for i, c in enumerate(configs):
        rule = _mode_rule(spec, c.mode)
        if rule:
            problems.bad(("sweep", "configs", i, "mode"), c.mode, rule)
            continue
        try:
            out.append(spec_config(spec, c.model_dump()))
        except ConfigError as err:
            problems.bad(("sweep", "configs", i), c.model_dump(exclude_none=True), str(err))
    return tuple(out)


def _csv_problem(err: CsvFileError) -> str:
    return "no such file (looked in the scenario's folder and the current folder)" if err.missing else str(err)


def _csv_configs(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> tuple[GruConfig, ...]:
    s = spec.sweep
    assert s is not None and s.configs_csv is not None
    loc = ("sweep", "configs_csv")
    csv_path = resolve_path(base_dir, s.configs_csv)
    try:
        header, body = read_rows(csv_path)
    except CsvFileError as err:
        problems.bad(loc, s.configs_csv, _csv_problem(err))
        return ()
    names = [h.strip().replace("-", "_") for h in header]
    names = ["num_layers" if n == "layers" else n for n in names]
    unknown = [h for h, n in zip(header, names) if n not in CSV_FIELDS]
    if unknown or "batch" not in names or "seq_len" not in names:
        rule = (f"{csv_path.name}:1: unknown column {unknown[0]!r}" if unknown
                else f"{csv_path.name}:1: needs columns batch and seq_len")
        problems.bad(loc, s.configs_csv, f"{rule} (columns: {', '.join(CSV_FIELDS)}; others come from model)")
        return ()
    if len(body) > MAX_SWEEP_CONFIGS:
        problems.bad(loc, s.configs_csv, f"{len(body)} configurations: a sweep has at most {MAX_SWEEP_CONFIGS}")
        return ()
    out = []
    for lineno, row in body:
        if len(row) != len(names):
            problems.bad(loc, s.configs_csv,
                         f"{csv_path.name}:{lineno}: has {len(row)} fields, the header {len(names)}")
            return ()
        values = {n: v for n, v in zip(names, row)}
        try:
            full = {**model_values(spec), **{k: v for k, v in values.items() if v.strip()}}
            out.append(GruConfig.from_mapping(full))
        except ConfigError as err:
            problems.bad(loc, s.configs_csv, f"{csv_path.name}:{lineno}: {err}")
            return ()
    return tuple(out)


# ------------------------------------------------------------------------------------------ serving
def _serving_spec(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> sim_serving.ServingSpec | None:
    """The simulator's spec of the serving study, or None after reporting why there is none."""
    sv = spec.serving
    assert sv is not None
    before = len(problems.found)
    trace = None
    if isinstance(sv.arrival, TraceArrival):
        if sv.seq_len is not None:
            problems.bad(("serving", "seq_len"), sv.seq_len.model_dump(),
                         "with arrival.process trace, each request's seq_len comes from the trace: remove it")
        try:
            trace = read_arrival_trace(resolve_path(base_dir, sv.arrival.csv))
        except CsvFileError as err:
            problems.bad(("serving", "arrival", "csv"), sv.arrival.csv, _csv_problem(err))
    elif sv.seq_len is None:
        problems.missing(("serving", "seq_len"), "required unless arrival.process is trace")
    ln = sv.seq_len
    if isinstance(ln, UniformSeqLen) and ln.low > ln.high:
        problems.bad(("serving", "seq_len", "high"), ln.high, f"must be >= low ({ln.low})")
    if isinstance(ln, LognormalSeqLen) and ln.max < ln.median:
        problems.bad(("serving", "seq_len", "max"), ln.max, f"must be >= median ({fmt_num(ln.median)})")
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
            arrival=sim_serving.ArrivalSpec(process=sv.arrival.process,
                                            rate_per_s=getattr(sv.arrival, "rate_per_s", None), trace=trace),
            seq_len=None if ln is None else sim_serving.SeqLenSpec(**ln.model_dump()),
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
def _training_spec(spec: ScenarioSpec, problems: Problems) -> sim_training.TrainingSpec | None:
    """The simulator's spec of the training study, or None after reporting why there is none."""
    t = spec.training
    assert t is not None
    before = len(problems.found)
    dupes = sorted({d for d in t.devices if t.devices.count(d) > 1})
    if dupes:
        problems.bad(("training", "devices"), t.devices, f"device counts must be unique ({dupes[0]} appears twice)")
    rule = _mode_rule(spec, "training")
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
def _seq_lens_in_use(spec: ScenarioSpec, serving: sim_serving.ServingSpec | None) -> tuple[tuple[str, int], ...]:
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


def _gradient_setups(spec: ScenarioSpec, base_dir: Path, sweep_configs: tuple[GruConfig, ...],
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
def _plan_spec(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> PlanSpec | None:
    """The planner's spec of the ``plan`` section, or None after reporting why there is none."""
    pl = spec.plan
    assert pl is not None
    before = len(problems.found)
    trace = None
    if isinstance(pl.arrival, TraceArrival):
        if pl.seq_len is not None:
            problems.bad(("plan", "seq_len"), pl.seq_len.model_dump(),
                         "with arrival.process trace, each request's seq_len comes from the trace: remove it")
        try:
            trace = read_arrival_trace(resolve_path(base_dir, pl.arrival.csv))
        except CsvFileError as err:
            problems.bad(("plan", "arrival", "csv"), pl.arrival.csv, _csv_problem(err))
    elif pl.seq_len is None:
        problems.missing(("plan", "seq_len"), "required unless arrival.process is trace")
    ln = pl.seq_len
    if isinstance(ln, UniformSeqLen) and ln.low > ln.high:
        problems.bad(("plan", "seq_len", "high"), ln.high, f"must be >= low ({ln.low})")
    if isinstance(ln, LognormalSeqLen) and ln.max < ln.median:
        problems.bad(("plan", "seq_len", "max"), ln.max, f"must be >= median ({fmt_num(ln.median)})")
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
                                           memory_bytes=hw.memory_bytes, profile=profile))
    if pl.training is not None:
        rule = _mode_rule(spec, "training")
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
            arrival=sim_serving.ArrivalSpec(process=pl.arrival.process,
                                            rate_per_s=getattr(pl.arrival, "rate_per_s", None), trace=trace),
            seq_len=None if ln is None else sim_serving.SeqLenSpec(**ln.model_dump()),
            slo=plan_spec.Slo(latency_s=getattr(pl.slo, f"p{given[0]}_latency_s"), percentile=given[0],
                              min_attainment=pl.slo.min_attainment),
            hardware=tuple(hardware),
            space=plan_spec.SearchSpace(replicas=replicas, max_batch=tuple(search.max_batch),
                                        max_wait_s=tuple(search.max_wait_s), padding=tuple(search.padding),
                                        bucket_edges=None if edges is None else tuple(edges),
                                        threads_per_replica=tuple(search.threads_per_replica)),
            rates_per_s=tuple(pl.rates_per_s or ()), memory_cap_bytes=pl.memory_cap_bytes, requests=pl.requests,
            seeds=seeds, service_time_factor=pl.service_time_factor,
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


__all__ = ["CSV_FIELDS", "MAX_SWEEP_CONFIGS", "STUDIES", "Scenario", "load_scenario", "model_values",
           "resolve_path", "spec_config"]
