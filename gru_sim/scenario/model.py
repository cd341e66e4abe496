"""What every study of a scenario shares: its model on its device as GruConfigs, the rules of
config.py as they apply to it, and the files it names, found beside the scenario first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import GruConfig, broken_rules
from ..csvfiles import CsvFileError
from .schema import ScenarioSpec


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


def mode_rule(spec: ScenarioSpec, mode: str) -> str | None:
    """The rule of config.py that ``mode`` breaks with the scenario's model, if any."""
    m = spec.model
    return next((rule for name, rule in broken_rules(spec.device, m.dtype, m.impl, mode) if name == "mode"), None)


def resolve_path(base_dir: Path, text: str) -> Path:
    """A path from the scenario: absolute as is; relative from the scenario's folder, else the current one."""
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    beside = base_dir / p
    if beside.exists() or not p.exists():
        return beside
    return p


def csv_problem(err: CsvFileError) -> str:
    return "no such file (looked in the scenario's folder and the current folder)" if err.missing else str(err)
