"""measure_gru, its kernels, its fingerprint and ``gru-sim measure``: real kernels, kept tiny."""

from __future__ import annotations

import builtins
import json
import os
import platform
from typing import Any, Callable

import numpy as np
import pytest
import torch

from gru_sim.config import GruConfig
from gru_sim.errors import DeviceUnavailableError, OutOfMemoryError
from gru_sim.measure import measure_gru
from gru_sim.measure import run as run_module
from gru_sim.measure.fingerprint import differences, fingerprint
from gru_sim.measure.kernels import build_kernel
from gru_sim.measure.timing import TimingPolicy, TimingResult

pytestmark = pytest.mark.usefixtures("restore_threads")

# The record of ``measure --json`` (CONTRACT.md): the keys every record has, then measure's own.
CONTRACT_KEYS = ["config", "latency_s", "throughput_seq_per_s", "throughput_tokens_per_s",
                 "peak_memory_bytes", "samples_s", "latency_iqr_s", "first_call_s", "noisy",
                 "max_rel_error", "fingerprint"]
CONFIG_KEYS = ["batch", "seq_len", "input_size", "hidden_size", "num_layers", "bidirectional", "mode",
               "dtype", "impl", "device", "threads"]
FINGERPRINT_KEYS = ["device", "cpu_model", "physical_cores", "logical_cores", "threads", "torch", "blas",
                    "openmp"]
CUDA_FINGERPRINT_KEYS = ["gpu_name", "gpu_sm_count", "gpu_memory_bytes", "driver", "cuda", "cudnn",
                         "cudnn_benchmark", "tf32_matmul", "tf32_cudnn"]
IMPLS = ["torch-gru", "torch-gru-cell", "numpy-reference"]
# Max relative error against the float64 reference: float32 rounding over a few steps, and float64
# differing from the reference only in summation order.
FLOAT32_TOL = 1e-5
FLOAT64_TOL = 1e-13

HAS_CUDA = torch.cuda.is_available()


