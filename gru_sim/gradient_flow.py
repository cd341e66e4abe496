"""Gradient flow through time: whether a GRU trained on sequences of length T can learn from its early steps.

Backpropagation through time multiplies the gradient of a loss on the last step by one Jacobian
∂h_t/∂h_{t−1} per step back. When those products shrink, the gradient reaching step 0 is too small to
teach the model anything about it (vanishing gradients); when they grow, training diverges (exploding
gradients) — Bengio, Simard & Frasconi, "Learning long-term dependencies with gradient descent is
difficult", IEEE Trans. Neural Networks 5(2), 1994; Pascanu, Mikolov & Bengio, "On the difficulty of
training recurrent neural networks", ICML 2013.

This module holds what is measured (:class:`GradientSetup`, :class:`GradientRun`,
:class:`GradientMeasurement`: plain data) and the analysis of the measured norms (the decay per step,
the memory horizon, the record of ``gru-sim gradients --json`` and a plain sentence). It needs NumPy
only; the measuring itself, with torch, is :func:`gru_sim.measure.gradients.measure_gradients`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import DTYPES
from .errors import ConfigError

# Named initialisations; any other value of ``init`` is the path of a state_dict file.
INITS = ("default", "orthogonal")
# The contract's horizon: steps back until the gradient norm has fallen this many times.
HORIZON_FALL = 1000.0
# The contract's saturated update gate: z above this keeps the previous state almost unchanged, so
# that the gradient passes the step almost unchanged too.
SATURATED_Z = 0.95
# Dtypes whose forward error is measured by default (the half-precision formats a user might deploy).
ERROR_DTYPES = ("float16", "bfloat16")


@dataclass(frozen=True)
class GradientSetup:
    """What to measure: a GRU (sizes in elements), its weights and the sequence lengths to try.

    ``init`` is ``default`` (PyTorch's U(−1/√H, 1/√H)), ``orthogonal`` (each gate's block of the
    recurrent weights W_hh orthogonal, the rest PyTorch's default) or the path of a ``state_dict``
    file of an ``nn.GRU`` (or of a module holding one). ``inputs`` random standard-normal sequences are
    tried (the batch of one call); ``dtype`` is the format the gradients are computed in;
    ``error_dtypes`` the formats whose forward error against the float64 reference is measured.
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"
    init: str = "default"
    seq_lens: tuple[int, ...] = (100,)
    inputs: int = 4
    seed: int = 0
    threads: int = 1
    error_dtypes: tuple[str, ...] = ERROR_DTYPES

    def __post_init__(self) -> None:
        for name in ("input_size", "hidden_size", "num_layers", "inputs", "threads"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed(={self.seed!r}) must be a whole number")
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional(={self.bidirectional!r}) must be true or false")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype(={self.dtype!r}) must be one of {', '.join(DTYPES)}")
        for dtype in self.error_dtypes:
            if dtype not in DTYPES:
                raise ConfigError(f"error dtype(={dtype!r}) must be one of {', '.join(DTYPES)}")
        if not self.seq_lens:
            raise ConfigError("seq_lens is empty: give at least one sequence length")
        for t in self.seq_lens:
            _check_positive_int("seq_len", t)
        if not isinstance(self.init, str) or not self.init:
            raise ConfigError(f"init(={self.init!r}) must be default, orthogonal or a state_dict file")
        if self.init not in INITS and not Path(self.init).is_file():
            raise ConfigError(f"init(={self.init}) is neither {' nor '.join(INITS)} nor a state_dict file "
                              "that exists")

    @property
    def directions(self) -> int:
        """1 for a unidirectional GRU, 2 for a bidirectional one."""
        return 2 if self.bidirectional else 1

    @property
    def sorted_seq_lens(self) -> tuple[int, ...]:
        """The sequence lengths, each once, shortest first."""
        return tuple(sorted(set(self.seq_lens)))

    def to_dict(self) -> dict[str, Any]:
        """The setup as the records write it (``batch`` is the number of inputs tried)."""
        return {"batch": self.inputs, "seq_len": max(self.seq_lens), "input_size": self.input_size,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bidirectional": self.bidirectional, "dtype": self.dtype, "init": self.init,
                "device": "cpu", "threads": self.threads, "seed": self.seed}


@dataclass(frozen=True)
class GradientRun:
    """What one sequence length gave.

    ``grad_norm_by_steps_back[k]`` is ‖∂L/∂h_{T−k}‖ for k = 0 … T, averaged over the inputs tried,
    where L is a loss on the last step's output and h_t holds every layer's (and direction's) state
    after step t (h_0: the initial state; the reverse direction's initial state, which comes after
    step T, is left out). Norms are dimensionless (the loss is a unit-norm projection of the output).
    ``update_gate_saturation`` is the share of update-gate values z > 0.95 over every step, unit,
    layer and input; ``update_gate_mean`` their mean. ``forward_rel_error`` maps a dtype to
    max|y − y_ref| / max|y_ref| of the forward output of length T against the float64 reference.
    """

    seq_len: int
    grad_norm_by_steps_back: tuple[float, ...]
    update_gate_saturation: float
    update_gate_mean: float
    forward_rel_error: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GradientMeasurement:
    """A setup measured on this machine: one run per sequence length, shortest first."""

    setup: GradientSetup
    runs: tuple[GradientRun, ...]
    wall_s: float                    # time the whole measurement took, in seconds
    fingerprint: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ analysis
def decay_per_step(grad_norm_by_steps_back: Sequence[float]) -> float | None:
    """The factor by which the gradient norm changes per step back (< 1 vanishing, > 1 exploding).

    exp of the least-squares slope of log‖∂L/∂h_{T−k}‖ against k. Norms that are zero (underflowed)
    or not finite (overflowed) are left out; None when fewer than two norms remain.
    """
    norms = np.asarray(grad_norm_by_steps_back, dtype=np.float64)
    steps_back = np.arange(norms.size, dtype=np.float64)
    usable = np.isfinite(norms) & (norms > 0)
    if np.count_nonzero(usable) < 2:
        return None
    slope, _intercept = np.polyfit(steps_back[usable], np.log(norms[usable]), 1)
    return float(np.exp(slope))


def horizon_steps(grad_norm_by_steps_back: Sequence[float], fall: float = HORIZON_FALL) -> int | None:
    """Steps back until the gradient norm first falls ``fall`` times below its value at the last step;
    None when it never does within the sequence (or when the last step's norm is not positive)."""
    norms = np.asarray(grad_norm_by_steps_back, dtype=np.float64)
    if norms.size == 0 or not (np.isfinite(norms[0]) and norms[0] > 0):
        return None
    fallen = np.flatnonzero(norms <= norms[0] / fall)
    return int(fallen[0]) if fallen.size else None


def step0_ratio(grad_norm_by_steps_back: Sequence[float]) -> float | None:
    """‖∂L/∂h_0‖ / ‖∂L/∂h_T‖: how much of the last step's gradient reaches the first step."""
    first, last = float(grad_norm_by_steps_back[0]), float(grad_norm_by_steps_back[-1])
    return last / first if first > 0 and np.isfinite(first) else None


def run_record(run: GradientRun, dtype: str = "float32") -> dict[str, Any]:
    """One sequence length's figures, with the contract's keys (and a few more)."""
    norms = list(run.grad_norm_by_steps_back)
    return {
        "seq_len": run.seq_len,
        "grad_norm_by_steps_back": norms,
        "decay_per_step": decay_per_step(norms),
        "horizon_steps": horizon_steps(norms),
        "update_gate_saturation": run.update_gate_saturation,
        "update_gate_mean": run.update_gate_mean,
        "step0_grad_ratio": step0_ratio(norms),
        "forward_rel_error": dict(run.forward_rel_error),
        "summary": summary_sentence(run, dtype),
    }


def gradient_record(measurement: GradientMeasurement) -> dict[str, Any]:
    """The ``gru-sim gradients --json`` object (CONTRACT.md, "Gradient flow").

    The contract's keys (``config``, ``grad_norm_by_steps_back``, ``decay_per_step``,
    ``horizon_steps``, ``update_gate_saturation``) describe the longest sequence measured;
    ``by_seq_len`` repeats them for every length, shortest first. A norm or error that overflowed
    is null.
    """
    dtype = measurement.setup.dtype
    per_length = [run_record(run, dtype) for run in measurement.runs]
    longest = max(per_length, key=lambda r: r["seq_len"])
    return _json_safe({
        "config": measurement.setup.to_dict(),
        **{k: v for k, v in longest.items() if k != "seq_len"},
        "by_seq_len": per_length,
        "wall_s": measurement.wall_s,
        "fingerprint": dict(measurement.fingerprint),
    })


def _json_safe(value: Any) -> Any:
    """``value`` with every infinite or NaN float (an overflowed norm or error) as None: JSON has no inf."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------ sentences
def fmt_ratio(ratio: float) -> str:
    """``1.2e-9`` → ``1e-9``; ``0.43`` → ``0.43``; ``3.2e5`` → ``3e+5``; ``0`` → ``0 (underflow)``: a
    ratio for a sentence or a table."""
    if ratio == 0:
        return "0 (underflow)"
    if 0.01 <= ratio < 100:
        return f"{ratio:.2g}"
    mantissa, exponent = f"{ratio:.0e}".split("e")
    return f"{mantissa}e{int(exponent):+d}" if ratio >= 100 else f"{mantissa}e{int(exponent)}"


def fmt_power_of_ten(log10_value: float) -> str:
    """``-290.3`` → ``5e-291``: 10**log10_value for a sentence, even far below float64's range."""
    exponent = int(np.floor(log10_value))
    mantissa = 10 ** (log10_value - exponent)
    if round(mantissa) >= 10:
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.0f}e{exponent}"


