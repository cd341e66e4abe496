"""What a run leaves in its folder: ``results.json`` (versioned, strict JSON), one CSV per study and
``report.html``; every file written whole or not at all."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_csv_atomic, write_text_atomic
from ..errors import GruSimError
from .gradients import gradient_rows

RESULTS_SCHEMA_VERSION = 1
# Large per-request series, left out of the serving CSV (they are in results.json).
SERVING_BULK = ("latency_cdf", "queue_wait_cdf", "queue_length_timeline", "utilization_timeline",
                "batch_size_histogram", "load_sweep", "request_sample")


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and what it wrote into results.json."""

    out_dir: Path
    results_path: Path
    report_path: Path
    csv_paths: dict[str, Path]
    results: dict[str, Any]


def write_outputs(results: dict[str, Any], out_dir: Path) -> RunOutput:
    """Write results.json, the per-study CSVs and report.html for ``results`` into ``out_dir``."""
    from ..report import write_report  # plotly is imported by the report alone, and only when writing one

    results = jsonable(results)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GruSimError(f"{out_dir}: cannot create the output folder: {err.strerror}") from None
    results_path = write_text_atomic(out_dir / "results.json", json.dumps(results, indent=1, allow_nan=False) + "\n")
    csv_paths = {}
    if "sweep" in results:
        csv_paths["sweep"] = write_csv_atomic(out_dir / "sweep.csv", [_flat_record(r) for r in results["sweep"]])
    if "serving" in results:
        s = results["serving"]
        rows = [{"run": "configured rate", "rate_per_s": s.get("offered_rate_per_s"), **_flat(s, skip=SERVING_BULK)}]
        rows += [{"run": "load sweep", **_flat(p)} for p in (s.get("load_sweep") or {}).get("points", [])]
        csv_paths["serving"] = write_csv_atomic(out_dir / "serving.csv", rows)
    if "training" in results:
        csv_paths["training"] = write_csv_atomic(out_dir / "training.csv", [_flat(r) for r in results["training"]])
    if "gradients" in results:
        csv_paths["gradients"] = write_csv_atomic(out_dir / "gradients.csv", gradient_rows(results["gradients"]))
    report_path = write_report(results, out_dir / "report.html")
    return RunOutput(out_dir=out_dir, results_path=results_path, report_path=report_path, csv_paths=csv_paths,
                     results=results)


def jsonable(value: Any) -> Any:
    """Plain JSON data: records → their ``to_dict``, tuples → lists, numpy scalars → Python numbers, NaN and
    ±inf → null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):  # a study's record (gru_sim.study.records): its to_dict is its JSON
        return jsonable(value.to_dict())
    raise TypeError(f"cannot write {type(value).__name__} to results.json")


def _flat(record: dict[str, Any], prefix: str = "", skip: Iterable[str] = ()) -> dict[str, Any]:
    """Nested keys joined with '.', [low, high] pairs as .low and .high, other lists left out."""
    out: dict[str, Any] = {}
    skip = set(skip)
    for key, value in record.items():
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, list):
            if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
                out[name + ".low"], out[name + ".high"] = value
        else:
            out[name] = value
    return out


def _flat_record(record: dict[str, Any]) -> dict[str, Any]:
    return _flat({k: v for k, v in record.items() if k != "profile"})
