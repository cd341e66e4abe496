"""How accurate a profile is on the shapes people run: a fresh calibration (or a given profile), then
fresh measurements (two rounds, each in its own shuffled order) of the typical application shapes in
``benchmarks/data/typical_shapes.csv``
(keyword spotting, speech, NLP, translation, time series, recommendation — never fitted: the
calibration draws its own shapes) at every calibrated thread count, and ``gru-sim validate --sample
40`` (random shapes inside the calibrated ranges and up to 2× beyond them). Prints the figures the
README's accuracy table carries. Run it alone on a quiet machine:

    .venv/bin/python benchmarks/accuracy.py [--profile P | --save-profile P] [--sample 40] [--rounds 2] [--json OUT]
                                            [--shapes CSV] [--threads 1 2] [--record CSV]
    .venv/bin/python benchmarks/accuracy.py --profile P --measured CSV

One run measures the machine in one spell: a whole run moves by 10-20 % with the machine's load, and
the same shape measured in two runs hours apart differs by up to 2x. ``--record CSV`` appends each
shape's measurement of the run (its CPU and any kernel-choosing settings such as MKL_CBWR, when, the
median of its rounds) to ``CSV``; ``--measured CSV``
measures nothing and judges a profile against the median of every run recorded there on this CPU kind
(``benchmarks/data/typical_measured.csv``: the runs recorded on the machine the shipped profile was
made on) — a figure that does not move with the spell it is taken in, and the same on any re-run —
and prints beside it the floor: one recorded run against the median of the others. For a record of
another set of shapes, it also prints the figures *at the machine's pace of the hour*: each of that
set's runs is brought to the profile's pace by the profile's level on the typical runs recorded
within two hours of it (``--pace-from``, ``--pace-window-h``). The sets were recorded in a few runs
each, at hours when the shipped profile's prediction of the typical shapes came to 0.67-1.18x their
measured time; this takes that pace out, measured on other shapes, and leaves the set's own bias in.

After a fresh calibration (or with ``--profile P`` whose calibration store is beside it), the run also
times the calibration's reference call (``gru_sim.calibrate.drift``) before and after each round and
prints how much slower or faster it ran than while the profile was calibrated: a run judged in
another spell than its calibration's is off by about that much whatever the model.

``--shapes benchmarks/data/apps_shapes.csv`` judges a second set of application shapes (voice activity,
wake word, speech commands, session recommendation, music, video captioning, trajectories, ECG and EEG,
handwriting, text-to-speech and translation decoding steps, dialogue, traffic, word language models),
chosen after the model's structure was settled and recorded in ``benchmarks/data/apps_measured.csv``.
Its first run (before any change) is the honest figure on unseen shapes; it then pointed at the
GEMM grid's missing one-row and few-input points (README, accuracy section).

``--shapes benchmarks/data/field_shapes.csv`` judges a third set (univariate and sensor streams, MFCC and
spectrogram inputs, lip reading, gestures, taggers, click models, summarisers, a large decoder step,
a batch of 512, a hidden size of 1,536, a tiny GRU), recorded in ``benchmarks/data/field_measured.csv``.
Its first run (2026-12-04 23:19 UTC) was taken with the model and profile of the time, before anything
was changed for it: judged with that profile, it is the blind figure.

``--shapes benchmarks/data/deepbench_shapes.csv`` judges the DeepBench GRU sizes (``../shared/data``)
of at most 1e10 FLOPs a call (6·T·B·H² a phase; 13 of 73) instead: real speech workloads, most beyond
the calibrated input and hidden sizes.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gru_sim.config import GruConfig, read_named_configs_csv
from gru_sim.groups import GroupKey
from gru_sim.machine import machine_label
from gru_sim.measure import measure_gru
from gru_sim.measure.timing import TimingPolicy
from gru_sim.model.metrics import common_level
from gru_sim.model.profile import load_profile
from gru_sim.predict import Predictor

ROOT = Path(__file__).resolve().parent.parent
GRU_SIM = str(Path(sys.executable).parent / "gru-sim")
SHAPES = ROOT / "benchmarks" / "data" / "typical_shapes.csv"
RECORD_FIELDS = ("run_at", "cpu_model", "name", "batch", "seq_len", "input_size", "hidden_size", "num_layers",
                 "bidirectional", "mode", "threads", "measured_s")
# A run of another set is brought to the profile's pace by the typical runs this close to it in time
# (the machine's pace moves over hours: typical runs an hour apart mostly agree within a few per cent).
PACE_WINDOW_H = 2.0
TYPICAL_RECORD = ROOT / "benchmarks" / "data" / "typical_measured.csv"
POLICY = TimingPolicy(min_sample_s=0.002, budget_s=0.3, min_samples=9, max_samples=40)


def here_of(cpu: str) -> dict[str, Any] | None:
    """The machine a record's ``cpu`` label names, as the fingerprint a profile's match is judged
    against: None for this machine's own label (its whole fingerprint is read), else what the label
    says (model name, family and model numbers, kernel-choosing settings), so that a profile judged
    against another machine's records is widened exactly when it would be there."""
    if cpu == machine_label():
        return None
    match = re.fullmatch(r"(.*?)(?: \(family (\d+), model (\d+)\))?(?: \[(.*)\])?", cpu)
    name, family, model, env = match.groups() if match else (cpu, None, None, None)
    return {"device": "cpu", "cpu_model": name, "cpu_signature": [int(family), int(model)] if family else None,
            "kernel_env": dict(kv.split("=", 1) for kv in env.split()) if env else {}}


