"""Studies of a scenario run on a calibration profile: ``run`` wires them together, ``sweep`` predicts
a grid over a pool of processes, ``serving`` and ``training`` drive the simulators (their
results.json objects are the frozen records of ``records``), ``results`` writes results.json, the CSVs
and the report; ``engine`` is the loaded profile they all ask."""

from .engine import CostModel, Engine, EngineFactory, ProgressFn, load_engine, profile_info
from .results import RESULTS_SCHEMA_VERSION, RunOutput, jsonable, write_outputs
from .run import choose_profile_path, default_out_dir, run_scenario
from .sweep import PARALLEL_MIN_CONFIGS, predict_all

__all__ = ["CostModel", "Engine", "EngineFactory", "PARALLEL_MIN_CONFIGS", "ProgressFn", "RESULTS_SCHEMA_VERSION",
           "RunOutput", "choose_profile_path", "default_out_dir", "jsonable", "load_engine", "predict_all",
           "profile_info", "run_scenario", "write_outputs"]
