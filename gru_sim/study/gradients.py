"""The gradients study: gradient flow through time of the scenario's model, measured with torch on this
CPU for each initialisation, at each sequence length (:mod:`gru_sim.measure.gradients`), and described
by :mod:`gru_sim.gradient_flow`.

Unlike the other studies it measures rather than predicts, so it is the one study that imports torch
(only when the scenario has it) and takes seconds rather than milliseconds per configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..gradient_flow import INITS, gradient_record
from ..scenario import Scenario


def run_gradients(scenario: Scenario, progress: Callable[[int, int], None]) -> list[dict[str, Any]]:
    """The ``gradients`` list of results.json: one ``gru-sim gradients --json`` record per
    initialisation, with its ``label`` and the lengths the scenario serves and trains on
    (``seq_lens_in_use``: label → steps)."""
    from ..measure.gradients import measure_gradients  # torch: only for a scenario that asks

    setups = scenario.gradients
    total = sum(len(s.sorted_seq_lens) for s in setups)
    done = 0
    progress(done, total)
    records = []
    for setup in setups:
        offset = done
        measurement = measure_gradients(setup, lambda n, _total: progress(offset + n, total))
        done += len(setup.sorted_seq_lens)
        records.append({"label": init_label(setup.init), **gradient_record(measurement),
                        "seq_lens_in_use": dict(scenario.seq_lens_in_use)})
    return records


def init_label(init: str) -> str:
    """How a configuration is named in the report: ``init default``, or the weights file's name."""
    return f"init {init}" if init in INITS else f"weights {Path(init).name}"


def gradient_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """gradients.csv: one row per configuration and sequence length."""
    rows = []
    for record in records:
        for r in record["by_seq_len"]:
            rows.append({"configuration": record["label"], "seq_len": r["seq_len"],
                         "decay_per_step": r["decay_per_step"], "horizon_steps": r["horizon_steps"],
                         "step0_grad_ratio": r["step0_grad_ratio"],
                         "update_gate_saturation": r["update_gate_saturation"],
                         "update_gate_mean": r["update_gate_mean"],
                         **{f"forward_rel_error.{d}": e for d, e in r["forward_rel_error"].items()}})
    return rows
