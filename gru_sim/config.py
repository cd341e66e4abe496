"""What one GRU call is: its shape, what it computes (inference or training), in which number format,
with which implementation, on which device and with how many threads.

A :class:`GruConfig` is frozen and checked once, where it is made; every stage after that trusts it.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

MODES = ("inference", "training")
DTYPES = ("float32", "float16", "bfloat16", "float64")
IMPLS = ("torch-gru", "torch-gru-cell", "numpy-reference")
DEVICES = ("cpu", "cuda")
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
CPU_DTYPES = ("float32", "float64")
# Number of gates of a GRU cell: reset r, update z, new n (torch's order r|z|n).
GATES = 3

INT_FIELDS = ("batch", "seq_len", "input_size", "hidden_size", "num_layers", "threads")


@dataclass(frozen=True)
class GruConfig:
    """One GRU call. Sizes are element counts; ``threads`` is the intra-op thread count."""

    batch: int
    seq_len: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    mode: str = "inference"
    dtype: str = "float32"
    impl: str = "torch-gru"
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}(={value!r}) must be a whole number")
            if value <= 0:
                raise ConfigError(f"{name}(={value}) must be > 0")
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional(={self.bidirectional!r}) must be true or false")
        _check_choice("mode", self.mode, MODES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("impl", self.impl, IMPLS)
        _check_choice("device", self.device, DEVICES)
        for name, rule in broken_rules(self.device, self.dtype, self.impl, self.mode):
            raise ConfigError(f"{name}(={getattr(self, name)}) is not possible: {rule}")

    @property
    def directions(self) -> int:
        """1 for a unidirectional GRU, 2 for a bidirectional one."""
        return 2 if self.bidirectional else 1

    @property
    def dtype_bytes(self) -> int:
        """Bytes of one element of ``dtype``."""
        return DTYPE_BYTES[self.dtype]

    @property
    def tokens(self) -> int:
        """Sequence elements processed by one call: batch * seq_len."""
        return self.batch * self.seq_len

    def layer_input_size(self, layer: int) -> int:
        """Input features of ``layer`` (0-based): input_size for the first, directions*H after."""
        return self.input_size if layer == 0 else self.directions * self.hidden_size

    def to_dict(self) -> dict[str, Any]:
        """The config as the JSON records write it."""
        return asdict(self)

    def with_(self, **changes: Any) -> "GruConfig":
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GruConfig":
        """Build from a mapping such as a CSV row or JSON object; unknown keys are refused.

        Accepts ``layers`` as an alias of ``num_layers`` (the command line's name) and strings for
        numbers and booleans (as a CSV gives them).
        """
        known = {f.name for f in fields(cls)}
        data: dict[str, Any] = {}
        for key, raw in values.items():
            name = key.strip().replace("-", "_")
            if name == "layers":
                name = "num_layers"
            if name not in known:
                raise ConfigError(f"unknown field {key!r}: expected some of {', '.join(sorted(known))}")
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                continue
            data[name] = _coerce(name, raw)
        missing = [n for n in ("batch", "seq_len", "input_size", "hidden_size") if n not in data]
        if missing:
            raise ConfigError(f"missing field(s): {', '.join(missing)}")
        return cls(**data)


def read_configs_csv(path: str | Path, defaults: Mapping[str, Any] | None = None) -> list[GruConfig]:
    """Configs from a CSV whose columns are shape-flag names (``batch``, ``seq_len``, ``layers`` or
    ``num_layers``, ...); empty cells and missing columns take ``defaults``, then GruConfig's own.
    A bad row is an error naming the file and line."""
    return [c for _, c in read_named_configs_csv(path, defaults, name_column=None)]


def read_named_configs_csv(path: str | Path, defaults: Mapping[str, Any] | None = None,
                           name_column: str | None = "name", what: str = "configurations"
                           ) -> list[tuple[str, GruConfig]]:
    """``(name, config)`` for every row of a CSV of shape flags (see :func:`read_configs_csv`) whose
    ``name_column`` names each row (``shape<n>`` where its cell is empty; with ``name_column`` None
    there is none, and a ``name`` column is an unknown field). ``what`` names the file's content in
    the error a file that cannot be read gives."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror}") from None
    out = []
    for line, row in enumerate(rows, start=2):
        given = {k: v for k, v in row.items() if k is not None and k != name_column and v not in (None, "")}
        try:
            config = GruConfig.from_mapping({**(defaults or {}), **given})
        except ConfigError as err:
            raise ConfigError(f"{path}:{line}: {err}") from None
        out.append(((row.get(name_column) if name_column else None) or f"shape{line - 1}", config))
    if not out:
        raise ConfigError(f"{path}: no {what} (a header row and at least one row)")
    return out


def broken_rules(device: str, dtype: str, impl: str, mode: str = "inference") -> list[tuple[str, str]]:
    """The rules a combination of device, dtype, impl and mode breaks, as ``(field, rule)``: the one
    place these rules live (GruConfig and the scenario loader both ask here)."""
    out = []
    if device == "cpu" and dtype not in CPU_DTYPES:
        out.append(("dtype", f"cpu runs {' or '.join(CPU_DTYPES)} only (or use device: cuda)"))
    if impl == "numpy-reference" and device != "cpu":
        out.append(("impl", "numpy-reference runs on cpu only"))
    if impl == "numpy-reference" and mode != "inference":
        out.append(("mode", "numpy-reference has no backward pass"))
    return out


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}(={value!r}) must be one of {', '.join(choices)}")


def _coerce(name: str, raw: Any) -> Any:
    if name in INT_FIELDS:
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                raise ConfigError(f"{name}(={raw!r}) must be a whole number") from None
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    if name == "bidirectional" and isinstance(raw, str):
        text = raw.strip().lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
        raise ConfigError(f"bidirectional(={raw!r}) must be true or false")
    if isinstance(raw, str):
        return raw.strip()
    return raw
