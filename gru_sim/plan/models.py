"""A hardware kind's :class:`ReplicaModel` from a calibration profile's predictor: service times from
the cost model, with the upper end of their 90% prediction interval (``service_time_margin:
interval``), and a replica's memory from the ``predict`` record's ``memory_bytes.total`` (weights,
inputs and activations, all live while a batch runs)."""

from __future__ import annotations

from typing import Callable, Protocol

from ..accounting import account_call
from ..config import GruConfig
from ..model.library import FOREIGN_INTERVAL_FACTOR
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

    def service_time_upper_s(batch: int, seq_len: int, threads: int) -> float:
        return upper_service_time_s(predictor, config_for(batch, seq_len, threads))

    def memory_bytes(batch: int, seq_len: int) -> int:
        return int(predictor.predict(config_for(batch, seq_len, 1)).memory_bytes["total"])

    return ReplicaModel(service_time_s=service_time_s, memory_bytes=memory_bytes,
                        weight_bytes=int(account_call(config_for(1, 1, 1)).weight_bytes),
                        service_time_upper_s=service_time_upper_s)


def upper_service_time_s(predictor: Pricer, config: GruConfig) -> float:
    """The upper end of the 90% prediction interval of ``config``'s latency: ``predict``'s
    ``latency_interval_s[1]``. A ``gru_sim.predict.Predictor`` answers it from its cost model's
    ``interval_s`` around the point prediction the plan prices with (``service_time_s``; widened, as
    ``predict`` widens it, for another machine's profile) without building the whole record, a sixth of
    ``predict``'s time; any other pricer through ``predict``."""
    model = getattr(predictor, "model", None)
    if model is not None and hasattr(model, "interval_s") and hasattr(predictor, "mismatch"):
        hi = float(model.interval_s(config, float(predictor.service_time_s(config)))[1])
        return hi * FOREIGN_INTERVAL_FACTOR if getattr(predictor, "mismatch") else hi
    return float(predictor.predict(config).latency_interval_s[1])
