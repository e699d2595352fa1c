"""benchmarks.high_rate: the model-bound limit, the share of it analysed, and the figures."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.high_rate import (
    CAMERA,
    Limit,
    model_time_ms,
    percent,
    rate_figures,
    rate_run,
    settings_text,
    share_of_limit,
)


def test_a_fast_model_leaves_the_camera_as_the_limit() -> None:
    limit = Limit(asked_fps=200.0, captured_fps=199.6, model_ms=2.5)  # model: 400 fps
    assert limit.camera_fps == pytest.approx(199.6)
    assert limit.fps == pytest.approx(199.6)
    assert limit.bound_by == "camera"
    assert not limit.camera_short  # within 2 % of the asked rate


def test_a_slow_model_is_the_limit() -> None:
    limit = Limit(asked_fps=500.0, captured_fps=500.0, model_ms=4.0)
    assert limit.model_fps == pytest.approx(250.0)
    assert limit.fps == pytest.approx(250.0)
    assert limit.bound_by == "model"


def test_a_camera_that_captured_less_than_asked_sets_the_limit_and_is_marked_short() -> None:
    limit = Limit(asked_fps=500.0, captured_fps=280.0, model_ms=2.0)  # model: 500 fps
    assert limit.camera_short
    assert limit.fps == pytest.approx(280.0)
    assert limit.bound_by == "camera"


def test_the_naive_loop_limit_uses_the_asked_rate() -> None:
    limit = Limit(asked_fps=300.0, captured_fps=None, model_ms=2.0)
    assert limit.camera_fps == 300.0 and not limit.camera_short
    assert Limit(300.0, None, 0.0).model_fps == math.inf


def test_share_of_limit_and_percent() -> None:
    assert share_of_limit(180.0, 200.0) == 0.9
    assert share_of_limit(None, 200.0) is None
    assert share_of_limit(10.0, 0.0) is None
    assert percent(25, 200) == 12.5
    assert percent(None, 200) is None and percent(3, 0) is None


def test_model_time_is_the_sum_of_the_three_stages_per_frame() -> None:
    timing = pd.DataFrame(
        {"preprocess_ms": [0.2, 0.4], "inference_ms": [1.6, 2.0], "decode_ms": [0.2, 0.6]}
    )
    figures = model_time_ms(timing)
    assert figures["count"] == 2
    assert figures["mean"] == pytest.approx(2.5)
    assert figures["p50"] == pytest.approx(2.5)
    empty = timing.iloc[:0]
    assert model_time_ms(empty) == {"count": 0}


def _benchmark() -> dict:
    return {
        "cameras": {
            CAMERA: {"captured": 1000, "measured_fps": 250.0, "analysed_fps": 240.0, "skipped": 40}
        },
        "latency_ms": {"end_to_end": {"p50": 3.0, "p99": 6.0}},
        "naive": {
            "cameras": {CAMERA: {"due": 1000, "analysed_fps": 200.0, "skipped": 200}},
            "latency_ms": {"end_to_end": {"p50": 2.5, "p99": 9.0}},
        },
    }


def test_rate_figures_put_the_app_beside_the_naive_loop() -> None:
    run = rate_run(_benchmark(), asked_fps=500.0, model_ms=2.5)  # model: 400 fps
    figures = {f.key: f for f in rate_figures(run)}
    share = figures["500fps.share_of_limit"]
    assert share.value == pytest.approx(240.0 / 250.0, abs=1e-3)  # camera short: 250 fps
    assert share.baseline == pytest.approx(200.0 / 400.0)  # the naive loop: model-bound
    assert share.goal == ">= 0.90"
    assert figures["500fps.limit_fps"].value == 250.0
    assert figures["500fps.limit_fps"].baseline == 400.0
    assert "CAMERA SHORT" in figures["500fps.captured_fps"].label
    assert figures["500fps.skipped_percent"].value == 4.0
    assert figures["500fps.skipped_percent"].baseline == 20.0
    assert figures["500fps.end_to_end_p99"].ratio == 1.5
    assert figures["500fps.analysed_fps"].ratio == 1.2


def test_the_settings_ask_for_the_rate_and_the_frame_size() -> None:
    text = settings_text(300.0, 640, 512)
    assert "FRAMERATE = 300\n" in text and "WIDTH = 640\n" in text and "HEIGHT = 512\n" in text
    assert "SOURCE = synthetic" in text and "ExampleExperiment" in text