def _config(shape: dict[str, int], **changes: object) -> GruConfig:
    return GruConfig(**shape, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- the record
@pytest.fixture(scope="module")
def tiny_record(quick_policy: TimingPolicy) -> dict[str, Any]:
    """One full measurement of a tiny shape, memory probe included, as its JSON record (made once:
    the memory probe is a subprocess)."""
    before = torch.get_num_threads()
    record = measure_gru(GruConfig(batch=2, seq_len=3, input_size=4, hidden_size=5), policy=quick_policy,
                         seed=0).to_record()
    torch.set_num_threads(before)
    return record


@pytest.mark.slow
def test_record_has_every_contract_key(tiny_record: dict[str, Any]) -> None:
    assert [k for k in CONTRACT_KEYS if k not in tiny_record] == []
    assert [k for k in CONFIG_KEYS if k not in tiny_record["config"]] == []


@pytest.mark.slow
def test_record_is_json(tiny_record: dict[str, Any]) -> None:
    assert json.loads(json.dumps(tiny_record)) == tiny_record


@pytest.mark.slow
def test_record_peak_memory_is_a_byte_count(tiny_record: dict[str, Any]) -> None:
    assert isinstance(tiny_record["peak_memory_bytes"], int)
    assert tiny_record["peak_memory_bytes"] >= 0


@pytest.mark.slow
def test_throughput_is_batch_and_tokens_over_latency(tiny_record: dict[str, Any]) -> None:
    latency, config = tiny_record["latency_s"], tiny_record["config"]
    assert tiny_record["throughput_seq_per_s"] == pytest.approx(config["batch"] / latency)
    assert tiny_record["throughput_tokens_per_s"] == pytest.approx(
        config["batch"] * config["seq_len"] / latency)


@pytest.mark.slow
def test_samples_positive_and_latency_is_their_median(
        tiny_record: dict[str, Any], quick_policy: TimingPolicy) -> None:
    samples = tiny_record["samples_s"]
    assert len(samples) >= quick_policy.min_samples
    assert all(s > 0 for s in samples)
    assert tiny_record["latency_s"] == pytest.approx(float(np.median(samples)))
    assert tiny_record["first_call_s"] > 0


@pytest.mark.slow
def test_measure_passes_harness_result_and_noisy_ratio_through(
        monkeypatch: pytest.MonkeyPatch, tiny_shape: dict[str, int]) -> None:
    # IQR/median is 0.12 here: noisy under the default 10%, not under a 15% policy.
    samples = (0.88, 0.94, 0.94, 0.94, 1.0, 1.06, 1.06, 1.06, 1.12)
    monkeypatch.setattr(run_module, "time_calls", lambda fn, timer, policy: TimingResult(
        first_call_s=3.0, samples_s=samples, loops=4, warmup_calls=2))
    config = _config(tiny_shape)
    default = measure_gru(config, probe_memory=False, check_error=False)
    lenient = measure_gru(config, TimingPolicy(noisy_iqr_ratio=0.15), probe_memory=False, check_error=False)
    assert (default.latency_s, default.first_call_s, default.samples_s, default.loops) == (
        1.0, 3.0, samples, 4)
    assert default.latency_iqr_s == pytest.approx(0.12)
    assert default.noisy is True
    assert lenient.noisy is False


# ------------------------------------------------------------------------- implementations, error
@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype,tol", [("float32", FLOAT32_TOL), ("float64", FLOAT64_TOL)])
def test_max_rel_error_small_for_each_impl(
        impl: str, dtype: str, tol: float, tiny_shape: dict[str, int], quick_policy: TimingPolicy) -> None:
    m = measure_gru(_config(tiny_shape, impl=impl, dtype=dtype), policy=quick_policy, probe_memory=False)
    assert m.max_rel_error is not None
    assert 0 <= m.max_rel_error < tol
    assert m.latency_s > 0


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["torch-gru", "torch-gru-cell"])
def test_training_mode_measures_for_each_torch_impl(
        impl: str, tiny_shape: dict[str, int], quick_policy: TimingPolicy) -> None:
    config = _config(tiny_shape, impl=impl, mode="training", num_layers=2, bidirectional=True)
    record = measure_gru(config, policy=quick_policy, probe_memory=False).to_record()
    assert record["config"]["mode"] == "training"
    assert all(s > 0 for s in record["samples_s"])
    assert record["max_rel_error"] < FLOAT32_TOL


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (3, True)])
def test_impls_give_same_output_for_same_seed(
        num_layers: int, bidirectional: bool, tiny_shape: dict[str, int]) -> None:
    outputs = {impl: build_kernel(_config(tiny_shape, impl=impl, dtype="float64", num_layers=num_layers,
                                          bidirectional=bidirectional), seed=3).output()
               for impl in IMPLS}
    ref = outputs["numpy-reference"]
    for impl in IMPLS:
        assert outputs[impl].shape == ref.shape
        assert np.max(np.abs(outputs[impl] - ref)) <= FLOAT64_TOL * np.max(np.abs(ref)), impl


def test_impls_share_weights_and_inputs_for_same_seed(tiny_shape: dict[str, int]) -> None:
    kernels = [build_kernel(_config(tiny_shape, impl=impl), seed=5) for impl in IMPLS]
    for k in kernels[1:]:
        assert k.weights.keys() == kernels[0].weights.keys()
        assert all(np.array_equal(k.weights[n], kernels[0].weights[n]) for n in k.weights)
        assert np.array_equal(k.inputs, kernels[0].inputs)


