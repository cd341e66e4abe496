"""How wrong a set of predictions is: the error figures gru-sim reports everywhere."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats


def ape(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> np.ndarray:
    """Absolute percentage errors, in percent: 100·|predicted − measured| / measured."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    return 100.0 * np.abs(p - m) / m


def error_summary(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray,
                  intervals: Sequence[Sequence[float]] | None = None) -> dict[str, float | int | None]:
    """Median/mean/p90 APE (%), share within ±5/10/15 %, RMSLE and, given intervals, their coverage."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    n = int(m.size)
    if n == 0:
        return {"n": 0, "median_ape": None, "mape": None, "p90_ape": None, "within_5pct": None,
                "within_10pct": None, "within_15pct": None, "rmsle": None, "interval_coverage": None}
    e = ape(m, p)
    out: dict[str, float | int | None] = {
        "n": n,
        "median_ape": float(np.median(e)),
        "mape": float(np.mean(e)),
        "p90_ape": float(np.percentile(e, 90)),
        "within_5pct": float(np.mean(e <= 5.0)),
        "within_10pct": float(np.mean(e <= 10.0)),
        "within_15pct": float(np.mean(e <= 15.0)),
        "rmsle": float(np.sqrt(np.mean((np.log(p) - np.log(m)) ** 2))),
        "interval_coverage": None,
    }
    if intervals is not None:
        iv = np.asarray(intervals, dtype=float).reshape(-1, 2)
        out["interval_coverage"] = float(np.mean((iv[:, 0] <= m) & (m <= iv[:, 1])))
    return out


def common_level(measured: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
                 ) -> tuple[float, float]:
    """The common level of a set of predictions — the median ratio predicted / measured (geometric):
    on a machine whose speed moves, its speed then against the profile's typical one, shared by every
    configuration — and the median APE (%) once it is divided out: the error in how time depends on
    the shape."""
    ratio = np.asarray(predicted, dtype=float) / np.asarray(measured, dtype=float)
    level = float(np.exp(np.median(np.log(ratio))))
    return level, float(100.0 * np.median(np.abs(ratio / level - 1.0)))


def bootstrap_median_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float] | None:
    """A percentile-bootstrap confidence interval for the median of ``values`` (scipy.stats.bootstrap;
    seeded, so the same values give the same interval). None for fewer than two values."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return None
    res = stats.bootstrap((v,), np.median, n_resamples=n_boot, confidence_level=level, method="percentile",
                          vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
