"""A progress bar with an ETA for calibration jobs, on stderr (rich)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class BudgetProgress:
    """Shows seconds spent of the budget; callable as the runner's progress callback."""

    def __init__(self, budget_s: float) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TextColumn("{task.completed:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                                  console=Console(file=sys.stderr), transient=False)
        self._task = self._progress.add_task("calibrating", total=budget_s)

    def __enter__(self) -> "BudgetProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, spent_s: float, budget_s: float, what: str) -> None:
        self._progress.update(self._task, completed=min(spent_s, budget_s), total=budget_s,
                              description=what[:60].ljust(60))
