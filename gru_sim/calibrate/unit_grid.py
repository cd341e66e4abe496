"""The unit tables of a calibration job: which units to time, timing them into the store, and reading
the store back as the tables the cost model composes calls from (:mod:`gru_sim.model.units`).

Per hardware group (dtype × impl × threads) and mode: the recurrent step over a batch × hidden grid
(every batch up to ``step_batch_dense_up_to``, then log-spaced; hidden sizes log-spaced plus either
side of each cache size the OS reports), and the recurrent matmul alone on the same grid. Per dtype
and thread count: the input-projection GEMM over a log grid of ``[T·B, I]×[I, 3H]`` (each (I, 3H)
column also at the largest round T·B under the cost cap, where it runs at its saturated rate), and the copy
bandwidth of each memory level. Every unit goes to the store as soon as it is timed, so an
interrupted job resumes without timing anything twice.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import replace
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
from scipy.optimize import isotonic_regression

from ..config import DTYPE_BYTES, GATES
from ..machine import cache_levels
from ..model.costmodel import MATMULS_PER_TRAINING_STEP, gemm_key, step_key
from ..model.units import (BATCH_BLOCK_ROWS, UNALIGNED_EXTRA_COLUMNS, UNALIGNED_EXTRA_HIDDEN, GemmTable, MemoryLevels,
                           StepTable, intercepts_at)
from ..groups import GroupKey
from .drift import DriftTracker
from .grids import batch_grid, gemm_grid, hidden_grid, round_grid
from .jobs import JobSpec
from .store import MeasurementStore

Progress = Callable[[str], None]
T = TypeVar("T")
# A step unit's call lasts about this long: long enough that the call's fixed cost is a small share.
STEP_TARGET_CALL_S = 0.0015
MAX_STEPS = 256
# About one core's float32 GEMM peak (the roofline probe read 93 GFLOP/s at one thread on the AMD EPYC VM
# of the README, 175 at two): a step's first guess (to choose its step count) is never less than its
# matmuls at this rate. At two threads a compute-bound step's guess is then up to 1.75x slow, and its
# call that much shorter than STEP_TARGET_CALL_S.
ESTIMATE_FLOPS_PER_S = 1e11
# Fewest steps a unit call runs: a training call of one or two steps is not a fair sample of a long
# one (its first step's backward needs no data gradient for h0).
MIN_STEPS = {"inference": 2, "training": 4}
# Steps of the two calls that give the fixed cost of a call (subtracted from every step unit).
CALL_PROBE_STEPS = (1, 64)
# The per-call intercept of each hidden size: the step unit's call at the smallest batch (n steps)
# and a second call of this many times its steps; the two give the call's fixed cost at that hidden
# size, which the step units are read net of (see StepTable.call_fixed_by_hidden_s). A second call
# expected to last longer than INTERCEPT_MAX_CALL_S is not timed (the hidden size borrows its neighbours').
INTERCEPT_STEPS_FACTOR = 4
INTERCEPT_MAX_CALL_S = 0.5
# A step unit this much slower than a bigger neighbour (a larger hidden size, or BATCH_BLOCK_ROWS more
# sequences) is timed again.
SUSPECT_RATIO = 1.15
# GEMMs with more FLOPs than this, or writing an output larger than this, are not timed: each further
# row costs the column's marginal rate between its last two timed points (see GemmTable; each column
# is also timed at its largest M under both caps, see saturation_m). The byte cap binds where K is
# small, where a GEMM mostly writes its output and its time grows linearly with M: [20288, 4]×[4, 6144]
# does 1e9 FLOPs but writes 500 MB of float32 (on one AMD EPYC thread the K = 1 and 4 planes took 9.8 s
# to time with a 128 MiB cap, 2.2 s with 32 MiB); from K = 64 up the FLOP cap binds first.
GEMM_MAX_FLOPS = 1e9
GEMM_MAX_OUTPUT_BYTES = 32 * 2**20

# The step tables also time batches past the job's largest, up to this many times it, where the step's
# matmul does at most PAST_BATCH_MAX_STEP_FLOPS (small hidden sizes, where the gates and the framework's
# work are most of a step). Past the grid a row grows at its last slope, and there a step changes regime:
# at one thread its activations outgrow the L2 (H = 64 inference on an AMD EPYC VM: 403 µs a step at
# B = 512, 878 µs at 768), at two the gate ops split over both threads once a [B, H] chunk reaches
# ATen's 32,768-element grain (H = 64 training priced 1.3-1.7x the measured step at B = 768-1,024);
# see benchmarks/batch_past_grid.py. At large hidden sizes the matmul is the step and its own row,
# timed to GEMM_MAX_FLOPS, carries the growth.
PAST_BATCH_FACTOR = 4
PAST_BATCH_MAX_STEP_FLOPS = 2.5e8

# The step cells that also time an unaligned twin (the full job): the step at UNALIGNED_EXTRA_HIDDEN
# more hidden units, timed right after the cell's own call with as many steps, at these batches and at
# the grid's hidden sizes that are powers of two from TWIN_MIN_HIDDEN (whole vectors on any ISA). The
# grid's hidden sizes are whole vectors, and a call at a size between them is read from them; at a size
# that is not (H = 60, 100, 250, 500 ...) BLAS and the gate kernels run remainder loops. On an AMD EPYC
# (Zen 5) the twins read a median 1.00-1.03 (one-row steps 0.94-1.03, B = 256 at small H up to 1.2),
# while the design's calls at hidden sizes a multiple of 32 had read 3-5 % faster, against its odd
# sizes, than the residual fitted over both predicted. About 30 twins a table.
TWIN_BATCHES = (1, 4, 16, 64, 256)
TWIN_MIN_HIDDEN = 32
# Likewise the step one sequence past a grid batch beyond the dense start (StepTable.odd_batch_ratio),
# timed right after the cell at these batches and the same hidden sizes: past the dense start the grid's
# batches are round, and a batch between them that is not whole BLAS row blocks runs narrower passes.
ODD_TWIN_BATCHES = (32, 64, 128, 256)


def _power_of_two_row(hidden: int, hiddens: Sequence[int]) -> bool:
    return hidden >= TWIN_MIN_HIDDEN and hidden & (hidden - 1) == 0 and hidden <= max(hiddens)


def has_twin(batch: int, hidden: int, hiddens: Sequence[int]) -> bool:
    """Whether the full job times the unaligned twin of the step cell ``batch`` × ``hidden`` (of a table
    whose hidden sizes are ``hiddens``: a twin past the largest would be read against the table's
    extrapolation, not its cells)."""
    return batch in TWIN_BATCHES and _power_of_two_row(hidden, hiddens) and hidden + UNALIGNED_EXTRA_HIDDEN <= max(hiddens)


def has_odd_twin(batch: int, hidden: int, batches: Sequence[int], hiddens: Sequence[int]) -> bool:
    """Whether the full job times the odd-batch twin (``batch`` + 1 sequences) of the step cell ``batch`` ×
    ``hidden``: at ODD_TWIN_BATCHES past the dense start of ``batches`` and inside them."""
    dense = max((b for k, b in enumerate(batches, start=1) if b == k), default=0)
    return (batch in ODD_TWIN_BATCHES and dense < batch and batch + 1 < max(batches)
            and _power_of_two_row(hidden, hiddens))

# A projection column (K, N) whose M grid stops short of GEMM_MAX_FLOPS more than this factor below it
# is also timed at the largest round M under the cap (see saturation_m).
SATURATION_GAP = 1.5
# The DRAM probe copies this many times the largest cache (and at least 64 MiB).
DRAM_OVER_LLC = 4


def gemm_max_m(k: int, n: int, element_bytes: int = 4, cap_flops: float | None = None) -> float:
    """The largest M whose ``[M,k]×[k,n]`` GEMM is timed (see ``GEMM_MAX_FLOPS``)."""
    cap_flops = GEMM_MAX_FLOPS if cap_flops is None else cap_flops
    return min(cap_flops / (2.0 * k * n), GEMM_MAX_OUTPUT_BYTES / (float(n) * element_bytes))


def interleaved(lines: Sequence[Sequence[T]], seed: str) -> Iterator[T]:
    """Every item of ``lines``, each line in its own order, the lines taking turns at random (the next
    item comes from a line drawn with odds by what it has left; the same ``seed``, the same order).

    A shared machine slows down for seconds at a time. Timed line after line, a whole table row falls
    into one slow spell and reads as a smooth, plausible row of the wrong height, which no later fit
    can tell from the shape's own cost; taken in turns, a spell leaves scattered points that stand out
    from their neighbours (and :func:`gru_sim.model.table_fill.monotone_fit` discounts them). Each
    line keeps its order so that a point's cost can still be estimated from the one before it."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    left = [list(line) for line in lines]
    while any(left):
        sizes = np.array([len(line) for line in left], dtype=float)
        yield left[int(rng.choice(len(left), p=sizes / sizes.sum()))].pop(0)


