"""The part of every report that says where its predictions come from: the calibration profile's
self-check, calibrated ranges, measured ceilings and machine fingerprint (and the scenario as read)."""

from __future__ import annotations

import json
from typing import Any

from .page import Section, ape_pct, esc, is_num, pct, table

SELF_CHECK_LABELS = {"holdout": "held-out configs inside the range", "beyond": "configs beyond the range",
                     "by_group": "group", "memory_in_sample": "peak memory (fitted probes)"}



def profile_section(profile: dict[str, Any], scenario: dict[str, Any]) -> Section:
    s = Section("profile", "Profile and scenario")
    source = profile.get("source")
    s.html(f"<p>Predictions come from the calibration profile <code>{esc(profile.get('path', '?'))}</code>"
           + (f" ({esc(source)})" if source else "") + ".</p>")
    check = profile.get("self_check") or {}
    rows = []
    for key, metrics in _metric_sets(check):
        rows.append([key, ape_pct(metrics.get("median_ape")), ape_pct(metrics.get("p90_ape")),
                     pct(metrics.get("within_10pct")), pct(metrics.get("interval_coverage")), metrics.get("n", "")])
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
        names = list(dict.fromkeys(k for g in groups.values() for k, v in g.items() if is_num(v)))
        s.html("<h3>Measured ceilings</h3>" + table(
            ["group", *names], [[name, *(f"{g[k]:.4g}" if is_num(g.get(k)) else "-" for k in names)]
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
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_num(v) for v in value):
        return f"{value[0]} – {value[1]}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)
