"""A scenario is the question a user brings: one GRU model and the studies to run on it — a sweep
of call shapes, requests served by a deployed model, data-parallel training steps.

This module reads a scenario file (YAML, with a safe loader), checks it against the schema below and
returns a frozen :class:`Scenario`. Every problem is reported as ``file:line: field.path: value is not
valid: rule``, the line found by walking the YAML node tree, so a user can go straight to it.
The format is the one in CONTRACT.md; ``gru-sim schema`` prints it as JSON Schema.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .accounting import footprint_bytes
from .config import CPU_DTYPES, DEVICES, DTYPES, IMPLS, MODES, GruConfig
from .errors import ConfigError, ScenarioError
from .units import fmt_bytes

SCHEMA_ID = "https://gru-sim.invalid/scenario.schema.json"
# A sweep this large takes minutes even on many cores, and its report would be unreadable.
MAX_SWEEP_CONFIGS = 200_000
# At most this many problems are listed; the rest are counted.
MAX_ERRORS_SHOWN = 10

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Mode = Literal["inference", "training"]
Dtype = Literal["float32", "float16", "bfloat16", "float64"]
Impl = Literal["torch-gru", "torch-gru-cell", "numpy-reference"]
Device = Literal["cpu", "cuda"]
assert set(Mode.__args__) == set(MODES) and set(Dtype.__args__) == set(DTYPES)  # type: ignore[attr-defined]
assert set(Impl.__args__) == set(IMPLS) and set(Device.__args__) == set(DEVICES)  # type: ignore[attr-defined]


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


# ------------------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class Scenario:
    """A checked scenario file: the spec as written, plus what it points to, resolved and read."""

    path: Path
    spec: ScenarioSpec
    profile_path: Path | None
    sweep_configs: tuple[GruConfig, ...]
    # (time_s, seq_len) per request when serving replays a trace.
    arrival_trace: tuple[tuple[float, int], ...] | None

    @property
    def name(self) -> str:
        return self.spec.name

    def config(self, **changes: Any) -> GruConfig:
        """A GruConfig of the scenario's model on its device with some fields changed (at least batch
        and seq_len)."""
        return spec_config(self.spec, changes)


def scenario_json_schema() -> dict[str, Any]:
    """The scenario format as JSON Schema (draft 2020-12), for editors and CI linters."""
    schema = ScenarioSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


# ------------------------------------------------------------------------------------------ loading
class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``12.5e9`` and ``1e-3`` as numbers (YAML 1.2 does; PyYAML's
    YAML 1.1 resolver wants a dot and a signed exponent, so CONTRACT.md's example would read as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


@dataclass(frozen=True)
class _Problem:
    line: int
    path: str
    text: str  # "VALUE is not valid: RULE", "missing: RULE" or "unknown key ..."


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; raises ScenarioError naming file, line, field, value and rule."""
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
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
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
                            f"device, model, sweep, serving, training), not a {_yaml_kind(root)}")
    problems = _duplicate_keys(root, ())
    if not problems:
        try:
            spec = ScenarioSpec.model_validate(data)
        except ValidationError as err:
            problems = [_problem_from_pydantic(e, root) for e in err.errors()]
        else:
            return _check_and_resolve(path, spec, root)
    raise ScenarioError(_format(shown, problems))


def _format(shown: str, problems: list[_Problem]) -> str:
    problems = sorted(problems, key=lambda p: p.line)
    lines = [f"{shown}:{p.line}: {p.path + ': ' if p.path else ''}{p.text}" for p in problems[:MAX_ERRORS_SHOWN]]
    if len(problems) > MAX_ERRORS_SHOWN:
        lines.append(f"{shown}: ... and {len(problems) - MAX_ERRORS_SHOWN} more problems")
    return "\n".join(lines)


def _yaml_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return "single value"