def unit_call_steps(step_s: float, mode: str) -> int:
    """Steps of the call a step unit of about ``step_s`` seconds a step is read from: enough that it
    lasts ``STEP_TARGET_CALL_S``, within ``MIN_STEPS[mode]`` and ``MAX_STEPS``."""
    return min(max(math.ceil(STEP_TARGET_CALL_S / max(step_s, 1e-9)), MIN_STEPS[mode]), MAX_STEPS)


def _fixed_cost_s(short_s: float, long_s: float) -> float:
    """A call's fixed cost from the probes of ``CALL_PROBE_STEPS`` steps: the short call less its steps."""
    per_step = max((long_s - short_s) / (CALL_PROBE_STEPS[1] - CALL_PROBE_STEPS[0]), 0.0)
    return max(short_s - CALL_PROBE_STEPS[0] * per_step, 0.0)


def call_intercepts(hiddens: Sequence[int], pairs: dict[int, tuple[int, float, float, float]], fixed_s: float
                    ) -> dict[int, float]:
    """Each hidden size's call fixed cost from its two calls at the smallest batch (``pairs[h]`` = (n,
    seconds of n steps, seconds of INTERCEPT_STEPS_FACTOR·n steps, when)): the line through them at
    0 steps, between the smallest call's fixed cost ``fixed_s`` and the short call itself, made
    non-decreasing in H (a quieter moment reads lower, never a bigger weight set); a hidden size
    without both calls takes its neighbours' (:func:`intercepts_at`), and every one ``fixed_s`` when none has."""
    measured = []
    for h in sorted(pairs):
        n, short_s, long_s, _ = pairs[h]
        per_step = (long_s - short_s) / ((INTERCEPT_STEPS_FACTOR - 1) * n)
        # At least the smallest call's fixed cost (and above nothing: a call's fixed cost is never 0).
        measured.append((h, max(min(max(short_s - n * per_step, fixed_s), short_s), 1e-9)))
    if not measured:
        return {h: fixed_s for h in hiddens}
    logs = isotonic_regression(np.log([c for _, c in measured])).x
    return intercepts_at({h: float(np.exp(v)) for (h, _), v in zip(measured, logs)}, hiddens)


