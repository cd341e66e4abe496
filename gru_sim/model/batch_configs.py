"""Many GRU configurations as columns of arrays: the :class:`ConfigBatch` a vectorised prediction
(:mod:`gru_sim.model.batch`) prices, built from configurations or from columns and checked once, where
it is made, by the rules :class:`~gru_sim.config.GruConfig` checks.

Pure NumPy: no torch, simpy or plotly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import DEVICES, DTYPES, IMPLS, MODES, GruConfig, broken_rules
from ..errors import ConfigError

INT_COLUMNS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "threads")
# The categorical columns, each stored as a small code: its index in these choices.
CHOICES = {"mode": MODES, "dtype": DTYPES, "impl": IMPLS, "device": DEVICES}


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
            device, dtype, impl, mode = decode_category(int(combo))
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


def decode_category(code: int) -> tuple[str, str, str, str]:
    """(device, dtype, impl, mode) of a code of ``ConfigBatch._category_code``."""
    code, mode = divmod(code, len(MODES))
    code, impl = divmod(code, len(IMPLS))
    device, dtype = divmod(code, len(DTYPES))
    return DEVICES[device], DTYPES[dtype], IMPLS[impl], MODES[mode]


__all__ = ["CHOICES", "INT_COLUMNS", "ConfigBatch", "decode_category"]