def _show(value: Any) -> str:
    """A value the way the user wrote it in YAML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (int, float, str, list, dict)):
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- YAML lines of paths
def _locate(root: yaml.Node, loc: tuple[Any, ...]) -> tuple[int, list[Any], yaml.Node | None]:
    """Walk ``loc`` down the node tree: (line, path elements to show, the node reached or None).

    Elements that are not in the file are skipped when more follow (pydantic adds the tag of a
    tagged union, e.g. ``arrival.poisson.rate_per_s``) and kept when last (a missing key). The line is
    that of the deepest key found, or of the value for list items.
    """
    node: yaml.Node | None = root
    line, shown = root.start_mark.line + 1, []
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode) and isinstance(elem, str):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == elem),
                         None)
            if match is None:
                if last:
                    shown.append(elem)
                    node = None
                continue
            line, node = match[0].start_mark.line + 1, match[1]
            shown.append(elem)
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and 0 <= elem < len(node.value):
            node = node.value[elem]
            line = node.start_mark.line + 1
            shown.append(elem)
        elif last:
            shown.append(elem)
            node = None
    return line, shown, node


def _as_written(node: yaml.Node | None, value: Any) -> str:
    """A value as the user typed it (``yes``, not ``true``; ``"8"`` with its quotes; ``[1, 8]``) when it
    fits on one short line of the file, else the value read."""
    if node is not None:
        start, end = node.start_mark, node.end_mark
        if start.buffer is not None and end is not None:
            text = start.buffer[start.pointer:end.pointer].strip()
            if text and "\n" not in text and len(text) <= 60:
                return text
    return _show(value)


def _dotted(elems: list[Any]) -> str:
    out = ""
    for e in elems:
        out += f"[{e}]" if isinstance(e, int) else (f".{e}" if out else str(e))
    return out


def _node_at(root: yaml.Node, elems: tuple[Any, ...]) -> yaml.Node | None:
    node: yaml.Node | None = root
    for elem in elems:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == elem), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and elem < len(node.value):
            node = node.value[elem]
        else:
            return None
    return node


def _duplicate_keys(node: yaml.Node, path: tuple[Any, ...]) -> list[_Problem]:
    """PyYAML keeps the last of two equal keys without a word; a scenario refuses them."""
    problems: list[_Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                line = k.start_mark.line + 1
                if k.value in seen:
                    problems.append(_Problem(line, _dotted([*path, k.value]),
                                             f"duplicate key: already set on line {seen[k.value]}"))
                seen.setdefault(k.value, line)
                problems += _duplicate_keys(v, (*path, k.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*path, i))
    return problems


# ----------------------------------------------------------------------- pydantic errors → rules
def _fmt_num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_RULES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list, e.g. [1, 2]",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
}


def _rule(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "greater_than":
        return f"must be > {_fmt_num(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"must be >= {_fmt_num(ctx['ge'])}"
    if kind == "less_than":
        return f"must be < {_fmt_num(ctx['lt'])}"
    if kind == "less_than_equal":
        return f"must be <= {_fmt_num(ctx['le'])}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item{'s' * (ctx['min_length'] != 1)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_pattern_mismatch":
        return "must use only letters, digits, - and _"
    if kind in _RULES:
        return _RULES[kind]
    msg = str(err.get("msg", kind))
    return msg[0].lower() + msg[1:]


def _problem_from_pydantic(err: dict[str, Any], root: yaml.Node) -> _Problem:
    loc, kind = tuple(err["loc"]), err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Point at the tag key itself: ``serving.arrival.process: "bursty" is not valid: ...``.
        tag = str(ctx.get("discriminator", "")).strip("'")
        line, shown, node = _locate(root, (*loc, tag))
        expected = ctx.get("expected_tags") or _expected_tags(loc)
        if kind == "union_tag_invalid":
            return _Problem(line, _dotted(shown),
                            f"{_as_written(node, ctx.get('tag'))} is not valid: must be one of {expected}")
        return _Problem(line, _dotted(shown), f"missing: required, one of {expected}")
    line, shown, node = _locate(root, loc)
    path = _dotted(shown)
    if kind == "missing":
        return _Problem(line, path, "missing: this field is required")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        text = "unknown key"
        if hint:
            text += f": did you mean {hint[0]!r}?"
        elif known:
            text += f": expected one of {', '.join(known)}"
        return _Problem(line, path, text)
    return _Problem(line, path, f"{_as_written(node, err.get('input'))} is not valid: {_rule(err)}")


_TAGGED = {"arrival": ("process", (PoissonArrival, ConstantArrival, TraceArrival)),
           "seq_len": ("distribution", (FixedSeqLen, UniformSeqLen, LognormalSeqLen))}


def _expected_tags(loc: tuple[Any, ...]) -> str:
    key = loc[-1] if loc else None
    if key in _TAGGED:
        tag, models = _TAGGED[key]
        return ", ".join(repr(m.model_fields[tag].annotation.__args__[0]) for m in models)
    return "?"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc`` (as pydantic reports it, union tags included)."""
    model: Any = ScenarioSpec
    for elem in loc:
        if isinstance(elem, int):
            continue
        if model is None:
            return []
        sub = _model_of_field(model, elem)
        model = sub
    return list(model.model_fields) if model is not None else []