def _per_step_s(call_s: float, fixed_s: float, steps: int) -> float:
    """One step's seconds from a call of ``steps`` steps less the call's fixed cost (at least a tenth
    of the call: a fixed cost measured during a disturbance must not leave nothing)."""
    return max(call_s - fixed_s, 0.1 * call_s) / steps


def saturation_m(ms: Sequence[int], k: int, n: int, cap_flops: float | None = None, element_bytes: int = 4
                 ) -> int | None:
    """The M at which the projection column ``(k, n)`` is timed besides its grid: the largest round M
    (a multiple of 64, or of 16 when that is small) whose GEMM stays under ``cap_flops`` (default
    ``GEMM_MAX_FLOPS``) and ``GEMM_MAX_OUTPUT_BYTES``. None where the column's grid is timed to its
    end, or its last point under the cap is already near it.

    The M grid is 8x apart; where it stops under the cap, every larger projection is priced at the rate
    of the last point timed. That point may be far from the saturated rate (K = 1024, N = 1536: timed at
    M = 64, 54 GFLOP/s on one AMD EPYC thread, where M = 256 and beyond run at 65-70): every larger
    projection then read 1.25-2x too slow. The GEMM at the cap runs at the column's saturated rate."""
    top = gemm_max_m(k, n, element_bytes, cap_flops)
    timed = [m for m in ms if m == ms[0] or m <= top]
    if len(timed) == len(ms):
        return None
    m_cap = int(top)
    m_cap = m_cap // 64 * 64 if m_cap >= 128 else m_cap // 16 * 16
    return m_cap if m_cap >= SATURATION_GAP * timed[-1] else None


def levels_key(device: str, dtype: str, threads: int) -> str:
    return f"levels:{device}/{dtype}/t{threads}"


def step_axes(spec: JobSpec, dtype: str) -> tuple[list[int], list[int]]:
    """The batch and hidden sizes of a step table: the job's batch range, and past it round batch
    sizes up to ``PAST_BATCH_FACTOR`` times its largest (timed only where :func:`step_cell_timed`)."""
    caches = [c["size_bytes"] for c in cache_levels() if c["level"] >= 2] if spec.device == "cpu" else []
    hi = spec.batch[1]
    past = [b for b in round_grid(hi, PAST_BATCH_FACTOR * hi, spec.step_grid_factor) if b > hi]
    return (batch_grid(spec.batch[0], hi, spec.step_batch_dense_up_to, spec.step_grid_factor) + past,
            hidden_grid(spec.hidden_size[0], spec.hidden_size[1], caches, DTYPE_BYTES[dtype], spec.step_grid_factor))


def step_cell_timed(spec: JobSpec, batch: int, hidden: int) -> bool:
    """Whether the step tables time the step (and its matmul) at ``batch`` × ``hidden``: every cell
    inside the job's batch range; past it, those whose matmul does at most ``PAST_BATCH_MAX_STEP_FLOPS``."""
    return batch <= spec.batch[1] or 2.0 * batch * GATES * hidden * hidden <= PAST_BATCH_MAX_STEP_FLOPS


def gemm_axes(spec: JobSpec) -> tuple[list[int], list[int], list[int]]:
    """The input-projection GEMM grid: rows T·B, inputs I (layers above the first take D·H), 3H outputs."""
    deep = spec.num_layers[1] > 1
    k_hi = max(spec.input_size[1], (2 if True in spec.bidirectional else 1) * spec.hidden_size[1] if deep else 0)
    k_lo = min(spec.input_size[0], spec.hidden_size[0] if deep else spec.input_size[0])
    return gemm_grid((spec.seq_len[0] * spec.batch[0], spec.seq_len[1] * spec.batch[1]), (k_lo, k_hi),
                     (GATES * spec.hidden_size[0], GATES * spec.hidden_size[1]))


