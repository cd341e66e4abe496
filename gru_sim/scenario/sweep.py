"""The sweep section of a scenario turned into the configurations to predict: a grid (every list an
axis, the model filling the rest), an explicit list, or a CSV of configurations."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path
from typing import Any

from ..config import GruConfig
from ..csvfiles import CsvFileError, read_rows
from ..errors import ConfigError
from .locate import Problems, keys_at, show
from .model import csv_problem, mode_rule, model_values, resolve_path, spec_config
from .schema import GRID_AXES, ScenarioSpec, SweepConfigSpec


# A sweep this large takes minutes even on many cores, and its report would be unreadable.
MAX_SWEEP_CONFIGS = 200_000
# With a Dask cluster (--workers, --scheduler) a grid is priced in vectorised chunks and written to disk
# as it goes, never held as records: up to this many.
MAX_CLUSTER_SWEEP_CONFIGS = 20_000_000
# Columns a configs_csv may have; the others come from the model.
CSV_FIELDS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "mode", "threads")


def build_sweep(spec: ScenarioSpec, base_dir: Path, problems: Problems, limit: int = MAX_SWEEP_CONFIGS,
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
    rule = next((r for r in (mode_rule(spec, mode) for mode in s.mode) if r), None)
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
        rule = mode_rule(spec, c.mode)
        if rule:
            problems.bad(("sweep", "configs", i, "mode"), c.mode, rule)
            continue
        try:
            out.append(spec_config(spec, c.model_dump()))
        except ConfigError as err:
            problems.bad(("sweep", "configs", i), c.model_dump(exclude_none=True), str(err))
    return tuple(out)


def _csv_configs(spec: ScenarioSpec, base_dir: Path, problems: Problems) -> tuple[GruConfig, ...]:
    s = spec.sweep
    assert s is not None and s.configs_csv is not None
    loc = ("sweep", "configs_csv")
    csv_path = resolve_path(base_dir, s.configs_csv)
    try:
        header, body = read_rows(csv_path)
    except CsvFileError as err:
        problems.bad(loc, s.configs_csv, csv_problem(err))
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
