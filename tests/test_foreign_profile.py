"""A forecast from another machine's profile says so: in results.json, on stderr once, and in a red
banner that opens the report, naming both machines and the command that fixes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gru_sim.cli import main
from gru_sim.model.profile import load_profile, save_profile
from model_fixtures import make_profile

SCENARIO = """\
name: foreign
device: cpu
model: {input_size: 32, hidden_size: 64}
sweep: {batch: [1, 8], seq_len: [16, 64]}
"""


def _run(tmp_path: Path, profile: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str, str]:  # type: ignore[type-arg]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--profile", str(profile), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    return json.loads((out / "results.json").read_text()), (out / "report.html").read_text(), err


def test_another_machines_profile_is_flagged_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, html, err = _run(tmp_path, make_profile(tmp_path / "synthetic.json"), capsys)
    assert results["profile_match"] is False and "cpu_model" in results["profile_mismatch"]
    assert all(r["profile_match"] is False for r in results["sweep"])
    assert "gru-sim calibrate --quick" in results["profile_note"] and "synthetic" in results["profile_note"]
    assert 'class="danger"' in html and "calibrate --quick" in html
    assert err.count("made on another machine") == 1


def test_this_machines_profile_has_no_banner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gru_sim.model.library import here_fingerprint

    profile = load_profile(make_profile(tmp_path / "synthetic.json"))
    profile.fingerprint = here_fingerprint("cpu")
    path = save_profile(profile, tmp_path / "here.json")
    results, html, err = _run(tmp_path, path, capsys)
    assert results["profile_match"] is True and "profile_mismatch" not in results
    assert 'class="danger"' not in html and "made on another machine" not in err
