"""A hardware kind's :class:`ReplicaModel` from a calibration profile's predictor: service times from
the cost model, a replica's memory from the ``predict`` record's ``memory_bytes.total`` (weights,
inputs and activations, all live while a batch runs)."""

from __future__ import annotations

from typing import Callable, Protocol

from ..accounting import account_call
from ..config import GruConfig
from ..predict import Prediction
from .evaluate import ReplicaModel

ConfigFor = Callable[[int, int, int], GruConfig]
"""``config_for(batch, seq_len, threads)``: the inference call a replica runs for such a batch."""


class Pricer(Protocol):
    """What the plan asks of a predictor (``gru_sim.predict.Predictor``)."""

    def service_time_s(self, config: GruConfig) -> float: ...

    def predict(self, config: GruConfig) -> Prediction: ...


def replica_model(predictor: Pricer, config_for: ConfigFor) -> ReplicaModel:
    """The :class:`ReplicaModel` of one hardware kind, priced by ``predictor``."""

    def service_time_s(batch: int, seq_len: int, threads: int) -> float:
        return float(predictor.service_time_s(config_for(batch, seq_len, threads)))

    def memory_bytes(batch: int, seq_len: int) -> int:
        return int(predictor.predict(config_for(batch, seq_len, 1)).memory_bytes["total"])

    return ReplicaModel(service_time_s=service_time_s, memory_bytes=memory_bytes,
                        weight_bytes=int(account_call(config_for(1, 1, 1)).weight_bytes))
