"""DeepLabStream.py --benchmark-enabled: benchmark.json beside the naive loop, from a real run."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.live.selftest.benchmark_mode import frame_stages_ms
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session, run_cli

STATS = ("p50", "p95", "p99", "max")
FRAME_STAGES = ("transport", "queue_wait", "preprocessing", "inference", "decoding")


def arena_settings(folder: Path) -> Path:
    """The simulated arena, its nose entering the left region once (one pulse) in 300 frames."""
    return write_settings(
        folder,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 5\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 320 240; 60: 320 240; 120: 150 240; 300: 150 240\n"
        # The benchmark measures; a loaded test machine may miss the loop's deadline (its tests
        # are in tests/faults/test_loop_health.py).
        "[Experiment]\nNAME = ExampleExperiment\nDEADLINE_MS = off\n"
        "[Device stimulus_box]\nTYPE = log\n"
        # A ring that holds all 300 frames: the recorder may lag a busy 2-core machine without
        # losing one (a lost frame is counted and fails the session).
        "[Streaming]\nBUFFER_SECONDS = 11\n",
    )


def check_percentiles(figures: dict, name: str) -> None:
    values = [figures[stat] for stat in STATS]
    assert all(math.isfinite(v) and v >= 0 for v in values), (name, figures)
    assert values == sorted(values), (name, figures)
    assert figures["count"] > 0


@pytest.mark.slow
def test_a_short_benchmark_writes_every_figure(tmp_path: Path) -> None:
    result = run_cli(
        "--settings",
        str(arena_settings(tmp_path)),
        "--headless",
        "--pose-enabled",
        "--experiment-enabled",
        "--recording-enabled",
        "--benchmark-enabled",
        "--frames",
        "300",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    session = only_session(tmp_path / "out")
    data = json.loads((session / "benchmark.json").read_text())

    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["os"]
    assert isinstance(machine["gpu"], list)
    model = data["model"]
    assert model["name"] == "arena" and model["backend"] == "onnxruntime"
    assert model["provider"] == "CPUExecutionProvider" and model["threads"] >= 1

    arena = data["cameras"]["arena"]
    assert arena["captured"] == 300 and arena["recorded"] == 300
    assert arena["analysed"] > 0 and arena["analysed"] + arena["skipped"] == 300
    assert arena["analysed_fps"] > 0
    pose = pd.read_csv(session / "arena.pose.csv", header=[0, 1, 2], index_col=0).dropna(how="all")
    assert len(pose) == arena["analysed"]

    latency = data["latency_ms"]
    for stage in (*FRAME_STAGES, "end_to_end", "experiment", "output", "closed_loop"):
        check_percentiles(latency[stage], stage)
    assert latency["end_to_end"]["count"] == arena["analysed"]
    for stat in STATS:  # each frame's end to end holds its inference, so every percentile does
        assert latency["end_to_end"][stat] >= latency["inference"][stat]
    events = pd.read_csv(session / "events.csv")
    pulses = events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]
    assert latency["closed_loop"]["count"] == len(pulses) == 1
    # Every command sent counts, the stop's own switch-offs included: one per action row sent.
    sent = events[(events["kind"] == "action") & events["not_sent"].isna()]
    assert data["experiment"] == {"name": "ExampleExperiment", "actions": len(sent)}
    assert len(sent) > len(pulses)  # the stop switched both channels off after the pulse

    # Tracking lost, by its definition: any keypoint under the likelihood threshold.
    likelihood = pose.loc[:, pose.columns.get_level_values(2) == "likelihood"].to_numpy()
    expected = (likelihood < data["likelihood_threshold"]).any(axis=1).mean()
    assert data["tracking_lost_fraction"] == round(float(expected), 4)

    naive = data["naive"]
    assert naive["analysed_fps"] > 0
    check_percentiles(naive["latency_ms"]["end_to_end"], "naive end_to_end")
    assert naive["cameras"]["arena"]["due"] == 300
    # The session recorded, so the baseline does the same work: every due frame recorded.
    assert naive["records"] is True and naive["cameras"]["arena"]["recorded"] == 300
    other = data["naive_no_recording"]
    assert other["records"] is False and other["cameras"]["arena"]["recorded"] is None
    check_percentiles(other["latency_ms"]["end_to_end"], "naive_no_recording end_to_end")
    ratios = data["ratios"]
    app_fps, naive_fps = arena["analysed_fps"], naive["analysed_fps"]
    assert ratios["analysed_fps"] == round(app_fps / naive_fps, 3)
    naive_p50 = naive["latency_ms"]["end_to_end"]["p50"]
    assert ratios["end_to_end_p50"] == round(naive_p50 / latency["end_to_end"]["p50"], 3)
    assert "x better" in result.stdout and "benchmark.json" in result.stdout


def test_the_stages_of_each_frame_add_up_to_its_end_to_end_latency() -> None:
    # Two frames: the second arrives while the worker still estimates the first.
    timing = pd.DataFrame(
        {
            "host_timestamp": [10.000, 10.005],
            "picked_up": [10.001, 10.021],
            "preprocess_ms": [1.0, 1.0],
            "inference_ms": [15.0, 15.0],
            "decode_ms": [0.5, 0.5],
            "pose_ready": [10.0175, 10.0375],
        }
    )
    stages = frame_stages_ms(timing)
    np.testing.assert_allclose(stages["queue_wait"], [0.0, 12.5])  # until 10.0175
    np.testing.assert_allclose(stages["transport"], [1.0, 3.5])
    total = sum(stages[s] for s in (*FRAME_STAGES, "handover"))
    np.testing.assert_allclose(total, stages["end_to_end"])


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_ctrl_c_ends_the_benchmark_early_with_what_it_has(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "DeepLabStream.py"),
            "--settings",
            str(arena_settings(tmp_path)),
            "--headless",
            "--benchmark-enabled",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for poses: the stream is running
            timing = list((tmp_path / "out").glob("*/arena.pose_timing.csv"))
            if timing and timing[0].read_text().count("\n") > 30:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    data = json.loads((only_session(tmp_path / "out") / "benchmark.json").read_text())
    assert data["frames_requested"] == 3000  # the default
    assert data["stop_reason"] == "Ctrl-C received"
    captured = data["cameras"]["arena"]["captured"]
    assert 30 < captured < 3000
    assert data["naive"]["cameras"]["arena"]["due"] == captured  # the baseline on as many
    assert "x better" in stdout