def add_cpu_flag(ap: argparse.ArgumentParser) -> None:
    """``--cpu LABEL``: judge the records of another machine kind than this one."""
    ap.add_argument("--cpu", metavar="LABEL", default=None,
                    help="judge the runs recorded on this machine kind, as the records name it (e.g. "
                         "'AMD EPYC (family 25, model 17)'; default: this machine, "
                         f"'{machine_label()}')")


def figures(measured: list[float], predicted: list[float], intervals: list[tuple[float, float]]) -> dict[str, Any]:
    """Median APE and signed error (%), p90 APE, share within ±10 %, 90 % interval coverage, and the
    median APE once the common level of the run (the median ratio predicted / measured: the machine's
    speed then against the calibration's) is divided out — the error in how time depends on the shape."""
    m, p = np.asarray(measured), np.asarray(predicted)
    if m.size == 0:
        return {"n": 0}
    signed = 100.0 * (p - m) / m
    iv = np.asarray(intervals)
    level, after = common_level(m, p)
    return {"n": int(m.size), "median_ape": float(np.median(np.abs(signed))),
            "common_level": level, "median_ape_after_level": after,
            "median_signed_error": float(np.median(signed)), "p90_ape": float(np.percentile(np.abs(signed), 90)),
            "within_10pct": float(np.mean(np.abs(signed) <= 10.0)),
            "interval_coverage": float(np.mean((iv[:, 0] <= m) & (m <= iv[:, 1])))}


def typical_shapes(threads: list[int], path: Path = SHAPES) -> list[tuple[str, GruConfig]]:
    """Every shape of ``path`` (a ``name`` column, then shape flags by name) at every thread count."""
    shapes = read_named_configs_csv(path, what="shapes")
    return [(name, replace(c, threads=t)) for t in threads for name, c in shapes]


def _measure_once(c: GruConfig) -> Any:
    m = measure_gru(c, policy=POLICY, probe_memory=False, check_error=False)
    if m.noisy:
        again = measure_gru(c, policy=POLICY, probe_memory=False, check_error=False)
        m = min(m, again, key=lambda x: x.latency_iqr_s / x.latency_s)
    return m


def calibration_reference_s(profile_path: Path) -> dict[int, float]:
    """Thread count → the median time of the reference call while the profile's own calibration
    measured, read from the store beside it; empty for a profile without one (a pool, a quick
    adaptation, a profile copied alone)."""
    from gru_sim.calibrate.store import MeasurementStore

    store_path = profile_path.with_suffix(".sqlite")
    if not store_path.is_file():
        return {}
    out: dict[int, float] = {}
    with MeasurementStore(store_path) as store:
        for g in load_profile(profile_path).cost_model.coef_:
            readings = [v for _, v in store.drift(g)]
            if readings:
                out[GroupKey.parse(g).threads] = float(np.median(readings))
    return out


def machine_speed_against_calibration(calibrating_s: dict[int, float], measuring_s: dict[int, list[float]]
                                      ) -> dict[int, dict[str, float]]:
    """Per thread count: how much slower the reference call ran while the shapes were measured than
    while the profile was calibrated (its median over the readings, over the calibration's median),
    and what that makes of the kernels (to the power ``drift.KERNEL_ELASTICITY``): a run judged in
    another spell than its calibration's is off by about that much whatever the model."""
    from gru_sim.validate import pace_against

    return {threads: pace_against(readings, calibrating_s[threads])
            for threads, readings in measuring_s.items() if threads in calibrating_s and readings}