class UnitTimer:
    """Times a job's unit tables into its store (imports the measuring side only when it runs)."""

    def __init__(self, spec: JobSpec, store: MeasurementStore, progress: Progress | None = None,
                 step_grid: tuple[list[int], list[int]] | None = None,
                 gemm_grid: tuple[list[int], list[int], list[int]] | None = None, two_passes: bool = True,
                 drift: DriftTracker | None = None, passes_as_one: bool = False, intercepts: bool = True) -> None:
        """``step_grid`` (batches, hiddens) and ``gemm_grid`` (M, K, N) replace the job's grids (a
        quick adaptation times a sub-grid). ``two_passes``: each step unit timed twice, the faster kept;
        with ``passes_as_one``, their geometric mean instead (see :meth:`_step_units`). ``intercepts``:
        time each hidden size's per-call intercept (a quick adaptation reads its units net of the
        source's instead: the long calls at large hidden sizes would double its minute)."""
        self.spec = spec
        self.store = store
        self.progress = progress or (lambda what: None)
        self.step_grid = step_grid
        self.gemm_grid = gemm_grid
        self.two_passes = two_passes
        self.passes_as_one = passes_as_one
        self.intercepts = intercepts
        self.drift = drift  # times the group's reference call between units (see .drift)

    def run(self, group: str, dtype: str, impl: str, threads: int) -> None:
        """All tables of one hardware group (and the shared GEMM and bandwidth tables of its dtype and
        thread count, unless another group timed them already)."""
        plans = {mode: self._step_calls(group, mode, dtype, impl, threads) for mode in self.spec.modes}
        if self.two_passes:
            for mode in reversed(self.spec.modes):
                self._step_calls(group, mode, dtype, impl, threads, second=plans[mode])
        for mode in self.spec.modes:
            self._step_units(group, mode, dtype, impl, threads, plans[mode])
        self._matmuls(group, dtype, threads)
        self._gemms(group, dtype, threads)
        self._levels(group, dtype, threads)

    def _timed(self, group: str, table: str, kind: str, params: dict, run: Callable[[], tuple[float | None, bool]]
               ) -> float | None:
        have = self.store.get_unit(table, kind, params)
        if have is not None:
            return have.value
        if self.drift is not None:
            g = GroupKey.parse(group)
            self.drift.tick(group, g.dtype, g.impl, g.threads)
        start = time.perf_counter()
        value, noisy = run()
        if noisy and value is not None:  # timed during a disturbance: time it again, keep the second
            value, noisy = run()
        self.store.add_unit(group, table, kind, params, value, noisy, time.perf_counter() - start)
        return value

    def _step_calls(self, group: str, mode: str, dtype: str, impl: str, threads: int,
                    second: list[tuple[int, int, int]] | None = None) -> list[tuple[int, int, int]]:
        """Time the calls the step units of one table are read from (:meth:`_step_units`): the two
        probes of a call's fixed cost, then one call per (batch, hidden) of as many steps as make it
        last about ``STEP_TARGET_CALL_S``. Returns the (batch, hidden, steps) timed (its plan). ``second``:
        the first pass's plan, timed again as the second pass — in reverse order, each with fewer samples."""
        from ..measure.units import SECOND_PASS_POLICY, UNIT_POLICY, step_probe, time_gru_call_s

        table = step_key(group, mode)
        if self._steps_derived(table):
            # A store timed in another order (rows one after another, before they took turns) chose
            # other step counts, so its calls would not be found and would be timed again for nothing.
            return []
        batches, hiddens = self.step_grid or step_axes(self.spec, dtype)
        device = self.spec.device
        policy = UNIT_POLICY if second is None else SECOND_PASS_POLICY
        extra = {} if second is None else {"pass": 2}

        def timed(b: int, h: int, steps: int, kind: str = "call") -> float | None:
            size = h + UNALIGNED_EXTRA_HIDDEN if kind == "twin_call" else h
            rows = b + 1 if kind == "odd_twin_call" else b
            return self._timed(group, table, kind, {"batch": b, "hidden": h, "steps": steps, **extra},
                               lambda: time_gru_call_s(step_probe(rows, size, steps, mode, dtype, impl, device,
                                                                  threads), policy))

        def intercept_call(h: int, steps: int, kind: str = "intercept_call") -> float | None:
            return self._timed(group, table, kind, {"hidden": h, "steps": steps, **extra},
                               lambda: time_gru_call_s(step_probe(b0, h, steps, mode, dtype, impl, device, threads),
                                                       policy))

        def intercept_pair(h: int, steps: int) -> None:
            """The smallest batch's call of ``steps`` steps and of INTERCEPT_STEPS_FACTOR times as many,
            back to back: the line through them gives the call's fixed cost at ``h``."""
            intercept_call(h, steps, "intercept_short")
            intercept_call(h, INTERCEPT_STEPS_FACTOR * steps)

        b0, h0 = batches[0], hiddens[0]
        if second is not None:
            for b, h, steps in reversed(second):
                timed(b, h, steps)
            for s in CALL_PROBE_STEPS:
                timed(b0, h0, s)
            for b, h, steps in second:  # the intercept calls the first pass timed
                long_steps = INTERCEPT_STEPS_FACTOR * steps
                if b == b0 and self.store.get_unit(table, "intercept_call", {"hidden": h, "steps": long_steps}):
                    intercept_pair(h, steps)
            return second
        short, long_ = (timed(b0, h0, s) for s in CALL_PROBE_STEPS)
        assert short is not None and long_ is not None
        fixed_s = _fixed_cost_s(short, long_)
        floor_s = _per_step_s(long_, fixed_s, CALL_PROBE_STEPS[1])
        known: dict[tuple[int, int], float] = {}
        plan: list[tuple[int, int, int]] = []
        factor = 3.0 if mode == "training" else 1.0
        self.progress(f"{table}: step units")
        cells = [[(b, h) for b in batches if step_cell_timed(self.spec, b, h)] for h in hiddens]
        for b, h in interleaved(cells, f"{table}|{self.spec.seed}"):
            est = self._estimate(known, b, h, factor, floor_s)
            steps = unit_call_steps(est, mode)
            if MIN_STEPS[mode] * est > self.spec.unit_max_call_s:
                continue  # too costly: the table continues this row with the matmul's growth
            total = timed(b, h, steps)
            if self.step_grid is None and has_twin(b, h, hiddens):  # the full job: its unaligned twin, right after it
                timed(b, h, steps, "twin_call")
            if self.step_grid is None and has_odd_twin(b, h, batches, hiddens):  # and its odd-batch twin
                timed(b, h, steps, "odd_twin_call")
            plan.append((b, h, steps))
            if total is not None:
                known[(b, h)] = _per_step_s(total, fixed_s, steps)
        # Each hidden size's call at the smallest batch again, with more steps: its intercept.
        for b, h, steps in plan:
            first = self.store.get_unit(table, "call", {"batch": b, "hidden": h, "steps": steps})
            if self.intercepts and b == b0 and first is not None and first.value is not None \
                    and INTERCEPT_STEPS_FACTOR * first.value <= INTERCEPT_MAX_CALL_S:
                intercept_pair(h, steps)
        return plan

    def _step_units(self, group: str, mode: str, dtype: str, impl: str, threads: int,
                    plan: list[tuple[int, int, int]]) -> None:
        """Each step unit from its calls: (the faster of the passes' call time − the call's fixed
        cost) / steps (with ``passes_as_one``, the passes' geometric mean); a step still slower than a
        bigger neighbour is timed once more."""
        from ..measure.units import step_probe, time_gru_call_s

        table = step_key(group, mode)
        if self._steps_derived(table):
            return  # a retry now would change nothing stored
        batches, hiddens = self.step_grid or step_axes(self.spec, dtype)
        b0, h0 = batches[0], hiddens[0]

        def best(b: int, h: int, steps: int, kind: str = "call") -> tuple[float, float] | None:
            """The fastest of the call's timings (passes and retry), and when it was taken; with
            ``passes_as_one``, the two passes count as one timing: their geometric mean, which expects
            what one timing does (the faster of the two lies half their gap below it). ``kind``
            "intercept_call" / "intercept_short": the smallest batch's long and short calls timed back
            to back for the intercept."""
            def timing(extra: dict[str, int]) -> tuple[float, float] | None:
                params = ({"batch": b, "hidden": h, "steps": steps} if kind == "call"
                          else {"hidden": h, "steps": steps})
                u = self.store.get_unit(table, kind, {**params, **extra})
                return (u.value, u.at) if u is not None and u.value is not None else None

            passes = [t for t in (timing({}), timing({"pass": 2})) if t is not None]
            if self.passes_as_one and len(passes) == 2:
                passes = [(math.sqrt(passes[0][0] * passes[1][0]), passes[1][1])]
            timed = passes + [t for t in (timing({"retry": 1}),) if t is not None]
            return min(timed) if timed else None

        short, long_ = (best(b0, h0, s) for s in CALL_PROBE_STEPS)
        if short is None or long_ is None:
            return
        fixed_s = _fixed_cost_s(short[0], long_[0])
        pairs: dict[int, tuple[int, float, float, float]] = {}  # hidden: (steps, short call, long call, at)
        # The short call of each pair is its twin timed right before the long one. A store timed before
        # the twins has only the table's own call at that cell, taken minutes from the long one, and a
        # slow moment of the short call alone reads as fixed cost (a 2026-12-05 run at two threads, in
        # training: B = 1, H = 192 timed at 4.5 ms, 2.9 ms on its retry; intercepts of 1.1-4.4 ms from
        # H = 128 to 1,024, where the pool of the other runs reads 0.2, and the steps at B = 1 net of
        # them 0.1-0.5x the pool's).
        for b, h, steps in plan:
            if b != b0:
                continue
            one = best(b, h, steps, "intercept_short") or best(b, h, steps)
            more = best(b, h, INTERCEPT_STEPS_FACTOR * steps, "intercept_call")
            if one is not None and more is not None:
                pairs[h] = (steps, one[0], more[0], one[1])
        fixed_of = call_intercepts(hiddens, pairs, fixed_s)
        known: dict[tuple[int, int], float] = {}
        at: dict[tuple[int, int], float] = {}
        steps_of: dict[tuple[int, int], int] = {}
        for b, h, steps in plan:
            found = best(b, h, steps)
            if found is not None:
                total, at[(b, h)] = found
                known[(b, h)] = _per_step_s(total, fixed_of[h], steps)
                steps_of[(b, h)] = steps
        # A step slower than a bigger one (a block of sequences more, or a larger hidden size) was timed
        # during a disturbance — interference only ever slows a kernel down: time it once more, keep the
        # faster. One sequence more can legitimately cost less (BLAS's blocks of rows: B = 8 against 7).
        for (b, h), v in list(known.items()):
            more = next((x for x in batches if x >= b + BATCH_BLOCK_ROWS), None)
            bigger = [known[(more, h)]] if (more, h) in known else []
            bigger += [known[k] for k in ((b, hiddens[i + 1]) for i in [hiddens.index(h)] if i + 1 < len(hiddens))
                       if k in known]
            if bigger and v > SUSPECT_RATIO * min(bigger):
                steps = steps_of[(b, h)]
                again = self._timed(group, table, "call", {"batch": b, "hidden": h, "steps": steps, "retry": 1},
                                    lambda: time_gru_call_s(step_probe(b, h, steps, mode, dtype, impl,
                                                                       self.spec.device, threads)))
                if again is not None and (retried := _per_step_s(again, fixed_of[h], steps)) < v:
                    known[(b, h)], at[(b, h)] = retried, time.time()
        for (b, h), v in known.items():
            if self.store.get_unit(table, "step", {"batch": b, "hidden": h}) is None:
                self.store.add_unit(group, table, "step", {"batch": b, "hidden": h}, v, False, 0.0, at=at[(b, h)])
        # Each unaligned twin's step over its cell's, both from the first pass's calls taken back to back
        # (the moment's speed is in both; the cell's unit is the faster of its passes, the twin has one).
        for b, h, steps in plan:
            params = {"batch": b, "hidden": h, "steps": steps}
            own = self.store.get_unit(table, "call", params)
            for call_kind, ratio_kind in (("twin_call", "twin_ratio"), ("odd_twin_call", "odd_twin_ratio")):
                twin = self.store.get_unit(table, call_kind, params)
                if (twin is None or own is None or twin.value is None or own.value is None
                        or self.store.get_unit(table, ratio_kind, {"batch": b, "hidden": h}) is not None):
                    continue
                ratio = _per_step_s(twin.value, fixed_of[h], steps) / _per_step_s(own.value, fixed_of[h], steps)
                self.store.add_unit(group, table, ratio_kind, {"batch": b, "hidden": h}, ratio, False, 0.0, at=twin.at)
        for h, (_, _, _, when) in pairs.items():
            if self.store.get_unit(table, "intercept", {"hidden": h}) is None:
                self.store.add_unit(group, table, "intercept", {"hidden": h}, fixed_of[h], False, 0.0, at=when)
        if self.store.get_unit(table, "fixed", {}) is None:
            self.store.add_unit(group, table, "fixed", {}, fixed_s, False, 0.0, at=short[1])

    def _steps_derived(self, table: str) -> bool:
        """Whether an earlier run derived and stored ``table``'s step units (the fixed cost is stored last)."""
        return self.store.get_unit(table, "fixed", {}) is not None

    @staticmethod
    def _estimate(known: dict[tuple[int, int], float], b: int, h: int, factor: float, floor_s: float) -> float:
        """A guess of one step's seconds (to choose the step count): the dispatch floor every step pays
        (``floor_s``, the smallest call's seconds per step) plus the step's work, grown linearly with the
        batch or the hidden size from the nearest smaller neighbour already timed, and never less than
        its matmuls (``factor`` of them a step) at ``ESTIMATE_FLOPS_PER_S``.

        A guess too slow makes the call short, and a short call leaves its step at the mercy of the
        call's fixed cost; a guess too fast only makes the call longer. Growing the whole step with H²
        counted the floor as work: from B = 1, H = 16 (8 µs a step, all of it dispatch) it guessed
        540 µs at H = 128, where a step takes 17 µs, and that unit's call ran 3 steps. Work at a small
        batch grows slower than H² (the gates grow with H), so the hidden size grows it linearly."""
        floor = max(floor_s, 0.0)
        flops_s = factor * 2.0 * b * GATES * h * h / ESTIMATE_FLOPS_PER_S
        same_h = [(bb, v) for (bb, hh), v in known.items() if hh == h and bb < b]
        same_b = [(hh, v) for (bb, hh), v in known.items() if bb == b and hh < h]
        if same_h:
            bb, v = max(same_h)
            grown = (v - floor) * b / bb
        elif same_b:
            hh, v = max(same_b)
            grown = (v - floor) * (h / hh)
        else:
            grown = 0.0
        return floor + max(grown, flops_s)

    def _matmuls(self, group: str, dtype: str, threads: int) -> None:
        from ..measure.units import recurrent_matmul_s

        batches, hiddens = self.step_grid or step_axes(self.spec, dtype)
        rows = [[(b, h) for b in batches if 2.0 * b * h * GATES * h <= GEMM_MAX_FLOPS
                 and step_cell_timed(self.spec, b, h)] for h in hiddens]
        for b, h in interleaved(rows, f"{group}|matmul|{self.spec.seed}"):
            self._timed(group, group, "matmul", {"batch": b, "hidden": h},
                        lambda: (recurrent_matmul_s(b, h, dtype, self.spec.device, threads), False))

    def _gemms(self, group: str, dtype: str, threads: int) -> None:
        from ..measure.units import projection_gemm_s

        table = gemm_key(self.spec.device, dtype, threads)
        ms, ks, ns = self.gemm_grid or gemm_axes(self.spec)
        self.progress(f"{table}: projection GEMMs")
        e = DTYPE_BYTES[dtype]
        columns = [[(m, k, n) for m in ms if m == ms[0] or m <= gemm_max_m(k, n, e)] for k in ks for n in ns]
        if self.gemm_grid is None:  # the full job: each column also at its saturated rate
            columns = [sorted([*line, (m_cap, k, n)]) if (m_cap := saturation_m(ms, k, n, element_bytes=e)) else line
                       for line, (k, n) in zip(columns, ((k, n) for k in ks for n in ns))]
        for m, k, n in interleaved(columns, f"{table}|{self.spec.seed}"):
            self._timed(group, table, "gemm", {"m": m, "k": k, "n": n},
                        lambda: projection_gemm_s(m, k, n, dtype, self.spec.device, threads))
            if self.gemm_grid is None:  # the full job: and its unaligned twin, right after it
                self._timed(group, table, "gemm_unaligned", {"m": m, "k": k, "n": n},
                            lambda: projection_gemm_s(m, k, n + UNALIGNED_EXTRA_COLUMNS, dtype, self.spec.device,
                                                      threads))

    def _levels(self, group: str, dtype: str, threads: int) -> None:
        from ..measure.units import FRESH_PROBE_BYTES, copy_bandwidth_bytes_per_s, fresh_memory_s_per_byte

        table = levels_key(self.spec.device, dtype, threads)
        for name, size in memory_probe_sizes(self.spec.device):
            self._timed(group, table, "bandwidth", {"level": name, "size_bytes": size},
                        lambda: (copy_bandwidth_bytes_per_s(size, dtype, self.spec.device, threads), False))
        if self.spec.device == "cpu":  # a CUDA caching allocator keeps its blocks: no fresh pages per call
            self._timed(group, table, "fresh_memory", {"size_bytes": FRESH_PROBE_BYTES},
                        lambda: (fresh_memory_s_per_byte(threads), False))


