"""The reports a user opens: what a scenario forecasts (``write_report``) and how well a profile's
predictions matched fresh measurements (``render_validation_report``).

Both take the plain data written to JSON (results.json, validation.json) and write one self-contained
HTML file. Nothing here computes a forecast: it only arranges and draws what it is handed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..units import fmt_bytes, fmt_seconds
from . import serving_figures as sv
from . import sweep_figures as sw
from . import training_figures as tr
from . import validation_figures as va
from .page import Figure, Section, cards, esc, render_page, table
from .timeline import gantt_figure

SELF_CHECK_LABELS = {"holdout": "held-out configs inside the range", "beyond": "configs beyond the range",
                     "by_group": "group", "memory_in_sample": "peak memory (fitted probes)"}


def write_report(results: dict[str, Any], path: str | Path) -> Path:
    """Write the scenario report for ``results`` (the content of results.json) to ``path``."""
    scenario = results.get("scenario", {})
    sections = [_summary_section(results)]
    if results.get("sweep"):
        sections.append(_sweep_section(results))
    if results.get("serving"):
        sections.append(_serving_section(results))
    if results.get("training"):
        sections.append(_training_section(results))
    if results.get("validation"):
        sections.append(_validation_section(results["validation"]))
    sections.append(_profile_section(results.get("profile", {}), results.get("scenario", {})))
    subtitle = [scenario.get("description") or "",
                f"scenario {scenario.get('path', '?')} · device {scenario.get('device', '?')} · "
                f"profile {results.get('profile', {}).get('path', '?')}"]
    html = render_page(f"gru-sim report: {scenario.get('name', 'scenario')}", [s for s in subtitle if s], sections,
                       _footer(results))
    return _write(path, html)


def render_validation_report(validation: dict[str, Any], path: str | Path) -> Path:
    """Write the report of a ``gru-sim validate`` run (the content of validation.json) to ``path``."""
    profile = validation.get("profile", {})
    sections = [_validation_section(validation, anchor="summary", title="Validation"),
                _profile_section(profile, {})]
    html = render_page("gru-sim validation report", [f"profile {profile.get('path', '?')}"], sections,
                       _footer(validation))
    return _write(path, html)


def _write(path: str | Path, html: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a report
    return path


def _footer(results: dict[str, Any]) -> str:
    created = results.get("created_utc")
    return f"gru-sim {results.get('gru_sim_version', __version__)}" + (f" · {created}" if created else "")


def si_rate(value: Any, unit: str) -> str:
    """``51750.0, 'tokens/s'`` → ``51.7 k tokens/s``."""
    if not _num(value):
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix} {unit}"
    return f"{value:.3g} {unit}"


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------------------------ summary
def _summary_section(results: dict[str, Any]) -> Section:
    s = Section("summary", "Summary")
    for w in results.get("warnings", []):
        s.warning(w)
    if not results.get("warnings"):
        s.ok("Every configuration of this scenario lies inside the profile's calibrated range.")
    items: list[tuple[str, str, str]] = []
    records = results.get("sweep") or []
    if records:
        fastest = min(records, key=lambda r: r["latency_s"])
        best = max(records, key=lambda r: r["throughput_tokens_per_s"])
        biggest = max(records, key=lambda r: r["peak_memory_bytes"])
        items += [("configurations swept", f"{len(records)}", f"{sum(bool(r.get('extrapolated')) for r in records)} "
                   "extrapolated"),
                  ("fastest call", fmt_seconds(fastest["latency_s"]), sw.config_label(fastest["config"])),
                  ("highest throughput", si_rate(best["throughput_tokens_per_s"], "tokens/s"),
                   sw.config_label(best["config"])),
                  ("largest peak memory", fmt_bytes(biggest["peak_memory_bytes"]),
                   sw.config_label(biggest["config"]))]
    serving = results.get("serving")
    if serving:
        slo = serving.get("slo_p99_latency_s")
        items += [("serving p99 latency", fmt_seconds(serving["latency_s"]["p99"]),
                   f"SLO {fmt_seconds(slo)}" if slo else "no SLO set"),
                  ("serving throughput", si_rate(serving["throughput_req_per_s"], "req/s"),
                   f"utilization {serving['utilization']:.0%}")]
        if serving.get("slo_attainment") is not None:
            items.append(("SLO attainment", f"{serving['slo_attainment']:.1%}", "requests within the p99 target"))
    training = results.get("training") or []
    if training:
        top = max(training, key=lambda r: r["devices"])
        items += [(f"training step on {top['devices']} devices", fmt_seconds(top["step_time_s"]),
                   si_rate(top["throughput_seq_per_s"], "seq/s")),
                  (f"scaling efficiency at {top['devices']}", f"{top['scaling_efficiency']:.0%}",
                   "vs perfect linear scaling")]
    check = (results.get("profile") or {}).get("self_check") or {}
    holdout = check.get("holdout") or {}
    if _num(holdout.get("median_ape")):
        items.append(("profile self-check", _ape_pct(holdout["median_ape"]),
                      "median latency error on held-out configurations"))
    s.html(cards(items))
    profile = results.get("profile") or {}
    fp = profile.get("fingerprint") or {}
    machine = ", ".join(str(v) for v in (fp.get("gpu_name") or fp.get("cpu_model"), fp.get("device"),
                                         fp.get("torch") and f"torch {fp['torch']}") if v)
    s.paragraph(f"Profile {profile.get('path', '?')}" + (f" ({profile['source']})" if profile.get("source") else "")
                + (f", calibrated on {machine}" if machine else "")
                + (f" at {profile['created_at']}" if profile.get("created_at") else "")
                + ". Its fingerprint, calibrated ranges and self-check are at the end of this page.")
    timings = results.get("timings_s") or {}
    if timings:
        s.paragraph("Time to compute: " + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in timings.items()) + ".")
    return s


def _profile_section(profile: dict[str, Any], scenario: dict[str, Any]) -> Section:
    s = Section("profile", "Profile and scenario")
    source = profile.get("source")
    s.html(f"<p>Predictions come from the calibration profile <code>{esc(profile.get('path', '?'))}</code>"
           + (f" ({esc(source)})" if source else "") + ".</p>")
    check = profile.get("self_check") or {}
    rows = []
    for key, metrics in _metric_sets(check):
        rows.append([key, _ape_pct(metrics.get("median_ape")), _ape_pct(metrics.get("p90_ape")),
                     _pct(metrics.get("within_10pct")), _pct(metrics.get("interval_coverage")), metrics.get("n", "")])
    if rows:
        s.html("<h3>Self-check at calibration</h3>" + table(
            ["configurations", "median APE", "p90 APE", "within ±10%", "90% interval coverage", "count"], rows,
            [False, True, True, True, True, True]))
    ranges = profile.get("ranges") or {}
    if ranges:
        groups = ranges if all(isinstance(v, dict) for v in ranges.values()) else {"": ranges}
        axes = list(dict.fromkeys(a for g in groups.values() for a in g))
        s.html("<h3>Calibrated range</h3>" + table(
            ["group", *axes], [[name, *(_range_text(g.get(a)) for a in axes)] for name, g in groups.items()]))
    ceilings = profile.get("ceilings") or {}
    if ceilings:
        groups = ceilings if all(isinstance(v, dict) for v in ceilings.values()) else {"": ceilings}
        names = list(dict.fromkeys(k for g in groups.values() for k, v in g.items() if _num(v)))
        s.html("<h3>Measured ceilings</h3>" + table(
            ["group", *names], [[name, *(f"{g[k]:.4g}" if _num(g.get(k)) else "-" for k in names)]
                                for name, g in groups.items()], [False, *[True] * len(names)]))
    fingerprint = profile.get("fingerprint") or {}
    if fingerprint:
        s.html("<h3>Machine fingerprint of the profile</h3>" + table(
            ["field", "value"], [[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                                 for k, v in fingerprint.items()]))
    spec = scenario.get("spec")
    if spec:
        s.html("<details><summary>The scenario as read</summary><pre>"
               f"{esc(json.dumps(spec, indent=2))}</pre></details>")
    return s


def _metric_sets(check: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every set of error figures in a self-check, nested ones (per group) named by their path."""
    out = []
    for key, value in check.items():
        if not isinstance(value, dict):
            continue
        name = f"{prefix}{SELF_CHECK_LABELS.get(key, key)}"
        if "median_ape" in value:
            out.append((name, value))
        else:
            out += _metric_sets(value, f"{name} / ")
    return out


