"""The report opened in a real browser (Debian's headless Chromium) with every request that is not a
``file:`` one refused and the browser offline: it must draw every figure and log no error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gru_sim.model.profile import default_profile_path
from gru_sim.report import render_validation_report, write_report
from gru_sim.scenario import load_scenario
from gru_sim.study import run_scenario
from test_report_fixtures import full_results, validation

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
GRU_SIM_EXE = Path(sys.executable).parent / "gru-sim"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
EVIL = 'Speech <script>alert("pwned")</script>'

# CI (.ci/run) installs chromium and sets GRU_SIM_REQUIRE_BROWSER=1: there a missing browser fails.
REQUIRED = os.environ.get("GRU_SIM_REQUIRE_BROWSER") == "1"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not REQUIRED and (not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None),
                                 reason="needs Debian's chromium at /usr/bin/chromium")]


def open_offline(path: Path) -> dict[str, Any]:
    """Load ``path`` with the network cut; what the page logged, requested and drew."""
    if REQUIRED:
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    seen: dict[str, Any] = {"errors": [], "refused": [], "dialogs": []}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_offline(True)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))

            def route(r: Any) -> None:
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    seen["refused"].append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(path.resolve().as_uri(), wait_until="load")
            try:  # figures are drawn on DOMContentLoaded; give them a moment, then look
                page.wait_for_function("Array.from(document.querySelectorAll('.figure'))"
                                       ".every(e => e.querySelector('.main-svg'))", timeout=15_000)
            except sync_api.TimeoutError:
                pass
            seen["figures"] = page.locator(".figure").count()
            seen["plotted"] = page.locator(".figure.js-plotly-plot").count()
            seen["with_svg"] = page.eval_on_selector_all(
                ".figure", "els => els.filter(e => e.querySelector('.main-svg') && "
                           "e.querySelector('.main-svg').getBoundingClientRect().width > 100).length")
            seen["with_data"] = page.eval_on_selector_all(
                ".figure", "els => els.filter(e => e.data && e.data.length > 0).length")
            seen["header"] = page.locator("header").inner_text()
            seen["cards"] = page.eval_on_selector_all(
                ".card", "els => els.map(e => [e.querySelector('.label').innerText, "
                         "e.querySelector('.value').innerText])")
        finally:
            browser.close()
    return seen


def test_full_report_draws_every_figure_offline_without_errors(tmp_path: Path) -> None:
    path = write_report(full_results(description=EVIL), tmp_path / "report.html")
    seen = open_offline(path)
    assert seen["errors"] == []
    assert seen["refused"] == []
    assert seen["figures"] >= 18
    assert seen["plotted"] == seen["with_svg"] == seen["with_data"] == seen["figures"]


def test_scenario_text_shows_as_text_and_runs_nothing(tmp_path: Path) -> None:
    path = write_report(full_results(description=EVIL), tmp_path / "report.html")
    seen = open_offline(path)
    assert EVIL in seen["header"]
    assert seen["dialogs"] == []


def test_validation_report_draws_every_figure_offline(tmp_path: Path) -> None:
    path = render_validation_report(validation(), tmp_path / "validation.html")
    seen = open_offline(path)
    assert seen["errors"] == [] and seen["refused"] == []
    assert seen["figures"] >= 5
    assert seen["plotted"] == seen["with_svg"] == seen["figures"]


@pytest.mark.skipif(not default_profile_path("cpu").exists(), reason="no shipped default cpu profile")
def test_quickstart_report_from_a_real_run_draws_every_figure_offline(tmp_path: Path) -> None:
    out = run_scenario(load_scenario(ROOT / "scenarios" / "quickstart.yaml"), default_profile_path("cpu"),
                       tmp_path / "quickstart", workers=1)
    seen = open_offline(out.report_path)
    assert seen["errors"] == [] and seen["refused"] == []
    assert seen["figures"] >= 12
    assert seen["plotted"] == seen["with_svg"] == seen["with_data"] == seen["figures"]


def _shown(value: float | None, percent_of_fraction: bool) -> str:
    """A figure of validation.json as the report's card shows it."""
    if value is None:
        return "-"
    return f"{value:.1%}" if percent_of_fraction else f"{value:.1f}%"


@pytest.mark.slow
@pytest.mark.skipif(not default_profile_path("cpu").exists(), reason="no shipped default cpu profile")
def test_a_real_validation_report_shows_the_headline_figures_of_its_json(tmp_path: Path) -> None:
    out = tmp_path / "validation"
    # A generous timeout: it measures real kernels, which a busy shared machine slows many times over.
    result = subprocess.run([str(GRU_SIM_EXE), "validate", "--sample", "5", "--out", str(out)], capture_output=True,
                            text=True, timeout=1200, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "validation.json").read_text())
    overall = doc["summary"]["overall"]
    seen = open_offline(out / "report.html")
    assert seen["errors"] == [] and seen["refused"] == []
    cards = dict(seen["cards"])
    assert cards["median APE"] == _shown(overall["median_ape"], False)
    assert cards["p90 APE"] == _shown(overall["p90_ape"], False)
    assert cards["within ±10%"] == _shown(overall["within_10pct"], True)
    assert cards["90% interval coverage"] == _shown(overall["interval_coverage"], True)
    assert cards["configurations"] == str(len(doc["rows"]))
    # Without --configs the shipped application shapes are measured too, and shown apart.
    apps = doc["summary"]["applications"]
    assert apps["n"] + sum(1 for r in doc["rows"] if r.get("application") and r.get("noisy")) \
        == sum(1 for r in doc["rows"] if r.get("application")) >= 20
    assert cards["application shapes"] == _shown(apps["median_ape"], False)
