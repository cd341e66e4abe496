"""Predicting many configurations at once: a design-space sweep of millions of GRU calls priced from
the same profile as one prediction, with NumPy over arrays of shapes instead of a Python loop of
records.

The numbers are those of the one-configuration path (:class:`gru_sim.predict.Predictor` on
:class:`~gru_sim.model.costmodel.GruCostModel`): the same step and GEMM tables read the same way
(bilinear log interpolation over batch × hidden with row continuation past the largest batch and the
weight read re-priced past the largest hidden size; trilinear log interpolation of the GEMM, linear
past its grid), the same residual coefficients, the same roofline floor, interval, extrapolation
factors, FLOPs, bytes and peak memory. Rows are grouped by (hardware group, mode) and each group is
priced in one pass. What it leaves out is the kernel-graph simulation (parallelism, breakdown): a
sweep of millions asks for latency, not for each call's timeline.

The configurations come as a :class:`~gru_sim.model.batch_configs.ConfigBatch`, the unit tables are
read by :mod:`gru_sim.model.batch_tables`; this module composes them (the composition, counts,
roofline floor, extrapolation, interval and peak memory of each group).

Pure NumPy: no torch, simpy or plotly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..accounting import (INFERENCE_LIVE_TBH, POINTWISE_BACKWARD_OPS_PER_UNIT, POINTWISE_OPS_PER_UNIT,
                          TRAINING_SAVED_BH_PER_STEP, TRAINING_TRANSIENT_TBH)
from ..config import DTYPE_BYTES, GATES, MODES, GruConfig
from ..errors import ProfileError
from ..groups import GroupKey
from .batch_configs import CHOICES, INT_COLUMNS, ConfigBatch, decode_category
from .batch_tables import GemmLookup, StepLookup
from .costmodel import (AXES, MATMULS_PER_TRAINING_STEP, SCATTER_Z, TRAINING_OVER_INFERENCE, GruCostModel,
                        gemm_key, step_key, widened_log_bounds)
from .fresh_memory import fresh_bytes_many, listed as fresh_listed
from .saved_spill import cache_bytes, spilled_saved_bytes_many, spills
from .library import FOREIGN_INTERVAL_FACTOR, here_fingerprint, mismatch
from .memory_model import DEFAULT_COEF, FIXED_BYTES


@dataclass(frozen=True)
class BatchPrediction:
    """Per row of a :class:`ConfigBatch`: latency (s, the larger of the composed cost and the roofline
    floor) and its interval, the roofline floor, the extrapolation factor along each axis (1 where the
    row is inside the calibrated range; ≥ 1 outside, as ``extrapolated_axes`` of a prediction record),
    throughputs, FLOPs, bytes moved and peak memory beyond weights and inputs (bytes)."""

    latency_s: np.ndarray
    latency_lo_s: np.ndarray
    latency_hi_s: np.ndarray
    roofline_floor_s: np.ndarray
    extrapolation: dict[str, np.ndarray]
    throughput_seq_per_s: np.ndarray
    throughput_tokens_per_s: np.ndarray
    flops: np.ndarray
    bytes_moved: np.ndarray
    peak_memory_bytes: np.ndarray

    @property
    def extrapolated(self) -> np.ndarray:
        """Whether each row lies outside the calibrated range along any axis."""
        out = np.zeros(self.latency_s.shape, dtype=bool)
        for factor in self.extrapolation.values():
            out |= factor > 1.0
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """The results as columns (the sweep's files)."""
        return {"latency_s": self.latency_s, "latency_lo_s": self.latency_lo_s, "latency_hi_s": self.latency_hi_s,
                "roofline_floor_s": self.roofline_floor_s, "throughput_seq_per_s": self.throughput_seq_per_s,
                "throughput_tokens_per_s": self.throughput_tokens_per_s, "flops": self.flops,
                "bytes_moved": self.bytes_moved, "peak_memory_bytes": self.peak_memory_bytes,
                "extrapolated": self.extrapolated}


# ------------------------------------------------------------------------------------- the predictor
class BatchPredictor:
    """Prices a :class:`ConfigBatch` from one loaded profile, with the numbers of
    ``Predictor(profile).predict`` for each row.

    ``here`` is the fingerprint of the machine predicted for, as for the Predictor (default: this
    one, read without torch): a profile made elsewhere widens every interval the same way.
    """

    def __init__(self, profile: Any, here: dict[str, Any] | None = None) -> None:
        self.profile = profile
        self.model: GruCostModel = profile.cost_model
        self.memory_coef = {mode: np.asarray(profile.memory_model.coef_.get(mode, DEFAULT_COEF[mode]), dtype=float)
                            for mode in MODES}
        fingerprint_here = here if here is not None else here_fingerprint(profile.device)
        self.foreign = bool(mismatch(profile.fingerprint, fingerprint_here))
        self._steps: dict[str, StepLookup] = {}
        self._gemms: dict[str, GemmLookup] = {}

    def _step(self, key: str) -> StepLookup:
        if key not in self._steps:
            self._steps[key] = StepLookup(self.model.step_tables_[key])
        return self._steps[key]

    def _gemm(self, key: str) -> GemmLookup:
        if key not in self._gemms:
            self._gemms[key] = GemmLookup(self.model.gemm_tables_[key])
        return self._gemms[key]

    def predict(self, configs: ConfigBatch | Sequence[GruConfig]) -> BatchPrediction:
        """The prediction of every row, in order. Raises ProfileError for a group the profile does not
        cover (as the one-configuration path does)."""
        batch = configs if isinstance(configs, ConfigBatch) else ConfigBatch.from_configs(configs)
        n = len(batch)
        out = {name: np.empty(n) for name in ("latency_s", "latency_lo_s", "latency_hi_s", "roofline_floor_s",
                                              "flops", "bytes_moved", "peak_memory_bytes")}
        extrapolation = {axis: np.ones(n) for axis in (*AXES, "bidirectional", "mode", "threads")}
        key = batch._category_code() * (1 << 32) + batch.threads
        uniq, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for g in range(len(uniq)):
            rows = order[bounds[g]:bounds[g + 1]]
            part = batch.take(rows) if len(uniq) > 1 else batch
            device, dtype, impl, mode = decode_category(int(uniq[g] >> 32))
            threads = int(uniq[g] & 0xFFFFFFFF)
            values, factors = self._predict_group(part, device, dtype, impl, mode, threads)
            for name, v in values.items():
                out[name][rows] = v
            for axis, v in factors.items():
                extrapolation[axis][rows] = v
        lat = out["latency_s"]
        return BatchPrediction(latency_s=lat, latency_lo_s=out["latency_lo_s"], latency_hi_s=out["latency_hi_s"],
                               roofline_floor_s=out["roofline_floor_s"], extrapolation=extrapolation,
                               throughput_seq_per_s=batch.batch / lat,
                               throughput_tokens_per_s=(batch.batch * batch.seq_len) / lat,
                               flops=out["flops"], bytes_moved=out["bytes_moved"],
                               peak_memory_bytes=out["peak_memory_bytes"])

    # ---------------------------------------------------------------------------- one group, one mode
    def _resolve(self, device: str, dtype: str, impl: str, mode: str, threads: int) -> tuple[str, bool]:
        # GruCostModel.group_for on the group's first config (all rows of the group share it).
        probe = GruConfig(batch=1, seq_len=1, input_size=1, hidden_size=1, mode=mode, dtype=dtype, impl=impl,
                          device=device, threads=threads)
        return self.model.group_for(probe)

    def _predict_group(self, part: ConfigBatch, device: str, dtype: str, impl: str, mode: str, threads: int
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        model = self.model
        key, borrowed = self._resolve(device, dtype, impl, mode, threads)
        coefs = model.coef_[key]
        coef = coefs[mode] if mode in coefs else next(iter(coefs.values()))
        training = mode == "training"
        step_name = step_key(key, mode)
        borrowed_mode = step_name not in model.step_tables_
        if borrowed_mode:
            other = step_key(key, "inference")
            if other not in model.step_tables_:
                other = step_key(key, "training")
            if other not in model.step_tables_:
                raise ProfileError(f"the profile has no step table for {key}: calibrate for it first")
            step_name = other
        gkey = gemm_key(device, dtype, GroupKey.parse(key).threads)
        if gkey not in model.gemm_tables_:
            raise ProfileError(f"the profile has no GEMM table for {device}/{dtype} at "
                               f"{GroupKey.parse(key).threads} threads: calibrate for it first")
        mode_factor = 1.0
        if borrowed_mode:
            mode_factor = TRAINING_OVER_INFERENCE if training else 1.0 / TRAINING_OVER_INFERENCE
        table, gemm = self._step(step_name), self._gemm(gkey)

        bi, ti, ii, hi_, li = part.batch, part.seq_len, part.input_size, part.hidden_size, part.num_layers
        b, t, i, h, layers = (x.astype(float) for x in (bi, ti, ii, hi_, li))
        d = np.where(part.bidirectional, 2.0, 1.0)
        di = d.astype(np.int64)
        s = DTYPE_BYTES[dtype]

        # The composition (GruCostModel.compose): layer 0 reads the input, layers above read D·H.
        # Layers whose rows are not whole vectors: H decides for the step and the projection alike; the
        # projection's slowdown is measured where the GEMM table has it, else a fitted extra share.
        line = max(model.alignment_bytes // s, 1)
        step_off = (hi_ % line) != 0
        measured_off = step_off if gemm.log_ratio is not None else None
        fitted_off = step_off & (gemm.log_ratio is None)
        step_s, mm_s = table.step_parts(b, h, step_off)
        step_s = step_s * mode_factor
        mm_s = mm_s * (MATMULS_PER_TRAINING_STEP if training else 1.0)
        proj0, aligned0 = gemm.seconds_and_aligned(t * b, i, GATES * h, measured_off)
        upper = layers > 1
        upper_off = None if measured_off is None else measured_off[upper]
        proj1, aligned1 = np.zeros_like(proj0), np.zeros_like(proj0)
        if upper.any():
            proj1[upper], aligned1[upper] = gemm.seconds_and_aligned((t * b)[upper], (d * h)[upper],
                                                                     GATES * h[upper], upper_off)
        step0 = step1 = step_s
        if impl == "torch-gru-cell":
            # GRUCell computes its input projection inside every step, as a [B,I]×[I,3H] GEMM.
            per = MATMULS_PER_TRAINING_STEP if training else 1.0
            step0 = step_s + gemm.seconds(b, i, GATES * h, measured_off) * per
            step1 = step_s.copy()
            if upper.any():
                step1[upper] = step_s[upper] + gemm.seconds(b[upper], (d * h)[upper], GATES * h[upper],
                                                            upper_off) * per
            proj0, proj1 = np.zeros_like(proj0), np.zeros_like(proj1)
        rest = layers - 1.0
        # The backward GEMMs write rows K wide and reduce over 3H: priced at the aligned rate.
        bwd0, bwd1 = np.zeros_like(proj0), np.zeros_like(proj1)
        if training and impl != "torch-gru-cell":
            bwd0, bwd1 = aligned0, 2.0 * aligned1
        # The first read of each layer's weights from the level that holds the call's whole weight set
        # (GruCostModel.compose), priced with the projection.
        raw = model.step_tables_[step_name]
        weight_bytes = d * GATES * h * (i + h) * s + rest * (d * GATES * h * (d * h + h) * s)
        hh_bytes = GATES * h * h * s
        proj0 = proj0 + raw.cold_read_s(hh_bytes, weight_bytes) + raw.cold_read_s(GATES * h * i * s, weight_bytes)
        proj1 = proj1 + raw.cold_read_s(hh_bytes, weight_bytes) + raw.cold_read_s(GATES * h * d * h * s, weight_bytes)
        # Each layer's per-call fixed cost (StepTable.layer_fixed_s), priced with the steps' rest.
        terms_fixed = np.zeros_like(h) if borrowed_mode else layers * d * raw.layer_fixed_many(h)
        terms_steps = d * t * step0 + rest * (d * t * step1)
        terms_mm = d * t * np.minimum(mm_s, step0) + rest * (d * t * np.minimum(mm_s, step1))
        terms_proj = d * proj0 + rest * (d * proj1)
        terms_bwd = d * bwd0 + rest * (d * bwd1)
        terms_ld = layers * d
        terms_bytes = layers * (d * t * (b * h * s))
        terms_su = np.where(step_off, terms_steps, 0.0)
        terms_pu = np.where(fitted_off, d * (proj0 + bwd0) + rest * (d * (proj1 + bwd1)), 0.0)
        # The call's tensors mapped afresh (.fresh_memory), at the measured rate.
        terms_fresh = np.zeros_like(h)
        if fresh_listed(impl, device) and raw.fresh_s_per_byte():
            terms_fresh = fresh_bytes_many(b, t, h, layers, d, s, training) * raw.fresh_s_per_byte()
        # A training call's saved activations re-read from beyond the cache (.saved_spill).
        terms_spill = np.zeros_like(h)
        if spills(mode, impl, device):
            terms_spill = layers * d * spilled_saved_bytes_many(b, t, h, s, cache_bytes(raw.levels))
        composed = ((terms_steps - terms_mm + terms_fixed) * coef[0] + terms_proj * coef[1] + terms_bwd * coef[2] + coef[3]
                    + terms_ld * coef[4] + terms_bytes * coef[5] + terms_su * coef[6] + terms_pu * coef[7]
                    + terms_mm * coef[8] + terms_fresh * coef[9] + terms_spill * coef[10])

        # Counts (accounting.account_call), exact in whole numbers.
        li64 = li
        i_up = di * hi_
        proj_flops0 = 2 * ti * bi * ii * GATES * hi_
        proj_flops1 = 2 * ti * bi * i_up * GATES * hi_
        step_mm = 2 * bi * hi_ * GATES * hi_
        pw = POINTWISE_OPS_PER_UNIT * bi * hi_
        per_ld = ti * step_mm + ti * pw
        forward = di * (proj_flops0 + per_ld) + (li64 - 1) * di * (proj_flops1 + per_ld)
        total_flops = forward
        if training:
            bwd_common = ti * step_mm + (ti - 1) * step_mm + ti * POINTWISE_BACKWARD_OPS_PER_UNIT * bi * hi_
            backward = di * (proj_flops0 + bwd_common) + (li64 - 1) * di * (2 * proj_flops1 + bwd_common)
            total_flops = forward + backward
        per_step_bytes = s * (bi * hi_ + GATES * hi_ * hi_ + bi * GATES * hi_) + s * (2 * bi * GATES * hi_ + 2 * bi * hi_)
        moved0 = s * (ti * bi * ii + GATES * hi_ * ii + ti * bi * GATES * hi_) + ti * per_step_bytes
        moved1 = s * (ti * bi * i_up + GATES * hi_ * i_up + ti * bi * GATES * hi_) + ti * per_step_bytes
        moved = di * moved0 + (li64 - 1) * di * moved1
        if training:
            moved = moved * 3
        params = di * GATES * hi_ * (ii + hi_ + 2) + (li64 - 1) * di * GATES * hi_ * (i_up + hi_ + 2)
        tokens = bi * ti
        compulsory = params * s + tokens * ii * s + tokens * di * hi_ * s

        # The roofline floor (Predictor.roofline_floor_s).
        ceil = self.profile.ceilings.get(key, {})
        floor = np.zeros(len(part))
        if ceil.get("peak_flops_per_s"):
            floor = np.maximum(floor, total_flops / ceil["peak_flops_per_s"])
        if ceil.get("memory_bandwidth_bytes_per_s"):
            floor = np.maximum(floor, compulsory / ceil["memory_bandwidth_bytes_per_s"])
        latency = np.maximum(composed, floor)

        # Extrapolation (GruCostModel.extrapolation) and the interval (interval_s).
        rng = model.fit_range_[key]
        factors: dict[str, np.ndarray] = {}
        widen = np.ones(len(part))
        # An input size outside the range widens by the first layer's projection share of the call
        # (GruCostModel.input_share); GRUCell's steps see the input too.
        if impl == "torch-gru-cell":
            input_share = np.ones(len(part))
        else:
            extra0 = np.where(fitted_off, coef[7], 0.0)
            first = d * (proj0 * (coef[1] + extra0) + bwd0 * (coef[2] + extra0))
            input_share = np.clip(np.divide(first, composed, out=np.ones(len(part)), where=composed > 0), 0.0, 1.0)
        for axis, v in zip(AXES, (b, t, i, h, layers)):
            lo, hi = rng[axis]
            f = np.where(v > hi, v / hi, np.where(v < lo, lo / v, 1.0))
            factors[axis] = f
            widen = widen + np.log2(f) * (input_share if axis == "input_size" else 1.0)
        bidi_ok = np.isin(part.bidirectional, np.asarray(rng["bidirectional"], dtype=bool))
        factors["bidirectional"] = np.where(bidi_ok, 1.0, 2.0)
        widen = widen + np.where(bidi_ok, 0.0, 1.0)
        constant = (0.0 if mode in rng["mode"] else 1.0) + (1.0 if borrowed else 0.0)
        factors["mode"] = np.full(len(part), 1.0 if mode in rng["mode"] else 2.0)
        factors["threads"] = np.full(len(part), 2.0 if borrowed else 1.0)
        widen = widen + constant
        quantiles = model.log_residual_quantiles_[key]
        qlo, qhi = quantiles.get(mode) or next(iter(quantiles.values()))
        # The steps' excess run-to-run scatter (GruCostModel.step_scatter_log_sd).
        spread = np.zeros(len(part))
        if not borrowed_mode and raw.cell_scatter_log_sd is not None:
            steps_s = (terms_steps - terms_mm + terms_fixed) * coef[0] + terms_mm * coef[8] + terms_su * coef[6]
            step_share = np.clip(np.divide(steps_s, composed, out=np.zeros(len(part)), where=composed > 0), 0.0, 1.0)
            spread = SCATTER_Z * step_share * raw.excess_scatter_log_sd(b, h)
        log_lo, log_hi = widened_log_bounds(qlo * widen, qhi * widen, spread)
        lo_s, hi_s = latency * np.exp(log_lo), latency * np.exp(log_hi)
        if self.foreign:
            lo_s, hi_s = lo_s / FOREIGN_INTERVAL_FACTOR, hi_s * FOREIGN_INTERVAL_FACTOR

        # Peak memory (MemoryModel.predict_one).
        tbh = tokens * hi_
        if mode == "inference":
            live = np.where(part.bidirectional, INFERENCE_LIVE_TBH[2], INFERENCE_LIVE_TBH[1])
            act = np.where(li64 > 1, di * tbh + live * tbh, live * tbh) * s
            features = [act, np.full(len(part), FIXED_BYTES)]
        else:
            saved = li64 * di * (TRAINING_SAVED_BH_PER_STEP + 1) * tbh
            features = [(saved + TRAINING_TRANSIENT_TBH * tbh) * s, params * s, GATES * hi_ * hi_ * s,
                        np.full(len(part), FIXED_BYTES)]
        mcoef = self.memory_coef[mode]
        peak = sum(np.asarray(f, dtype=float) * c for f, c in zip(features, mcoef))
        values = {"latency_s": latency, "latency_lo_s": lo_s, "latency_hi_s": hi_s, "roofline_floor_s": floor,
                  "flops": total_flops.astype(float), "bytes_moved": moved.astype(float),
                  "peak_memory_bytes": np.round(peak)}
        return values, factors


__all__ = ["CHOICES", "INT_COLUMNS", "BatchPrediction", "BatchPredictor", "ConfigBatch"]
