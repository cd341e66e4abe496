"""Reports a user can read, share and trust: a scenario's forecast and a profile's validation, each
as one self-contained HTML file that opens offline.

The only part of gru-sim that imports plotly. It renders plain data it is handed (the content of
results.json or validation.json) and computes no forecast of its own.
"""

from .render import render_validation_report, write_report

__all__ = ["render_validation_report", "write_report"]
