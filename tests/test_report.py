"""The report is one self-contained HTML file: plotly.js inlined once, nothing fetched, every piece of
scenario text escaped, one figure per thing the issue asks to see."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from gru_sim.report import render_validation_report, write_report
from test_report_fixtures import full_results, sweep_records, validation

EVIL = 'Speech <script>alert("pwned")</script> & <img src=x onerror=alert(1)>'


def _figure_specs(html: str) -> list[dict]:  # type: ignore[type-arg]
    """The JSON of every figure, in page order."""
    return [json.loads(m) for m in re.findall(r"var spec = (\{.*?\}); Plotly\.newPlot", html)]


def _titles(html: str) -> list[str]:
    out = []
    for spec in _figure_specs(html):
        title = spec["layout"].get("title")
        out.append(title.get("text", "") if isinstance(title, dict) else str(title or ""))
    return out


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(full_results(description=EVIL), path)
    return path.read_text(encoding="utf-8")


def test_plotly_js_is_inlined_exactly_once(full_report: str) -> None:
    js = get_plotlyjs()
    assert full_report.count(js) == 1
    assert full_report.count(js[:200]) == 1


def test_the_page_loads_nothing_from_elsewhere(full_report: str) -> None:
    page_without_js = full_report.replace(get_plotlyjs(), "")
    assert not re.search(r"<script[^>]*\bsrc=", page_without_js)
    assert not re.search(r"<link\b", page_without_js)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page_without_js)
    assert "@import" not in page_without_js
    # A Content-Security-Policy that refuses any connection the page might still try.
    assert "default-src 'none'" in page_without_js


def test_scenario_text_is_escaped(full_report: str) -> None:
    page_without_js = full_report.replace(get_plotlyjs(), "")
    assert EVIL not in page_without_js
    assert '<script>alert("pwned")' not in page_without_js
    assert "<img src=x" not in page_without_js
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" \
        in page_without_js


def test_profile_text_is_escaped_too(full_report: str) -> None:
    assert "Made-up CPU &lt;b&gt;9000&lt;/b&gt;" in full_report
    assert "Made-up CPU <b>9000</b>" not in full_report


def test_every_figure_is_drawn_by_its_own_script(full_report: str) -> None:
    divs = re.findall(r'<div id="(figure-\d+)" class="figure">', full_report)
    drawn = re.findall(r'Plotly\.newPlot\("(figure-\d+)"', full_report)
    assert divs == drawn
    assert len(divs) == len(set(divs)) == len(_figure_specs(full_report))


def test_full_report_has_every_section_and_figure_the_issue_asks_for(full_report: str) -> None:
    for anchor in ("summary", "sweep", "serving", "training", "validation", "profile"):
        assert f'<section id="{anchor}">' in full_report
    titles = _titles(full_report)
    expected = ["Latency and throughput against batch", "Latency and throughput against seq_len",
                "Latency and throughput against hidden_size", "Peak memory against the device's memory",
                "Roofline", "Where the time goes", "Parallelism: total work against the critical path",
                "Request latency: cumulative distribution", "Tail latency against load",
                "Queue and utilization over time", "Batch sizes formed by the batcher", "Simulated batches on the replicas",
                "Scaling with the number of devices", "Compute against communication per step",
                "One simulated training step on 8 devices",
                "Predicted against measured latency", "Error distribution", "Residuals against each axis"]
    for title in expected:
        assert title in titles, title
    assert any(t.startswith("Interval coverage:") for t in titles)
    assert any(t.startswith("Simulated kernels of one call:") for t in titles)


def test_sweep_figures_carry_the_prediction_interval(full_report: str) -> None:
    spec = next(s for s in _figure_specs(full_report)
                if (s["layout"].get("title") or {}).get("text") == "Latency and throughput against batch")
    bands = [t for t in spec["data"] if t.get("fill") == "toself"]
    lines = [t for t in spec["data"] if t.get("mode") == "lines+markers"]
    assert bands and len(bands) == len(lines)


def test_roofline_draws_the_measured_ceilings(full_report: str) -> None:
    spec = next(s for s in _figure_specs(full_report) if (s["layout"].get("title") or {}).get("text") == "Roofline")
    names = [t.get("name", "") for t in spec["data"]]
    assert any(n.startswith("ceilings") for n in names)
    assert {"inference", "training"} <= set(names)


def test_extrapolation_warning_is_shown_when_the_scenario_leaves_the_calibrated_range(full_report: str) -> None:
    assert '<div class="warning">sweep: 18 of 36 configurations lie outside' in full_report


def test_a_sweep_only_report_has_no_serving_or_training_section(tmp_path: Path) -> None:
    results = {"scenario": {"name": "only-sweep", "device": "cpu"}, "profile": {"path": "p.json"},
               "sweep": sweep_records()[:6], "warnings": []}
    html = write_report(results, tmp_path / "r.html").read_text()
    assert '<section id="sweep">' in html
    assert '<section id="serving">' not in html and '<section id="training">' not in html
    assert "lies inside the profile&#x27;s calibrated range" in html


def test_a_missed_slo_is_said_out_loud(tmp_path: Path) -> None:
    results = full_results()
    html = write_report(results, tmp_path / "r.html").read_text()
    p99 = results["serving"]["latency_s"]["p99"]
    assert p99 > results["serving"]["slo_p99_latency_s"]
    assert "misses the SLO" in html


def test_the_report_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    write_report(full_results(), tmp_path / "out" / "report.html")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html"]


def test_validation_report_has_parity_error_cdf_residuals_and_coverage(tmp_path: Path) -> None:
    v = validation()
    html = render_validation_report(v, tmp_path / "v.html").read_text()
    titles = _titles(html)
    assert "Predicted against measured latency" in titles
    assert "Error distribution" in titles
    assert "Residuals against each axis" in titles
    assert "Predicted against measured peak memory" in titles
    rows = v.rows
    inside = sum(r["latency_interval_s"][0] <= r["measured_latency_s"] <= r["latency_interval_s"][1] for r in rows)
    assert f"Interval coverage: {inside / len(rows):.0%} of measurements inside (target 90%)" in titles
    assert html.count(get_plotlyjs()) == 1


def test_validation_parity_plot_has_the_ten_percent_lines(tmp_path: Path) -> None:
    html = render_validation_report(validation(), tmp_path / "v.html").read_text()
    spec = next(s for s in _figure_specs(html)
                if (s["layout"].get("title") or {}).get("text") == "Predicted against measured latency")
    lines = {t["name"]: t for t in spec["data"] if t.get("mode") == "lines"}
    lo, hi = lines["−10%"], lines["+10%"]
    assert hi["y"][0] / hi["x"][0] == pytest.approx(1.1)
    assert lo["y"][0] / lo["x"][0] == pytest.approx(0.9)


def test_ape_is_read_in_percent_as_gru_sim_keeps_it(tmp_path: Path) -> None:
    v = validation()
    v = dataclasses.replace(v, summary=dataclasses.replace(
        v.summary, overall=dataclasses.replace(v.summary.overall, median_ape=7.5)))
    html = render_validation_report(v, tmp_path / "v.html").read_text()
    assert '<div class="value">7.5%</div>' in html


def test_the_validation_report_shows_the_overall_figures_of_the_summary(tmp_path: Path) -> None:
    v = validation()
    html = render_validation_report(v, tmp_path / "v.html").read_text()
    overall = v.summary.overall
    for label, value in (("median APE", f"{overall.median_ape:.1f}%"), ("p90 APE", f"{overall.p90_ape:.1f}%"),
                         ("within ±10%", f"{overall.within_10pct:.1%}"),
                         ("90% interval coverage", f"{overall.interval_coverage:.1%}")):
        assert f'<div class="label">{label}</div><div class="value">{value}</div>' in html
    assert "{&quot;" not in html  # no summary dumped as raw JSON


@pytest.mark.slow
def test_only_the_report_imports_plotly() -> None:
    code = ("import sys, gru_sim.scenario, gru_sim.study, gru_sim.sim;"
            "print('plotly' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_serving_and_training_records_read_back_what_the_studies_write() -> None:
    from gru_sim.study.records import ServingRecord, SweepRecord, TrainingRecord

    results = full_results()
    assert [r.to_dict() for r in SweepRecord.read_all(results["sweep"])] == results["sweep"]
    serving = ServingRecord.from_dict(results["serving"])
    assert serving.to_dict() == results["serving"]
    training = TrainingRecord.read_all(results["training"])
    assert [r.to_dict() for r in training] == results["training"]


def test_the_serving_record_keeps_the_simulators_figures() -> None:
    # The serving object of results.json is the run's own figures (all but the per-request sample)
    # with the study's additions, so the two records cannot drift apart.
    from gru_sim.study.serving import run_serving, serving_record
    from test_report_fixtures import MadeUpModel, _scenario

    result, load, _ = run_serving(_scenario(), MadeUpModel(), lambda done, total: None)
    written = serving_record(_scenario(), result, load).to_dict()
    own = result.to_dict()
    own.pop("request_sample")
    assert {k: written[k] for k in own} == own
    assert list(written)[:len(own)] == list(own)


@pytest.mark.parametrize("study", ["sweep", "serving", "training"])
def test_a_study_written_in_another_shape_breaks_the_report(tmp_path: Path, study: str) -> None:
    results = full_results()
    if study == "sweep":
        results["sweep"][0]["latency"] = results["sweep"][0].pop("latency_s")
    elif study == "serving":
        results["serving"]["latency"] = results["serving"].pop("latency_s")
    else:
        results["training"][0]["step_s"] = results["training"][0].pop("step_time_s")
    with pytest.raises((KeyError, TypeError)):
        write_report(results, tmp_path / "r.html")