def measure_typical(profile_path: Path, rounds: int = 2, seed: int = 0, shapes_path: Path = SHAPES,
                    only_threads: list[int] | None = None) -> dict[str, Any]:
    """Every typical shape at every calibrated thread count, measured in ``rounds`` rounds, each in
    its own shuffled order (a shared machine's speed drifts by the minute: a shape's figure is the
    median of its rounds, and the spread between rounds is the floor no model can beat)."""
    profile = load_profile(profile_path)
    predictor = Predictor(profile)
    threads = sorted({GroupKey.parse(g).threads for g in profile.cost_model.coef_})
    if only_threads:
        threads = [t for t in threads if t in only_threads]
    shapes = typical_shapes(threads, shapes_path)
    rng = np.random.default_rng(seed)
    taken: list[list[Any]] = [[] for _ in shapes]
    calibrating = calibration_reference_s(profile_path)
    groups = {GroupKey.parse(g).threads: GroupKey.parse(g) for g in profile.cost_model.coef_}
    measuring: dict[int, list[float]] = {t: [] for t in threads if t in calibrating}

    from gru_sim.validate import reference_now_s

    def sample_speed() -> None:
        for t in measuring:
            measuring[t].append(reference_now_s(groups[t]))

    sample_speed()
    for r in range(rounds):
        for k in rng.permutation(len(shapes)):
            name, c = shapes[k]
            taken[k].append(_measure_once(c))
            print(f"  round {r + 1}/{rounds}  {name:22s} t{c.threads}  {taken[k][-1].latency_s * 1e3:9.3f} ms",
                  file=sys.stderr, flush=True)
        sample_speed()
    rows = []
    for (name, c), ms in zip(shapes, taken):
        measured = float(np.median([m.latency_s for m in ms]))
        record = predictor.predict(c).to_dict()
        rows.append({"name": name, "config": c.to_dict(), "measured_s": measured,
                     "rounds_s": [m.latency_s for m in ms], "noisy": all(m.noisy for m in ms),
                     "predicted_s": record["latency_s"], "interval_s": record["latency_interval_s"],
                     "extrapolated_axes": record["extrapolated_axes"]})
        print(f"  {name:22s} t{c.threads}  measured {measured * 1e3:9.3f} ms  predicted "
              f"{record['latency_s'] * 1e3:9.3f} ms  {100 * (record['latency_s'] / measured - 1):+6.1f}%"
              f"{'  (noisy)' if rows[-1]['noisy'] else ''}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"rows": rows}
    quiet = [r for r in rows if not r["noisy"]]
    out.update(_figures_by_slice(quiet, threads))
    out["noisy"] = len(rows) - len(quiet)
    out["machine_speed"] = {str(t): v for t, v in machine_speed_against_calibration(calibrating, measuring).items()}
    if rounds > 1:
        spread = [abs(r["rounds_s"][1] / r["rounds_s"][0] - 1.0) * 100.0 for r in quiet]
        out["round_spread"] = {"median_pct": float(np.median(spread)) if spread else None,
                               "p90_pct": float(np.percentile(spread, 90)) if spread else None}
    return out


def record_run(path: Path, cpu: str, rows: list[dict[str, Any]]) -> None:
    """Append one run's measurements (the median of each shape's rounds) to ``path``."""
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RECORD_FIELDS)
        if new:
            w.writeheader()
        for r in rows:
            c = r["config"]
            w.writerow({"run_at": at, "cpu_model": cpu, "name": r["name"], "measured_s": f"{r['measured_s']:.6e}",
                        **{k: (str(c[k]).lower() if isinstance(c[k], bool) else c[k]) for k in RECORD_FIELDS if k in c}})


def _config_of(row: dict[str, str]) -> GruConfig:
    """The shape a row of recorded runs measured."""
    return GruConfig.from_mapping({k: row[k] for k in RECORD_FIELDS[2:-1] if k != "name"})


