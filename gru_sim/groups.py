"""A hardware group: the measurements and cost coefficients that belong together because they ran
with the same device, number format, implementation and thread count.

Profiles key their per-group data (coefficients, ranges, ceilings) by the group's text form
``device/dtype/impl/tN`` (e.g. ``cpu/float32/torch-gru/t1``); :class:`GroupKey` is that key as a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import DEVICES, DTYPES, IMPLS
from .errors import ConfigError


@dataclass(frozen=True, order=True)
class GroupKey:
    """The hardware group of a configuration; ``str()`` gives the profile's key."""

    device: str
    dtype: str
    impl: str
    threads: int

    def __post_init__(self) -> None:
        for name, value, choices in (("device", self.device, DEVICES), ("dtype", self.dtype, DTYPES),
                                     ("impl", self.impl, IMPLS)):
            if value not in choices:
                raise ConfigError(f"group {name}(={value!r}) must be one of {', '.join(choices)}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"group threads(={self.threads!r}) must be a whole number >= 1")

    @classmethod
    def of(cls, config: Any) -> "GroupKey":
        """The group of a :class:`~gru_sim.config.GruConfig` (anything with those four fields)."""
        return cls(config.device, config.dtype, config.impl, config.threads)

    @classmethod
    def parse(cls, text: str) -> "GroupKey":
        """Read ``device/dtype/impl/tN`` back (raises ConfigError naming the text)."""
        parts = text.split("/")
        if len(parts) != 4 or not parts[3].startswith("t") or not parts[3][1:].isdigit():
            raise ConfigError(f"group {text!r} is not of the form device/dtype/impl/tN "
                              "(e.g. cpu/float32/torch-gru/t1)")
        return cls(parts[0], parts[1], parts[2], int(parts[3][1:]))

    def with_threads(self, threads: int) -> "GroupKey":
        """The same device, dtype and implementation at ``threads`` threads."""
        return GroupKey(self.device, self.dtype, self.impl, threads)

    def __str__(self) -> str:
        return f"{self.device}/{self.dtype}/{self.impl}/t{self.threads}"
