"""Only the measuring side imports torch, so that predicting, simulating and the CLI start fast.

Each check imports modules in a fresh interpreter and looks at ``sys.modules`` there: the test
process itself has long since imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Modules that must load without torch. Add a module here when it lands (only modules that exist:
# a missing one fails the test).
TORCH_FREE_MODULES = [
    "gru_sim",
    "gru_sim.errors",
    "gru_sim.config",
    "gru_sim.units",
    "gru_sim.machine",
    "gru_sim.accounting",
    "gru_sim.reference",
    "gru_sim.gradient_flow",   # the analysis of gradient norms; the measuring is gru_sim.measure.gradients
    "gru_sim.model.kernel_times",
    "gru_sim.predict",         # the predictor: `gru-sim predict` must start fast
    "gru_sim.sim",
    "gru_sim.plan",            # `gru-sim plan` searches with the simulators alone
    "gru_sim.plan.evaluate",
    "gru_sim.model.batch",     # the vectorised predictor of the large sweeps
    "gru_sim.model.batch_configs",
    "gru_sim.model.batch_tables",
    "gru_sim.study.plan",      # and starts as fast as `gru-sim run`
    "gru_sim.calibrate.fleet",  # the client of a fleet calibration: torch only on the workers that measure
    "gru_sim.groups",
    "gru_sim.atomic",
    "gru_sim.csvfiles",
    "gru_sim.validation",      # what a validation found: the report reads it
    "gru_sim.scenario",
    "gru_sim.scenario.schema",
    "gru_sim.scenario.locate",
    "gru_sim.scenario.load",
    "gru_sim.study",           # `gru-sim run` must start fast too
    "gru_sim.study.engine",
    "gru_sim.study.sweep",
    "gru_sim.study.serving",
    "gru_sim.study.training",
    "gru_sim.study.gradients",  # measures with torch, imported only when a scenario asks
    "gru_sim.study.results",
    "gru_sim.study.records",   # what the report reads back from results.json
    "gru_sim.study.run",
    "gru_sim.report.prose",
    "gru_sim.cli",             # imports the stage a subcommand needs inside that subcommand
    "gru_sim.commands",        # the subcommands, each importing its stage inside the command
    "gru_sim.commands.common",
    "gru_sim.commands.measure",    # torch only once `gru-sim measure` runs
    "gru_sim.commands.predict",
    "gru_sim.commands.calibrate",
    "gru_sim.commands.run",
    "gru_sim.commands.plan",
    "gru_sim.commands.schema",
    "gru_sim.commands.validate",
    "gru_sim.commands.gradients",
]


def _loaded_after_import(modules: list[str]) -> set[str]:
    """Names in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


def _torch_modules(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m == "torch" or m.startswith("torch."))


@pytest.mark.slow
@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_module_imports_without_torch(module: str) -> None:
    loaded = _loaded_after_import([module])
    assert module in loaded
    assert _torch_modules(loaded) == []


@pytest.mark.slow
def test_all_torch_free_modules_together_import_without_torch() -> None:
    assert _torch_modules(_loaded_after_import(TORCH_FREE_MODULES)) == []


@pytest.mark.slow
def test_measure_imports_torch() -> None:
    # The probe above can see torch: the measuring side does load it.
    assert "torch" in _loaded_after_import(["gru_sim.measure"])


# The layers below a module that it must never import: the arrows of the pipeline point one way.
LOWER_LAYERS_ONLY = {
    "gru_sim.sim": ["gru_sim.scenario", "gru_sim.study", "gru_sim.report", "gru_sim.plan", "gru_sim.csvfiles",
                    "pydantic", "yaml", "plotly"],
    "gru_sim.scenario": ["gru_sim.study", "gru_sim.report", "plotly"],
    "gru_sim.validation": ["gru_sim.report", "gru_sim.study", "plotly"],
    "gru_sim.study": ["plotly", "gru_sim.report.render"],
    "gru_sim.report.prose": ["plotly"],
    "gru_sim.plan": ["gru_sim.scenario", "gru_sim.study", "gru_sim.report", "pydantic", "yaml", "plotly"],
    "gru_sim.study.plan": ["plotly", "gru_sim.report.render"],
}


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(LOWER_LAYERS_ONLY))
def test_a_stage_never_imports_the_stages_after_it(module: str) -> None:
    loaded = _loaded_after_import([module])
    above = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in LOWER_LAYERS_ONLY[module])]
    assert above == []