def summary_sentence(run: GradientRun, dtype: str = "float32") -> str:
    """What the gradient flow at this length means for training, in one or two plain sentences."""
    norms = run.grad_norm_by_steps_back
    t_text = f"T = {run.seq_len:,}"
    ratio = step0_ratio(norms)
    horizon = horizon_steps(norms)
    saturated = f"{run.update_gate_saturation:.0%} of update gates are saturated (z > {SATURATED_Z})"
    if ratio is None:
        return f"the gradient of the last step is not finite at {t_text} in {dtype}: it overflows"
    if not np.isfinite(ratio):
        return (f"gradients from step 0 overflow {dtype} at {t_text}: they explode; clip them or scale "
                "the recurrent weights down")
    if horizon is not None:
        decay = decay_per_step(norms)
        if ratio > 0:
            reached = f"are {fmt_ratio(ratio)} of those from the last step at {t_text}"
        elif decay is not None and 0 < decay < 1:
            reached = (f"are about {fmt_power_of_ten(run.seq_len * np.log10(decay))} of those from the last "
                       f"step at {t_text} (at the fitted {decay:.3g} per step; in {dtype} they underflow to zero)")
        else:
            reached = f"underflow to zero in {dtype} at {t_text}"
        few = ", too few to carry them further" if run.update_gate_saturation < 0.5 else ""
        return (f"gradients from step 0 {reached}, and fall 1,000× within {horizon:,} steps: "
                "the model cannot learn dependencies that long without truncation or a different "
                f"initialisation. {saturated[0].upper()}{saturated[1:]}{few}.")
    if ratio > HORIZON_FALL:
        return (f"gradients from step 0 are {fmt_ratio(ratio)} times those from the last step at {t_text}: "
                "they explode; clip gradients or scale the recurrent weights down")
    return (f"gradients from step 0 are {fmt_ratio(ratio)} of those from the last step at {t_text}: "
            f"they reach the whole sequence. {saturated[0].upper()}{saturated[1:]}.")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}(={value!r}) must be a whole number")
    if value <= 0:
        raise ConfigError(f"{name}(={value}) must be > 0")
