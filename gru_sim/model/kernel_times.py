"""Kernel-level durations of one GRU call: what the cost model hands the simulator.

Durations are seconds per kernel on the device the profile was calibrated on. A call is, per layer
and direction, one input-projection GEMM followed by ``seq_len`` recurrent steps (recurrent matmul +
pointwise gates + the framework's per-step overhead); training adds, in reverse order, the backward
of each step and of the input projection, and the weight-gradient work.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import GruConfig


@dataclass(frozen=True)
class LayerTimes:
    """Durations for one (layer, direction). ``*_per_step_s`` are for one time step."""

    layer: int
    direction: int
    input_projection_s: float
    recurrent_matmul_per_step_s: float
    pointwise_per_step_s: float
    step_overhead_per_step_s: float
    # Training only (0.0 for inference): backward of one step (data-gradient matmul, gate backward and
    # overhead), backward of the input projection (weight gradient, and data gradient for layer > 0),
    # and the recurrent weight-gradient GEMM for all steps.
    backward_per_step_s: float = 0.0
    backward_input_projection_s: float = 0.0
    recurrent_weight_grad_s: float = 0.0

    @property
    def step_s(self) -> float:
        """One forward time step: recurrent matmul + gates + overhead."""
        return self.recurrent_matmul_per_step_s + self.pointwise_per_step_s + self.step_overhead_per_step_s


@dataclass(frozen=True)
class CallTimes:
    """All kernel durations of one call of ``config``, plus the fixed per-call overhead."""

    config: GruConfig
    layers: tuple[LayerTimes, ...]
    call_overhead_s: float

    def forward_s(self) -> float:
        """Forward time with every kernel run one after another."""
        t = self.config.seq_len
        return sum(lt.input_projection_s + t * lt.step_s for lt in self.layers)

    def backward_s(self) -> float:
        """Backward time with every kernel run one after another (0 for inference)."""
        t = self.config.seq_len
        return sum(lt.backward_input_projection_s + t * lt.backward_per_step_s + lt.recurrent_weight_grad_s
                   for lt in self.layers)

    def serial_s(self) -> float:
        """Latency when all kernels run one after another: the closed form of the cost model."""
        return self.call_overhead_s + self.forward_s() + self.backward_s()
