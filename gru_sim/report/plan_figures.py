"""The plan's part of the report: what it recommends and at what cost, the frontier of cost against
p99 latency over every deployment simulated, why each cheaper deployment fails, the day's schedule
and the training choice.

Input: the ``plan`` object of plan.json (plain dicts and lists); output: a report section.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from ..units import fmt_bytes, fmt_seconds
from .page import Section, cards, table


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _deployment(c: dict[str, Any]) -> str:
    padding = "pad" if c["padding"] == "pad" else "buckets"
    return (f"{c['replicas']} x {c['threads_per_replica']}t on {c['machines']} {c['hardware']}, "
            f"batch {c['max_batch']}, wait {fmt_seconds(c['max_wait_s']) if c['max_wait_s'] else '0'}, {padding}")


def _cost(value: Any) -> str:
    return f"{value:.4g}/h" if is_num(value) else "-"


def frontier_figure(plan: dict[str, Any]) -> go.Figure | None:
    """Cost per hour against p99 latency of every deployment that kept up with the traffic, the
    Pareto front joined, the SLO as a line and the recommendation marked."""
    shown = [c for c in plan.get("candidates", []) if c.get("stable") and is_num(c["latency_s"].get("p99"))]
    if not shown:
        return None
    fig = go.Figure()
    for feasible, name, colour in ((True, "meets the SLO", "#109618"), (False, "misses the SLO", "#dc3912")):
        group = [c for c in shown if bool(c["feasible"]) == feasible]
        if group:
            fig.add_trace(go.Scatter(
                x=[c["latency_s"]["p99"] for c in group], y=[c["cost_per_hour"] for c in group], mode="markers",
                name=name, marker=dict(color=colour, size=8, opacity=0.7), text=[_deployment(c) for c in group],
                hovertemplate="%{text}<br>p99 %{x:.4g} s, cost %{y:.4g}/h<extra></extra>"))
    front = plan.get("pareto") or []
    if front:
        fig.add_trace(go.Scatter(x=[c["latency_s"]["p99"] for c in front], y=[c["cost_per_hour"] for c in front],
                                 mode="lines", name="Pareto front", line=dict(color="#3366cc", shape="hv"),
                                 hoverinfo="skip"))
    rec = plan.get("recommended")
    if rec:
        fig.add_trace(go.Scatter(x=[rec["latency_s"]["p99"]], y=[rec["cost_per_hour"]], mode="markers",
                                 name="recommended", marker=dict(symbol="star", size=16, color="#ff9900"),
                                 text=[_deployment(rec)], hovertemplate="%{text}<extra>recommended</extra>"))
    slo = (plan.get("slo") or {}).get("latency_s")
    if slo:
        fig.add_vline(x=slo, line=dict(color="#dc3912", dash="dash"),
                      annotation_text=f"SLO p{(plan.get('slo') or {}).get('percentile', 99)}",
                      annotation_position="top right")
    fig.update_layout(title="Cost against p99 latency of the deployments simulated")
    fig.update_xaxes(title_text="p99 latency", ticksuffix="s", type="log")
    fig.update_yaxes(title_text="cost per hour", rangemode="tozero")
    return fig


def plan_section(plan: dict[str, Any]) -> Section:
    """The report section of a plan (the ``plan`` object of plan.json)."""
    s = Section("plan", "Deployment plan")
    slo = plan.get("slo") or {}
    rec = plan.get("recommended")
    percentile = slo.get("percentile", 99)
    target = (f"p{percentile} latency within {fmt_seconds(slo.get('latency_s'))}, {slo.get('min_attainment', 0):.2%} "
              f"of requests within it" + (f", at most {fmt_bytes(slo['memory_cap_bytes'])} per replica"
                                          if slo.get("memory_cap_bytes") else ""))
    if "rate_per_s" in plan:
        s.paragraph(f"Planned for {plan['rate_per_s']:.4g} requests/s: {target}.")
    search = plan.get("search") or {}
    if rec:
        s.ok(f"Recommended: {_deployment(rec)} — {_cost(rec['cost_per_hour'])}; p99 {fmt_seconds(rec['latency_s']['p99'])}"
             f" (by seed: {', '.join(fmt_seconds(v) for v in rec.get('latency_p99_by_seed_s', []))}); "
             f"{rec['slo_attainment']:.2%} of requests within the SLO.")
        headroom = rec.get("headroom_rate_per_s")
        s.html(cards([
            ("cost", _cost(rec["cost_per_hour"]), f"{rec['machines']} {rec['hardware']} machine"
                                                  f"{'s' * (rec['machines'] != 1)}"),
            ("p99 latency", fmt_seconds(rec["latency_s"]["p99"]), f"p50 {fmt_seconds(rec['latency_s']['p50'])}"),
            ("headroom", f"{headroom:.4g} req/s" if is_num(headroom) else "-",
             "highest rate still within the SLO" + ("" if rec.get("headroom_bounded", True) else " (or more)")),
            ("utilization", f"{rec['utilization']:.0%}", f"mean batch {rec['mean_batch_size']:.3g}"),
            ("memory per replica", fmt_bytes(rec["memory_bytes"]), f"{rec['replicas_per_machine']} per machine"),
        ]))
    elif "rate_per_s" in plan:
        s.warning(f"{plan.get('reason') or 'No deployment meets the constraints'}.")
    if search:
        s.paragraph(f"The search simulated {search.get('evaluations')} of the {search.get('space_size')} deployments "
                    f"of the space ({search.get('simulations')} simulations with the headroom and the neighbours), "
                    f"each with {search.get('requests_per_run')} requests per seed and seeds "
                    f"{', '.join(str(x) for x in search.get('seeds', []))}.")
    fig = frontier_figure(plan)
    if fig is not None:
        s.figure(fig, "Every deployment simulated that kept up with the traffic; overloaded ones are left out. "
                      "The front joins those no other beats on both cost and p99.")
    neighbours = plan.get("cheaper_neighbours") or []
    if neighbours:
        s.paragraph("Why the cheaper deployments fail:")
        s.html(table(["deployment", "cost", "p99", "within SLO", "why it fails"],
                     [[_deployment(c), _cost(c["cost_per_hour"]), fmt_seconds(c["latency_s"]["p99"]),
                       f"{c['slo_attainment']:.2%}", c.get("reason") or ""] for c in neighbours],
                     [False, True, True, True, False]))
    elif rec:
        s.paragraph("No cheaper deployment exists in the search space.")
    ruled = plan.get("ruled_out") or []
    if ruled:
        s.html(table(["hardware", "threads per replica", "ruled out because"],
                     [[r["hardware"], r["threads_per_replica"], r["reason"]] for r in ruled], [False, True, False]))
    front = plan.get("pareto") or []
    if front:
        s.paragraph("The Pareto front (cheapest first):")
        s.html(table(["deployment", "cost", "p50", "p99", "meets the SLO"],
                     [[_deployment(c), _cost(c["cost_per_hour"]), fmt_seconds(c["latency_s"]["p50"]),
                       fmt_seconds(c["latency_s"]["p99"]), "yes" if c["feasible"] else "no"] for c in front],
                     [False, True, True, True, False]))
    schedule = plan.get("schedule") or []
    if schedule:
        s.paragraph("The recommended setting resized for each rate planned for:")
        s.html(table(["rate", "machines", "replicas", "cost", "p99"],
                     [[f"{r['rate_per_s']:.4g} req/s", r["machines"] if r["machines"] is not None else "none fits",
                       r["replicas"] if r["replicas"] is not None else "-", _cost(r["cost_per_hour"]),
                       fmt_seconds(r["latency_p99_s"])] for r in schedule], [True, True, True, True, True]))
    training = plan.get("training")
    if training:
        _training_part(s, training)
    return s


def _training_part(s: Section, training: dict[str, Any]) -> None:
    target = fmt_seconds(training.get("target_epoch_time_s"))
    if training.get("devices") is not None:
        s.ok(f"Training: {training['devices']} device{'s' * (training['devices'] != 1)} x batch "
             f"{training['batch_per_device']} per device get through {training['sequences_per_epoch']} sequences in "
             f"{fmt_seconds(training['epoch_time_s'])} (target {target}), costing {training['cost']:.4g} per epoch "
             f"({_cost(training['cost_per_hour'])}).")
    else:
        s.warning(f"Training: {training.get('reason')}.")
    options = sorted(training.get("options") or [], key=lambda o: (o["batch_per_device"], o["devices"]))
    if options:
        s.html(table(["devices", "batch per device", "step", "epoch", "cost per epoch", "scaling efficiency",
                      "memory per device", "verdict"],
                     [[o["devices"], o["batch_per_device"], fmt_seconds(o["step_time_s"]),
                       fmt_seconds(o["epoch_time_s"]), f"{o['cost']:.4g}", f"{o['scaling_efficiency']:.0%}",
                       fmt_bytes(o["peak_memory_bytes_per_device"]), "in time" if o["feasible"] else o["reason"]]
                      for o in options], [True, True, True, True, True, True, True, False]))
