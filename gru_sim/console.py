"""How results look on a terminal: aligned tables drawn with rich — data on stdout, messages and
progress on stderr — for a measurement, a prediction, a calibration's self-check and a validation."""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

from .groups import GroupKey
from .units import fmt_seconds

# A validation of at least this many configurations whose common level (predicted / measured) is off
# by more than this in log (about 10 %) says so in one line: the machine's speed, not the shapes.
MIN_LEVEL_POINTS = 8
LEVEL_NOTE = 0.095


def console(stderr: bool = False) -> Any:
    """A rich console on stdout (data) or stderr (messages); wide when not a terminal, so that piped
    tables keep one row per line."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, highlight=False)


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, stderr: bool = False,
                right: Sequence[int] = ()) -> None:
    """Rows as an aligned table (a header when given; columns in ``right`` aligned right)."""
    from rich import box
    from rich.table import Table

    width = max(len(r) for r in rows) if rows else len(header or ())
    table = Table(*(header or [""] * width), show_header=header is not None, box=box.SIMPLE_HEAD if header else None,
                  pad_edge=True, padding=(0, 1))
    for i in right:
        table.columns[i].justify = "right"
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console(stderr).print(table)


def print_self_check(check: dict[str, Any]) -> None:
    """A calibration's self-check (the profile's ``self_check``) on stderr."""
    rows = []
    for role, label in (("holdout", "held-out fifth (inside range)"), ("beyond", "beyond the range")):
        s = check.get(role, {})
        if s.get("n"):
            rows.append((label, f"n={s['n']}  median APE {s['median_ape']:.1f}%  p90 APE {s['p90_ape']:.1f}%  "
                                f"within ±10% {s['within_10pct']:.0%}  within ±15% {s['within_15pct']:.0%}  "
                                f"90% interval coverage {s['interval_coverage']:.0%}"))
    s = check.get("noisy", {})
    if s.get("n"):
        rows.append(("noisy even when re-measured (apart)", f"n={s['n']}  median APE {s['median_ape']:.1f}%"))
    for group, by_role in sorted(check.get("by_group", {}).items()):
        s = by_role.get("holdout", {})
        if s.get("n"):
            rows.append((f"  {group} held out", f"n={s['n']}  median APE {s['median_ape']:.1f}%  "
                                               f"within ±15% {s['within_15pct']:.0%}"))
    mem = check.get("memory_in_sample", {})
    if mem.get("n"):
        rows.append(("peak memory (fitted probes)", f"n={mem['n']}  median APE {mem['median_ape']:.1f}%"))
    if rows:
        print("self-check:", file=sys.stderr)
        print_table(rows, stderr=True)


def print_validation(result: Any) -> None:
    """A :class:`gru_sim.validation.Validation`: one row per configuration, then the summary figures."""
    rows = []
    for r in result.rows:
        c = r["config"]
        head = [c["mode"], c["batch"], c["seq_len"], c["input_size"], c["hidden_size"], c["num_layers"],
                "y" if c["bidirectional"] else "n", c["threads"]]
        if r["status"] != "ok":
            rows.append([*head, "-", "-", "-", r["status"]])
            continue
        note = ", ".join(filter(None, [r.get("application") or "",
                                       "beyond: " + ",".join(r["extrapolated_axes"]) if r["extrapolated"] else "",
                                       "noisy" if r["noisy"] else ""]))
        rows.append([*head, fmt_seconds(r["measured_latency_s"]), fmt_seconds(r["predicted_latency_s"]),
                     f"{r['ape']:.1f}%", note])
    print_table(rows, header=["mode", "B", "T", "I", "H", "L", "bi", "thr", "measured", "predicted", "APE", "note"],
                right=range(1, 11))
    lines = []
    for name in ("inside_range", "extrapolated", "applications", "overall", "noisy", "memory"):
        s = getattr(result.summary, name)
        if not s.n:
            continue
        text = f"n={s.n}  median APE {s.median_ape:.1f}%  p90 {s.p90_ape:.1f}%  within ±10% {s.within_10pct:.0%}"
        if s.median_ape_ci95:
            lo, hi = s.median_ape_ci95
            text += f"  (95% CI of median {lo:.1f}–{hi:.1f}%)"
        if s.interval_coverage is not None:
            text += f"  90% interval coverage {s.interval_coverage:.0%}"
        if name != "memory" and s.common_level is not None and s.median_ape_after_level is not None:
            text += f"  predicted/measured {s.common_level:.2f}x, {s.median_ape_after_level:.1f}% after it"
        lines.append((name.replace("_", " "), text))
    spread = result.summary.machine_spread
    if spread.n:
        lines.append(("machine", f"the same configuration in separate rounds: a median {spread.median_pct:.1f}% apart "
                                 f"(p90 {spread.p90_pct:.1f}%, n={spread.n}): this machine's own spread, under "
                                 "which no model's error can go"))
    pace = result.summary.machine_pace
    if pace is not None:
        said = "; ".join(f"t{GroupKey.parse(g).threads} {v['reference_x']:.2f}x (kernels {v['kernels_x']:.2f}x)"
                         for g, v in sorted(pace.groups.items()))
        at = ", ".join(f"{name} {f.median_ape:.1f}% (n={f.n})" for name, f in (("inside", pace.inside_range),
                                                                               ("beyond", pace.extrapolated),
                                                                               ("applications", pace.applications))
                       if f.n and f.median_ape is not None)
        lines.append(("pace", f"the calibration's reference call took {said} its time at the profile's typical "
                              f"speed" + (f"; at that speed the median APE would be {at}" if at else "")))
    print_table(lines)
    level = result.summary.overall.common_level
    if level is not None and result.summary.overall.n >= MIN_LEVEL_POINTS and abs(math.log(level)) > LEVEL_NOTE:
        faster = "faster" if level > 1 else "slower"
        print(f"the machine ran {max(level, 1 / level):.2f}x {faster} than the profile's typical speed "
              f"(a level every configuration shares); "
              f"{result.summary.overall.median_ape_after_level:.1f}% is left once it is divided out")
