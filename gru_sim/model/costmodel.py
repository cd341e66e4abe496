"""The calibrated cost model of GRU latency: a call composed from the units it runs, measured on the
machine, with a small fitted residual on top. An estimator in the scikit-learn manner.

A call of L layers and D directions runs, per layer and direction, one input-projection GEMM
``[T·B, I_l]×[I_l, 3H]`` and T recurrent steps (:mod:`.units`). The composition gives, per call, eleven
physical quantities (``RESIDUAL_TERMS``):

* ``steps`` and ``step_matmuls`` — Σ T · step(B, H) from the step table of the call's mode (training
  steps include their backward, timed inside a real training call), split into the recurrent matmuls
  (timed alone on the same grid) and the rest (gates, allocations, dispatch): the two are separate
  kernels that a machine's threads, caches and interference treat differently (at 2 threads on a
  shared VM the many small gate ops slow down while a memory-bound matvec does not speed up); the
  rest also holds each layer-direction's measured per-call fixed cost beyond the smallest call's
  (:meth:`.units.StepTable.layer_fixed_s`: in training the weights' gradient buffers), once per call;
* ``projection`` — Σ GEMM(T·B, I_l, 3H) from the GEMM table, plus the call's first read of each layer's
  W_ih and W_hh from the level that holds the call's whole weight set (the units time each matrix
  alone; :meth:`.units.StepTable.cold_read_s`);
* ``projection_backward`` — training: the projection's weight gradient (and its data gradient for
  layers above the first), priced as GEMMs of the same size;
* ``call`` — 1; ``layer_direction`` — L·D: the fixed costs of a call and of each layer-direction;
* ``output_bytes`` — bytes of the per-direction outputs written, stacked and concatenated (no longer
  fitted: the step units pay for their outputs; profiles fitted with it predict as they did);
* ``fresh_memory`` — the seconds of writing the call's tensors that the system maps afresh on every
  call (32 MiB and larger under glibc: projections, outputs, their gradients), at the rate the
  calibration measured (:mod:`.fresh_memory`); the units never see it (short calls, GEMM outputs under
  32 MiB). In the breakdown it is paid with the input projection (and its backward in training);
* ``saved_spill`` — training: the bytes of saved activations the backward re-reads from beyond the
  cache a short unit call's saved set stays in (:mod:`.saved_spill`), at a fitted rate pulled towards
  contributing nothing. In the breakdown it is paid with the gates' pointwise backward;
* ``steps_unaligned``, ``projection_unaligned`` — the step and projection seconds of layers whose
  hidden size is not a whole number of SIMD vectors (the tables are timed at round sizes, which run
  faster; the rows the step and the projection write are H and 3H wide, so the input size does not
  decide). A GEMM table that measured the projection's slowdown at such sizes
  (:class:`.units.GemmTable` ``unaligned_ratio``) prices it instead, and the projection's term is 0.

``fit`` learns one non-negative coefficient per term and (group, mode) from whole-call measurements
(:mod:`.residual`),
by a robust least-squares fit on relative error with the measured terms pulled towards 1 (a unit that
composes exactly needs no correction; the call term is the call's fixed cost measured with the step
units, where the table has it) and the per-layer-direction correction pulled towards contributing
nothing. Per-call terms do not grow with ``seq_len``; per-step terms
do. The 90 % interval comes from out-of-fold log residuals of that fit, widened with the distance
beyond the calibrated ranges and, in quadrature, by the run-to-run scatter of the call's step cell
where a pool measured it to exceed what its typical cell reaches by chance
(:meth:`.units.StepTable.excess_scatter_log_sd`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..config import GATES, GruConfig
from ..errors import ProfileError
from ..groups import GroupKey
from .composition import MATMULS_PER_TRAINING_STEP, Composition, LayerUnits, price_layer, step_split
from .kernel_times import CallTimes, LayerTimes
from .fresh_memory import fresh_bytes_by_layer
from .residual import (_BYTES, _CALL, _FRESH, _LD, _PROJ, _PROJ_BWD, _PROJ_UNALIGNED, _SPILL, _STEP_MM, _STEPS,
                       _STEPS_UNALIGNED, BEFORE_FRESH_TERMS, BEFORE_SPILL_TERMS, PREVIOUS_TERMS, RESIDUAL_TERMS,
                       cv_log_residuals, fit_residual)
from .saved_spill import cache_bytes, spilled_saved_bytes
from .units import GemmTable, StepTable

AXES = ("batch", "seq_len", "input_size", "hidden_size", "num_layers")
# Rows of a whole number of SIMD vectors keep every row of a matrix aligned; BLAS and the vectorised
# gate kernels run such sizes markedly faster than their odd neighbours. The unit tables are timed at
# round sizes; a call whose sizes are not multiples of the machine's vector width (``alignment_bytes``,
# from its ISA: 64 with AVX-512, 32 with AVX2) pays the fitted extra share. A profile that does not say
# takes a cache line.
CACHE_LINE_BYTES = 64
# Fewer out-of-fold residuals than this in a (group, mode): pool the residuals of all for its interval.
MIN_GROUP_RESIDUALS = 20
# A training step is roughly a forward and two backward matmuls of the same size (data and weight
# gradients): the factor a profile without a training table borrows its inference steps with.
TRAINING_OVER_INFERENCE = 3.0
BREAKDOWN_TERMS = ("input_projection_s", "recurrent_matmul_s", "pointwise_s", "step_overhead_s",
                   "call_overhead_s")


def group_key(config: GruConfig) -> str:
    """The hardware group a config's units and coefficients belong to."""
    return str(GroupKey.of(config))


