"""The calibrated cost model of GRU latency: an estimator in the scikit-learn manner.

Latency is a sum of physical terms (see :mod:`.features`): per-call and per-step overheads, the
input-projection GEMM, the recurrent matmul's FLOPs and per-step weight traffic, the pointwise gate
work, and for training the backward counterparts. ``fit`` learns one non-negative seconds-per-unit
coefficient per term for each hardware group (device, dtype, threads, impl) by least squares on
relative error — so a 50 µs call weighs as much as a 5 s one — with the recurrent weight-traffic
cost constrained to grow with the matrix size (a bigger matrix lives in a slower memory level).

The prediction interval comes from out-of-fold residuals: a K-fold cross-validation inside ``fit``
gives log-ratio errors on configurations each fold never saw, whose 5th and 95th percentiles bound
the 90 % interval; outside the fitted ranges the interval widens with the distance.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.optimize import least_squares, nnls

from ..config import GruConfig
from ..errors import ProfileError
from .features import (BREAKDOWN_TERMS, TERM_NAMES, TERMS, WEIGHT_KNOTS_BYTES, feature_matrix,
                       features, layer_features)
from .kernel_times import CallTimes, LayerTimes

AXES = ("batch", "seq_len", "input_size", "hidden_size", "num_layers")
_BASIS_BLOCKS = [[TERM_NAMES.index(f"{prefix}_weight_bytes@{k}") for k in range(len(WEIGHT_KNOTS_BYTES))]
                 for prefix in ("recurrent", "bwd_recurrent", "projection")]
# Fewer out-of-fold residuals than this in a group: pool the residuals of all groups for its interval.
MIN_GROUP_RESIDUALS = 20
# A weight-size knot needs at least one measurement's worth of basis share before its cost may differ
# from the knot below it.
MIN_KNOT_SUPPORT = 1.0
# Relative error at which the fit's loss turns from squared to linear (soft-L1).
ROBUST_SCALE = 0.1


def group_key(config: GruConfig) -> str:
    """The hardware group a config's coefficients belong to."""
    return f"{config.device}/{config.dtype}/{config.impl}/t{config.threads}"


def _to_monotone(x: np.ndarray) -> np.ndarray:
    """Re-express the weight-byte basis columns so that non-negative coefficients make the cost per
    byte non-decreasing with matrix size: θ_k = Σ_{j≤k} δ_j, column for δ_j = Σ_{k≥j} x_k."""
    z = x.copy()
    for cols in _BASIS_BLOCKS:
        z[:, cols] = np.cumsum(x[:, cols][:, ::-1], axis=1)[:, ::-1]
    return z


def _from_monotone(delta: np.ndarray) -> np.ndarray:
    theta = delta.copy()
    for cols in _BASIS_BLOCKS:
        theta[cols] = np.cumsum(delta[cols])
    return theta


# Feature indices of each breakdown term, forward and backward apart, for summing term seconds.
_BUCKETS = {(name, backward): np.array([k for k, t in enumerate(TERMS) if t.breakdown == name and t.backward == backward],
                                      dtype=int)
            for name in BREAKDOWN_TERMS for backward in (False, True)}
_CALL, _BWD_CALL = TERM_NAMES.index("call"), TERM_NAMES.index("bwd_call")


def _by_breakdown(term_seconds: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Term seconds summed per breakdown term: (forward sums, backward sums)."""
    return tuple({name: float(term_seconds[_BUCKETS[name, backward]].sum()) for name in BREAKDOWN_TERMS}
                 for backward in (False, True))  # type: ignore[return-value]


def _unsupported_increments(x: np.ndarray) -> list[int]:
    """Columns of cost increments at knots that the measurements support less than
    ``MIN_KNOT_SUPPORT`` points' worth (each point's basis shares summed per knot)."""
    out = []
    for cols in _BASIS_BLOCKS:
        block = x[:, cols]
        totals = block.sum(axis=1, keepdims=True)
        shares = np.divide(block, totals, out=np.zeros_like(block), where=totals > 0)
        support = shares.sum(axis=0)
        out += [c for c, s in zip(cols[1:], support[1:]) if s < MIN_KNOT_SUPPORT]
    return out


def _fit_nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients minimising a robust loss of the relative errors (x·θ − y)/y, with
    the monotone weight-byte cost.

    Least squares (NNLS) gives the start; a soft-L1 loss (scipy's least_squares) then stops the few
    measurements a loaded machine spoils from pulling the fit: errors beyond ``ROBUST_SCALE`` count
    linearly, not squared.
    """
    z = _to_monotone(x) / y[:, None]
    scale = np.max(np.abs(z), axis=0)
    scale[scale == 0] = 1.0
    zs = z / scale
    # A knot that (almost) no measurement reaches keeps its neighbour's cost: without this, a point
    # that touches a knot by a few percent lets the fit give it any cost at all.
    zs[:, _unsupported_increments(x)] = 0.0
    delta0, _ = nnls(zs, np.ones_like(y), maxiter=50 * z.shape[1])
    used = np.any(zs != 0, axis=0)  # columns no measurement touches stay at 0
    if used.sum() and len(y) > used.sum():
        sol = least_squares(lambda d: zs[:, used] @ d - 1.0, np.maximum(delta0[used], 1e-9),
                            jac=lambda d: zs[:, used], bounds=(0.0, np.inf), loss="soft_l1",
                            f_scale=ROBUST_SCALE, method="trf", max_nfev=200)
        delta0 = np.zeros_like(delta0)
        delta0[used] = sol.x
    return _from_monotone(delta0 / scale)


