"""Inputs for the report and runner tests, made by gru-sim's own producers — predictions, the serving
and training studies, a validation summary — on a made-up machine: a small closed-form cost model
(exact FLOP and byte counts from gru_sim.accounting, made-up hardware rates). So a change of shape in
any of them breaks a test here rather than leaving the report reading a shape that no longer exists.
No tests live here.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gru_sim.accounting import account_call, footprint_bytes
from gru_sim.config import GruConfig
from gru_sim.groups import GroupKey
from gru_sim.model.kernel_times import CallTimes, LayerTimes
from gru_sim.predict import Prediction
from gru_sim.report.prose import extrapolation_warnings
from gru_sim.sim.executors import parallelism
from gru_sim.study.engine import profile_info
from gru_sim.study.serving import batch_timeline, run_serving, serving_record
from gru_sim.study.sweep import kernel_timeline, roofline_ceilings
from gru_sim.study.training import run_training, step_timeline, training_records
from gru_sim.validation import Validation, measured_row, summarise

FLOPS_PER_S = 5.0e10
BYTES_PER_S = 2.0e10
STEP_OVERHEAD_S = 4.0e-6
CALL_OVERHEAD_S = 30.0e-6
CALIBRATED_MAX_HIDDEN = 1024


def call_times(c: GruConfig) -> CallTimes:
    """Kernel times of a made-up machine: every term at a fixed FLOP and byte rate."""
    layers = []
    b, h = c.batch, c.hidden_size
    for layer in range(c.num_layers):
        i = c.layer_input_size(layer)
        for d in range(c.directions):
            proj = 2 * c.seq_len * b * i * 3 * h / FLOPS_PER_S
            mm = max(2 * b * h * 3 * h / FLOPS_PER_S, 4 * 3 * h * h / BYTES_PER_S)
            pw = 10 * b * h / FLOPS_PER_S * 4
            train = c.mode == "training"
            layers.append(LayerTimes(layer=layer, direction=d, input_projection_s=proj,
                                     recurrent_matmul_per_step_s=mm, pointwise_per_step_s=pw,
                                     step_overhead_per_step_s=STEP_OVERHEAD_S,
                                     backward_per_step_s=2 * (mm + pw) + STEP_OVERHEAD_S if train else 0.0,
                                     backward_input_projection_s=2 * proj if train else 0.0,
                                     recurrent_weight_grad_s=c.seq_len * mm if train else 0.0))
    return CallTimes(config=c, layers=tuple(layers), call_overhead_s=CALL_OVERHEAD_S)


def prediction(c: GruConfig) -> Prediction:
    """What a profile of the made-up machine would predict for ``c`` (the record gru_sim.predict makes)."""
    t = call_times(c)
    acc = account_call(c)
    latency = t.serial_s()
    steps = c.seq_len
    breakdown = {
        "input_projection_s": sum(lt.input_projection_s for lt in t.layers),
        "recurrent_matmul_s": sum(steps * lt.recurrent_matmul_per_step_s for lt in t.layers),
        "pointwise_s": sum(steps * lt.pointwise_per_step_s for lt in t.layers),
        "step_overhead_s": sum(steps * lt.step_overhead_per_step_s for lt in t.layers),
        "call_overhead_s": t.call_overhead_s,
        "backward_s": t.backward_s(),
    }
    peak = footprint_bytes(c)
    beyond = c.hidden_size > CALIBRATED_MAX_HIDDEN
    return Prediction(
        config=c, latency_s=latency, throughput_seq_per_s=c.batch / latency, throughput_tokens_per_s=c.tokens / latency,
        peak_memory_bytes=peak, latency_interval_s=(latency * 0.9, latency * 1.15), breakdown_s=breakdown,
        parallelism=parallelism(t), extrapolated=beyond,
        extrapolated_axes={"hidden_size": c.hidden_size / CALIBRATED_MAX_HIDDEN} if beyond else {},
        flops=acc.total_flops, bytes_moved=acc.bytes_moved,
        arithmetic_intensity_flops_per_byte=acc.arithmetic_intensity_flops_per_byte,
        memory_bytes={"weights": acc.weight_bytes, "inputs": acc.input_bytes, "activations": acc.activation_bytes,
                      "total": acc.weight_bytes + acc.input_bytes + peak},
        profile={"path": "made-up.json", "pid": os.getpid()})


def predict_record(c: GruConfig) -> dict[str, Any]:
    """The predict record of ``c`` on the made-up machine."""
    return prediction(c).to_dict()


GROUP = str(GroupKey("cpu", "float32", "torch-gru", 1))
# What results.json says about a profile of the made-up machine (made by the runner's own profile_info).
PROFILE_INFO = profile_info(
    path="calibration/profiles/made-up.json", created_at="2026-01-01T00:00:00+00:00",
    fingerprint={"device": "cpu", "cpu_model": "Made-up CPU <b>9000</b>", "memory_total_bytes": 8 * 2**30,
                 "torch": "2.13.0"},
    self_check={"holdout": {"n": 40, "median_ape": 4.2, "p90_ape": 11.0, "within_10pct": 0.86,
                            "interval_coverage": 0.9},
                "beyond": {"n": 10, "median_ape": 12.5, "p90_ape": 25.0, "within_10pct": 0.4},
                "by_group": {GROUP: {"holdout": {"n": 40, "median_ape": 4.2}}}},
    ranges={GROUP: {"batch": [1, 256], "seq_len": [1, 2000], "input_size": [8, 1024],
                    "hidden_size": [8, CALIBRATED_MAX_HIDDEN], "num_layers": [1, 4], "mode": ["inference", "training"]}},
    ceilings={GROUP: {"peak_flops_per_s": FLOPS_PER_S * 2, "memory_bandwidth_bytes_per_s": BYTES_PER_S,
                      "call_overhead_s": CALL_OVERHEAD_S, "primitives": [{"name": "a raw micro-benchmark"}]}})


@dataclass
class MadeUpModel:
    """The cost-model interface the runner uses, answered by the made-up machine. Each prediction's
    ``profile.pid`` shows the runner's tests which process made it."""

    def predict(self, config: GruConfig) -> Prediction:
        return prediction(config)

    def predict_many(self, configs: list[GruConfig]) -> list[Prediction]:
        return [prediction(c) for c in configs]

    def call_times(self, config: GruConfig) -> CallTimes:
        return call_times(config)

    def service_time_s(self, config: GruConfig) -> float:
        return call_times(config).serial_s()


