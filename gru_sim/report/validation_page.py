"""The validation report: how close a profile's predictions came to fresh measurements of
configurations it was not fitted on — headline figures, the figures per part of the range, and the
parity, error, residual, coverage and memory plots."""

from __future__ import annotations

from pathlib import Path

from ..groups import GroupKey
from ..validation import ErrorFigures, Validation
from . import validation_figures as va
from .page import Figure, Section, ape_pct, cards, footer, pct, render_page, table, write_html
from .profile_section import profile_section

# The summaries of validation.json shown in the table, in order.
SUMMARY_PARTS = (("overall", "every quiet measurement"), ("inside_range", "inside the calibrated range"),
                 ("extrapolated", "beyond the calibrated range"),
                 ("applications", "application shapes (shipped hold-out)"), ("noisy", "noisy even when re-measured"))


def render_validation_report(validation: Validation, path: str | Path) -> Path:
    """Write the report of a ``gru-sim validate`` run to ``path``."""
    profile = validation.profile
    sections = [validation_section(validation, anchor="summary", title="Validation"), profile_section(profile, {})]
    html = render_page("gru-sim validation report", [f"profile {profile.get('path', '?')}"], sections, footer({}))
    return write_html(path, html)


def _ci(figures: ErrorFigures) -> str:
    ci = figures.median_ape_ci95
    return "-" if ci is None else f"{ci[0]:.1f} – {ci[1]:.1f}%"


def validation_section(validation: Validation, anchor: str = "validation",
                       title: str = "Validation against measurements") -> Section:
    """The headline cards (overall figures), a table of the figures per part of the range, the plots."""
    s = Section(anchor, title)
    rows = validation.rows
    summary = validation.summary
    overall = summary.overall
    apps = sum(bool(r.get("application")) for r in rows)
    items = [("median APE", ape_pct(overall.median_ape), f"95% CI {_ci(overall)}" if overall.median_ape_ci95 else ""),
             ("p90 APE", ape_pct(overall.p90_ape), ""),
             ("within ±10%", pct(overall.within_10pct), ""),
             ("90% interval coverage", pct(overall.interval_coverage), ""),
             ("predicted / measured (median)",
              "-" if overall.common_level is None else f"{overall.common_level:.2f}×",
              "" if overall.median_ape_after_level is None
              else f"the machine's speed against the profile's; {overall.median_ape_after_level:.1f}% APE after it"),
             *([("the machine's pace", ", ".join(f"t{GroupKey.parse(g).threads} {v['reference_x']:.2f}×"
                                                 for g, v in sorted(summary.machine_pace.groups.items())),
                 "the calibration's reference call against its time at the profile's typical speed"
                 + ("" if summary.machine_pace.inside_range.median_ape is None else
                    f"; at that speed {summary.machine_pace.inside_range.median_ape:.1f}% APE inside the range"))]
               if summary.machine_pace is not None else []),
             *([("the machine's own spread", f"{summary.machine_spread.median_pct:.1f}%",
                 f"the same configuration between rounds (median; p90 {summary.machine_spread.p90_pct:.1f}%): "
                 "no model's error can go below it")] if summary.machine_spread.n else []),
             *([("application shapes", ape_pct(summary.applications.median_ape),
                 f"median APE over {summary.applications.n} shapes people run (keyword spotting, speech, NLP, "
                 "translation, time series, recommendation), which the random sample draws rarely; "
                 f"90% interval coverage {pct(summary.applications.interval_coverage)}")]
               if summary.applications.n else []),
             ("configurations", str(len(rows)),
              (f"{apps} application shapes, " if apps else "")
              + f"{sum(bool(r.get('extrapolated')) for r in rows)} beyond the range, "
              f"{sum(bool(r.get('noisy')) for r in rows)} noisy"
              + (f", {summary.oom} did not fit in memory" if summary.oom else ""))]
    s.html(cards(items))
    parts = [(label, getattr(summary, name)) for name, label in SUMMARY_PARTS
             if name != "applications" or summary.applications.n]
    if summary.memory.n:
        parts.append(("peak memory (probed)", summary.memory))
    s.html(table(["configurations", "count", "median APE", "95% CI of the median", "p90 APE", "within ±10%",
                  "90% interval coverage"],
                 [[label, f.n, ape_pct(f.median_ape), _ci(f), ape_pct(f.p90_ape), pct(f.within_10pct),
                   pct(f.interval_coverage)] for label, f in parts],
                 [False, True, True, True, True, True, True]))
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
