"""The hardware-group key: the text profiles use, read back, and refused when malformed."""

from __future__ import annotations

import pytest

from gru_sim.config import GruConfig
from gru_sim.errors import ConfigError
from gru_sim.groups import GroupKey


def test_a_config_s_group_reads_as_the_profiles_key() -> None:
    config = GruConfig(batch=1, seq_len=2, input_size=3, hidden_size=4, dtype="float64", threads=2)
    assert str(GroupKey.of(config)) == "cpu/float64/torch-gru/t2"


def test_the_key_parses_back_to_the_same_group() -> None:
    key = GroupKey("cuda", "bfloat16", "torch-gru-cell", 16)
    assert GroupKey.parse(str(key)) == key


@pytest.mark.parametrize("text", ["cpu/float32/torch-gru", "cpu/float32/torch-gru/1", "cpu/float32/torch-gru/tx",
                                  "tpu/float32/torch-gru/t1", "cpu/float32/torch-gru/t0"])
def test_a_malformed_key_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ConfigError):
        GroupKey.parse(text)


def test_groups_sort_by_device_dtype_impl_then_threads() -> None:
    keys = [GroupKey.parse(k) for k in ("cpu/float32/torch-gru/t2", "cpu/float32/torch-gru/t1",
                                        "cpu/float32/numpy-reference/t4")]
    assert [str(k) for k in sorted(keys)] == ["cpu/float32/numpy-reference/t4", "cpu/float32/torch-gru/t1",
                                              "cpu/float32/torch-gru/t2"]
