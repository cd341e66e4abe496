"""Reports a user can read, share and trust: a scenario's forecast and a profile's validation, each
as one self-contained HTML file that opens offline.

The only part of gru-sim that imports plotly, and only when a report is written: ``prose`` (the
sentences results.json carries) is imported by the study without it. It renders the data it is handed
and computes no forecast of its own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_validation_report", "write_report"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing gru_sim.report.prose does not load plotly.
    if name == "write_report":
        from .render import write_report

        return write_report
    if name == "render_validation_report":
        from .validation_page import render_validation_report

        return render_validation_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
