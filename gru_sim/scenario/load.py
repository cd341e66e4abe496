"""Reading a scenario file: YAML (safe loader) → the schema → checks across fields and the files it
names → a frozen :class:`Scenario` holding what the stages run: the sweep's configurations, the
simulators' own specs (:class:`gru_sim.sim.serving.ServingSpec`, :class:`gru_sim.sim.training.TrainingSpec`)
and the gradient-flow measurements (:class:`gru_sim.gradient_flow.GradientSetup`).

Every problem is reported as ``file:line: field.path: value is not valid: rule`` (see
:mod:`gru_sim.scenario.locate`); the simulators never see a scenario's field paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..config import GruConfig, broken_rules
from ..errors import ScenarioError
from ..gradient_flow import GradientSetup
from ..plan.spec import PlanSpec
from ..sim import serving as sim_serving
from ..sim import training as sim_training
from .locate import Problems, YamlLoader, duplicate_keys, format_problems, problem_from_pydantic, yaml_kind
from .model import model_values, resolve_path, spec_config
from .schema import ScenarioSpec
from .studies import build_gradients, build_plan, build_serving, build_training, seq_lens_in_use
from .sweep import CSV_FIELDS, MAX_CLUSTER_SWEEP_CONFIGS, MAX_SWEEP_CONFIGS, build_sweep

# The studies a scenario may hold (at least one).
STUDIES = ("sweep", "serving", "training", "gradients", "plan")

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
    sweep_configs = build_sweep(spec, base_dir, problems, max_sweep_configs, grid) if spec.sweep is not None else ()
    serving = build_serving(spec, base_dir, problems) if spec.serving is not None else None
    training = build_training(spec, problems) if spec.training is not None else None
    plan = build_plan(spec, base_dir, problems) if spec.plan is not None else None
    in_use = seq_lens_in_use(spec, serving)
    gradients = (build_gradients(spec, base_dir, sweep_configs, in_use, problems)
                 if spec.gradients is not None else ())
    if problems:
        raise ScenarioError(format_problems(str(path), problems.found))
    return Scenario(path=path, spec=spec, profile_path=profile_path, sweep_configs=sweep_configs,
                    serving=serving, training=training, plan=plan, gradients=gradients, seq_lens_in_use=in_use,
                    sweep_grid=grid or None)


__all__ = ["CSV_FIELDS", "MAX_CLUSTER_SWEEP_CONFIGS", "MAX_SWEEP_CONFIGS", "STUDIES", "Scenario", "load_scenario", "model_values",
           "resolve_path", "spec_config"]
