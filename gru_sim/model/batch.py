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

Pure NumPy: no torch, simpy or plotly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ..accounting import (INFERENCE_LIVE_TBH, POINTWISE_BACKWARD_OPS_PER_UNIT, POINTWISE_OPS_PER_UNIT,
                          TRAINING_SAVED_BH_PER_STEP, TRAINING_TRANSIENT_TBH)
from ..config import DEVICES, DTYPE_BYTES, DTYPES, GATES, IMPLS, MODES, GruConfig, broken_rules
from ..errors import ConfigError, ProfileError
from .costmodel import (AXES, CACHE_LINE_BYTES, MATMULS_PER_TRAINING_STEP, TRAINING_OVER_INFERENCE, GruCostModel, gemm_key,
                        step_key)
from .library import FOREIGN_INTERVAL_FACTOR, here_fingerprint, mismatch
from .memory_model import DEFAULT_COEF, FIXED_BYTES
from .units import GemmTable, MemoryLevels, StepTable

INT_COLUMNS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "threads")
# The categorical columns, each stored as a small code: its index in these choices.
CHOICES = {"mode": MODES, "dtype": DTYPES, "impl": IMPLS, "device": DEVICES}
# Floor of a step-table value before its logarithm, as StepTable._lookup takes it.
_TINY_S = 1e-12


