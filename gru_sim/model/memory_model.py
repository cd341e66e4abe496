"""Peak memory of one GRU call: what the call needs beyond the memory allocated before it (the
weights and the input), as CONTRACT.md defines ``peak_memory_bytes``.

The terms come from :mod:`gru_sim.accounting` (ATen's tensor lifetimes): for inference the largest
set of live activations; for training the activations kept for backward, the weight gradients and
the per-step weight-gradient temporary. Calibration measures a few calls per mode and fits a
non-negative weight on each term plus a fixed allocator overhead, by least squares on relative
error, pulled towards the analytic weights (1 for each term) so that a handful of probes cannot
throw a term away.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import lsq_linear

from ..accounting import account_call, activation_bytes, recurrent_weight_bytes, training_activation_bytes
from ..config import GruConfig

FIXED_BYTES = 2**20
FEATURES = {
    "inference": ("activations", "fixed_MiB"),
    "training": ("activations", "weight_gradients", "weight_gradient_temporary", "fixed_MiB"),
}
# Before any fit: the analytic count itself.
DEFAULT_COEF = {"inference": (1.0, 0.0), "training": (1.0, 1.0, 1.0, 0.0)}
# Strength of the pull towards DEFAULT_COEF, relative to one probe's squared relative error.
PRIOR_WEIGHT = 0.3


def memory_features(config: GruConfig) -> np.ndarray:
    """The terms of ``config``'s peak memory in bytes (see FEATURES for their names)."""
    if config.mode == "inference":
        return np.array([float(activation_bytes(config)), float(FIXED_BYTES)])
    return np.array([float(training_activation_bytes(config)), float(account_call(config).weight_bytes),
                     float(recurrent_weight_bytes(config)), float(FIXED_BYTES)])


class MemoryModel:
    """Per-mode coefficients on :func:`memory_features`; unfitted modes use ``DEFAULT_COEF``."""

    def __init__(self) -> None:
        self.coef_: dict[str, list[float]] = {}

    def fit(self, configs: Sequence[GruConfig], peak_bytes: Sequence[float]) -> "MemoryModel":
        """Fit from measured peaks (zero or missing peaks are ignored); returns self."""
        self.coef_ = {}
        for mode in FEATURES:
            idx = [k for k, c in enumerate(configs) if c.mode == mode and peak_bytes[k]]
            if not idx:
                continue
            y = np.array([float(peak_bytes[k]) for k in idx])
            z = np.array([memory_features(configs[k]) for k in idx]) / y[:, None]
            prior = np.asarray(DEFAULT_COEF[mode])
            # Penalty rows: PRIOR_WEIGHT·(θ_k − prior_k)·typical z_k, i.e. in relative-error units.
            scale = np.median(np.abs(z), axis=0)
            scale[scale == 0] = 1.0
            pen = np.sqrt(PRIOR_WEIGHT) * np.diag(scale)
            a = np.vstack([z, pen])
            b = np.concatenate([np.ones(len(y)), pen @ prior])
            self.coef_[mode] = lsq_linear(a, b, bounds=(0.0, np.inf)).x.tolist()
        return self

    def predict_one(self, config: GruConfig) -> int:
        coef = self.coef_.get(config.mode, DEFAULT_COEF[config.mode])
        return int(round(float(memory_features(config) @ np.asarray(coef))))

    def to_dict(self) -> dict[str, Any]:
        return {"features": {k: list(v) for k, v in FEATURES.items()}, "coef": self.coef_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MemoryModel":
        model = cls()
        model.coef_ = {k: list(v) for k, v in data.get("coef", {}).items()}
        return model
