"""The timing harness: how one number is made trustworthy on a shared, noisy machine.

Method (after pyperf and torch.utils.benchmark): time the first call on its own (cold start, what a
serverless user pays); warm up; grow the loop count until one timed sample is long enough to dwarf the
timer's resolution; take samples until there are enough for a stable median and the time budget is
spent; report the median, the interquartile range and every sample; flag the result ``noisy`` when
IQR / median exceeds a threshold. The clock is injected, so tests drive it with a fake one.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


class LoopTimer(Protocol):
    """Times ``loops`` back-to-back calls of ``fn``; returns elapsed seconds for all of them."""

    def __call__(self, fn: Callable[[], object], loops: int) -> float: ...


def wall_clock_timer(clock: Callable[[], float] = time.perf_counter) -> LoopTimer:
    """A host-side timer (perf_counter): right for CPU kernels, which finish before returning."""

    def timer(fn: Callable[[], object], loops: int) -> float:
        start = clock()
        for _ in range(loops):
            fn()
        return clock() - start

    return timer


@dataclass(frozen=True)
class TimingPolicy:
    """How hard to try. Times in seconds."""

    min_sample_s: float = 0.005      # one sample must last this long: >1000× perf_counter resolution
    warmup_s: float = 0.05           # warm up at least this long ...
    min_warmups: int = 2             # ... and at least this many calls
    min_samples: int = 9             # a median of fewer is too easily moved by one outlier
    max_samples: int = 60
    budget_s: float = 1.0            # sample until this much time is spent (after min_samples)
    noisy_iqr_ratio: float = 0.10    # IQR / median above this marks the result noisy
    max_loops: int = 1 << 20

    def __post_init__(self) -> None:
        if self.min_sample_s <= 0:
            raise ValueError(f"min_sample_s(={self.min_sample_s}) must be > 0")
        if not 1 <= self.min_samples <= self.max_samples:
            raise ValueError(f"min_samples(={self.min_samples}) must be in 1..max_samples(={self.max_samples})")


@dataclass(frozen=True)
class TimingResult:
    """Per-call times in seconds: the first (cold) call, and the warm samples."""

    first_call_s: float
    samples_s: tuple[float, ...]
    loops: int
    warmup_calls: int

    @property
    def median_s(self) -> float:
        return float(np.median(self.samples_s))

    @property
    def iqr_s(self) -> float:
        q75, q25 = np.percentile(self.samples_s, [75, 25])
        return float(q75 - q25)

    def is_noisy(self, ratio: float = TimingPolicy.noisy_iqr_ratio) -> bool:
        """True when the interquartile range exceeds ``ratio`` of the median."""
        return self.iqr_s > ratio * self.median_s


def time_calls(fn: Callable[[], object], timer: LoopTimer, policy: TimingPolicy = TimingPolicy(),
               clock: Callable[[], float] = time.perf_counter) -> TimingResult:
    """Time ``fn`` (one GRU call) by the method in this module's docstring.

    ``timer`` measures the calls (wall clock or CUDA events); ``clock`` only paces the budget.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample is noise of ours, not of the kernel (as timeit does)
    try:
        first = timer(fn, 1)
        warmups = 0
        warm_start = clock()
        while warmups < policy.min_warmups or clock() - warm_start < policy.warmup_s:
            timer(fn, 1)
            warmups += 1
        loops = _loops_for(fn, timer, policy)
        samples: list[float] = []
        start = clock()
        while len(samples) < policy.max_samples:
            samples.append(timer(fn, loops) / loops)
            if len(samples) >= policy.min_samples and clock() - start >= policy.budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return TimingResult(first_call_s=first, samples_s=tuple(samples), loops=loops, warmup_calls=warmups)


def _loops_for(fn: Callable[[], object], timer: LoopTimer, policy: TimingPolicy) -> int:
    """Grow the loop count until ``loops`` calls take at least ``min_sample_s``."""
    loops = 1
    while loops < policy.max_loops:
        elapsed = timer(fn, loops)
        if elapsed >= policy.min_sample_s:
            return loops
        # Jump close to the target when the estimate is trustworthy, else double (as pyperf does).
        if elapsed > 0.1 * policy.min_sample_s:
            loops = max(loops + 1, math.ceil(loops * 1.2 * policy.min_sample_s / elapsed))
        else:
            loops *= 2
    return policy.max_loops
