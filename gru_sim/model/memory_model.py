"""Peak memory of one GRU call: what the call needs beyond the memory allocated before it (the
weights and the input), as CONTRACT.md defines ``peak_memory_bytes``.

The shape of the answer comes from :func:`gru_sim.accounting.activation_bytes` (ATen's tensor
lifetimes); calibration measures a few calls and fits, per mode, non-negative weights on its parts —
activations proportional to T·B·H, weight-sized buffers (gradients while training) and a fixed
allocator overhead — by least squares on relative error.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

from ..accounting import account_call, activation_bytes
from ..config import GruConfig

FEATURES = ("activations", "weights", "fixed")


def memory_features(config: GruConfig) -> np.ndarray:
    """[analytic activation bytes, weight bytes (training: the gradients), 1 MiB]."""
    acc = account_call(config)
    weights = acc.weight_bytes if config.mode == "training" else 0.0
    return np.array([float(activation_bytes(config)), float(weights), float(2**20)])


# Before any fit: the analytic count itself (activations + gradients while training).
DEFAULT_COEF = (1.0, 1.0, 0.0)


class MemoryModel:
    """Per-mode coefficients on :func:`memory_features`; unfitted modes use ``DEFAULT_COEF``."""

    def __init__(self) -> None:
        self.coef_: dict[str, list[float]] = {}

    def fit(self, configs: Sequence[GruConfig], peak_bytes: Sequence[float]) -> "MemoryModel":
        """Fit from measured peaks; modes with fewer than 3 measurements keep the analytic count."""
        by_mode: dict[str, list[int]] = {}
        for k, c in enumerate(configs):
            by_mode.setdefault(c.mode, []).append(k)
        self.coef_ = {}
        for mode, idx in by_mode.items():
            y = np.array([float(peak_bytes[k]) for k in idx])
            keep = y > 0
            if keep.sum() < 3:
                continue
            x = np.array([memory_features(configs[k]) for k in idx])[keep]
            z = x / y[keep][:, None]
            scale = np.max(np.abs(z), axis=0)
            scale[scale == 0] = 1.0
            coef, _ = nnls(z / scale, np.ones(int(keep.sum())))
            self.coef_[mode] = (coef / scale).tolist()
        return self

    def predict_one(self, config: GruConfig) -> int:
        coef = self.coef_.get(config.mode, DEFAULT_COEF)
        return int(round(float(memory_features(config) @ np.asarray(coef))))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "coef": self.coef_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MemoryModel":
        model = cls()
        model.coef_ = {k: list(v) for k, v in data.get("coef", {}).items()}
        return model