def paces_of_runs(profile_path: Path, path: Path, cpu: str) -> dict[tuple[str, int], float]:
    """The machine's pace in each run recorded in ``path`` on ``cpu``, per thread count: the profile's
    common level on the run (the geometric median of predicted / measured; above 1 the machine ran
    faster than the profile expects)."""
    predictor = Predictor(load_profile(profile_path))
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["cpu_model"] == cpu]
    by_run: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for r in rows:
        c = _config_of(r)
        measured, predicted = by_run.setdefault((r["run_at"], c.threads), ([], []))
        measured.append(float(r["measured_s"]))
        predicted.append(predictor.predict(c).latency_s)
    return {key: common_level(m, p)[0] for key, (m, p) in by_run.items()}


def pace_at(paces: dict[tuple[str, int], float], run_at: str, threads: int, window_h: float) -> float | None:
    """The machine's pace at ``run_at`` at ``threads``: the geometric median of the paces of the runs
    within ``window_h`` hours of it; None where no run was that close."""
    when = dt.datetime.fromisoformat(run_at)
    near = [v for (at, t), v in paces.items()
            if t == threads and abs((dt.datetime.fromisoformat(at) - when).total_seconds()) <= 3600.0 * window_h]
    return float(np.exp(np.median(np.log(near)))) if near else None


def judge_recorded(profile_path: Path, path: Path, cpu: str, paces: dict[tuple[str, int], float] | None = None,
                   window_h: float = PACE_WINDOW_H) -> dict[str, Any]:
    """The profile's figures against the median, per shape and thread count, of every run in ``path``
    taken on a CPU of this kind (``cpu``). With ``paces`` (:func:`paces_of_runs` of another record, the
    typical shapes'), also ``pace_matched``: the figures once each run's measurements are brought to the
    profile's pace by the pace of the runs of that record within ``window_h`` hours — the error in how
    time depends on the shape, with the machine's pace of the hour taken out but not this set's own level."""
    if not path.is_file():
        sys.exit(f"{path}: no such file of recorded runs (write one with --record)")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    mine = [r for r in rows if r["cpu_model"] == cpu]
    if not mine:
        kinds = sorted({r["cpu_model"] for r in rows})
        sys.exit(f"{path}: no run was recorded on a {cpu!r}, only on {kinds}: measure here with --record")
    by_shape: dict[tuple[str, int], list[dict[str, str]]] = {}
    for r in mine:
        by_shape.setdefault((r["name"], int(r["threads"])), []).append(r)
    predictor = Predictor(load_profile(profile_path), here=here_of(cpu))
    out_rows = []
    # The interval against every run's own measurement (what one fresh measurement meets), not the medians.
    single: list[tuple[float, tuple[float, float]]] = []
    paced_rows, paced_runs = [], set()
    for (name, threads), runs in sorted(by_shape.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        c = _config_of(runs[0])
        seconds = [float(r["measured_s"]) for r in runs]
        record = predictor.predict(c).to_dict()
        single.extend((s, tuple(record["latency_interval_s"])) for s in seconds)
        out_rows.append({"name": name, "config": c.to_dict(), "measured_s": float(np.median(seconds)),
                         "runs": len(seconds), "spread_x": max(seconds) / min(seconds),
                         "predicted_s": record["latency_s"], "interval_s": record["latency_interval_s"]})
        if paces is not None:
            at_pace = [(r["run_at"], s * pace) for r, s in zip(runs, seconds)
                       if (pace := pace_at(paces, r["run_at"], threads, window_h)) is not None]
            if at_pace:
                paced_runs.update(at for at, _ in at_pace)
                paced_rows.append({**out_rows[-1], "measured_s": float(np.median([s for _, s in at_pace]))})
    out: dict[str, Any] = {"rows": out_rows, "runs": max(r["runs"] for r in out_rows),
                           "first_run": min(r["run_at"] for r in mine), "last_run": max(r["run_at"] for r in mine),
                           "median_spread_x": float(np.median([r["spread_x"] for r in out_rows]))}
    out["single_measurements"] = {
        "n": len(single),
        "interval_coverage": float(np.mean([lo <= m <= hi for m, (lo, hi) in single])),
        "median_interval_width_x": float(np.median([hi / lo for _, (lo, hi) in single])),
    }
    out.update(_figures_by_slice(out_rows))
    if paces is not None:
        out["pace_matched"] = {"runs": len(paced_runs), "of_runs": len({r["run_at"] for r in mine}),
                               "window_h": window_h, **_figures_by_slice(paced_rows), "rows": paced_rows}
    return out


def _figures_by_slice(rows: list[dict[str, Any]], threads: list[int] | None = None) -> dict[str, Any]:
    """:func:`figures` of ``rows`` in all, per thread count (``threads``, by default those of the rows)
    and per mode."""
    threads = sorted({r["config"]["threads"] for r in rows}) if threads is None else threads
    slices = [("all", rows)] + [(f"t{t}", [r for r in rows if r["config"]["threads"] == t]) for t in threads] \
        + [(mode, [r for r in rows if r["config"]["mode"] == mode]) for mode in ("inference", "training")]
    return {label: figures([r["measured_s"] for r in sel], [r["predicted_s"] for r in sel],
                           [tuple(r["interval_s"]) for r in sel]) for label, sel in slices}


def recorded_runs(path: Path, cpu: str) -> dict[str, dict[tuple[str, int], float]]:
    """Every run recorded in ``path`` on a CPU of kind ``cpu``: run_at → {(name, threads): seconds}."""
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["cpu_model"] == cpu]
    runs: dict[str, dict[tuple[str, int], float]] = {}
    for r in rows:
        runs.setdefault(r["run_at"], {})[(r["name"], int(r["threads"]))] = float(r["measured_s"])
    return runs