def _range_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_num(v) for v in value):
        return f"{value[0]} – {value[1]}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _pct(value: Any) -> str:
    """A fraction as a percentage: 0.93 → 93.0%."""
    return f"{value:.1%}" if _num(value) else "-"


def _ape_pct(value: Any) -> str:
    """An absolute percentage error, which gru-sim keeps in percent (model/metrics.py): 5.2 → 5.2%."""
    return f"{value:.1f}%" if _num(value) else "-"


# -------------------------------------------------------------------------------------------- sweep
def _sweep_section(results: dict[str, Any]) -> Section:
    records = results["sweep"]
    s = Section("sweep", "Sweep")
    n_ex = sum(bool(r.get("extrapolated")) for r in records)
    s.paragraph(f"{len(records)} configurations predicted from the profile"
                + (f"; {n_ex} lie outside its calibrated range, so their predictions are extrapolations." if n_ex
                   else "."))
    for f in sw.scaling_figures(records):
        s.parts.append(f)
    s.figures_side_by_side([sw.memory_figure(records, _device_memory_bytes(results)),
                            sw.roofline_figure(records, results.get("roofline") or [])])
    s.parts.append(sw.breakdown_figure(records))
    s.parts.append(sw.parallelism_figure(records))
    _timelines(s, results, "sweep")
    s.html("<h3>Highest throughput</h3>" + table(
        ["configuration", "latency", "90% interval", "tokens/s", "seq/s", "peak memory", "extrapolated"],
        sw.fastest_rows(records), [False, True, True, True, True, True, False])
        + "<p class=caption>Every configuration is in sweep.csv beside this report.</p>")
    return s


