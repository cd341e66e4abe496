"""Hand-made inputs for the report and runner tests: predict records, serving and training results and
a validation, shaped as CONTRACT.md says, with numbers from a small closed-form cost model (exact
FLOP and byte counts from gru_sim.accounting, made-up hardware rates). No tests live here.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_sim.accounting import account_call, footprint_bytes
from gru_sim.config import GruConfig
from gru_sim.model.kernel_times import CallTimes, LayerTimes

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


def predict_record(c: GruConfig) -> dict[str, Any]:
    """A CONTRACT predict record for ``c`` from the made-up machine."""
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
    critical = latency / (1.0 + 0.4 * (c.directions - 1))
    peak = footprint_bytes(c)
    return {
        "config": c.to_dict(),
        "latency_s": latency,
        "throughput_seq_per_s": c.batch / latency,
        "throughput_tokens_per_s": c.tokens / latency,
        "peak_memory_bytes": peak,
        "latency_interval_s": [latency * 0.9, latency * 1.15],
        "breakdown_s": breakdown,
        "parallelism": {"work_s": latency, "critical_path_s": critical, "avg_concurrency": latency / critical},
        "extrapolated": c.hidden_size > CALIBRATED_MAX_HIDDEN,
        "extrapolated_axes": ({"hidden_size": c.hidden_size / CALIBRATED_MAX_HIDDEN}
                              if c.hidden_size > CALIBRATED_MAX_HIDDEN else {}),
        "profile": {"path": "made-up.json"},
        "flops": acc.total_flops,
        "bytes_moved": acc.bytes_moved,
        "memory_bytes": {"weights": acc.weight_bytes, "inputs": acc.input_bytes,
                         "activations": acc.activation_bytes, "total": peak},
    }


GROUP = "cpu/float32/torch-gru/t1"
PROFILE_INFO = {
    "path": "calibration/profiles/made-up.json",
    "created_at": "2026-01-01T00:00:00+00:00",
    "fingerprint": {"device": "cpu", "cpu_model": "Made-up CPU <b>9000</b>", "memory_total_bytes": 8 * 2**30,
                    "torch": "2.13.0"},
    "self_check": {"holdout": {"n": 40, "median_ape": 4.2, "p90_ape": 11.0, "within_10pct": 0.86,
                               "interval_coverage": 0.9},
                   "beyond": {"n": 10, "median_ape": 12.5, "p90_ape": 25.0, "within_10pct": 0.4},
                   "by_group": {GROUP: {"holdout": {"n": 40, "median_ape": 4.2}}}},
    "ranges": {GROUP: {"batch": [1, 256], "seq_len": [1, 2000], "input_size": [8, 1024],
                       "hidden_size": [8, CALIBRATED_MAX_HIDDEN], "num_layers": [1, 4],
                       "mode": ["inference", "training"]}},
    "ceilings": {GROUP: {"peak_flops_per_s": FLOPS_PER_S * 2, "memory_bandwidth_bytes_per_s": BYTES_PER_S,
                         "call_overhead_s": CALL_OVERHEAD_S}},
}


@dataclass
class MadeUpModel:
    """The cost-model interface the runner uses, answered by the made-up machine."""

    def predict(self, config: GruConfig) -> dict[str, Any]:
        return predict_record(config)

    def predict_many(self, configs: list[GruConfig]) -> list[dict[str, Any]]:
        # The process id shows the runner's tests which process predicted each record.
        return [{**predict_record(c), "predicted_in_pid": os.getpid()} for c in configs]

    def call_times(self, config: GruConfig) -> CallTimes:
        return call_times(config)

    def service_time_s(self, config: GruConfig) -> float:
        return call_times(config).serial_s()


def made_up_engine(profile_path: Path) -> Any:
    """An engine factory for run_scenario (module level, so worker processes can import it)."""
    from gru_sim.study import Engine

    return Engine(profile={**PROFILE_INFO, "path": str(profile_path)}, model=MadeUpModel())


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


def serving_results(seed: int = 1) -> dict[str, Any]:
    """A ``serving`` object as the runner writes it (gru_sim.sim.serving's to_dict plus CDFs and a load sweep)."""
    rng = random.Random(seed)
    lat = sorted(rng.lognormvariate(math.log(0.02), 0.5) for _ in range(2000))
    wait = sorted(max(v - 0.012, 0.0) for v in lat)

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": sum(values) / len(values), "p50": q(values, 0.5), "p90": q(values, 0.9), "p99": q(values, 0.99)}

    def cdf(values: list[float]) -> dict[str, list[float]]:
        return {"value_s": values[::10], "fraction": [(i + 1) / len(values) for i in range(0, len(values), 10)]}

    return {
        "throughput_req_per_s": 199.0, "latency_s": stats(lat), "queue_wait_s": stats(wait),
        "service_time_s": {"mean": 0.012}, "utilization": 0.61, "mean_batch_size": 5.3, "slo_attainment": 0.97,
        "requests": 2000, "batches": 380, "replicas": 2, "slo_p99_latency_s": 0.05, "slo_met": False,
        "batch_size_histogram": {"1": 50, "2": 80, "3": 120, "4": 90, "5": 60, "6": 30, "7": 10, "8": 5},
        "padding_share": 0.18, "useful_tokens": 100, "padded_tokens": 122,
        "queue_length_timeline": [[i * 0.1, rng.randint(0, 12)] for i in range(100)],
        "utilization_timeline": [[i * 0.1, rng.uniform(0.3, 0.9)] for i in range(99)],
        "offered_rate_per_s": 200.0, "latency_cdf": cdf(lat), "queue_wait_cdf": cdf(wait),
        "load_sweep": {"slo_p99_latency_s": 0.05, "capacity_estimate_per_s": 330.0, "max_rate_meeting_slo_per_s": 250.0,
                       "bounded": True, "requests_per_point": 2000,
                       "points": [{"rate_per_s": r, "throughput_req_per_s": r, "latency_mean_s": 0.01 + r / 2e4,
                                   "latency_p50_s": 0.01 + r / 2e4, "latency_p99_s": 0.02 + (r / 300) ** 3,
                                   "utilization": r / 330, "mean_batch_size": 1 + r / 100, "stable": r < 300,
                                   "meets_slo": 0.02 + (r / 300) ** 3 <= 0.05}
                                  for r in (50, 100, 150, 200, 250, 300)]},
    }


def training_results() -> list[dict[str, Any]]:
    """A ``training`` list as the runner writes it (gru_sim.sim.training's to_dict)."""
    rows = []
    for n in (1, 2, 4, 8):
        compute = 0.20
        comm = 0.0 if n == 1 else 0.04 * 2 * (n - 1) / n + 0.001 * n
        exposed = max(comm - 0.03, 0.0)
        step = compute + exposed
        rows.append({"devices": n, "step_time_s": step, "throughput_seq_per_s": 64 * n / step,
                     "scaling_efficiency": compute / step, "peak_memory_bytes_per_device": 3 * 2**30,
                     "compute_s": compute, "allreduce_s": comm, "exposed_comm_s": exposed,
                     "comm_share": exposed / step, "buckets": 0 if n == 1 else 3, "total_time_s": 10 * step,
                     "optimizer_step_s": 0.001})
    return rows


def timelines() -> list[dict[str, Any]]:
    items = []
    clock = 0.0
    for layer in range(2):
        for k in range(5):
            items.append({"lane": f"layer {layer} forward", "name": f"steps {k * 10 + 1}–{k * 10 + 10}",
                          "start_s": clock, "duration_s": 0.001, "category": "recurrent steps"})
            clock += 0.001
    requests = [{"lane": f"replica {r}", "name": f"batch of {1 + i % 5}", "start_s": i * 0.004 + r * 0.002,
                 "duration_s": 0.003, "category": "batch"} for r in range(2) for i in range(20)]
    return [{"study": "sweep", "title": "Kernels of one call", "caption": "made up", "items": items},
            {"study": "serving", "title": "Batches on replicas", "caption": "made up", "items": requests}]


def validation(n: int = 30, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        c = GruConfig(batch=rng.choice([1, 4, 16, 64]), seq_len=rng.choice([10, 100, 500]), input_size=64,
                      hidden_size=rng.choice([64, 256, 1024]), num_layers=rng.choice([1, 2]))
        predicted = call_times(c).serial_s()
        measured = predicted * rng.uniform(0.85, 1.2)
        rows.append({"config": c.to_dict(), "measured_latency_s": measured, "predicted_latency_s": predicted,
                     "latency_interval_s": [predicted * 0.9, predicted * 1.15],
                     "ape": 100 * abs(predicted - measured) / measured, "extrapolated": k % 7 == 0,
                     "noisy": k % 11 == 0, "measured_peak_memory_bytes": footprint_bytes(c) * rng.uniform(0.9, 1.1),
                     "predicted_peak_memory_bytes": footprint_bytes(c)})
    return {"profile": PROFILE_INFO, "summary": {"n": n, "median_ape": 7.5, "p90_ape": 16.0, "within_10pct": 0.6,
                                                 "interval_coverage": 0.7, "rmsle": 0.09},
            "rows": rows}


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
        "roofline": [{"group": GROUP, **{k: v for k, v in PROFILE_INFO["ceilings"][GROUP].items()
                                         if k != "call_overhead_s"}}],
        "timelines": timelines(), "validation": validation(),
        "warnings": ["sweep: 18 of 36 configurations lie outside the profile's calibrated range"],
        "extrapolated": True,
    }