def gemm_key(device: str, dtype: str, threads: int) -> str:
    """The GEMM table a group uses (GEMMs do not depend on the GRU implementation)."""
    return f"{device}/{dtype}/t{threads}"


def step_key(group: str, mode: str) -> str:
    return f"{group}|{mode}"


def _threads_of(key: str) -> int:
    return GroupKey.parse(key).threads


# A step cell's excess run-to-run scatter (a log standard deviation) widens each side of the 90 %
# interval by this many of it (in quadrature with the residual's): the normal 95th percentile.
SCATTER_Z = 1.645


def widened_log_bounds(log_lo: Any, log_hi: Any, spread: Any) -> tuple[Any, Any]:
    """The interval's log ends (``log_lo`` ≤ 0 ≤ ``log_hi`` about the prediction) each moved outwards so
    that its distance from the prediction is the residual's and ``spread`` added in quadrature: the two
    are independent. Scalars or arrays alike."""
    return (log_lo - (np.hypot(log_lo, spread) - np.abs(log_lo)),
            log_hi + (np.hypot(log_hi, spread) - np.abs(log_hi)))


class GruCostModel:
    """Composes GRU calls from measured units and fits the small residual on whole calls.

    Settings (stored as given, per the scikit-learn contract): ``interval`` the central probability
    of the prediction interval, ``cv_folds`` the folds for out-of-fold residuals, ``seed`` for the
    fold split. Learned attributes end in ``_``; the unit tables are given to :meth:`fit`.
    """

    def __init__(self, interval: float = 0.90, cv_folds: int = 5, seed: int = 0,
                 alignment_bytes: int = CACHE_LINE_BYTES) -> None:
        self.interval = interval
        self.cv_folds = cv_folds
        self.seed = seed
        self.alignment_bytes = alignment_bytes

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, configs: Sequence[GruConfig], latencies_s: Sequence[float], step_tables: dict[str, StepTable],
            gemm_tables: dict[str, GemmTable], fit_ranges: dict[str, dict[str, list[Any]]] | None = None
            ) -> "GruCostModel":
        """Learn the residual coefficients from whole calls ``configs`` measured at ``latencies_s``,
        composed from ``step_tables`` (by :func:`step_key`) and ``gemm_tables`` (by :func:`gemm_key`).
        ``fit_ranges`` (by group) are the calibrated ranges; by default those of ``configs`` and the
        tables. Returns self."""
        if len(configs) != len(latencies_s):
            raise ValueError(f"configs(={len(configs)}) and latencies_s(={len(latencies_s)}) differ in length")
        y_all = np.asarray(latencies_s, dtype=float)
        if np.any(~np.isfinite(y_all)) or np.any(y_all <= 0):
            raise ValueError("latencies_s must be finite and > 0")
        if not step_tables:
            raise ValueError("fit needs at least one step table")
        self.step_tables_ = dict(step_tables)
        self.gemm_tables_ = dict(gemm_tables)
        groups = sorted({k.split("|")[0] for k in step_tables})
        self.coef_: dict[str, dict[str, np.ndarray]] = {g: {} for g in groups}
        self.n_samples_: dict[str, dict[str, int]] = {g: {} for g in groups}
        self.fit_range_: dict[str, dict[str, list[Any]]] = {}
        by_mode: dict[tuple[str, str], list[int]] = {}
        for k, c in enumerate(configs):
            by_mode.setdefault((group_key(c), c.mode), []).append(k)
        residuals: dict[tuple[str, str], np.ndarray] = {}
        rng = np.random.default_rng(self.seed)
        for g in groups:
            for mode in ("inference", "training"):
                if step_key(g, mode) not in step_tables:
                    continue
                idx = by_mode.get((g, mode), [])
                x = np.array([self.compose(configs[k]).terms for k in idx]).reshape(len(idx), len(RESIDUAL_TERMS))
                y = y_all[idx]
                fixed_s = step_tables[step_key(g, mode)].call_fixed_s
                self.coef_[g][mode] = fit_residual(x, y, fixed_s)
                self.n_samples_[g][mode] = len(idx)
                # A configuration measured in several runs (a pooled profile) keeps to one fold.
                residuals[(g, mode)] = cv_log_residuals(x, y, rng, self.cv_folds, fixed_s, [configs[k] for k in idx])
            given = (fit_ranges or {}).get(g)
            self.fit_range_[g] = given or self._default_range(g, [configs[k] for k in range(len(configs))
                                                                   if group_key(configs[k]) == g])
        pooled = np.concatenate([np.zeros(0), *residuals.values()])
        alpha = (1.0 - self.interval) / 2.0
        self.log_residual_quantiles_: dict[str, dict[str, tuple[float, float]]] = {g: {} for g in groups}
        for (g, mode), r in residuals.items():
            use = r if r.size >= MIN_GROUP_RESIDUALS or pooled.size == 0 else pooled
            if use.size == 0:
                use = np.array([-0.1, 0.1])  # no whole call measured: no spread known; say ±10 %
            lo, hi = np.quantile(use, [alpha, 1.0 - alpha])
            self.log_residual_quantiles_[g][mode] = (float(min(lo, 0.0)), float(max(hi, 0.0)))
        return self

    def _default_range(self, group: str, configs: list[GruConfig]) -> dict[str, list[Any]]:
        tables = [t for k, t in self.step_tables_.items() if k.split("|")[0] == group]
        out: dict[str, list[Any]] = {
            "batch": [min(t.batch_range[0] for t in tables), min(t.batch_range[1] for t in tables)],
            "hidden_size": [max(t.hidden_range[0] for t in tables), min(t.hidden_range[1] for t in tables)],
        }
        for axis in ("seq_len", "input_size", "num_layers"):
            values = [getattr(c, axis) for c in configs] or [1]
            out[axis] = [min(values), max(values)]
        out["bidirectional"] = sorted({c.bidirectional for c in configs}) or [False]
        out["mode"] = sorted(k.split("|")[1] for k in self.step_tables_ if k.split("|")[0] == group)
        return out

    # ---------------------------------------------------------------------------------- composing
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ProfileError("this cost model is not fitted yet: call fit() or load a profile")

    def group_for(self, config: GruConfig) -> tuple[str, bool]:
        """The calibrated group ``config`` is predicted with, and whether it is borrowed (a thread
        count not calibrated: the nearest calibrated one)."""
        self._check_fitted()
        key = group_key(config)
        if key in self.coef_:
            return key, False
        parsed = GroupKey.parse(key)
        base = f"{parsed.device}/{parsed.dtype}/{parsed.impl}"
        same = [k for k in self.coef_ if GroupKey.parse(k).with_threads(parsed.threads) == parsed]
        if not same:
            have = ", ".join(sorted(self.coef_))
            raise ProfileError(f"the profile has no calibration for {base} (device/dtype/impl); it covers "
                               f"{have}: calibrate for it first")
        return min(same, key=lambda k: abs(_threads_of(k) - config.threads)), True

    def coefficients(self, config: GruConfig) -> tuple[np.ndarray, str, bool]:
        """The residual coefficients for ``config`` (by ``RESIDUAL_TERMS``), its group, and whether the
        group is borrowed."""
        key, borrowed = self.group_for(config)
        coefs = self.coef_[key]
        return (coefs[config.mode] if config.mode in coefs else next(iter(coefs.values()))), key, borrowed

    def compose(self, config: GruConfig) -> Composition:
        """``config`` as the units it runs, read from the tables of its group and mode."""
        key, _ = self.group_for(config) if hasattr(self, "coef_") else (group_key(config), False)
        table = self.step_tables_.get(step_key(key, config.mode))
        borrowed_mode = table is None
        inference = self.step_tables_.get(step_key(key, "inference"))
        if table is None:
            other = inference or self.step_tables_.get(step_key(key, "training"))
            if other is None:
                raise ProfileError(f"the profile has no step table for {key}: calibrate for it first")
            table = other
        gemm = self.gemm_tables_.get(gemm_key(config.device, config.dtype, _threads_of(key)))
        if gemm is None:
            raise ProfileError(f"the profile has no GEMM table for {config.device}/{config.dtype} at "
                               f"{_threads_of(key)} threads: calibrate for it first")
        training = config.mode == "training"
        mode_factor = 1.0
        if borrowed_mode:
            mode_factor = TRAINING_OVER_INFERENCE if training else 1.0 / TRAINING_OVER_INFERENCE
        b, t, h = config.batch, config.seq_len, config.hidden_size
        line = max(self.alignment_bytes // config.dtype_bytes, 1)
        step_off = h % line != 0
        # A step whose rows are not whole vectors: times the slowdown its table's twins measured.
        step_s, mm_s = table.step_parts_s(b, h, unaligned=step_off)
        step_s, mm_s = step_s * mode_factor, mm_s * (MATMULS_PER_TRAINING_STEP if training else 1.0)
        forward_share = 1.0
        if training:
            fwd = (inference.step_parts_s(b, h, unaligned=step_off)[0] if inference is not None and not borrowed_mode
                   else step_s / TRAINING_OVER_INFERENCE)
            forward_share = min(max(fwd / step_s, 0.05), 0.6)
        layers = []
        terms = np.zeros(len(RESIDUAL_TERMS))
        e = config.dtype_bytes
        weight_bytes = float(sum(config.directions * GATES * h * (config.layer_input_size(k) + h) * e
                                 for k in range(config.num_layers)))
        fresh_rate = table.fresh_s_per_byte()
        fresh_by_layer = fresh_bytes_by_layer(config)
        # Every layer and direction spills alike: the same B, H and T.
        spill = spilled_saved_bytes(config, cache_bytes(table.levels))
        # The projection's output rows are 3H wide: H decides. An input size that is not whole vectors
        # costs the GEMM nothing measurable (I = 300 against 288 and 304: the same rate at 1 and 2
        # threads on AMD EPYC, while 3H = 750 or 780 against 768 ran 30-50 % slower). Where the GEMM
        # table measured that slowdown it prices the projection; else a fitted extra share does.
        proj_measured = step_off and gemm.has_unaligned
        proj_off = step_off and not gemm.has_unaligned
        for layer in range(config.num_layers):
            i = config.layer_input_size(layer)
            proj = gemm.seconds_for(t * b, i, GATES * h, unaligned=proj_measured)
            layer_step = step_s
            if config.impl == "torch-gru-cell":
                # GRUCell computes its input projection inside every step, as a [B,I]×[I,3H] GEMM.
                per_step = gemm.seconds_for(b, i, GATES * h, unaligned=proj_measured) * (
                    MATMULS_PER_TRAINING_STEP if training else 1.0)
                layer_step, proj = step_s + per_step, 0.0
            # The backward GEMMs (weight and data gradients) write rows K wide and reduce over 3H:
            # priced at the aligned rate, with the fitted extra share where the slowdown is not measured.
            aligned = gemm.seconds_for(t * b, i, GATES * h) if proj_measured and proj else proj
            proj_bwd = aligned * (2.0 if layer > 0 else 1.0) if training else 0.0
            # The first read of the layer's W_hh and W_ih in the call, from the level that holds the
            # whole call's weights (the units timed each matrix alone): priced with the projection.
            proj += table.cold_read_s(float(GATES * h * h * e), weight_bytes) + table.cold_read_s(
                float(GATES * h * i * e), weight_bytes)
            out_bytes = float(b * h * config.dtype_bytes)
            layer_fixed = 0.0 if borrowed_mode else table.layer_fixed_s(h)
            d = config.directions
            fresh_fwd, fresh_bwd = (n * fresh_rate / d for n in fresh_by_layer[layer])
            layers.append(LayerUnits(layer, layer_step, mm_s, forward_share, proj, proj_bwd, out_bytes,
                                     step_off, proj_off, layer_fixed, fresh_fwd, fresh_bwd, spill))
            if step_off:
                terms[_STEPS_UNALIGNED] += d * t * layer_step
            if proj_off:
                terms[_PROJ_UNALIGNED] += d * (proj + proj_bwd)
            # The layer's per-call fixed cost is a step unit's share that a call pays once, not per step:
            # priced with the steps' non-matmul rest, as the units it was read from.
            terms[_STEPS] += d * (t * (layer_step - min(mm_s, layer_step)) + layer_fixed)
            terms[_STEP_MM] += d * t * min(mm_s, layer_step)
            terms[_PROJ] += d * proj
            terms[_PROJ_BWD] += d * proj_bwd
            terms[_LD] += d
            terms[_BYTES] += d * t * out_bytes
            terms[_FRESH] += d * (fresh_fwd + fresh_bwd)
            terms[_SPILL] += d * spill
        terms[_CALL] = 1.0
        return Composition(config, tuple(layers), terms, table.floor_step_s * mode_factor, table.floor_matmul_s,
                           borrowed_mode)

    # --------------------------------------------------------------------------------- predicting
    def predict(self, configs: Iterable[GruConfig]) -> np.ndarray:
        """Predicted latency in seconds of each config (all kernels in sequence)."""
        return np.array([self.predict_one(c) for c in configs])

    def predict_one(self, config: GruConfig) -> float:
        coef, _, _ = self.coefficients(config)
        return float(self.compose(config).terms @ coef)

    def term_seconds(self, config: GruConfig, composition: Composition | None = None) -> np.ndarray:
        """Seconds each residual term (``RESIDUAL_TERMS``) contributes to ``config``'s latency.
        ``composition`` saves composing ``config`` again when the caller has it (so do the methods below)."""
        coef, _, _ = self.coefficients(config)
        return (composition or self.compose(config)).terms * coef

    def breakdown(self, config: GruConfig, composition: Composition | None = None) -> dict[str, float]:
        """Seconds per breakdown term (input projection, recurrent matmuls, pointwise gates, per-step
        and per-call overhead), each the sum of named kernels, and for training the backward's share
        of them as ``backward_s``. Per-step terms scale with ``seq_len``; the per-call one does not."""
        coef, _, _ = self.coefficients(config)
        comp = composition or self.compose(config)
        d, t = config.directions, config.seq_len
        out = dict.fromkeys(BREAKDOWN_TERMS, 0.0)
        backward = 0.0
        for unit in comp.layers:
            step_total, a_proj, a_bwd = price_layer(coef, unit)
            mm, pw, oh = step_split(comp, unit, coef)
            out["recurrent_matmul_s"] += d * t * mm
            # The saved activations re-read from beyond the cache: by the gates' pointwise backward.
            out["pointwise_s"] += d * (t * pw + coef[_SPILL] * unit.spill_bytes)
            out["step_overhead_s"] += d * t * (oh + coef[_BYTES] * unit.output_bytes)
            # Fresh memory is paid where the projections and the layer's outputs are written.
            out["input_projection_s"] += d * (a_proj * unit.projection_s + a_bwd * unit.projection_backward_s
                                              + coef[_FRESH] * (unit.fresh_s + unit.fresh_backward_s))
            out["call_overhead_s"] += d * coef[_STEPS] * unit.fixed_s
            backward += d * (t * step_total * (1.0 - unit.forward_share)
                             + a_bwd * unit.projection_backward_s + coef[_FRESH] * unit.fresh_backward_s
                             + coef[_SPILL] * unit.spill_bytes
                             + (coef[_STEPS] * unit.fixed_s if config.mode == "training" else 0.0))
        out["call_overhead_s"] += coef[_CALL] + coef[_LD] * comp.terms[_LD]
        out["backward_s"] = backward
        return out

    def extrapolation(self, config: GruConfig) -> dict[str, float]:
        """For each axis outside the calibrated range: how far, as value/limit (or limit/value) ≥ 1."""
        key, borrowed = self.group_for(config)
        rng = self.fit_range_[key]
        out: dict[str, float] = {}
        for axis in AXES:
            lo, hi = rng[axis]
            v = getattr(config, axis)
            if v > hi:
                out[axis] = v / hi
            elif v < lo:
                out[axis] = lo / v
        for axis in ("bidirectional", "mode"):
            if getattr(config, axis) not in rng[axis]:
                out[axis] = 2.0
        if borrowed:
            out["threads"] = 2.0
        return out

    def interval_s(self, config: GruConfig, latency_s: float | None = None) -> tuple[float, float]:
        """The prediction interval of ``config``'s latency, widened outside the calibrated ranges, and
        by the run-to-run scatter of its steps where their cell scatters more than the typical one."""
        key, _ = self.group_for(config)
        quantiles = self.log_residual_quantiles_[key]
        lo, hi = quantiles.get(config.mode) or next(iter(quantiles.values()))
        lat = self.predict_one(config) if latency_s is None else latency_s
        share = {"input_size": self.input_share(config)}
        widen = 1.0 + sum(math.log2(r) * share.get(axis, 1.0) for axis, r in self.extrapolation(config).items())
        lo, hi = widened_log_bounds(lo * widen, hi * widen, SCATTER_Z * self.step_scatter_log_sd(config))
        return lat * math.exp(float(lo)), lat * math.exp(float(hi))

    def step_scatter_log_sd(self, config: GruConfig) -> float:
        """How much more ``config``'s latency scatters from run to run than a typical call's, through its
        steps: their share of the composed call times the excess scatter of their cell in a pool's step
        table (:meth:`.units.StepTable.excess_scatter_log_sd`); 0 for a table without it."""
        key, _ = self.group_for(config)
        table = self.step_tables_.get(step_key(key, config.mode))
        if table is None:
            return 0.0
        excess = float(table.excess_scatter_log_sd(np.array([config.batch]), np.array([config.hidden_size]))[0])
        if excess == 0.0:  # most calls: no need to compose the call for its steps' share
            return 0.0
        ts = self.term_seconds(config)
        total = float(ts.sum())
        steps = float(ts[_STEPS] + ts[_STEP_MM] + ts[_STEPS_UNALIGNED])
        return excess * min(max(steps / total, 0.0), 1.0) if total > 0 else 0.0

    def input_share(self, config: GruConfig) -> float:
        """The share of ``config``'s composed latency that its input size changes: the first layer's
        input projection (and its backward) — a GRU's steps and upper layers never see the input.
        An input size outside the calibrated range widens the interval only by that share (an input
        of 4 features, below a range starting at 16, changes a 1 % GEMM: the interval of the whole
        call was 20x wide). GRUCell runs the projection inside every step: all of it."""
        if config.impl == "torch-gru-cell":
            return 1.0
        coef, _, _ = self.coefficients(config)
        comp = self.compose(config)
        total = float(comp.terms @ coef)
        _, a_proj, a_bwd = price_layer(coef, comp.layers[0])
        first = config.directions * (a_proj * comp.layers[0].projection_s + a_bwd * comp.layers[0].projection_backward_s)
        return min(max(first / total, 0.0), 1.0) if total > 0 else 1.0

    def kernel_times(self, config: GruConfig, composition: Composition | None = None) -> CallTimes:
        """Kernel-level durations of ``config`` for the simulator; their serial sum equals
        :meth:`predict_one`."""
        coef, _, _ = self.coefficients(config)
        comp = composition or self.compose(config)
        layers = []
        for unit in comp.layers:
            step_total, a_proj, a_bwd = price_layer(coef, unit)
            mm, pw, oh = step_split(comp, unit, coef)
            f = unit.forward_share
            # The layer's per-call fixed cost: in training its weights' gradient buffers (allocated,
            # filled and summed once per call); in inference it runs with the projection.
            fixed = coef[_STEPS] * unit.fixed_s
            training = config.mode == "training"
            for direction in range(config.directions):
                layers.append(LayerTimes(
                    layer=unit.layer,
                    direction=direction,
                    # The layer-direction's fixed cost runs with its projection.
                    input_projection_s=(a_proj * unit.projection_s + coef[_FRESH] * unit.fresh_s + coef[_LD]
                                        + (0.0 if training else fixed)),
                    recurrent_matmul_per_step_s=f * mm,
                    pointwise_per_step_s=f * pw,
                    step_overhead_per_step_s=f * oh + coef[_BYTES] * unit.output_bytes,
                    backward_per_step_s=(1.0 - f) * step_total + coef[_SPILL] * unit.spill_bytes / config.seq_len,
                    backward_input_projection_s=(a_bwd * unit.projection_backward_s
                                                 + coef[_FRESH] * unit.fresh_backward_s),
                    recurrent_weight_grad_s=fixed if training else 0.0,
                ))
        return CallTimes(config=config, layers=tuple(layers), call_overhead_s=float(coef[_CALL]))

    # ------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state (no pickles)."""
        self._check_fitted()
        return {
            "settings": {"interval": self.interval, "cv_folds": self.cv_folds, "seed": self.seed,
                         "alignment_bytes": self.alignment_bytes},
            "terms": list(RESIDUAL_TERMS),
            "step_tables": {k: t.to_dict() for k, t in self.step_tables_.items()},
            "gemm_tables": {k: t.to_dict() for k, t in self.gemm_tables_.items()},
            "groups": {g: {"fit_range": self.fit_range_[g],
                           "modes": {m: {"coef": self.coef_[g][m].tolist(), "n_samples": self.n_samples_[g][m],
                                         "log_residual_quantiles": list(self.log_residual_quantiles_[g][m])}
                                     for m in self.coef_[g]}}
                       for g in self.coef_},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GruCostModel":
        """Rebuild a fitted model from :meth:`to_dict`'s output."""
        terms = list(data.get("terms", []))
        if terms not in (list(RESIDUAL_TERMS), list(BEFORE_SPILL_TERMS), list(BEFORE_FRESH_TERMS),
                         list(PREVIOUS_TERMS)):
            raise ProfileError("the profile's cost-model terms differ from this gru-sim's: "
                               "recalibrate with this version")

        def coef(values: list[float]) -> np.ndarray:
            if terms == list(PREVIOUS_TERMS):  # one coefficient on the whole step: on both its parts
                values = [*values, values[_STEPS]]
            # Fresh memory or spilled saved activations not priced: as the profile predicted.
            values = [*values, *[0.0] * (len(RESIDUAL_TERMS) - len(values))]
            return np.array(values, dtype=float)

        model = cls(**data["settings"])
        model.step_tables_ = {k: StepTable.from_dict(t) for k, t in data["step_tables"].items()}
        model.gemm_tables_ = {k: GemmTable.from_dict(t) for k, t in data["gemm_tables"].items()}
        groups = data["groups"]
        model.fit_range_ = {g: v["fit_range"] for g, v in groups.items()}
        model.coef_ = {g: {m: coef(v["coef"]) for m, v in gv["modes"].items()}
                       for g, gv in groups.items()}
        model.n_samples_ = {g: {m: int(v["n_samples"]) for m, v in gv["modes"].items()} for g, gv in groups.items()}
        model.log_residual_quantiles_ = {g: {m: tuple(v["log_residual_quantiles"]) for m, v in gv["modes"].items()}
                                         for g, gv in groups.items()}
        return model