def made_up_engine(profile_path: Path) -> Any:
    """An engine factory for run_scenario (module level, so worker processes can import it)."""
    from gru_sim.study import Engine

    return Engine(profile={**PROFILE_INFO, "path": str(profile_path)}, model=MadeUpModel())


SERVING = """\
name: made-up
device: cpu
model: {input_size: 80, hidden_size: 256}
serving:
  arrival: {process: poisson, rate_per_s: 200}
  seq_len: {distribution: lognormal, median: 100, sigma: 0.5, max: 400}
  batching: {max_batch: 8, max_wait_s: 0.002}
  replicas: 2
  requests: 2000
  seed: 1
  slo: {p99_latency_s: 0.004}
training:
  batch_per_device: 64
  seq_len: 100
  devices: [1, 2, 4, 8]
  interconnect: {bandwidth_bytes_per_s: 1.0e9, latency_s: 1.0e-5}
  steps: 10
"""


@lru_cache(maxsize=1)
def _scenario() -> Any:
    from gru_sim.scenario import load_scenario

    folder = Path(tempfile.mkdtemp(prefix="gru-sim-fixture-"))
    (folder / "made-up.yaml").write_text(SERVING)
    return load_scenario(folder / "made-up.yaml")


def sweep_records() -> list[dict[str, Any]]:
    """A 2 × 3 × 3 × 2 grid of records, some beyond the made-up calibrated range."""
    out = []
    for mode in ("inference", "training"):
        for batch in (1, 8, 64):
            for seq_len in (50, 200, 1000):
                for hidden in (256, 2048):
                    out.append(predict_record(GruConfig(batch=batch, seq_len=seq_len, input_size=80,
                                                        hidden_size=hidden, mode=mode)))
    return out


def serving_results() -> dict[str, Any]:
    """The ``serving`` object of results.json, as the serving study makes it on the made-up machine (its
    SLO is tight enough to be missed)."""
    result, load, _ = run_serving(_scenario(), MadeUpModel(), lambda done, total: None)
    return serving_record(_scenario(), result, load).to_dict()


def training_results() -> list[dict[str, Any]]:
    """The ``training`` list of results.json, as the training study makes it on the made-up machine."""
    result, step, _ = run_training(_scenario(), MadeUpModel(), BYTES_PER_S, lambda done, total: None)
    return [r.to_dict() for r in training_records(result, step)]


def timelines() -> list[dict[str, Any]]:
    """The timelines the studies draw: kernels of one call, batches on the replicas, one training step."""
    model, scenario = MadeUpModel(), _scenario()
    served, _, _ = run_serving(scenario, model, lambda done, total: None)
    _, step, _ = run_training(scenario, model, BYTES_PER_S, lambda done, total: None)
    return [kernel_timeline(model, GruConfig(batch=8, seq_len=50, input_size=80, hidden_size=256, num_layers=2)),
            batch_timeline(served.log), step_timeline(step, scenario.training)]


def validation(n: int = 30, seed: int = 3) -> Validation:
    """A validation of the made-up profile: predictions off by up to ±20%, some noisy, some memory probed."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        c = GruConfig(batch=rng.choice([1, 4, 16, 64]), seq_len=rng.choice([10, 100, 500]), input_size=64,
                      hidden_size=rng.choice([64, 256, 1024, 2048]), num_layers=rng.choice([1, 2]))
        p = prediction(c)
        measured = p.latency_s * rng.uniform(0.85, 1.2)
        rows.append(measured_row(p, measured, 0.02 * measured, noisy=k % 11 == 0,
                                 measured_peak_memory_bytes=int(footprint_bytes(c) * rng.uniform(0.9, 1.1))))
    return Validation(profile=PROFILE_INFO, fingerprint=PROFILE_INFO["fingerprint"], summary=summarise(rows),
                      rows=tuple(rows))


def full_results(description: str = "Speech <script>alert(1)</script> & co") -> dict[str, Any]:
    """A results.json content with every study, a validation and scenario text that needs escaping."""
    records = sweep_records()
    return {
        "schema_version": 1, "gru_sim_version": "0.1.0", "created_utc": "2026-01-01T00:00:00+00:00",
        "scenario": {"name": "made-up", "path": "scenarios/made-up.yaml", "description": description,
                     "device": "cpu", "spec": {"name": "made-up", "description": description}},
        "profile": {**PROFILE_INFO, "source": "given with --profile"},
        "timings_s": {"sweep": 0.1},
        "sweep": records, "serving": serving_results(), "training": training_results(),
        "roofline": roofline_ceilings(records, PROFILE_INFO["ceilings"]),
        "timelines": timelines(), "validation": validation().to_dict(),
        "warnings": extrapolation_warnings({"sweep": records}),
        "extrapolated": True,
    }
