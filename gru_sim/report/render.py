"""The report of a scenario run (``write_report``): what it forecasts, study by study, from the content
of results.json, as one self-contained HTML file. Nothing here computes a forecast: it only arranges
and draws what it is handed. The validation report is :mod:`gru_sim.report.validation_page`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..gradient_flow import SATURATED_Z, fmt_ratio
from ..units import fmt_bytes, fmt_seconds
from ..study.records import ServingRecord, SweepRecord, TrainingRecord
from ..validation import Validation
from . import gradient_figures as gr
from . import serving_figures as sv
from . import sweep_figures as sw
from . import training_figures as tr
from .plan_figures import plan_section
from .page import Section, ape_pct, cards, footer, is_num, pct, render_page, table, write_html
from .profile_section import profile_section
from .sweep_summary import sweep_summary_section
from .timeline import gantt_figure
from .validation_page import validation_section


def write_report(results: dict[str, Any], path: str | Path) -> Path:
    """Write the scenario report for ``results`` (the content of results.json) to ``path``."""
    scenario = results.get("scenario", {})
    serving = ServingRecord.from_dict(results["serving"]) if results.get("serving") else None
    training = TrainingRecord.read_all(results.get("training") or ())
    sweep = SweepRecord.read_all(results.get("sweep") or ())
    sections = [_summary_section(results, sweep, serving, training)]
    if sweep:
        sections.append(_sweep_section(results, sweep))
    elif results.get("sweep_summary"):
        sections.append(sweep_summary_section(results["sweep_summary"]))
    if serving is not None:
        sections.append(_serving_section(results, serving))
    if training:
        sections.append(_training_section(results, training))
    if results.get("gradients"):
        sections.append(_gradients_section(results))
    if results.get("plan"):
        sections.append(plan_section(results["plan"]))
    if results.get("validation"):
        sections.append(validation_section(Validation.from_dict(results["validation"])))
    sections.append(profile_section(results.get("profile", {}), results.get("scenario", {})))
    subtitle = [scenario.get("description") or "",
                f"scenario {scenario.get('path', '?')} · device {scenario.get('device', '?')} · "
                f"profile {results.get('profile', {}).get('path', '?')}"]
    html = render_page(f"gru-sim report: {scenario.get('name', 'scenario')}", [s for s in subtitle if s], sections,
                       footer(results))
    return write_html(path, html)


def si_rate(value: Any, unit: str) -> str:
    """``51750.0, 'tokens/s'`` → ``51.7 k tokens/s``."""
    if not is_num(value):
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix} {unit}"
    return f"{value:.3g} {unit}"


# ------------------------------------------------------------------------------------------ summary
def _summary_section(results: dict[str, Any], sweep: tuple[SweepRecord, ...], serving: ServingRecord | None,
                     training: tuple[TrainingRecord, ...]) -> Section:
    s = Section("summary", "Summary")
    if results.get("profile_match") is False and results.get("profile_note"):
        s.danger(results["profile_note"])
    for w in results.get("warnings", []):
        s.warning(w)
    if not results.get("warnings"):
        s.ok("Every configuration of this scenario lies inside the profile's calibrated range.")
    items: list[tuple[str, str, str]] = []
    records = [r.prediction for r in sweep]
    if records:
        fastest = min(records, key=lambda r: r.latency_s)
        best = max(records, key=lambda r: r.throughput_tokens_per_s)
        biggest = max(records, key=lambda r: r.peak_memory_bytes)
        items += [("configurations swept", f"{len(records)}", f"{sum(bool(r.extrapolated) for r in records)} "
                   "extrapolated"),
                  ("fastest call", fmt_seconds(fastest.latency_s), sw.config_label(fastest.config)),
                  ("highest throughput", si_rate(best.throughput_tokens_per_s, "tokens/s"),
                   sw.config_label(best.config)),
                  ("largest peak memory", fmt_bytes(biggest.peak_memory_bytes),
                   sw.config_label(biggest.config))]
    if serving is not None:
        slo = serving.run.slo_p99_latency_s
        items += [("serving p99 latency", fmt_seconds(serving.run.latency_s.p99),
                   f"SLO {fmt_seconds(slo)}" if slo else "no SLO set"),
                  ("serving throughput", si_rate(serving.run.throughput_req_per_s, "req/s"),
                   f"utilization {serving.run.utilization:.0%}")]
        if serving.run.slo_attainment is not None:
            items.append(("SLO attainment", f"{serving.run.slo_attainment:.1%}", "requests within the p99 target"))
    if training:
        top = max((r.point for r in training), key=lambda p: p.devices)
        items += [(f"training step on {top.devices} devices", fmt_seconds(top.step_time_s),
                   si_rate(top.throughput_seq_per_s, "seq/s")),
                  (f"scaling efficiency at {top.devices}", f"{top.scaling_efficiency:.0%}",
                   "vs perfect linear scaling")]
    for record in results.get("gradients") or []:
        horizon = record.get("horizon_steps")
        items.append((f"gradient horizon, {record['label']}",
                      "beyond T" if horizon is None else f"{horizon:,} steps",
                      f"until 1,000× smaller, at T = {record['config']['seq_len']:,}"))
    plan = results.get("plan") or {}
    if plan.get("recommended"):
        rec = plan["recommended"]
        items.append(("recommended deployment", f"{rec['cost_per_hour']:.4g}/h",
                      f"{rec['replicas']} replicas on {rec['machines']} {rec['hardware']}, p99 "
                      f"{fmt_seconds(rec['latency_s']['p99'])}"))
    elif "recommended" in plan:
        items.append(("recommended deployment", "none", "no deployment meets the constraints"))
    if (plan.get("training") or {}).get("devices") is not None:
        t = plan["training"]
        items.append(("training", f"{t['devices']} x batch {t['batch_per_device']}",
                      f"epoch {fmt_seconds(t['epoch_time_s'])}, {t['cost']:.4g} per epoch"))
    check = (results.get("profile") or {}).get("self_check") or {}
    holdout = check.get("holdout") or {}
    if is_num(holdout.get("median_ape")):
        items.append(("profile self-check", ape_pct(holdout["median_ape"]),
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


# -------------------------------------------------------------------------------------------- sweep
def _sweep_section(results: dict[str, Any], sweep: tuple[SweepRecord, ...]) -> Section:
    records = [r.prediction for r in sweep]
    s = Section("sweep", "Sweep")
    n_ex = sum(bool(r.extrapolated) for r in records)
    s.paragraph(f"{len(records)} configurations predicted from the profile"
                + (f"; {n_ex} lie outside its calibrated range, so their predictions are extrapolations." if n_ex
                   else "."))
    for f in sw.scaling_figures(records):
        s.parts.append(f)
    s.figures_side_by_side([sw.memory_figure(records, _device_memory_bytes(results)),
                            sw.roofline_figure(sweep, results.get("roofline") or [])])
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
    return float(value) if is_num(value) else None


def _timelines(s: Section, results: dict[str, Any], study: str) -> None:
    for tl in results.get("timelines") or []:
        if tl.get("study") == study:
            fig = gantt_figure(tl)
            if fig is not None:
                s.parts.append(fig)


# ------------------------------------------------------------------------------------------ serving
def _serving_section(results: dict[str, Any], serving: ServingRecord) -> Section:
    s = Section("serving", "Serving")
    lat, wait = serving.run.latency_s, serving.run.queue_wait_s
    rows = [["latency", *(fmt_seconds(v) for v in (lat.mean, lat.p50, lat.p90, lat.p99))],
            ["queue wait", *(fmt_seconds(v) for v in (wait.mean, wait.p50, wait.p90, wait.p99))],
            ["service time", fmt_seconds(serving.run.service_time_mean_s), "", "", ""]]
    s.html(table(["", "mean", "p50", "p90", "p99"], rows, [False, True, True, True, True]))
    slo = serving.run.slo_p99_latency_s
    facts = [f"throughput {si_rate(serving.run.throughput_req_per_s, 'requests/s')}",
             f"utilization {serving.run.utilization:.1%}", f"mean batch {serving.run.mean_batch_size:.3g}"]
    if slo and serving.run.slo_attainment is not None:
        facts.append(f"{serving.run.slo_attainment:.1%} of requests within the SLO of {fmt_seconds(slo)}")
    s.paragraph("; ".join(facts) + ".")
    if slo and lat.p99 is not None and lat.p99 > slo:
        s.warning(f"The p99 latency {fmt_seconds(lat.p99)} misses the SLO of {fmt_seconds(slo)} at the configured "
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
def _training_section(results: dict[str, Any], training: tuple[TrainingRecord, ...]) -> Section:
    rows = sorted((r.point for r in training), key=lambda p: p.devices)
    s = Section("training", "Training")
    s.html(table(["devices", "step time", "throughput (seq/s)", "scaling efficiency", "memory per device",
                  "communication share"],
                 [[p.devices, fmt_seconds(p.step_time_s), f"{p.throughput_seq_per_s:.4g}",
                   f"{p.scaling_efficiency:.1%}", fmt_bytes(p.peak_memory_bytes_per_device),
                   pct(p.comm_share)] for p in rows],
                 [True, True, True, True, True, True]))
    s.parts.append(tr.scaling_figure(rows))
    s.parts.append(tr.compute_vs_communication_figure(rows))
    _timelines(s, results, "training")
    return s


# ---------------------------------------------------------------------------------------- gradients
def _gradients_section(results: dict[str, Any]) -> Section:
    records = results["gradients"]
    s = Section("gradients", "Gradient flow")
    first = records[0]["config"]
    s.paragraph(f"Measured with torch on this CPU (not predicted): the gradient of a loss on the last step's output "
                f"with respect to every earlier state, for {first['batch']} random input sequences, in "
                f"{first['dtype']}. A GRU trained on sequences of length T learns a dependency k steps back only "
                "as far as this gradient reaches.")
    for record in records:
        ratio = record.get("step0_grad_ratio")
        troubled = record.get("horizon_steps") is not None or (is_num(ratio) and ratio > gr.HORIZON_FALL)
        (s.warning if troubled else s.ok)(f"{record['label']}: {record['summary']}")
    dtypes = sorted({d for rec in records for r in rec["by_seq_len"] for d in r.get("forward_rel_error", {})})
    rows = []
    for record in records:
        for r in record["by_seq_len"]:
            ratio, decay, horizon = r["step0_grad_ratio"], r["decay_per_step"], r["horizon_steps"]
            errors = r.get("forward_rel_error", {})
            rows.append([record["label"], f"{r['seq_len']:,}", fmt_ratio(ratio) if is_num(ratio) else "-",
                         f"{decay:.4g}" if is_num(decay) else "-", "beyond T" if horizon is None else f"{horizon:,}",
                         pct(r["update_gate_saturation"]),
                         *(f"{errors[d]:.2e}" if is_num(errors.get(d)) else "-" for d in dtypes)])
    s.html(table(["configuration", "T", "‖∂L/∂h_0‖ / ‖∂L/∂h_T‖", "decay per step", "horizon (steps)",
                  f"update gates z > {SATURATED_Z}", *(f"{d} forward error" for d in dtypes)], rows,
                 [False, True, True, True, True, True, *([True] * len(dtypes))])
           + "<p class=caption>Decay per step: the fitted factor by which the gradient changes per step back "
             "(below 1 it vanishes, above 1 it explodes). Horizon: steps back until it is 1,000× smaller than at "
             "the last step. Every row is in gradients.csv beside this report.</p>")
    s.figures_side_by_side([gr.grad_norm_figure(records),
                            gr.horizon_figure(records, records[0].get("seq_lens_in_use") or {})])
    errors_figure = gr.forward_error_figure(records)
    if errors_figure is not None:
        s.parts.append(errors_figure)
    return s
