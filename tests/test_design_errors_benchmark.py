"""benchmarks/design_errors.py finds an error planted along one axis of the stored whole calls."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gru_sim.calibrate.store import MeasurementStore
from gru_sim.config import GruConfig
from gru_sim.model.profile import load_profile
from gru_sim.predict import Predictor

from model_fixtures import make_profile

ROOT = Path(__file__).resolve().parent.parent


def test_an_error_planted_on_unaligned_hidden_sizes_shows_in_that_group_only(tmp_path: Path) -> None:
    profile = make_profile(tmp_path / "p.json")
    predictor = Predictor(load_profile(profile))
    with MeasurementStore(tmp_path / "run.sqlite") as store:
        store.set_meta("job", {"name": "synthetic"})
        store.set_meta("fingerprint", {"device": "cpu", "cpu_model": "synthetic"})
        for k, hidden in enumerate((32, 48, 64, 96, 128, 30, 50, 70, 100, 130)):
            for batch in (2, 8):
                c = GruConfig(batch=batch, seq_len=10, input_size=16, hidden_size=hidden, threads=1)
                # Measured exactly as predicted where H is a multiple of 16; 30 % slower elsewhere.
                slower = 1.0 if hidden % 16 == 0 else 1.3
                store.add("cpu/float32/torch-gru/t1", "train" if k % 2 else "holdout", c, "ok", 0.1,
                          latency_s=predictor.predict(c).latency_s * slower)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "design_errors.py"), "--profile", str(profile),
                          "--runs", str(tmp_path / "run.sqlite")], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("H a multiple of 16"))
    signed = {k: float(v) for k, v in re.findall(r"(True|False): n=\d+ signed ([+-]\d+\.\d)%", line)}
    # The run's level is the median of its calls (half of them 1.3x): the two groups sit on either side.
    assert signed["False"] < -5.0 < 5.0 < signed["True"]
    assert signed["True"] - signed["False"] > 20.0
    assert "20 whole calls of 1 runs" in out
