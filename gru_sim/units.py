"""Formatting quantities for people: durations, byte counts, rates."""

from __future__ import annotations


def fmt_seconds(value_s: float | None) -> str:
    """``0.000123`` → ``123 µs``; None → ``-``."""
    if value_s is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value_s) >= scale:
            return f"{value_s / scale:.3g} {unit}"
    return f"{value_s / 1e-9:.3g} ns"


def fmt_bytes(value: float | None) -> str:
    """``1536`` → ``1.5 KiB``; None → ``-``."""
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"


def fmt_rate(value: float | None, unit: str) -> str:
    """``12345.6, 'seq/s'`` → ``1.23e+04 seq/s``."""
    return "-" if value is None else f"{value:.4g} {unit}"