def one_run(path: Path, run_at: str, cpu: str, out: Path) -> Path:
    """The rows of the run recorded at ``run_at`` on ``cpu`` in ``path``, written alone to ``out`` (a
    file of recorded runs with one run, for :func:`judge_recorded`)."""
    return _kept_rows(path, out, lambda r: r["run_at"] == run_at and r["cpu_model"] == cpu)


def runs_since(path: Path, since: str, out: Path) -> Path:
    """The rows of the runs recorded in ``path`` at or after ``since`` (an ISO time, UTC if it names no
    zone), written to ``out``: the record as it stands for a profile of that era."""
    try:
        start = dt.datetime.fromisoformat(since)
    except ValueError:
        sys.exit(f"--since {since}: not an ISO time (give e.g. 2026-12-05T04:28)")
    start = start if start.tzinfo else start.replace(tzinfo=dt.timezone.utc)
    return _kept_rows(path, out, lambda r: dt.datetime.fromisoformat(r["run_at"]) >= start)


def _kept_rows(path: Path, out: Path, keep: Callable[[dict[str, str]], bool]) -> Path:
    """The rows of the file of recorded runs ``path`` that ``keep`` accepts, written to ``out`` with its
    header."""
    with path.open() as f, out.open("w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        writer.writerows(r for r in reader if keep(r))
    return out


def run_to_run(path: Path, cpu: str) -> dict[str, Any]:
    """The machine's own spread between runs, the floor a profile from one spell meets: every recorded
    run (of every shape the others have) against the median of the other runs, as a prediction would
    be — the median APE of each run, and after each run's common level; their mean over the runs."""
    runs = recorded_runs(path, cpu)
    if len(runs) < 3:
        return {"runs": len(runs)}
    apes, afters = [], []
    for at, mine in runs.items():
        others = [r for a, r in runs.items() if a != at]
        shapes = [k for k in mine if sum(k in r for r in others) >= 2]
        if not shapes:
            continue
        median = [float(np.exp(np.median([np.log(r[k]) for r in others if k in r]))) for k in shapes]
        seconds = [mine[k] for k in shapes]
        apes.append(float(100.0 * np.median(np.abs(np.asarray(seconds) / np.asarray(median) - 1.0))))
        afters.append(common_level(median, seconds)[1])
    if not apes:
        return {"runs": 0}
    return {"runs": len(apes), "mean_median_ape": float(np.mean(apes)), "mean_after_level": float(np.mean(afters))}


def run_validate(profile_path: Path, sample: int, out_dir: Path
                 ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """``gru-sim validate --sample``'s figures inside and beyond the range, how far apart its two
    rounds of each configuration lay (the machine's own spread), and its rows (configuration,
    measured and predicted seconds: another profile can be judged on them without measuring). Its
    random sample only (``--no-apps``): this script measures the application shapes itself."""
    proc = subprocess.run([GRU_SIM, "validate", "--profile", str(profile_path), "--sample", str(sample),
                           "--no-apps", "--out", str(out_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    found = out_dir / "validation.json"
    if proc.returncode not in (0, 1) or not found.is_file():  # 1: it ran and found a problem to report
        last = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}, no {found}"]
        sys.exit(f"gru-sim validate failed: {last[0]}")
    doc = json.loads(found.read_text())
    rows = [r for r in doc.get("rows", doc.get("records", [])) if not r.get("noisy")]
    out = {}
    for label, sel in (("inside", [r for r in rows if not r.get("extrapolated")]),
                       ("beyond", [r for r in rows if r.get("extrapolated")])):
        out[label] = figures([r["measured_latency_s"] for r in sel], [r["predicted_latency_s"] for r in sel],
                             [tuple(r["latency_interval_s"]) for r in sel])
    kept = [{k: r.get(k) for k in ("config", "measured_latency_s", "predicted_latency_s", "latency_interval_s",
                                   "extrapolated", "noisy")} for r in doc.get("rows", doc.get("records", []))]
    return out, doc["summary"].get("machine_spread") or {"n": 0}, kept


def fmt(f: dict[str, Any]) -> str:
    if not f.get("n"):
        return "n=0"
    return (f"n={f['n']:3d}  median APE {f['median_ape']:5.1f}%  signed {f['median_signed_error']:+5.1f}%  "
            f"p90 {f['p90_ape']:5.1f}%  within ±10% {100 * f['within_10pct']:3.0f}%  "
            f"90% interval coverage {100 * f['interval_coverage']:3.0f}%  after the common level "
            f"({f['common_level']:.3f}) {f['median_ape_after_level']:5.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, help="judge this profile instead of calibrating a fresh one")
    ap.add_argument("--save-profile", type=Path, help="where the fresh calibration's profile goes (default: a temp dir)")
    ap.add_argument("--job", type=Path, help="calibration job (default: the shipped default job)")
    ap.add_argument("--sample", type=int, default=40, help="gru-sim validate --sample (0: skip validate)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of measuring the typical shapes (default 2)")
    ap.add_argument("--shapes", type=Path, default=SHAPES,
                    help="CSV of hold-out shapes (name, then shape flags; default: the typical shapes)")
    ap.add_argument("--threads", type=int, nargs="+", help="only these of the profile's thread counts")
    ap.add_argument("--json", type=Path, help="also write every figure and row here")
    ap.add_argument("--record", type=Path, help="append this run's measurements of the shapes to this CSV")
    ap.add_argument("--measured", type=Path,
                    help="measure nothing: judge --profile against the median of the runs recorded in this CSV")
    ap.add_argument("--since", metavar="ISO-TIME",
                    help="with --measured: only the runs recorded at or after this time (UTC), e.g. the era a "
                         "pool of recent runs describes")
    ap.add_argument("--pace-from", type=Path,
                    help="with --measured of another set: the record whose runs give the machine's pace of the "
                         "hour (default: the typical shapes' record)")
    ap.add_argument("--pace-window-h", type=float, default=PACE_WINDOW_H,
                    help=f"hours around a run within which a --pace-from run counts (default {PACE_WINDOW_H:g})")
    add_cpu_flag(ap)
    args = ap.parse_args()
    cpu = args.cpu or machine_label()
    if args.cpu is not None and args.measured is None:
        ap.error("--cpu chooses among recorded runs: give it with --measured FILE")
    if args.since is not None and args.measured is None:
        ap.error("--since chooses among recorded runs: give it with --measured FILE")
    if args.measured is not None:
        if args.profile is None:
            sys.exit("--measured judges a given profile: add --profile PATH")
        if args.pace_from is not None and not args.pace_from.is_file():
            sys.exit(f"{args.pace_from}: no such file of recorded runs (--pace-from)")
        record = args.measured
        if args.since is not None:
            if not args.measured.is_file():
                sys.exit(f"{args.measured}: no such file of recorded runs (write one with --record)")
            kept_dir = tempfile.mkdtemp(prefix="gru-sim-since-")
            atexit.register(shutil.rmtree, kept_dir, True)
            args.measured = runs_since(args.measured, args.since, Path(kept_dir) / args.measured.name)
        args.pace_from = args.pace_from or TYPICAL_RECORD
        paces = None
        if args.pace_from.is_file() and args.pace_from.resolve() != record.resolve():
            paces = paces_of_runs(args.profile, args.pace_from, cpu)
        judged = judge_recorded(args.profile, args.measured, cpu, paces, args.pace_window_h)
        print(f"CPU: {cpu}; {judged['runs']} recorded runs from {judged['first_run']} to "
              f"{judged['last_run']}; the same shape's fastest and slowest run differ by a median "
              f"{judged['median_spread_x']:.2f}x")
        for label in ("all", *[k for k in judged if k.startswith("t") and k[1:].isdigit()], "inference", "training"):
            print(f"recorded shapes, {label:9s}: {fmt(judged[label])}")
        single = judged["single_measurements"]
        print(f"every recorded measurement (each run's own, n={single['n']}): 90% interval coverage "
              f"{100 * single['interval_coverage']:.1f}%, the interval {single['median_interval_width_x']:.2f}x wide "
              "(median upper over lower end)")
        if judged.get("pace_matched", {}).get("runs"):
            matched = judged["pace_matched"]
            print(f"at the machine's pace of the hour (each run brought to the profile's pace by its level on the "
                  f"{args.pace_from.name} runs within {matched['window_h']:g} h; {matched['runs']} of "
                  f"{matched['of_runs']} runs):")
            for label in ("all", *[k for k in matched if k.startswith("t") and k[1:].isdigit()],
                          "inference", "training"):
                print(f"  at pace, {label:9s}: {fmt(matched[label])}")
        elif paces is not None:
            print(f"no {args.pace_from.name} run lies within {args.pace_window_h:g} h of these runs: "
                  "no figure at the machine's pace of the hour")
        judged["run_to_run"] = spread = run_to_run(args.measured, cpu)
        if "mean_median_ape" in spread:  # three runs or more: one against the median of the others
            print(f"one recorded run against the median of the others (the machine's own spread between runs: "
                  f"the floor for a profile made in one spell): median APE {spread['mean_median_ape']:.1f}%, "
                  f"after the run's level {spread['mean_after_level']:.1f}% (means over {spread['runs']} runs)")
        if args.json:
            args.json.write_text(json.dumps(judged, indent=1) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        result: dict[str, Any] = {"cpu_model": machine_label()}
        profile = args.profile
        if profile is None:
            profile = args.save_profile or Path(tmp) / "profile.json"
            cmd = [GRU_SIM, "calibrate", "--out", str(profile)] + (["--job", str(args.job)] if args.job else [])
            start = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode:
                sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")
            result["calibration_wall_s"] = time.perf_counter() - start
        result["profile"] = str(profile)
        print(f"hold-out shapes ({args.shapes}), fresh measurements:", file=sys.stderr)
        result["shapes"] = str(args.shapes)
        result["typical"] = measure_typical(profile, args.rounds, shapes_path=args.shapes, only_threads=args.threads)
        if args.record is not None:
            record_run(args.record, result["cpu_model"], result["typical"]["rows"])
        if args.sample:
            print(f"gru-sim validate --sample {args.sample} ...", file=sys.stderr, flush=True)
            result["validate"], result["validate_machine_spread"], result["validate_rows"] = run_validate(
                profile, args.sample, Path(tmp) / "validate")
    print(f"CPU: {result['cpu_model']}")
    if "calibration_wall_s" in result:
        print(f"calibration: {result['calibration_wall_s']:.0f} s wall")
    typ = result["typical"]
    what = "typical shapes" if args.shapes == SHAPES else f"{args.shapes.stem} shapes"
    for label in ("all", *[k for k in typ if k.startswith("t") and k[1:].isdigit()], "inference", "training"):
        print(f"{what}, {label:9s}: {fmt(typ[label])}")
    if typ.get("round_spread", {}).get("median_pct") is not None:
        rs = typ["round_spread"]
        print(f"{what}, the same shape between rounds: median {rs['median_pct']:.1f}%, p90 "
              f"{rs['p90_pct']:.1f}% apart (the machine's own spread)")
    if typ["noisy"]:
        print(f"{what} still noisy after a re-measurement (left out): {typ['noisy']}")
    if typ.get("machine_speed"):
        speed = typ["machine_speed"]
        print(f"{what}, the machine's pace while measured against its calibration's: the reference call took "
              + ", ".join(f"{v['reference_x']:.2f}x the time at t{t} (the kernels {v['kernels_x']:.2f}x)"
                          for t, v in speed.items()))
    for label, f in result.get("validate", {}).items():
        print(f"validate --sample {args.sample}, {label:6s}: {fmt(f)}")
    if result.get("validate_machine_spread", {}).get("n"):
        spread = result["validate_machine_spread"]
        print(f"validate --sample {args.sample}, the same configuration between its two rounds: median "
              f"{spread['median_pct']:.1f}%, p90 {spread['p90_pct']:.1f}% apart (the machine's own spread)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