def test_inputs_random_never_zero_and_seeded(tiny_shape: dict[str, int]) -> None:
    a, b, c = (build_kernel(_config(tiny_shape), seed=s).inputs for s in (0, 0, 1))
    assert np.all(a != 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("impl", ["torch-gru", "torch-gru-cell"])
def test_inference_call_runs_under_inference_mode(impl: str, tiny_shape: dict[str, int]) -> None:
    out = build_kernel(_config(tiny_shape, impl=impl)).call()
    assert isinstance(out, torch.Tensor) and out.is_inference()


@pytest.mark.parametrize("impl", ["torch-gru", "torch-gru-cell"])
def test_training_call_builds_a_graph_and_backpropagates(impl: str, tiny_shape: dict[str, int]) -> None:
    out = build_kernel(_config(tiny_shape, impl=impl, mode="training")).call()
    assert isinstance(out, torch.Tensor) and out.grad_fn is not None and not out.is_inference()


@pytest.mark.slow
def test_threads_set_recorded_and_restored(tiny_shape: dict[str, int], quick_policy: TimingPolicy) -> None:
    torch.set_num_threads(1)
    m = measure_gru(_config(tiny_shape, threads=2), policy=quick_policy, probe_memory=False,
                    check_error=False)
    assert m.fingerprint["threads"] == 2  # read from torch while measuring
    assert torch.get_num_threads() == 1  # the caller's setting is put back
    assert m.to_record()["config"]["threads"] == 2


# ----------------------------------------------------------------------------- refusals, in-process
@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_without_cuda_refused(tiny_shape: dict[str, int]) -> None:
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        measure_gru(_config(tiny_shape, device="cuda"), probe_memory=False)


def test_shape_too_big_for_memory_refused_before_building() -> None:
    config = GruConfig(batch=8, seq_len=16, input_size=64, hidden_size=200_000, num_layers=8)
    with pytest.raises(OutOfMemoryError, match="GiB"):
        measure_gru(config, probe_memory=False)


def test_shape_refused_when_little_memory_is_available(
        monkeypatch: pytest.MonkeyPatch, tiny_shape: dict[str, int]) -> None:
    monkeypatch.setattr(run_module, "available_memory_bytes", lambda device: 1024)
    with pytest.raises(OutOfMemoryError, match="reduce"):
        measure_gru(_config(tiny_shape), probe_memory=False)


# -------------------------------------------------------------------------------------- fingerprint
def test_fingerprint_has_every_field_and_is_json() -> None:
    fp = fingerprint("cpu", threads=1)
    assert [k for k in FINGERPRINT_KEYS if k not in fp] == []
    assert fp["torch"] == torch.__version__
    assert json.loads(json.dumps(fp)) == fp


def _raise(*args: object, **kwargs: object) -> object:
    raise OSError("unreadable")


def test_fingerprint_host_fields_none_when_proc_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = builtins.open

    def open_without_proc(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).startswith("/proc/"):
            raise PermissionError(f"{file}: unreadable")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_without_proc)
    fp = fingerprint("cpu", threads=1)
    assert (fp["cpu_model"] is None or fp["cpu_model"] == platform.processor())  # its documented fallback
    assert (fp["physical_cores"], fp["memory_total_bytes"]) == (None, None)
    assert fp["torch"] == torch.__version__  # the rest is still read


def test_fingerprint_build_fields_none_when_torch_config_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.__config__, "show", _raise)
    fp = fingerprint("cpu", threads=1)
    assert (fp["blas"], fp["openmp"], fp["cpu_capability"]) == (None, None, None)
    assert fp["torch"] == torch.__version__


def test_fingerprint_logical_cores_none_when_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", _raise)
    assert fingerprint("cpu", threads=1)["logical_cores"] is None


def test_fingerprint_cuda_fields_present_and_none_when_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_properties", _raise)
    fp = fingerprint("cuda", threads=1)
    assert [k for k in CUDA_FINGERPRINT_KEYS if k not in fp] == []
    assert fp["gpu_name"] is None
    assert fp["cuda"] == torch.version.cuda  # readable without a device, so still read


def test_fingerprint_differences_name_changed_identity_field() -> None:
    fp = fingerprint("cpu", threads=1)
    assert differences(fp, dict(fp)) == []
    changed = differences(fp, {**fp, "cpu_model": "Another CPU"})
    assert len(changed) == 1 and changed[0].startswith("cpu_model:") and "Another CPU" in changed[0]


# --------------------------------------------------------------------------------- gru-sim measure
TINY_FLAGS = ["--batch", "2", "--seq-len", "3", "--input-size", "4", "--hidden-size", "5"]


