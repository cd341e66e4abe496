"""Which configurations to measure: few points that cover the space well, then more where the model
fits worst.

The space-filling design is a scrambled Sobol sequence (scipy.stats.qmc) over the job's axes, sizes
log-spaced (a GRU's cost spans orders of magnitude, and so should the points). Points whose call would
take longer than the job's ``max_call_s`` are skipped, so the budget buys many points, not a few
giant ones. The "beyond" slice lies past the largest fitted hidden size and sequence length and is
never fitted: it measures how well the model extrapolates.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
from scipy.stats import qmc

from ..accounting import account_call
from ..config import GruConfig
from .jobs import JobSpec

LOG_AXES = ("batch", "seq_len", "input_size", "hidden_size")


def _log_int(u: float, lo: int, hi: int) -> int:
    return int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))


def _pick(u: float, choices: list) -> object:  # type: ignore[type-arg]
    return choices[min(int(u * len(choices)), len(choices) - 1)]


def round_size(axis: str, value: int, lo: int, hi: int) -> int:
    """``value`` as people write it: a batch a power of two, input and hidden sizes a multiple of 16
    (of 8 below 32); ``seq_len`` as it is. Kept inside [lo, hi]."""
    if axis == "batch":
        v = 2 ** round(math.log2(value))
    elif axis in ("input_size", "hidden_size"):
        step = 16 if value >= 32 else 8
        v = max(step, step * round(value / step))
    else:
        v = value
    return int(min(max(v, lo), hi))


def sobol_configs(spec: JobSpec, dtype: str, impl: str, threads: int, seed: int) -> Iterator[GruConfig]:
    """An endless, deterministic stream of design points for one hardware group. Half of them have
    the round sizes most models use (:func:`round_size`), half any size: round and odd sizes run at
    different speeds (rows of whole cache lines), and the fit needs both."""
    dims = len(LOG_AXES) + 4  # + num_layers, bidirectional, mode, round or not
    sampler = qmc.Sobol(d=dims, scramble=True, seed=seed)
    while True:
        for u in sampler.random(64):
            sizes = {axis: _log_int(u[k], *getattr(spec, axis)) for k, axis in enumerate(LOG_AXES)}
            if u[7] < 0.5:
                sizes = {axis: round_size(axis, v, *getattr(spec, axis)) for axis, v in sizes.items()}
            lo, hi = spec.num_layers
            yield GruConfig(**sizes, num_layers=lo + min(int(u[4] * (hi - lo + 1)), hi - lo),
                            bidirectional=bool(_pick(u[5], spec.bidirectional)),
                            mode=str(_pick(u[6], spec.modes)), dtype=dtype, impl=impl, device=spec.device,
                            threads=threads)


def beyond_configs(spec: JobSpec, dtype: str, impl: str, threads: int, seed: int,
                   estimate_s: Callable[[GruConfig], float]) -> list[GruConfig]:
    """Points past the fitted range: hidden_size or seq_len in (high, beyond_factor·high], the other
    axes drawn inside the range; ``beyond_points`` affordable ones of each (at most 200 draws)."""
    rng = np.random.default_rng(seed + 7919)
    out = []
    for axis in ("hidden_size", "seq_len"):
        hi = getattr(spec, axis)[1]
        found = 0
        for _ in range(200):
            if found >= spec.beyond_points:
                break
            sizes = {a: _log_int(rng.random(), *getattr(spec, a)) for a in LOG_AXES}
            sizes[axis] = _log_int(rng.random(), hi + 1, int(hi * spec.beyond_factor))
            lo_l, hi_l = spec.num_layers
            c = GruConfig(**sizes, num_layers=int(rng.integers(lo_l, hi_l + 1)),
                          bidirectional=bool(rng.choice(spec.bidirectional)),
                          mode=str(rng.choice(spec.modes)), dtype=dtype, impl=impl,
                          device=spec.device, threads=threads)
            if estimate_s(c) <= spec.max_call_s:
                out.append(c)
                found += 1
    return out


def neighbours(config: GruConfig, spec: JobSpec, rng: np.random.Generator, count: int) -> list[GruConfig]:
    """Configs near ``config`` (sizes scaled by up to ~±40 % in log space), inside the job's ranges."""
    out = []
    for _ in range(count):
        sizes = {}
        for axis in LOG_AXES:
            lo, hi = getattr(spec, axis)
            v = getattr(config, axis) * math.exp(rng.normal(0.0, 0.35))
            sizes[axis] = int(min(max(round(v), lo), hi))
        out.append(config.with_(**sizes))
    return out


def holdout_flags(count: int, fraction: float, seed: int) -> np.ndarray:
    """Which of the first ``count`` design points are held out (a seeded random ``fraction``)."""
    return np.random.default_rng(seed + 104729).random(count) < fraction


def affordable(configs: Iterator[GruConfig], estimate_s: Callable[[GruConfig], float],
               max_call_s: float) -> Iterator[GruConfig]:
    """Filter a stream to configs whose estimated call time is at most ``max_call_s``."""
    for c in configs:
        if estimate_s(c) <= max_call_s:
            yield c


def rough_estimate_s(config: GruConfig, flops_per_s: float = 2e10, step_s: float = 2e-5) -> float:
    """A first guess at a call's time before anything is fitted: FLOPs at a modest rate plus a fixed
    cost per step of every layer-direction (three times that for training)."""
    acc = account_call(config)
    steps = config.seq_len * config.num_layers * config.directions
    factor = 3.0 if config.mode == "training" else 1.0
    return acc.total_flops / flops_per_s + factor * steps * step_s
