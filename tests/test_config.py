"""A GruConfig is checked once, where it is made, and a bad one is refused with the bad value named."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gru_sim.config import DTYPES, IMPLS, MODES, GruConfig
from gru_sim.errors import ConfigError, GruSimError

SHAPE = {"batch": 2, "seq_len": 3, "input_size": 4, "hidden_size": 5}
SIZE_FIELDS = ["batch", "seq_len", "input_size", "hidden_size", "num_layers", "threads"]


@pytest.mark.parametrize("name", SIZE_FIELDS)
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_size_refused_naming_field_and_value(name: str, value: int) -> None:
    with pytest.raises(ConfigError) as err:
        GruConfig(**{**SHAPE, name: value})
    assert name in str(err.value)
    assert str(value) in str(err.value)


@pytest.mark.parametrize("value", [2.5, "3", True, None])
def test_size_that_is_not_a_whole_number_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="batch") as err:
        GruConfig(**{**SHAPE, "batch": value})
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("name,value", [("dtype", "float8"), ("impl", "cudnn-gru"), ("mode", "train"),
                                        ("device", "tpu")])
def test_unknown_choice_refused_naming_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        GruConfig(**SHAPE, **{name: value})
    assert name in str(err.value)
    assert value in str(err.value)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cpu_refused(dtype: str) -> None:
    with pytest.raises(ConfigError, match=dtype):
        GruConfig(**SHAPE, dtype=dtype, device="cpu")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_every_dtype_accepted_on_cuda(dtype: str) -> None:
    # Checking what the machine has is measure's job (it raises DeviceUnavailableError), not config's.
    assert GruConfig(**SHAPE, dtype=dtype, device="cuda").dtype == dtype


def test_numpy_reference_training_refused() -> None:
    with pytest.raises(ConfigError, match="numpy-reference"):
        GruConfig(**SHAPE, impl="numpy-reference", mode="training")


def test_numpy_reference_on_cuda_refused() -> None:
    with pytest.raises(ConfigError, match="numpy-reference"):
        GruConfig(**SHAPE, impl="numpy-reference", device="cuda")


def test_bidirectional_must_be_bool() -> None:
    with pytest.raises(ConfigError, match="'yes'"):
        GruConfig(**SHAPE, bidirectional="yes")  # type: ignore[arg-type]


def test_config_error_is_a_gru_sim_error_with_exit_code_2() -> None:
    assert issubclass(ConfigError, GruSimError)
    assert ConfigError.exit_code == 2


def test_config_is_frozen() -> None:
    config = GruConfig(**SHAPE)
    with pytest.raises(AttributeError):
        config.batch = 7  # type: ignore[misc]


def test_with_checks_the_changed_config_again() -> None:
    with pytest.raises(ConfigError, match="hidden_size"):
        GruConfig(**SHAPE).with_(hidden_size=0)


def test_derived_sizes() -> None:
    config = GruConfig(**SHAPE, num_layers=3, bidirectional=True, dtype="float64")
    assert config.directions == 2
    assert config.dtype_bytes == 8
    assert config.tokens == SHAPE["batch"] * SHAPE["seq_len"]
    assert config.layer_input_size(0) == SHAPE["input_size"]
    assert config.layer_input_size(2) == 2 * SHAPE["hidden_size"]


# --------------------------------------------------------------------------------------- from_mapping
CSV_TEXT = """batch,seq_len,input_size,hidden_size,layers,bidirectional,mode,dtype,impl,device,threads
8, 16 ,32,64,2,true,training,float64,torch-gru-cell,cpu,2
1,1,1,1,,False,,,,,
"""


def test_from_mapping_reads_csv_rows_of_strings() -> None:
    rows = list(csv.DictReader(io.StringIO(CSV_TEXT)))
    assert GruConfig.from_mapping(rows[0]) == GruConfig(
        batch=8, seq_len=16, input_size=32, hidden_size=64, num_layers=2, bidirectional=True,
        mode="training", dtype="float64", impl="torch-gru-cell", device="cpu", threads=2)


def test_from_mapping_empty_cells_take_defaults() -> None:
    rows = list(csv.DictReader(io.StringIO(CSV_TEXT)))
    assert GruConfig.from_mapping(rows[1]) == GruConfig(batch=1, seq_len=1, input_size=1, hidden_size=1)


def test_from_mapping_accepts_flag_style_names() -> None:
    values = {"batch": "4", "seq-len": "8", "input-size": "16", "hidden-size": "32", "layers": "3"}
    config = GruConfig.from_mapping(values)
    assert (config.seq_len, config.input_size, config.hidden_size, config.num_layers) == (8, 16, 32, 3)


@pytest.mark.parametrize("text,expected", [("1", True), ("yes", True), ("TRUE", True), ("0", False),
                                           ("no", False), ("false", False)])
def test_from_mapping_reads_booleans_as_csv_writes_them(text: str, expected: bool) -> None:
    assert GruConfig.from_mapping({**SHAPE, "bidirectional": text}).bidirectional is expected


def test_from_mapping_refuses_unknown_key_naming_it() -> None:
    with pytest.raises(ConfigError, match="hiden_size"):
        GruConfig.from_mapping({**SHAPE, "hiden_size": "5"})


def test_from_mapping_refuses_missing_shape_field_naming_it() -> None:
    values = {k: str(v) for k, v in SHAPE.items() if k != "seq_len"}
    with pytest.raises(ConfigError, match="seq_len"):
        GruConfig.from_mapping(values)


@pytest.mark.parametrize("name,text", [("batch", "eight"), ("hidden_size", "2.5"), ("batch", "0"),
                                       ("bidirectional", "maybe"), ("dtype", "float8")])
def test_from_mapping_refuses_bad_string_naming_it(name: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        GruConfig.from_mapping({**{k: str(v) for k, v in SHAPE.items()}, name: text})
    assert name in str(err.value)
    assert text in str(err.value)


configs = st.builds(
    GruConfig,
    batch=st.integers(1, 512), seq_len=st.integers(1, 4096), input_size=st.integers(1, 4096),
    hidden_size=st.integers(1, 4096), num_layers=st.integers(1, 8), bidirectional=st.booleans(),
    mode=st.sampled_from(MODES), dtype=st.sampled_from(["float32", "float64"]),
    impl=st.sampled_from([i for i in IMPLS if i != "numpy-reference"]), threads=st.integers(1, 64))


@given(config=configs)
def test_from_mapping_round_trips_to_dict(config: GruConfig) -> None:
    assert GruConfig.from_mapping(config.to_dict()) == config


@given(config=configs)
def test_from_mapping_round_trips_to_dict_as_strings(config: GruConfig) -> None:
    assert GruConfig.from_mapping({k: str(v) for k, v in config.to_dict().items()}) == config


def test_every_listed_dtype_has_a_size() -> None:
    assert all(GruConfig(**SHAPE, dtype=d, device="cuda").dtype_bytes in (2, 4, 8) for d in DTYPES)
