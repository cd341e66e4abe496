"""The gradient-flow figures of the report, built from synthetic records (no torch)."""

from __future__ import annotations

from typing import Any

from gru_sim.gradient_flow import GradientMeasurement, GradientRun, GradientSetup, gradient_record
from gru_sim.report.gradient_figures import forward_error_figure, grad_norm_figure, horizon_figure


def _record(factor: float, seq_lens: tuple[int, ...], label: str, errors: bool = True) -> dict[str, Any]:
    runs = tuple(GradientRun(seq_len=t, grad_norm_by_steps_back=tuple(factor**k if factor**k > 1e-30 else 0.0
                                                                      for k in range(t + 1)),
                             update_gate_saturation=0.0, update_gate_mean=0.5,
                             forward_rel_error={"float16": 1e-3, "bfloat16": 8e-3} if errors else {})
                 for t in seq_lens)
    setup = GradientSetup(input_size=2, hidden_size=3, seq_lens=seq_lens)
    return {"label": label, **gradient_record(GradientMeasurement(setup=setup, runs=runs, wall_s=0.0))}


def test_norm_figure_leaves_underflowed_norms_as_gaps_on_the_log_axis() -> None:
    figure = grad_norm_figure([_record(0.5, (200,), "default")])
    line = figure.fig.data[0]
    assert line.y[0] == 1.0
    assert line.y[150] is None  # 0.5**150 underflowed to 0 in the record
    assert figure.fig.layout.yaxis.type == "log"


def test_norm_figure_marks_each_configurations_horizon() -> None:
    figure = grad_norm_figure([_record(0.5, (100,), "a"), _record(0.9, (100,), "b")])
    markers = [t for t in figure.fig.data if t.mode == "markers"]
    assert sorted(m.x[0] for m in markers) == [10, 66]  # 0.5**10 and 0.9**66 first reach 1/1000


def test_horizon_figure_puts_a_horizon_beyond_t_on_the_diagonal() -> None:
    figure = horizon_figure([_record(0.99, (50, 1000), "slow decay")], {"serving max": 1500})
    line = figure.fig.data[0]
    assert list(line.x) == [50, 1000]
    assert list(line.y) == [50, 688]  # never within 50 steps; 0.99**688 first reaches 1/1000
    assert any(list(t.x) == [1500, 1500] and "serving max" in t.text for t in figure.fig.data)


def test_forward_error_figure_has_a_line_per_dtype_and_none_without_errors() -> None:
    figure = forward_error_figure([_record(0.5, (10, 20), "a")])
    assert figure is not None and sorted(t.name for t in figure.fig.data) == ["bfloat16", "float16"]
    assert forward_error_figure([_record(0.5, (10,), "a", errors=False)]) is None