@dataclass(frozen=True)
class ConfigBatch:
    """Many :class:`~gru_sim.config.GruConfig` s as columns: whole-number arrays for the sizes and
    threads, a boolean array for ``bidirectional``, and codes (indices into ``CHOICES``) for mode,
    dtype, impl and device. Checked once, where it is made, by the rules GruConfig checks."""

    batch: np.ndarray
    seq_len: np.ndarray
    input_size: np.ndarray
    hidden_size: np.ndarray
    num_layers: np.ndarray
    threads: np.ndarray
    bidirectional: np.ndarray
    mode: np.ndarray
    dtype: np.ndarray
    impl: np.ndarray
    device: np.ndarray

    def __len__(self) -> int:
        return int(self.batch.shape[0])

    @classmethod
    def from_configs(cls, configs: Sequence[GruConfig]) -> "ConfigBatch":
        """Columns of already checked configurations."""
        cols: dict[str, Any] = {n: [getattr(c, n) for c in configs] for n in (*INT_COLUMNS, "bidirectional")}
        for name, choices in CHOICES.items():
            index = {v: k for k, v in enumerate(choices)}
            cols[name] = np.array([index[getattr(c, name)] for c in configs], dtype=np.int8)
        return cls._build(cols, len(configs))

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> "ConfigBatch":
        """Columns by field name (``layers`` is an alias of ``num_layers``); a column may be one value
        for every row, and a missing one takes ``defaults``, then GruConfig's own default. Categorical
        columns are given as text. Raises ConfigError naming the first bad row."""
        given = {("num_layers" if k == "layers" else k): v for k, v in {**(defaults or {}), **columns}.items()}
        known = {f.name for f in fields(GruConfig)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(f"unknown field {unknown[0]!r}: expected some of {', '.join(sorted(known))}")
        missing = [n for n in ("batch", "seq_len", "input_size", "hidden_size") if n not in given]
        if missing:
            raise ConfigError(f"missing field(s): {', '.join(missing)}")
        n = max((np.size(v) for v in given.values() if np.ndim(v) > 0), default=1)
        base = {f.name: f.default for f in fields(GruConfig) if f.name not in ("batch", "seq_len", "input_size",
                                                                               "hidden_size")}
        cols: dict[str, Any] = {}
        for name in (*INT_COLUMNS, "bidirectional", *CHOICES):
            value = given.get(name, base.get(name))
            if name in CHOICES:
                choices = CHOICES[name]
                text = np.asarray(value).astype(str)
                uniq, inverse = np.unique(text, return_inverse=True)
                for u in uniq:
                    if u not in choices:
                        raise ConfigError(f"{name}(={str(u)!r}) must be one of {', '.join(choices)}")
                codes = np.array([choices.index(str(u)) for u in uniq], dtype=np.int8)[inverse.reshape(-1)]
                value = codes if np.ndim(value) > 0 else codes[0]
            cols[name] = value
        return cls._build(cols, n)

    @classmethod
    def _build(cls, cols: dict[str, Any], n: int) -> "ConfigBatch":
        out: dict[str, np.ndarray] = {}
        for name in INT_COLUMNS:
            raw = np.asarray(cols[name])
            if raw.dtype.kind not in "iu":
                raise ConfigError(f"{name} must be whole numbers (got {raw.dtype})")
            out[name] = np.broadcast_to(raw.astype(np.int64, copy=False), (n,))
        out["bidirectional"] = np.broadcast_to(np.asarray(cols["bidirectional"], dtype=bool), (n,))
        for name in CHOICES:
            out[name] = np.broadcast_to(np.asarray(cols[name], dtype=np.int8), (n,))
        for name in INT_COLUMNS:
            bad = np.flatnonzero(out[name] <= 0)
            if bad.size:
                raise ConfigError(f"row {int(bad[0])}: {name}(={int(out[name][bad[0]])}) must be > 0")
        batch = cls(**out)
        for combo in np.unique(batch._category_code()):
            device, dtype, impl, mode = _decode_category(int(combo))
            for name, rule in broken_rules(device, dtype, impl, mode):
                value = {"device": device, "dtype": dtype, "impl": impl, "mode": mode}[name]
                raise ConfigError(f"{name}(={value}) is not possible: {rule}")
        return batch

    def _category_code(self) -> np.ndarray:
        return ((self.device.astype(np.int64) * len(DTYPES) + self.dtype) * len(IMPLS) + self.impl) * len(MODES) \
            + self.mode

    def text(self, name: str) -> np.ndarray:
        """A categorical column as text."""
        return np.asarray(CHOICES[name])[getattr(self, name)]

    def take(self, rows: np.ndarray | slice) -> "ConfigBatch":
        """The rows ``rows`` as a batch of their own."""
        return ConfigBatch(**{f.name: np.ascontiguousarray(getattr(self, f.name)[rows]) for f in fields(self)})

    def config(self, row: int) -> GruConfig:
        """One row as a GruConfig."""
        values: dict[str, Any] = {n: int(getattr(self, n)[row]) for n in INT_COLUMNS}
        values["bidirectional"] = bool(self.bidirectional[row])
        values.update({n: CHOICES[n][int(getattr(self, n)[row])] for n in CHOICES})
        return GruConfig(**values)

    def columns(self) -> dict[str, np.ndarray]:
        """Every field as a column (categoricals as text), as the sweep's files write them."""
        out: dict[str, np.ndarray] = {n: np.asarray(getattr(self, n)) for n in INT_COLUMNS}
        out["bidirectional"] = np.asarray(self.bidirectional)
        out.update({n: self.text(n) for n in CHOICES})
        return out


def _decode_category(code: int) -> tuple[str, str, str, str]:
    code, mode = divmod(code, len(MODES))
    code, impl = divmod(code, len(IMPLS))
    device, dtype = divmod(code, len(DTYPES))
    return DEVICES[device], DTYPES[dtype], IMPLS[impl], MODES[mode]


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


# ----------------------------------------------------------------------------------- the unit tables
def _log_bracket(grid: np.ndarray, log_grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised units._log_bracket: index k and log-space fraction f of each value on ``grid``."""
    k = np.clip(np.searchsorted(grid, values, side="right") - 1, 0, len(grid) - 2)
    lo, hi = log_grid[k], log_grid[k + 1]
    return k, (np.log(values) - lo) / (hi - lo)


class _StepLookup:
    """A :class:`StepTable` read for arrays of (batch, hidden), exactly as ``step_parts_s`` reads it."""

    def __init__(self, table: StepTable) -> None:
        self.b = np.asarray(table.batch, dtype=float)
        self.logb = np.log(self.b)
        self.hs = np.asarray(table.hidden, dtype=float)
        self.loghs = np.log(self.hs)
        self.step = table._step
        self.matmul = table._matmul
        with np.errstate(divide="ignore"):
            self.log_step, self.log_matmul = np.log(self.step), np.log(self.matmul)
        self.levels = table.levels
        self.element_bytes = table.element_bytes

    def _row(self, arr: np.ndarray, log_arr: np.ndarray, h_index: np.ndarray | int, batch: np.ndarray) -> np.ndarray:
        b = self.b
        rows = arr[h_index]
        if rows.ndim == 1:
            rows = np.broadcast_to(rows, (batch.shape[0], rows.shape[0]))
        if len(b) == 1:
            return rows[:, 0] * np.maximum(batch / b[0], 1.0)
        idx = np.arange(batch.shape[0])
        k, f = _log_bracket(b, self.logb, batch)
        logs = log_arr[h_index]
        if logs.ndim == 1:
            lo, hi = logs[k], logs[k + 1]
        else:
            lo, hi = logs[idx, k], logs[idx, k + 1]
        with np.errstate(invalid="ignore", over="ignore"):
            inside = np.exp((1 - f) * lo + f * hi)
            slope = np.maximum((rows[:, -1] - rows[:, -2]) / (b[-1] - b[-2]), 0.0)
            above = rows[:, -1] + slope * (batch - b[-1])
        return np.where(batch <= b[0], rows[:, 0], np.where(batch >= b[-1], above, inside))

    def _lookup(self, arr: np.ndarray, log_arr: np.ndarray, batch: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        if len(self.hs) == 1:
            return self._row(arr, log_arr, 0, batch)
        k, f = _log_bracket(self.hs, self.loghs, np.maximum(hidden, self.hs[0]))
        lo = self._row(arr, log_arr, k, batch)
        hi = self._row(arr, log_arr, k + 1, batch)
        mixed = np.exp((1 - f) * np.log(np.maximum(lo, _TINY_S)) + f * np.log(np.maximum(hi, _TINY_S)))
        return np.where(hidden <= self.hs[0], self._row(arr, log_arr, 0, batch), mixed)

    def step_s(self, batch: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """The whole step in seconds (StepTable.step_parts_s(...)[0]) for each (batch, hidden)."""
        out = np.empty(batch.shape[0])
        inside = hidden <= self.hs[-1]
        if inside.any():
            out[inside] = self._lookup(self.step, self.log_step, batch[inside], hidden[inside])
        beyond = ~inside
        if beyond.any():
            b, h = batch[beyond], hidden[beyond]
            last = len(self.hs) - 1
            step0 = self._row(self.step, self.log_step, last, b)
            mm0 = self._row(self.matmul, self.log_matmul, last, b)
            r = h / self.hs[-1]
            mm = mm0 * r * r
            if self.levels is not None:
                w0 = 3.0 * self.hs[-1] ** 2 * self.element_bytes
                w1 = 3.0 * h ** 2 * self.element_bytes
                bw0 = self.levels.bandwidth_for(float(w0))
                mm = mm + np.maximum(w1 * (1.0 / _bandwidth_for(self.levels, w1) - 1.0 / bw0), 0.0)
            out[beyond] = mm + (step0 - mm0) * r
        return out


def _bandwidth_for(levels: MemoryLevels, working_set_bytes: np.ndarray) -> np.ndarray:
    """MemoryLevels.bandwidth_for over an array: the bandwidth of the smallest level that holds each."""
    out = np.full(working_set_bytes.shape, float(levels.bandwidth_bytes_per_s[-1]))
    placed = np.zeros(working_set_bytes.shape, dtype=bool)
    for cap, bw in zip(levels.capacity_bytes, levels.bandwidth_bytes_per_s):
        fits = ~placed if cap is None else (~placed & (working_set_bytes <= cap))
        out[fits] = bw
        placed |= fits
    return out


class _GemmLookup:
    """A :class:`GemmTable` read for arrays of (m, k, n), exactly as ``seconds_for`` reads it."""

    def __init__(self, table: GemmTable) -> None:
        self.grids = [np.asarray(g, dtype=float) for g in (table.m, table.k, table.n)]
        self.log_grids = [np.log(g) for g in self.grids]
        self.log_t = table._t

    def seconds(self, m: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
        scale = np.ones(m.shape[0])
        brackets = []
        for value, grid, log_grid in zip((m, k, n), self.grids, self.log_grids):
            value = np.asarray(value, dtype=float)
            over = value > grid[-1]
            scale = np.where(over, scale * (value / grid[-1]), scale)
            value = np.maximum(np.minimum(value, grid[-1]), grid[0])
            if len(grid) == 1:
                brackets.append((np.zeros(value.shape, dtype=np.intp), np.zeros(value.shape), True))
            else:
                kk, f = _log_bracket(grid, log_grid, value)
                brackets.append((kk, f, False))
        out = np.zeros(m.shape[0])
        for corner in range(8):
            w = np.ones(m.shape[0])
            pos = []
            skip = False
            for axis, (kk, f, single) in enumerate(brackets):
                upper = (corner >> axis) & 1
                if single:
                    if upper:
                        skip = True
                    pos.append(kk)
                    continue
                w = w * (f if upper else 1.0 - f)
                pos.append(kk + upper)
            if skip:
                continue
            out += w * self.log_t[pos[0], pos[1], pos[2]]
        return np.exp(out) * scale


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
        self._steps: dict[str, _StepLookup] = {}
        self._gemms: dict[str, _GemmLookup] = {}

    def _step(self, key: str) -> _StepLookup:
        if key not in self._steps:
            self._steps[key] = _StepLookup(self.model.step_tables_[key])
        return self._steps[key]

    def _gemm(self, key: str) -> _GemmLookup:
        if key not in self._gemms:
            self._gemms[key] = _GemmLookup(self.model.gemm_tables_[key])
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
            device, dtype, impl, mode = _decode_category(int(uniq[g] >> 32))
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
        gkey = gemm_key(device, dtype, int(key.rsplit("/t", 1)[1]))
        if gkey not in model.gemm_tables_:
            raise ProfileError(f"the profile has no GEMM table for {device}/{dtype} at "
                               f"{int(key.rsplit('/t', 1)[1])} threads: calibrate for it first")
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
        step_s = table.step_s(b, h) * mode_factor
        proj0 = gemm.seconds(t * b, i, GATES * h)
        upper = layers > 1
        proj1 = np.zeros_like(proj0)
        if upper.any():
            proj1[upper] = gemm.seconds((t * b)[upper], (d * h)[upper], GATES * h[upper])
        step0 = step1 = step_s
        if impl == "torch-gru-cell":
            # GRUCell computes its input projection inside every step, as a [B,I]×[I,3H] GEMM.
            per = MATMULS_PER_TRAINING_STEP if training else 1.0
            step0 = step_s + gemm.seconds(b, i, GATES * h) * per
            step1 = step_s.copy()
            if upper.any():
                step1[upper] = step_s[upper] + gemm.seconds(b[upper], (d * h)[upper], GATES * h[upper]) * per
            proj0, proj1 = np.zeros_like(proj0), np.zeros_like(proj1)
        rest = layers - 1.0
        terms_steps = d * t * step0 + rest * (d * t * step1)
        terms_proj = d * proj0 + rest * (d * proj1)
        terms_bwd = (d * proj0 + rest * (d * proj1 * 2.0)) if training else np.zeros_like(proj0)
        terms_ld = layers * d
        terms_bytes = layers * (d * t * (b * h * s))
        # Layers whose sizes are not whole cache lines (GruCostModel.compose): layer 0 reads I, the
        # layers above D·H, which is aligned whenever H is.
        line = CACHE_LINE_BYTES // s
        step_off = (hi_ % line) != 0
        proj0_off = step_off | ((ii % line) != 0)
        bwd0 = proj0 if training else np.zeros_like(proj0)
        bwd1 = proj1 * 2.0 if training else np.zeros_like(proj1)
        terms_su = np.where(step_off, terms_steps, 0.0)
        terms_pu = np.where(proj0_off, d * (proj0 + bwd0), 0.0) + np.where(step_off, rest * (d * (proj1 + bwd1)), 0.0)
        composed = (terms_steps * coef[0] + terms_proj * coef[1] + terms_bwd * coef[2] + coef[3]
                    + terms_ld * coef[4] + terms_bytes * coef[5] + terms_su * coef[6] + terms_pu * coef[7])

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
        for axis, v in zip(AXES, (b, t, i, h, layers)):
            lo, hi = rng[axis]
            f = np.where(v > hi, v / hi, np.where(v < lo, lo / v, 1.0))
            factors[axis] = f
            widen = widen + np.log2(f)
        bidi_ok = np.isin(part.bidirectional, np.asarray(rng["bidirectional"], dtype=bool))
        factors["bidirectional"] = np.where(bidi_ok, 1.0, 2.0)
        widen = widen + np.where(bidi_ok, 0.0, 1.0)
        constant = (0.0 if mode in rng["mode"] else 1.0) + (1.0 if borrowed else 0.0)
        factors["mode"] = np.full(len(part), 1.0 if mode in rng["mode"] else 2.0)
        factors["threads"] = np.full(len(part), 2.0 if borrowed else 1.0)
        widen = widen + constant
        quantiles = model.log_residual_quantiles_[key]
        qlo, qhi = quantiles.get(mode) or next(iter(quantiles.values()))
        lo_s, hi_s = latency * np.exp(qlo * widen), latency * np.exp(qhi * widen)
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


__all__ = ["BatchPrediction", "BatchPredictor", "ConfigBatch"]