def _model_of_field(model: Any, name: str) -> Any:
    if isinstance(model, tuple):  # a tagged union: pick the member by its tag
        for m in model:
            tag = next(iter(m.model_fields))
            if m.model_fields[tag].annotation.__args__[0] == name:
                return m
        return None
    field = model.model_fields.get(name)
    if field is None:
        return None
    if name in _TAGGED and model in (ServingSpec,):
        return _TAGGED[name][1]
    return _first_model(field.annotation)


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ checks across fields, and files
def _check_and_resolve(path: Path, spec: ScenarioSpec, root: yaml.Node) -> Scenario:
    problems: list[_Problem] = []

    def bad(loc: tuple[Any, ...], value: Any, rule: str) -> None:
        line, shown, node = _locate(root, loc)
        problems.append(_Problem(line, _dotted(shown), f"{_as_written(node, value)} is not valid: {rule}"))

    def missing(loc: tuple[Any, ...], rule: str) -> None:
        line, shown, _ = _locate(root, loc)
        problems.append(_Problem(line, _dotted(shown), f"missing: {rule}"))

    base_dir = path.parent
    m = spec.model
    if spec.sweep is None and spec.serving is None and spec.training is None:
        problems.append(_Problem(root.start_mark.line + 1, "",
                                 "the scenario has no study: add sweep, serving or training"))
    if spec.device == "cpu" and m.dtype not in CPU_DTYPES:
        bad(("model", "dtype"), m.dtype, f"cpu runs {' or '.join(CPU_DTYPES)} only (or use device: cuda)")
    if m.impl == "numpy-reference" and spec.device != "cpu":
        bad(("model", "impl"), m.impl, "numpy-reference runs on cpu only")

    profile_path = None
    if spec.profile is not None:
        profile_path = _resolve(base_dir, spec.profile)
        if not profile_path.is_file():
            bad(("profile",), spec.profile, f"no such file (looked in {base_dir or '.'} and the current folder)")

    sweep_configs: tuple[GruConfig, ...] = ()
    if spec.sweep is not None:
        sweep_configs = _check_sweep(spec, root, base_dir, bad, missing, problems)
    trace = None
    if spec.serving is not None:
        trace = _check_serving(spec, base_dir, bad, missing)
    if spec.training is not None:
        t = spec.training
        dupes = sorted({d for d in t.devices if t.devices.count(d) > 1})
        if dupes:
            bad(("training", "devices"), t.devices, f"device counts must be unique ({dupes[0]} appears twice)")
        if m.impl == "numpy-reference":
            bad(("model", "impl"), m.impl, "numpy-reference has no backward pass, so it cannot train")
    if problems:
        raise ScenarioError(_format(str(path), problems))
    return Scenario(path=path, spec=spec, profile_path=profile_path, sweep_configs=sweep_configs,
                    arrival_trace=trace)


def _resolve(base_dir: Path, text: str) -> Path:
    """A path from the scenario: absolute as is; relative from the scenario's folder, else the current one."""
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    beside = base_dir / p
    if beside.exists() or not p.exists():
        return beside
    return p