def memory_probe_sizes(device: str) -> list[tuple[str, int]]:
    """(level name, bytes copied) per memory level: half of each cache, and main memory."""
    if device != "cpu":
        return [("device memory", 256 * 2**20)]
    caches = [c for c in cache_levels() if c["level"] >= 1]
    out = [(f"L{c['level']}", c["size_bytes"] // 4) for c in caches]  # source + destination: half the cache
    llc = max((c["size_bytes"] for c in caches), default=32 * 2**20)
    return out + [("DRAM", max(DRAM_OVER_LLC * llc, 64 * 2**20))]


# ------------------------------------------------------------------------------ reading tables back
def memory_levels(store: MeasurementStore, device: str, dtype: str, threads: int) -> MemoryLevels | None:
    """The bandwidth of each level, and the cost of fresh memory where it was timed, from the store
    (None when no bandwidth was measured)."""
    units = [u for u in store.units(levels_key(device, dtype, threads), "bandwidth") if u.value]
    if not units:
        return None
    caps = {f"L{c['level']}": c["size_bytes"] for c in cache_levels()} if device == "cpu" else {}
    units.sort(key=lambda u: u.params["size_bytes"])
    fresh = [float(u.value) for u in store.units(levels_key(device, dtype, threads), "fresh_memory")
             if u.value is not None]
    return MemoryLevels(tuple(u.params["level"] for u in units),
                        tuple(caps.get(u.params["level"]) if u is not units[-1] else None for u in units),
                        tuple(float(u.value) for u in units),  # type: ignore[arg-type]
                        fresh[-1] if fresh else None)


def _as_timed(seconds: float, at: float) -> float:
    return seconds


def store_intercepts(store: MeasurementStore, group: str, mode: str,
                     correct: Callable[[float, float], float] = _as_timed) -> dict[int, float]:
    """The per-call intercepts the store measured for ``group`` and ``mode``, by hidden size ({} when
    it measured none: a store timed before they were)."""
    return {u.params["hidden"]: correct(u.value, u.at) for u in store.units(step_key(group, mode), "intercept")
            if u.value is not None}


def _unit_steps(store: MeasurementStore, table: str, steps_s: dict[tuple[int, int], float], fixed_s: float
                ) -> dict[tuple[int, int], int]:
    """The step count of the call each step unit was read from: of the calls timed at its batch and
    hidden size, the one whose time less ``fixed_s``, per step, is the unit."""
    counts: dict[tuple[int, int], set[tuple[int, float]]] = {}
    for u in store.units(table, "call"):
        if u.value is not None:
            counts.setdefault((u.params["batch"], u.params["hidden"]), set()).add((u.params["steps"], u.value))
    out = {}
    for key, v in steps_s.items():
        if key in counts and v > 0:
            out[key] = min(counts[key], key=lambda sv: abs(math.log(max(sv[1] - fixed_s, 0.1 * sv[1]) / sv[0] / v)))[0]
    return out


def step_table(store: MeasurementStore, spec: JobSpec, group: str, mode: str, dtype: str, threads: int,
               correct: Callable[[float, float], float] = _as_timed,
               fallback_intercepts: dict[int, float] | None = None) -> StepTable | None:
    """The step table of ``group`` and ``mode`` from the store; None when no step was timed.
    ``correct(seconds, at)`` turns a timing into the machine's typical speed (see .drift).

    A store timed before the per-call intercepts were read its step units net of the smallest call's
    fixed cost alone; given ``fallback_intercepts`` (by hidden size: other runs', a pool's median, or
    the source profile's), its units are read again net of those, from the step counts of its calls."""
    table = step_key(group, mode)
    steps = {(u.params["batch"], u.params["hidden"]): correct(u.value, u.at)
             for u in store.units(table, "step") if u.value is not None}
    if not steps:
        return None
    matmuls = {(u.params["batch"], u.params["hidden"]): correct(u.value, u.at) for u in store.units(group, "matmul")
               if u.value is not None}
    batches = sorted({b for b, _ in steps})
    hiddens = sorted({h for _, h in steps})
    nan = float("nan")
    fixed = store.get_unit(table, "fixed", {})
    fixed_s = correct(fixed.value, fixed.at) if fixed is not None and fixed.value is not None else None
    intercepts = store_intercepts(store, group, mode, correct)
    if not intercepts and fallback_intercepts and fixed_s is not None:
        intercepts = intercepts_at(fallback_intercepts, hiddens)
        counts = _unit_steps(store, table, steps, fixed_s)
        steps = {(b, h): (max(v - max(intercepts[h] - fixed_s, 0.0) / counts[(b, h)], 0.1 * v)
                          if (b, h) in counts else v) for (b, h), v in steps.items()}
    out = StepTable(tuple(batches), tuple(hiddens),
                    [[steps.get((b, h), nan) for b in batches] for h in hiddens],
                    [[matmuls.get((b, h), nan) for b in batches] for h in hiddens],
                    DTYPE_BYTES[dtype], memory_levels(store, spec.device, dtype, threads),
                    MATMULS_PER_TRAINING_STEP if mode == "training" else 1, fixed_s,
                    tuple(intercepts.get(h, nan) for h in hiddens) if intercepts else None,
                    # cuDNN's nn.GRU computes the weight gradient once per call; autograd over ATen's
                    # CPU steps, or over GRUCell anywhere, every step.
                    not (spec.device == "cuda" and GroupKey.parse(group).impl == "torch-gru"))

    def twins(kind: str) -> dict[tuple[int, int], float]:
        return {(u.params["batch"], u.params["hidden"]): u.value for u in store.units(table, kind)
                if u.value is not None and u.value > 0 and u.params["batch"] in batches and u.params["hidden"] in hiddens}

    # A twin's slowdown: how much more its step took than its cell's, over how much more the table reads
    # at the twin's size than at the cell's (the grid's own growth between its round sizes). A twin past
    # the table's last hidden size or batch would be read against its extrapolation: none is kept.
    wide = {k: v for k, v in twins("twin_ratio").items() if k[1] + UNALIGNED_EXTRA_HIDDEN <= hiddens[-1]}
    odd = {k: v for k, v in twins("odd_twin_ratio").items() if k[0] + 1 < batches[-1]}
    if not wide and not odd:
        return out
    wide_ratio = [[wide[(b, h)] * out.step_parts_s(b, h)[0] / out.step_parts_s(b, h + UNALIGNED_EXTRA_HIDDEN)[0]
                   if (b, h) in wide else nan for b in batches] for h in hiddens]
    odd_ratio = [[odd[(b, h)] * out.step_parts_s(b, h)[0] / out.step_parts_s(b + 1, h)[0]
                  if (b, h) in odd else nan for b in batches] for h in hiddens]
    return replace(out, unaligned_ratio=np.array(wide_ratio) if wide else None,
                   odd_batch_ratio=np.array(odd_ratio) if odd else None)


def gemm_table(store: MeasurementStore, device: str, dtype: str, threads: int,
               correct: Callable[[float, float], float] = _as_timed) -> GemmTable | None:
    """The input-projection GEMM table from the store; None when no GEMM was timed."""
    table = gemm_key(device, dtype, threads)
    timed = {(u.params["m"], u.params["k"], u.params["n"]): u
             for u in store.units(table, "gemm") if u.value is not None}
    if not timed:
        return None
    gemms = {key: correct(u.value, u.at) for key, u in timed.items()}
    ms, ks, ns = (sorted({key[a] for key in gemms}) for a in range(3))
    nan = float("nan")
    # The unaligned slowdown per column, from the twin and its aligned GEMM as timed (seconds apart:
    # the machine's speed is the same for both); never below 1 — a twin at the same rate or faster (a
    # small GEMM's call cost does not grow with its columns) is no slowdown.
    ratios = {key: max((u.value / timed[key].value) * key[2] / (key[2] + UNALIGNED_EXTRA_COLUMNS), 1.0)
              for u in store.units(table, "gemm_unaligned")
              if u.value is not None and (key := (u.params["m"], u.params["k"], u.params["n"])) in timed}
    return GemmTable(tuple(ms), tuple(ks), tuple(ns),
                     [[[gemms.get((m, k, n), nan) for n in ns] for k in ks] for m in ms],
                     [[[ratios.get((m, k, n), nan) for n in ns] for k in ks] for m in ms] if ratios else None)
