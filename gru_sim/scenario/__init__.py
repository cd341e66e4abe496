"""A scenario is the question a user brings: one GRU model and the studies to run on it — a sweep
of call shapes, requests served by a deployed model, data-parallel training steps.

``schema`` holds the format (CONTRACT.md; ``gru-sim schema`` prints it), ``locate`` finds the line of
a field and words each problem, ``load`` reads a file into a frozen :class:`Scenario`.
"""

from .load import MAX_CLUSTER_SWEEP_CONFIGS, MAX_SWEEP_CONFIGS, Scenario, load_scenario, model_values, spec_config
from .locate import MAX_ERRORS_SHOWN
from .schema import SCHEMA_ID, ScenarioSpec, scenario_json_schema

__all__ = ["MAX_CLUSTER_SWEEP_CONFIGS", "MAX_ERRORS_SHOWN", "MAX_SWEEP_CONFIGS", "SCHEMA_ID", "Scenario",
           "ScenarioSpec", "load_scenario", "model_values", "scenario_json_schema", "spec_config"]