def _check_sweep(spec: ScenarioSpec, root: yaml.Node, base_dir: Path, bad: Any, missing: Any,
                 problems: list[_Problem]) -> tuple[GruConfig, ...]:
    s = spec.sweep
    assert s is not None
    m = spec.model
    for axis in GRID_AXES:
        values = getattr(s, axis)
        if values is not None:
            dupes = [v for i, v in enumerate(values) if v in values[:i]]
            if dupes:
                bad(("sweep", axis), values, f"axis values must be unique ({_show(dupes[0])} appears twice)")
    if m.impl == "numpy-reference" and "training" in s.mode:
        bad(("sweep", "mode"), s.mode, "numpy-reference has no backward pass: use [inference]")
    explicit = [k for k in ("configs", "configs_csv") if getattr(s, k) is not None]
    grid_set = [a for a in GRID_AXES if a != "mode" and getattr(s, a) is not None]
    if len(explicit) == 2:
        bad(("sweep", "configs_csv"), s.configs_csv, "give configs or configs_csv, not both")
        return ()
    if explicit:
        if grid_set:
            bad(("sweep", grid_set[0]), getattr(s, grid_set[0]),
                f"a sweep is either a grid or a list ({explicit[0]}), not both")
            return ()
        if "mode" in _keys_at(root, ("sweep",)):
            bad(("sweep", "mode"), s.mode, f"with {explicit[0]}, each configuration names its own mode")
            return ()
        if s.configs is not None:
            return _explicit_configs(spec, s.configs, bad)
        return _csv_configs(spec, base_dir, bad)
    for axis in ("batch", "seq_len"):
        if getattr(s, axis) is None:
            missing(("sweep", axis), "a grid needs batch and seq_len (or give configs / configs_csv)")
    if problems:
        return ()
    axes = {a: getattr(s, a) for a in GRID_AXES if getattr(s, a) is not None}
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_SWEEP_CONFIGS:
        line, _, _ = _locate(root, ("sweep",))
        problems.append(_Problem(line, "sweep", f"the grid has {size} configurations: a sweep has at most "
                                                f"{MAX_SWEEP_CONFIGS}"))
        return ()
    names = list(axes)
    try:
        return tuple(spec_config(spec, dict(zip(names, combo))) for combo in product(*axes.values()))
    except ConfigError as err:  # the checks above should have caught it; say where anyway
        line, _, _ = _locate(root, ("sweep",))
        problems.append(_Problem(line, "sweep", f"a configuration of the grid is impossible: {err}"))
        return ()


def _keys_at(root: yaml.Node, loc: tuple[Any, ...]) -> list[str]:
    node = _node_at(root, loc)
    if isinstance(node, yaml.MappingNode):
        return [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
    return []


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


def _explicit_configs(spec: ScenarioSpec, configs: list[SweepConfigSpec], bad: Any) -> tuple[GruConfig, ...]:
    out = []
    for i, c in enumerate(configs):
        if spec.model.impl == "numpy-reference" and c.mode == "training":
            bad(("sweep", "configs", i, "mode"), c.mode, "numpy-reference has no backward pass")
            continue
        try:
            out.append(spec_config(spec, c.model_dump()))
        except ConfigError as err:
            bad(("sweep", "configs", i), c.model_dump(exclude_none=True), str(err))
    return tuple(out)


_CSV_FIELDS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "mode", "threads")


def _csv_configs(spec: ScenarioSpec, base_dir: Path, bad: Any) -> tuple[GruConfig, ...]:
    s = spec.sweep
    assert s is not None and s.configs_csv is not None
    loc = ("sweep", "configs_csv")
    csv_path = _resolve(base_dir, s.configs_csv)
    rows = _read_csv(csv_path, s.configs_csv, loc, bad)
    if rows is None:
        return ()
    header, body = rows
    names = [h.strip().replace("-", "_") for h in header]
    names = ["num_layers" if n == "layers" else n for n in names]
    unknown = [h for h, n in zip(header, names) if n not in _CSV_FIELDS]
    if unknown or "batch" not in names or "seq_len" not in names:
        rule = (f"{csv_path.name}:1: unknown column {unknown[0]!r}" if unknown
                else f"{csv_path.name}:1: needs columns batch and seq_len")
        bad(loc, s.configs_csv, f"{rule} (columns: {', '.join(_CSV_FIELDS)}; others come from model)")
        return ()
    if len(body) > MAX_SWEEP_CONFIGS:
        bad(loc, s.configs_csv, f"{len(body)} configurations: a sweep has at most {MAX_SWEEP_CONFIGS}")
        return ()
    out = []
    for lineno, row in body:
        if len(row) != len(names):
            bad(loc, s.configs_csv, f"{csv_path.name}:{lineno}: has {len(row)} fields, the header {len(names)}")
            return ()
        values = {n: v for n, v in zip(names, row)}
        try:
            full = {**model_values(spec), **{k: v for k, v in values.items() if v.strip()}}
            out.append(GruConfig.from_mapping(full))
        except ConfigError as err:
            bad(loc, s.configs_csv, f"{csv_path.name}:{lineno}: {err}")
            return ()
    return tuple(out)