class GruCostModel:
    """Fits per-group term coefficients to measured latencies and predicts any configuration.

    Settings (stored as given, per the scikit-learn contract): ``interval`` the central probability
    of the prediction interval, ``cv_folds`` the folds for out-of-fold residuals, ``seed`` for the
    fold split. Learned attributes end in ``_``.
    """

    def __init__(self, interval: float = 0.90, cv_folds: int = 5, seed: int = 0) -> None:
        self.interval = interval
        self.cv_folds = cv_folds
        self.seed = seed

    # ------------------------------------------------------------------------------------ fitting
    def fit(self, configs: Sequence[GruConfig], latencies_s: Sequence[float]) -> "GruCostModel":
        """Learn coefficients from measured ``latencies_s`` (one per config); returns self."""
        if len(configs) != len(latencies_s):
            raise ValueError(f"configs(={len(configs)}) and latencies_s(={len(latencies_s)}) differ in length")
        if not configs:
            raise ValueError("fit needs at least one measurement")
        y_all = np.asarray(latencies_s, dtype=float)
        if np.any(~np.isfinite(y_all)) or np.any(y_all <= 0):
            raise ValueError("latencies_s must be finite and > 0")
        groups: dict[str, list[int]] = {}
        for k, c in enumerate(configs):
            groups.setdefault(group_key(c), []).append(k)
        x_all = feature_matrix(list(configs))
        self.coef_: dict[str, np.ndarray] = {}
        self.fit_range_: dict[str, dict[str, list[Any]]] = {}
        self.n_samples_: dict[str, int] = {}
        residuals: dict[str, np.ndarray] = {}
        rng = np.random.default_rng(self.seed)
        for key, idx in groups.items():
            ix = np.array(idx)
            x, y = x_all[ix], y_all[ix]
            self.coef_[key] = _fit_nnls(x, y)
            self.n_samples_[key] = len(ix)
            self.fit_range_[key] = _ranges([configs[k] for k in idx])
            residuals[key] = self._cv_log_residuals(x, y, rng)
        pooled = np.concatenate([np.zeros(0), *residuals.values()])
        self.log_residual_quantiles_: dict[str, tuple[float, float]] = {}
        alpha = (1.0 - self.interval) / 2.0
        for key, r in residuals.items():
            use = r if r.size >= MIN_GROUP_RESIDUALS or pooled.size == 0 else pooled
            if use.size == 0:
                use = np.array([-0.1, 0.1])  # one measurement: no spread known; say ±10 %
            lo, hi = np.quantile(use, [alpha, 1.0 - alpha])
            self.log_residual_quantiles_[key] = (float(min(lo, 0.0)), float(max(hi, 0.0)))
        return self

    def _cv_log_residuals(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """log(measured / predicted) for every point, predicted by a fit that did not see it."""
        n = len(y)
        folds = min(self.cv_folds, n)
        if folds < 2:
            return np.zeros(0)
        order = rng.permutation(n)
        out = np.zeros(n)
        for f in range(folds):
            test = order[f::folds]
            train = np.setdiff1d(order, test)
            coef = _fit_nnls(x[train], y[train])
            out[test] = np.log(y[test] / np.maximum(x[test] @ coef, 1e-12))
        return out

    # --------------------------------------------------------------------------------- predicting
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ProfileError("this cost model is not fitted yet: call fit() or load a profile")

    def coefficients(self, config: GruConfig) -> tuple[np.ndarray, str, bool]:
        """The coefficient vector for ``config``, its group, and whether the group had to be borrowed
        (thread count not calibrated: nearest calibrated thread count)."""
        self._check_fitted()
        key = group_key(config)
        if key in self.coef_:
            return self.coef_[key], key, False
        same = [k for k in self.coef_ if k.rsplit("/t", 1)[0] == key.rsplit("/t", 1)[0]]
        if not same:
            have = ", ".join(sorted(self.coef_))
            raise ProfileError(f"the profile has no calibration for {key.rsplit('/t', 1)[0]} "
                               f"(device/dtype/impl); it covers {have}: calibrate for it first")
        nearest = min(same, key=lambda k: abs(int(k.rsplit("/t", 1)[1]) - config.threads))
        return self.coef_[nearest], nearest, True

    def predict(self, configs: Iterable[GruConfig]) -> np.ndarray:
        """Predicted latency in seconds of each config (the closed form: all kernels in sequence)."""
        return np.array([self.predict_one(c) for c in configs])

    def predict_one(self, config: GruConfig) -> float:
        coef, _, _ = self.coefficients(config)
        return float(features(config) @ coef)

    def term_seconds(self, config: GruConfig) -> np.ndarray:
        """Seconds each feature term (``TERM_NAMES``) contributes to ``config``'s latency."""
        coef, _, _ = self.coefficients(config)
        return features(config) * coef

    def breakdown(self, config: GruConfig, term_seconds: np.ndarray | None = None) -> dict[str, float]:
        """Seconds per breakdown term (input projection, recurrent matmuls, pointwise gates, per-step
        and per-call overhead) and, for training, the backward's share of them as ``backward_s``.
        ``term_seconds`` saves recomputing :meth:`term_seconds` when the caller has it."""
        secs = self.term_seconds(config) if term_seconds is None else term_seconds
        forward, backward = _by_breakdown(secs)
        out = {name: forward[name] + backward[name] for name in BREAKDOWN_TERMS}
        out["backward_s"] = sum(backward.values())
        return out

    def extrapolation(self, config: GruConfig) -> dict[str, float]:
        """For each axis outside the fitted range: how far, as value/limit (or limit/value) ≥ 1."""
        _, key, borrowed = self.coefficients(config)
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
        """The prediction interval of ``config``'s latency, widened outside the fitted ranges."""
        _, key, _ = self.coefficients(config)
        lat = self.predict_one(config) if latency_s is None else latency_s
        lo, hi = self.log_residual_quantiles_[key]
        widen = 1.0 + sum(math.log2(r) for r in self.extrapolation(config).values())
        return lat * math.exp(lo * widen), lat * math.exp(hi * widen)

    def kernel_times(self, config: GruConfig) -> CallTimes:
        """Kernel-level durations of ``config`` for the simulator; their serial sum equals
        :meth:`predict_one`."""
        coef, _, _ = self.coefficients(config)
        layers = []
        for layer in range(config.num_layers):
            proj, step = layer_features(config, layer)
            proj_fwd, proj_bwd = _by_breakdown(proj * coef)
            step_fwd, step_bwd = _by_breakdown(step * coef)
            for direction in range(config.directions):
                layers.append(LayerTimes(
                    layer=layer,
                    direction=direction,
                    # The layer-direction's fixed costs (its call overhead bucket) run with its projection.
                    input_projection_s=proj_fwd["input_projection_s"] + proj_fwd["call_overhead_s"],
                    recurrent_matmul_per_step_s=step_fwd["recurrent_matmul_s"],
                    pointwise_per_step_s=step_fwd["pointwise_s"],
                    step_overhead_per_step_s=step_fwd["step_overhead_s"],
                    backward_per_step_s=sum(step_bwd.values()),
                    backward_input_projection_s=sum(proj_bwd.values()),
                    recurrent_weight_grad_s=0.0,
                ))
        call = float(coef[_CALL] + (coef[_BWD_CALL] if config.mode == "training" else 0.0))
        return CallTimes(config=config, layers=tuple(layers), call_overhead_s=call)

    # ------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state (no pickles)."""
        self._check_fitted()
        return {
            "settings": {"interval": self.interval, "cv_folds": self.cv_folds, "seed": self.seed},
            "terms": list(TERM_NAMES),
            "weight_knots_bytes": list(WEIGHT_KNOTS_BYTES),
            "groups": {k: {"coef": self.coef_[k].tolist(), "fit_range": self.fit_range_[k],
                           "n_samples": self.n_samples_[k],
                           "log_residual_quantiles": list(self.log_residual_quantiles_[k])}
                       for k in self.coef_},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GruCostModel":
        """Rebuild a fitted model from :meth:`to_dict`'s output."""
        if list(data.get("terms", [])) != list(TERM_NAMES):
            raise ProfileError("the profile's cost-model terms differ from this gru-sim's: "
                               "recalibrate with this version")
        model = cls(**data["settings"])
        model.coef_ = {k: np.array(g["coef"], dtype=float) for k, g in data["groups"].items()}
        model.fit_range_ = {k: g["fit_range"] for k, g in data["groups"].items()}
        model.n_samples_ = {k: int(g["n_samples"]) for k, g in data["groups"].items()}
        model.log_residual_quantiles_ = {k: tuple(g["log_residual_quantiles"]) for k, g in data["groups"].items()}
        return model


def _ranges(configs: Sequence[GruConfig]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {a: [min(getattr(c, a) for c in configs), max(getattr(c, a) for c in configs)]
                                 for a in AXES}
    out["bidirectional"] = sorted({c.bidirectional for c in configs})
    out["mode"] = sorted({c.mode for c in configs})
    return out