def _device_memory_bytes(results: dict[str, Any]) -> float | None:
    device = (results.get("scenario") or {}).get("device")
    fp = (results.get("profile") or {}).get("fingerprint") or {}
    value = fp.get("gpu_memory_bytes") if device == "cuda" else fp.get("memory_total_bytes")
    return float(value) if _num(value) else None


def _timelines(s: Section, results: dict[str, Any], study: str) -> None:
    for tl in results.get("timelines") or []:
        if tl.get("study") == study:
            fig = gantt_figure(tl)
            if fig is not None:
                s.parts.append(fig)


# ------------------------------------------------------------------------------------------ serving
def _serving_section(results: dict[str, Any]) -> Section:
    serving = results["serving"]
    s = Section("serving", "Serving")
    lat, wait = serving["latency_s"], serving["queue_wait_s"]
    rows = [["latency", *(fmt_seconds(lat.get(k)) for k in ("mean", "p50", "p90", "p99"))],
            ["queue wait", *(fmt_seconds(wait.get(k)) for k in ("mean", "p50", "p90", "p99"))],
            ["service time", fmt_seconds(serving["service_time_s"].get("mean")), "", "", ""]]
    s.html(table(["", "mean", "p50", "p90", "p99"], rows, [False, True, True, True, True]))
    slo = serving.get("slo_p99_latency_s")
    facts = [f"throughput {si_rate(serving['throughput_req_per_s'], 'requests/s')}",
             f"utilization {serving['utilization']:.1%}", f"mean batch {serving['mean_batch_size']:.3g}"]
    if slo and serving.get("slo_attainment") is not None:
        facts.append(f"{serving['slo_attainment']:.1%} of requests within the SLO of {fmt_seconds(slo)}")
    s.paragraph("; ".join(facts) + ".")
    if slo and lat.get("p99") is not None and lat["p99"] > slo:
        s.warning(f"The p99 latency {fmt_seconds(lat['p99'])} misses the SLO of {fmt_seconds(slo)} at the configured "
                  "load.")
    figures = [f for f in (sv.latency_cdf_figure(serving), sv.load_sweep_figure(serving)) if f is not None]
    if figures:
        s.figures_side_by_side(figures)
    figures = [f for f in (sv.queue_figure(serving), sv.batch_histogram_figure(serving)) if f is not None]
    if figures:
        s.figures_side_by_side(figures)
    _timelines(s, results, "serving")
    return s


# ----------------------------------------------------------------------------------------- training
def _training_section(results: dict[str, Any]) -> Section:
    rows = sorted(results["training"], key=lambda r: r["devices"])
    s = Section("training", "Training")
    s.html(table(["devices", "step time", "throughput (seq/s)", "scaling efficiency", "memory per device",
                  "communication share"],
                 [[r["devices"], fmt_seconds(r["step_time_s"]), f"{r['throughput_seq_per_s']:.4g}",
                   f"{r['scaling_efficiency']:.1%}", fmt_bytes(r["peak_memory_bytes_per_device"]),
                   _pct(r.get("comm_share"))] for r in rows],
                 [True, True, True, True, True, True]))
    s.parts.append(tr.scaling_figure(rows))
    comm = tr.compute_vs_communication_figure(rows)
    if comm is not None:
        s.parts.append(comm)
    _timelines(s, results, "training")
    return s


# --------------------------------------------------------------------------------------- validation
def _validation_section(validation: dict[str, Any], anchor: str = "validation",
                        title: str = "Validation against measurements") -> Section:
    s = Section(anchor, title)
    rows: Sequence[dict[str, Any]] = validation.get("rows") or []
    summary = validation.get("summary") or {}
    items = []
    for key, label in (("median_ape", "median APE"), ("p90_ape", "p90 APE")):
        if _num(summary.get(key)):
            items.append((label, _ape_pct(summary[key]), ""))
    for key, label in (("within_10pct", "within ±10%"), ("interval_coverage", "90% interval coverage")):
        if _num(summary.get(key)):
            items.append((label, _pct(summary[key]), ""))
    items.append(("configurations", str(len(rows)),
                  f"{sum(bool(r.get('extrapolated')) for r in rows)} beyond the range, "
                  f"{sum(bool(r.get('noisy')) for r in rows)} noisy"))
    s.html(cards(items))
    other = {k: v for k, v in summary.items() if k not in ("median_ape", "p90_ape", "within_10pct",
                                                            "interval_coverage")}
    if other:
        s.html(table(["metric", "value"], [[k, f"{v:.4g}" if _num(v) else json.dumps(v)] for k, v in
                                           other.items()], [False, True]))
    if not rows:
        s.warning("The validation has no measured configurations to show.")
        return s
    s.figures_side_by_side([va.parity_figure(rows), va.ape_cdf_figure(rows)])
    residuals = va.residual_figure(rows)
    if residuals is not None:
        s.parts.append(residuals)
    extra: list[Figure] = []
    coverage = va.coverage_figure(rows)
    if coverage is not None:
        extra.append(coverage[0])
    memory = va.memory_parity_figure(rows)
    if memory is not None:
        extra.append(memory)
    if extra:
        s.figures_side_by_side(extra)
    return s