def _read_csv(csv_path: Path, shown: str, loc: tuple[Any, ...], bad: Any
              ) -> tuple[list[str], list[tuple[int, list[str]]]] | None:
    try:
        text = csv_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        bad(loc, shown, "no such file (looked in the scenario's folder and the current folder)")
        return None
    except (OSError, UnicodeDecodeError) as err:
        bad(loc, shown, f"cannot be read: {getattr(err, 'strerror', None) or err}")
        return None
    reader = csv.reader(io.StringIO(text))
    try:
        lines = [(reader.line_num, row) for row in reader if row]
    except csv.Error as err:
        bad(loc, shown, f"{csv_path.name}:{reader.line_num}: {err}")
        return None
    if not lines:
        bad(loc, shown, f"{csv_path.name} is empty: it needs a header line and one row per entry")
        return None
    (_, header), body = lines[0], lines[1:]
    if not body:
        bad(loc, shown, f"{csv_path.name} has a header but no rows")
        return None
    return header, body


def _check_serving(spec: ScenarioSpec, base_dir: Path, bad: Any, missing: Any
                   ) -> tuple[tuple[float, int], ...] | None:
    sv = spec.serving
    assert sv is not None
    trace = None
    if isinstance(sv.arrival, TraceArrival):
        if sv.seq_len is not None:
            bad(("serving", "seq_len"), sv.seq_len.model_dump(),
                "with arrival.process trace, each request's seq_len comes from the trace: remove it")
        trace = _read_trace(base_dir, sv.arrival.csv, bad)
    elif sv.seq_len is None:
        missing(("serving", "seq_len"), "required unless arrival.process is trace")
    ln = sv.seq_len
    if isinstance(ln, UniformSeqLen) and ln.low > ln.high:
        bad(("serving", "seq_len", "high"), ln.high, f"must be >= low ({ln.low})")
    if isinstance(ln, LognormalSeqLen) and ln.max < ln.median:
        bad(("serving", "seq_len", "max"), ln.max, f"must be >= median ({_fmt_num(ln.median)})")
    if sv.load_sweep is not None:
        rates = sv.load_sweep.rates_per_s
        if any(b <= a for a, b in zip(rates, rates[1:])):
            bad(("serving", "load_sweep", "rates_per_s"), rates, "rates must increase")
    if sv.memory_cap_bytes is not None:
        longest = _longest_request(sv, trace)
        if longest is not None:
            try:
                one = spec_config(spec, {"batch": 1, "seq_len": longest, "mode": "inference",
                                         "threads": sv.threads_per_replica})
            except ConfigError:
                return trace  # reported under model already
            need = footprint_bytes(one)
            if need > sv.memory_cap_bytes:
                bad(("serving", "memory_cap_bytes"), sv.memory_cap_bytes,
                    f"one request of {longest} steps alone needs about {fmt_bytes(need)}, so no batch fits")
    return trace


def _longest_request(sv: ServingSpec, trace: tuple[tuple[float, int], ...] | None) -> int | None:
    ln = sv.seq_len
    if isinstance(ln, FixedSeqLen):
        return ln.value
    if isinstance(ln, UniformSeqLen):
        return ln.high
    if isinstance(ln, LognormalSeqLen):
        return ln.max
    return max(t for _, t in trace) if trace else None


def _read_trace(base_dir: Path, text: str, bad: Any) -> tuple[tuple[float, int], ...] | None:
    loc = ("serving", "arrival", "csv")
    csv_path = _resolve(base_dir, text)
    rows = _read_csv(csv_path, text, loc, bad)
    if rows is None:
        return None
    header, body = rows
    if [h.strip() for h in header] != ["time_s", "seq_len"]:
        bad(loc, text, f"{csv_path.name}:1: the header must be time_s,seq_len (got {','.join(header)})")
        return None
    out: list[tuple[float, int]] = []
    for lineno, row in body:
        where = f"{csv_path.name}:{lineno}"
        if len(row) != 2:
            bad(loc, text, f"{where}: needs 2 fields (time_s,seq_len), has {len(row)}")
            return None
        try:
            time_s = float(row[0])
        except ValueError:
            time_s = math.nan
        if not math.isfinite(time_s) or time_s < 0:
            bad(loc, text, f"{where}: time_s {row[0].strip()!r} must be a number >= 0")
            return None
        try:
            seq_len = int(row[1])
        except ValueError:
            seq_len = 0
        if seq_len <= 0:
            bad(loc, text, f"{where}: seq_len {row[1].strip()!r} must be a whole number > 0")
            return None
        if out and time_s < out[-1][0]:
            bad(loc, text, f"{where}: time_s {time_s:g} is before the previous row's {out[-1][0]:g}")
            return None
        out.append((time_s, seq_len))
    return tuple(out)
