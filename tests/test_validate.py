"""gru-sim validate: which configurations it picks, the figures it reports, and its exit codes."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru_sim.model.profile import load_profile
from gru_sim.validate import choose_configs
from gru_sim.config import GruConfig
from gru_sim.validation import ValidationSummary, measured_row, summarise

from model_fixtures import make_profile
from test_report_fixtures import prediction

GRU_SIM = str(Path(sys.executable).parent / "gru-sim")


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_profile(tmp_path_factory.mktemp("validate") / "synthetic.json")


def _row(measured: float, predicted: float, extrapolated: bool = False, noisy: bool = False,
         axes: dict[str, float] | None = None) -> dict[str, object]:
    """The validation row validate makes for a prediction of ``predicted`` s (interval ±10%) measured at
    ``measured`` s."""
    p = dataclasses.replace(prediction(GruConfig(batch=4, seq_len=10, input_size=8, hidden_size=16)),
                            latency_s=predicted, latency_interval_s=(predicted * 0.9, predicted * 1.1),
                            extrapolated=extrapolated, extrapolated_axes=axes or {})
    return measured_row(p, measured, 0.01 * measured, noisy)


def test_inside_configs_lie_in_the_fitted_ranges_and_one_per_axis_lies_beyond(profile_path: Path) -> None:
    profile = load_profile(profile_path)
    configs = choose_configs(profile, sample=12, seed=3, max_call_s=1e9)
    model = profile.cost_model
    inside = [c for c in configs if not model.extrapolation(c)]
    beyond = [c for c in configs if model.extrapolation(c)]
    assert len(inside) == 12
    for axis in ("batch", "seq_len", "input_size", "hidden_size", "num_layers"):
        assert any(axis in model.extrapolation(c) for c in beyond), axis


def test_the_summary_splits_inside_from_beyond_and_keeps_noisy_points_apart() -> None:
    rows = [_row(1.0, 1.05), _row(1.0, 0.9), _row(1.0, 1.3, extrapolated=True, axes={"hidden_size": 1.5}),
            _row(1.0, 3.0, noisy=True)]
    s = summarise(rows)
    assert s.inside_range.n == 2 and s.extrapolated.n == 1 and s.noisy.n == 1
    assert s.overall.n == 3  # the noisy row is not mixed in
    assert s.inside_range.median_ape == pytest.approx(7.5)
    assert s.inside_range.interval_coverage == pytest.approx(0.5)  # 0.9 ± 10 % misses 1.0
    assert s.per_axis["hidden_size"]["beyond"].median_ape == pytest.approx(30.0)


def test_the_summary_reads_back_from_its_json_unchanged() -> None:
    rows = [_row(1.0, 1.05), _row(1.0, 0.9), _row(1.0, 1.3, extrapolated=True, axes={"hidden_size": 1.5})]
    s = summarise(rows)
    assert ValidationSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_the_summary_separates_the_machines_level_from_the_shape_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Every prediction 1.25x its measurement but for a shape error of a few percent: the level is the
    # machine's speed against the profile's; what is left after it is the shape error.
    shape = [1.0, 1.02, 0.98, 1.04, 0.96, 1.0, 1.01, 0.99]
    rows = [_row(1.0, 1.25 * e) for e in shape]
    s = summarise(rows)
    assert s.overall.median_ape == pytest.approx(25.0, abs=1.5)
    assert s.overall.common_level == pytest.approx(1.25, rel=0.01)
    assert s.overall.median_ape_after_level == pytest.approx(1.5, abs=0.6)
    from gru_sim.console import print_validation
    from gru_sim.validation import Validation

    print_validation(Validation(profile={}, fingerprint={}, summary=s, rows=tuple(rows)))
    out = capsys.readouterr().out
    assert "predicted/measured 1.25x" in out
    assert "the machine ran 1.25x faster than the profile's typical speed" in out
    assert "% is left once it is divided out" in out
    # A validation.json written before these figures reads back without them.
    old = s.to_dict()
    for part in ("overall", "inside_range", "extrapolated", "noisy", "memory"):
        old[part].pop("common_level"), old[part].pop("median_ape_after_level")
    assert ValidationSummary.from_dict(old).overall.common_level is None


def test_rounds_give_the_machines_own_spread_beside_the_models_error(capsys: pytest.CaptureFixture[str]) -> None:
    p = prediction(GruConfig(batch=4, seq_len=10, input_size=8, hidden_size=16))
    rounds = [(1.0, 1.1), (2.0, 2.0), (1.0, 1.5), (3.0, 3.3)]
    rows = [measured_row(p, float(np.median(r)), 0.01, False, rounds_s=r) for r in rounds]
    rows.append(measured_row(p, 1.0, 0.01, True, rounds_s=(1.0, 9.0)))  # noisy in every round: left out
    s = summarise(rows)
    assert rows[0]["measured_rounds_s"] == [1.0, 1.1] and "measured_rounds_s" not in _row(1.0, 1.0)
    # Spreads 10 %, 0 %, 50 %, 10 %: a median of 10 %, the noisy configuration's 800 % not among them.
    assert s.machine_spread.n == 4
    assert s.machine_spread.median_pct == pytest.approx(10.0)
    assert s.machine_spread.p90_pct == pytest.approx(np.percentile([10.0, 0.0, 50.0, 10.0], 90))
    assert ValidationSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    old = s.to_dict()
    old.pop("machine_spread")  # a validation.json written before rounds reads back without a spread
    assert ValidationSummary.from_dict(old).machine_spread.n == 0
    from gru_sim.console import print_validation
    from gru_sim.validation import Validation

    print_validation(Validation(profile={}, fingerprint={}, summary=s, rows=tuple(rows)))
    assert "a median 10.0% apart" in capsys.readouterr().out


def test_validate_refuses_fewer_than_one_round_in_one_line(profile_path: Path, tmp_path: Path) -> None:
    proc = _validate(profile_path, tmp_path, "--rounds", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gru-sim validate: --rounds(=0) must be at least 1"  # before any profile is read


def _validate(profile_path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    configs = tmp_path / "configs.csv"
    configs.write_text("batch,seq_len,input_size,hidden_size\n2,4,8,8\n1,3,4,6\n")
    return subprocess.run([GRU_SIM, "validate", "--profile", str(profile_path), "--configs", str(configs),
                           "--out", str(tmp_path / "out"), *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_validate_writes_its_json_and_report_and_passes_a_loose_threshold(profile_path: Path, tmp_path: Path) -> None:
    proc = _validate(profile_path, tmp_path, "--max-median-ape", "1e12")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert len(doc["rows"]) == 2 and all(r["measured_latency_s"] > 0 for r in doc["rows"])
    assert (tmp_path / "out" / "report.html").stat().st_size > 0
    # Two rounds by default: each configuration's figure is the median of its two measurements, or the
    # one whose samples were tight enough to trust when the other's were not.
    for r in doc["rows"]:
        assert len(r["measured_rounds_s"]) == 2
        assert (r["measured_latency_s"] == pytest.approx(np.median(r["measured_rounds_s"]))
                or r["measured_latency_s"] in r["measured_rounds_s"])
    quiet = [r for r in doc["rows"] if not r["noisy"]]
    assert doc["summary"]["machine_spread"]["n"] == len(quiet)
    # The report's card shows the spread where one was measured (none when every configuration was noisy).
    assert ("own spread" in (tmp_path / "out" / "report.html").read_text()) == bool(quiet)


@pytest.mark.slow
def test_validate_in_one_round_takes_each_configuration_once(profile_path: Path, tmp_path: Path) -> None:
    proc = _validate(profile_path, tmp_path, "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert all("measured_rounds_s" not in r for r in doc["rows"])
    assert doc["summary"]["machine_spread"]["n"] == 0


@pytest.mark.slow
def test_validate_exits_1_when_the_median_error_is_over_the_threshold(profile_path: Path, tmp_path: Path) -> None:
    proc = _validate(profile_path, tmp_path, "--max-median-ape", "0.0001")
    assert proc.returncode == 1
    assert "median APE" in proc.stderr and "Traceback" not in proc.stderr  # over it, or not checkable (noisy)


@pytest.mark.slow
def test_quick_check_says_drifted_when_the_canaries_run_far_from_calibration(tmp_path: Path) -> None:
    path = make_profile(tmp_path / "canary.json", canary_latency_s=1e-9)  # no GRU call is that fast
    proc = subprocess.run([GRU_SIM, "validate", "--quick", "--profile", str(path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stdout.startswith("profile DRIFTED") and "recalibrate" in proc.stdout


def test_each_round_measures_every_configuration_and_a_noisy_round_is_not_the_figure(
        profile_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import gru_sim.validate as v

    configs = [GruConfig(batch=2, seq_len=4, input_size=8, hidden_size=8),
               GruConfig(batch=1, seq_len=3, input_size=4, hidden_size=6)]
    seen: list[int] = []

    def fake_measure(config: GruConfig, **_: object) -> SimpleNamespace:
        seen.append(config.batch)
        n = seen.count(config.batch)
        if config.batch == 2:  # the first round's measurement (and its re-measurement) noisy and slow
            return SimpleNamespace(latency_s=9.0 if n <= 2 else 1.0, latency_iqr_s=0.1, noisy=n <= 2)
        return SimpleNamespace(latency_s=float(n), latency_iqr_s=0.01, noisy=False)

    monkeypatch.setattr(v, "measure_gru", fake_measure)
    result = v.validate(load_profile(profile_path), configs, v.ValidationPolicy(memory_probes=0, rounds=3))
    noisy_then_quiet, quiet = result.rows
    assert noisy_then_quiet["measured_rounds_s"] == [9.0, 1.0, 1.0]  # the noisy round re-measured, still noisy
    assert noisy_then_quiet["measured_latency_s"] == 1.0 and not noisy_then_quiet["noisy"]
    assert quiet["measured_rounds_s"] == [1.0, 2.0, 3.0] and quiet["measured_latency_s"] == 2.0
    assert seen.count(1) == 3 and seen.count(2) == 4
    assert result.summary.machine_spread.n == 2
    assert result.summary.machine_spread.median_pct == pytest.approx((800.0 + 200.0) / 2)


def test_validate_reads_the_machines_pace_against_the_profiles_calibration(
        profile_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    # The calibration's reference call takes 1.3x its typical time while validating: the kernels run
    # 1.3^0.75 slower, every measurement that much over a profile exact at its own pace. The pace is a
    # measurement of the machine, read before each round and after the last; divided out, nothing is left.
    from types import SimpleNamespace

    import gru_sim.validate as v
    from gru_sim.calibrate.drift import KERNEL_ELASTICITY
    from gru_sim.console import print_validation
    from gru_sim.groups import GroupKey
    from gru_sim.predict import Predictor
    from gru_sim.report import render_validation_report

    profile = load_profile(profile_path)
    configs = [GruConfig(batch=2, seq_len=4, input_size=8, hidden_size=8),
               GruConfig(batch=3, seq_len=5, input_size=4, hidden_size=6)]
    group = str(GroupKey.of(configs[0]))
    profile = dataclasses.replace(profile, self_check={**profile.self_check, "speed_drift": {
        group: {"readings": 40, "fastest_x": 0.9, "slowest_x": 1.3, "typical_reference_s": 0.001}}})
    slow = 1.3 ** KERNEL_ELASTICITY
    predictor = Predictor(profile)
    readings: list[str] = []

    def fake_reference(g: GroupKey) -> float:
        readings.append(str(g))
        return 0.0013

    monkeypatch.setattr(v, "reference_now_s", fake_reference)
    monkeypatch.setattr(v, "measure_gru", lambda config, **_: SimpleNamespace(
        latency_s=predictor.predict(config).latency_s * slow, latency_iqr_s=0.0, noisy=False))
    result = v.validate(profile, configs, v.ValidationPolicy(memory_probes=0, rounds=2))
    assert readings == [group] * 3  # before each of the two rounds, and after the last
    pace = result.summary.machine_pace
    assert pace is not None and pace.groups[group]["reference_x"] == pytest.approx(1.3)
    assert pace.groups[group]["kernels_x"] == pytest.approx(slow) and pace.groups[group]["readings"] == 3
    assert result.summary.overall.median_ape == pytest.approx(100 * (1 - 1 / slow), rel=1e-6)
    assert pace.inside_range.n + pace.extrapolated.n == len(configs)
    for part in (pace.inside_range, pace.extrapolated):
        assert part.n == 0 or part.median_ape == pytest.approx(0.0, abs=1e-9)
    assert ValidationSummary.from_dict(json.loads(json.dumps(result.summary.to_dict()))) == result.summary
    old = result.summary.to_dict()
    old.pop("machine_pace")  # a validation.json written before the pace was read reads back without it
    assert ValidationSummary.from_dict(old).machine_pace is None
    print_validation(result)
    assert "reference call took t1 1.30x (kernels 1.22x)" in capsys.readouterr().out
    html = render_validation_report(result, tmp_path / "v.html").read_text()
    assert "pace" in html and "1.30×" in html
    # A profile that does not record its reference call's time: nothing is read, no pace is reported.
    readings.clear()
    plain = v.validate(load_profile(profile_path), configs, v.ValidationPolicy(memory_probes=0, rounds=1))
    assert readings == [] and plain.summary.machine_pace is None


def test_the_application_shapes_ship_with_the_package_and_come_at_every_group(profile_path: Path) -> None:
    from gru_sim.groups import GroupKey
    from gru_sim.validate import APPLICATION_SHAPES, application_configs

    profile = load_profile(profile_path)
    groups = sorted(GroupKey.parse(g) for g in profile.cost_model.coef_)
    apps = application_configs(profile)
    assert APPLICATION_SHAPES.is_file() and "gru_sim" in APPLICATION_SHAPES.parts  # inside the package
    rows = APPLICATION_SHAPES.read_text().strip().splitlines()[1:]
    assert len(apps) == len(rows) * len(groups) and len(rows) >= 20
    names = {name for name, _ in apps}
    assert {"kws-streaming", "asr-bidirectional", "nmt-encoder", "ts-sensor"} <= names
    for group in groups:
        mine = [c for _, c in apps if GroupKey.of(c) == group]
        assert len(mine) == len(rows)
    kws = next(c for name, c in apps if name == "kws-streaming")
    assert (kws.batch, kws.seq_len, kws.input_size, kws.hidden_size) == (1, 49, 40, 64)
    # benchmarks/ reads the same file (a link), so the benchmark's hold-out and validate's are one.
    assert (Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "typical_shapes.csv").resolve() \
        == APPLICATION_SHAPES.resolve()


def test_the_numpy_reference_takes_only_the_inference_application_shapes(profile_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import gru_sim.validate as v
    from gru_sim.groups import GroupKey

    monkeypatch.setattr(v, "_groups", lambda profile: [GroupKey("cpu", "float64", "numpy-reference", 1)])
    apps = v.application_configs(load_profile(profile_path))
    inference = [r for r in v.APPLICATION_SHAPES.read_text().strip().splitlines()[1:] if r.endswith(",inference")]
    assert len(apps) == len(inference) > 0
    assert all(c.mode == "inference" and c.impl == "numpy-reference" and c.dtype == "float64" for _, c in apps)


def test_a_bad_application_shapes_file_is_one_line_naming_the_line(profile_path: Path, tmp_path: Path) -> None:
    from gru_sim.errors import GruSimError
    from gru_sim.validate import application_configs

    bad = tmp_path / "shapes.csv"
    bad.write_text("name,batch,seq_len,input_size,hidden_size\nok,1,2,3,4\nbroken,1,two,3,4\n")
    with pytest.raises(GruSimError, match=r"shapes\.csv:3: "):
        application_configs(load_profile(profile_path), bad)
    with pytest.raises(GruSimError, match="cannot read the application shapes"):
        application_configs(load_profile(profile_path), tmp_path / "none.csv")


def test_application_rows_are_reported_apart_from_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    sample = [_row(1.0, 1.02), _row(1.0, 0.98), _row(1.0, 1.5, extrapolated=True, axes={"batch": 2.0})]
    apps = [dict(_row(1.0, 1.2), application="kws-streaming"), dict(_row(1.0, 1.3), application="nmt-encoder")]
    s = summarise(sample + apps)
    assert s.inside_range.n == 2 and s.extrapolated.n == 1 and s.applications.n == 2 and s.overall.n == 5
    assert s.inside_range.median_ape == pytest.approx(2.0)
    assert s.applications.median_ape == pytest.approx(25.0)
    assert ValidationSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    old = s.to_dict()
    old.pop("applications")  # a validation.json written before reads back without them
    assert ValidationSummary.from_dict(old).applications.n == 0
    from gru_sim.console import print_validation
    from gru_sim.validation import Validation

    print_validation(Validation(profile={}, fingerprint={}, summary=s, rows=tuple(sample + apps)))
    out = capsys.readouterr().out
    assert re.search(r"applications\s+n=2\s+median APE 25\.0%", out), out
    assert "kws-streaming" in out


def test_the_report_names_the_application_shapes_figure(tmp_path: Path) -> None:
    from gru_sim.report.validation_page import render_validation_report
    from gru_sim.validation import Validation

    sample = [_row(1.0, 1.02), _row(1.0, 0.98)]
    apps = [dict(_row(1.0, 1.2), application="kws-streaming"), dict(_row(1.0, 1.3), application="nmt-encoder")]
    rows = tuple(sample + apps)
    path = render_validation_report(Validation(profile={}, fingerprint={}, summary=summarise(rows), rows=rows),
                                    tmp_path / "report.html")
    html = path.read_text()
    assert "application shapes (shipped hold-out)" in html
    assert "median APE over 2 shapes people run" in html
    assert "2 application shapes, " in html
    # Without application rows neither the card nor the table's row appears.
    plain = render_validation_report(Validation(profile={}, fingerprint={}, summary=summarise(sample),
                                                rows=tuple(sample)), tmp_path / "plain.html").read_text()
    assert "application shapes" not in plain


def test_validate_help_names_the_application_shapes_and_the_profile_it_takes() -> None:
    proc = subprocess.run([GRU_SIM, "validate", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--apps, --no-apps also measure the application shapes shipped with gru-" in text
    assert "(default: on, unless --configs is given;" in text
    assert "default: the cpu profile matching this machine among the known ones, else the nearest" in text


@pytest.mark.slow
def test_validate_labels_the_application_rows_it_measures(profile_path: Path) -> None:
    from gru_sim.errors import GruSimError
    from gru_sim.validate import ValidationPolicy, validate

    profile = load_profile(profile_path)
    configs = [GruConfig(batch=2, seq_len=4, input_size=8, hidden_size=8),
               GruConfig(batch=1, seq_len=3, input_size=4, hidden_size=6)]
    result = validate(profile, configs, ValidationPolicy(rounds=1, memory_probes=0), applications=[None, "tiny-app"])
    assert [r["application"] for r in result.rows] == [None, "tiny-app"]
    assert result.summary.applications.n + result.summary.noisy.n >= 1
    assert result.summary.inside_range.n + result.summary.extrapolated.n <= 1
    with pytest.raises(GruSimError, match="1 application names for 2 configurations"):
        validate(profile, configs, ValidationPolicy(rounds=1), applications=["one"])
