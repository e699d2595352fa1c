"""benchmarks.dynamic_crop --live: run order, the video retimed, and the figures of a variant."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from benchmarks.dynamic_crop_live import (
    CAMERA,
    figures_of,
    result_name,
    retime_video,
    run_figures,
    run_order,
    settings_text,
    variant_figures,
)


def test_runs_alternate_in_abba_order() -> None:
    assert run_order(1) == ["off", "on"]
    assert run_order(2) == ["off", "on", "on", "off"]
    assert run_order(3).count("on") == run_order(3).count("off") == 3


def test_the_results_are_a_variant_named_by_the_rate() -> None:
    assert result_name(200.0) == "dynamic_crop_live_200fps"


def test_the_settings_name_the_video_the_model_and_the_crop(tmp_path: Path) -> None:
    text = settings_text(tmp_path / "v.mp4", tmp_path / "m.pt", "on", loop=False, threads=None)
    assert "SOURCE = video" in text and "PACING = native" in text and "LOOP = false" in text
    assert "DYNAMIC_CROP = on" in text and "THREADS" not in text
    assert "THREADS = 2" in settings_text(tmp_path / "v", tmp_path / "m", "off", True, 2)


def _video(path: Path, frames: int, fps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(frames)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return images


def _decoded(path: Path) -> tuple[list[float], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return (
            [float(f.pts * f.time_base) for f in frames],
            [f.to_ndarray(format="bgr24") for f in frames],
        )


def test_the_retimed_video_has_the_same_pixels_at_the_new_rate(tmp_path: Path) -> None:
    source, target = tmp_path / "clip.mp4", tmp_path / "fast.mp4"
    _video(source, 12, 30)
    clip = retime_video(source, target, 200.0)
    assert clip["native_fps"] == 30.0 and clip["fps"] == 200.0 and clip["frames"] == 12
    times, pixels = _decoded(target)
    original_times, original = _decoded(source)
    assert np.diff(times) == pytest.approx(np.full(11, 0.005), abs=1e-4)
    assert np.diff(original_times) == pytest.approx(np.full(11, 1 / 30), abs=1e-3)
    for ours, theirs in zip(pixels, original, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _run(analysed_fps: float, latency: list[float], cropped: int) -> dict:
    session = {
        "cameras": {CAMERA: {"frames_captured": 100, "measured_fps": 199.0}},
        "pose": {
            "cameras": {
                CAMERA: {
                    "frames_analysed": len(latency),
                    "analysed_fps": analysed_fps,
                    "frames_skipped": 100 - len(latency),
                    "frames_cropped": cropped,
                }
            }
        },
    }
    ready = np.asarray(latency) / 1e3
    timing = pd.DataFrame(
        {
            "host_timestamp": np.zeros(len(latency)),
            "pose_ready": ready,
            "preprocess_ms": 1.0,
            "inference_ms": 10.0,
            "decode_ms": 1.0,
        }
    )
    return run_figures(session, timing)


def test_a_variant_pools_its_runs_and_leaves_failed_ones_out() -> None:
    runs = [_run(20.0, [10.0] * 10, 5), _run(30.0, [30.0] * 10, 10), {"error": "exit code 2"}]
    variant = variant_figures(runs)
    assert variant["runs"] == 2
    assert variant["analysed_fps"] == 25.0
    assert variant["skipped_percent"] == 90.0  # 180 of 200 captured
    assert variant["cropped_percent"] == 75.0  # 15 of 20 analysed
    assert variant["latency_ms"]["p50"] == pytest.approx(20.0)
    assert variant["model_ms"]["mean"] == pytest.approx(12.0)


def test_the_crop_is_the_project_and_the_whole_frame_the_baseline() -> None:
    crop = variant_figures([_run(40.0, [10.0] * 4, 3)])
    full = variant_figures([_run(20.0, [30.0] * 4, 0)])
    figures = {f.key: f for f in figures_of(crop, full)}
    assert figures["analysed_fps"].ratio == 2.0
    assert figures["latency_p50_ms"].ratio == pytest.approx(3.0)
    assert figures["frames_cropped_percent"].value == 75.0
    assert figures["frames_cropped_percent"].ratio is None