def _flags(**changes: str) -> list[str]:
    values = dict(zip(TINY_FLAGS[::2], TINY_FLAGS[1::2]))
    values.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    return [part for flag, value in values.items() for part in ((flag,) if value == "" else (flag, value))]


BAD_INPUTS = {
    "batch-zero": (_flags(batch="0"), "--batch"),
    "seq-len-negative": (_flags(seq_len="-4"), "-4"),
    "hidden-not-a-number": (_flags(hidden_size="many"), "many"),
    "unknown-dtype": (_flags(dtype="float8"), "float8"),
    "unknown-impl": (_flags(impl="cudnn-gru"), "cudnn-gru"),
    "float16-on-cpu": (_flags(dtype="float16"), "float16"),
    "numpy-reference-training": (_flags(impl="numpy-reference", mode="training"), "numpy-reference"),
    "too-big-for-memory": (_flags(hidden_size="200000", layers="8"), "memory"),
}
if not HAS_CUDA:
    BAD_INPUTS["cuda-without-cuda"] = (_flags(device="cuda"), "cuda")


@pytest.mark.slow
@pytest.mark.parametrize("args,named", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_cli_bad_input_exits_2_with_one_line(
        run_cli: Callable[[list[str]], Any], args: list[str], named: str) -> None:
    result = run_cli(["measure", *args, "--no-memory", "--json"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.stdout == ""


@pytest.mark.slow
def test_cli_json_record_parses_with_contract_keys(run_cli: Callable[[list[str]], Any]) -> None:
    result = run_cli(["measure", *TINY_FLAGS, "--layers", "2", "--json", "--budget", "0"])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert [k for k in CONTRACT_KEYS if k not in record] == []
    assert record["config"] == GruConfig(batch=2, seq_len=3, input_size=4, hidden_size=5,
                                         num_layers=2).to_dict()
    assert isinstance(record["peak_memory_bytes"], int)


@pytest.mark.slow
def test_cli_table_names_latency_and_spread(run_cli: Callable[[list[str]], Any]) -> None:
    result = run_cli(["measure", *TINY_FLAGS, "--budget", "0", "--no-memory"])
    assert result.returncode == 0, result.stderr
    assert "latency (median)" in result.stdout
    assert "spread (IQR)" in result.stdout
    assert "first call (cold)" in result.stdout


# ---------------------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("dtype,tol", [("float16", 2e-2), ("float32", 5e-3)])
def test_cuda_measures_small_shape(dtype: str, tol: float, quick_policy: TimingPolicy) -> None:
    config = GruConfig(batch=4, seq_len=16, input_size=32, hidden_size=48, dtype=dtype, device="cuda")
    record = measure_gru(config, policy=quick_policy).to_record()
    assert [k for k in CONTRACT_KEYS if k not in record] == []
    assert all(s > 0 for s in record["samples_s"])
    assert record["peak_memory_bytes"] > 0
    # float32 may run in TF32 under cuDNN's default settings, hence a looser bound than on CPU.
    assert record["max_rel_error"] < tol
    assert record["fingerprint"]["gpu_name"]
    assert record["fingerprint"]["device"] == "cuda"


def test_unit_modules_stay_cached_across_hidden_sizes_until_the_byte_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from gru_sim.measure import units

    monkeypatch.setattr(units, "_MODULES", {})
    small = [GruConfig(batch=1, seq_len=2, input_size=1, hidden_size=h) for h in (8, 16)]
    first = [units._module(c) for c in small]
    assert [units._module(c) for c in small] == first  # rows taking turns reuse each module
    big = GruConfig(batch=1, seq_len=2, input_size=1, hidden_size=64)
    units._module(small[0])  # the H = 8 module is now the most recently used
    bound = units._parameter_bytes(first[0]) + units._parameter_bytes(units.make_gru(big, 0))
    monkeypatch.setattr(units, "MODULE_CACHE_BYTES", bound)
    units._module(big)
    assert units._module(small[0]) is first[0]  # kept: most recently used, and it fits beside the new one
    assert units._module(small[1]) is not first[1]  # the least recently used went
