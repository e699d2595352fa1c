"""The stall watch, the end-of-session verdict and the summary rendered from session.json."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import numpy as np

from deeplabstream.live.processes.messages import PoseRecord
from deeplabstream.live.session.analysis import LiveDeadline
from deeplabstream.live.session.report.health import SessionHealth
from deeplabstream.live.session.report.stalls import AnalysisStallWatch
from deeplabstream.live.session.report.summary import summary_lines
from deeplabstream.settings.sections import ExperimentSettings

S = 1_000_000_000


def branch(last_index: int):
    """A camera as the watch reads it: its name and ring header (a stand-in for CameraBranch)."""
    header = {"captured": last_index + 1, "last_frame_index": last_index}
    return SimpleNamespace(name="arena", ended=False, ring=SimpleNamespace(header=header))


def pose(frame: int, ready_ns: int, picked_up_ns: int | None = None) -> PoseRecord:
    picked_up_ns = ready_ns - 2_000_000 if picked_up_ns is None else picked_up_ns
    return PoseRecord(0, frame, ready_ns - 3_000_000, picked_up_ns, ready_ns, frame,
                      np.zeros((1, 3), np.float32))  # fmt: skip


def test_a_silence_while_frames_arrive_is_said_at_once_and_counted_exactly_when_it_ends():
    watch = AnalysisStallWatch()
    watch.watch("arena", 30.0, None, -1)
    now = time.perf_counter_ns()
    for frame in range(5):  # a healthy pace: a pose every 33 ms, 5 s ago
        watch.on_pose("arena", pose(frame, now - 5 * S + frame * 33_000_000))
    camera = branch(150)  # frames went on arriving
    began, ended = watch.check([camera])
    (said,) = began
    assert said.startswith("analysis stalled: no pose of camera 'arena' for ") and ended == []
    assert said.endswith(" s while frames 5-150 arrived")
    assert watch.stalled_s("arena") > 4.8
    assert watch.check([camera]) == ([], [])  # said once
    watch.on_pose("arena", pose(151, time.perf_counter_ns()))
    began, (stall,) = watch.check([camera])
    assert (stall.first_frame, stall.last_frame, stall.frames) == (5, 150, 146)
    assert stall.duration_s > 4.8
    assert stall.text() == (
        f"analysis stalled for {stall.duration_s:.1f} s: frames 5-150 of camera 'arena' "
        "not analysed"
    )
    assert watch.stalled_s("arena") is None
    assert (watch.count, watch.frames_not_analysed) == (1, 146)


def test_a_slow_model_is_slow_not_stalled_and_silence_without_frames_is_no_stall():
    watch = AnalysisStallWatch()
    watch.watch("arena", 30.0, None, -1)
    start = time.perf_counter_ns() - 20 * S
    for k in range(10):  # a pose every 0.8 s, the camera 24 frames ahead each time
        watch.on_pose("arena", pose(24 * k, start + k * 8 * S // 10))
    watch.on_pose("arena", pose(24 * 10 + 12, start + 10 * 8 * S // 10 + 15 * S // 10))
    assert watch.count == 0  # 2.3 s after poses 0.8 s apart: within 4 x its pace (3.2 s)
    assert watch.check([branch(24 * 10 + 12)]) == ([], [])  # nothing waits: no stall
    assert watch.stalled_s("arena") is None


def test_a_stall_going_on_when_the_analysis_stops_is_counted_to_the_newest_frame():
    watch = AnalysisStallWatch()
    watch.watch("arena", 30.0, None, -1)
    watch.on_pose("arena", pose(0, time.perf_counter_ns() - 3 * S))
    camera = branch(90)
    assert watch.check([camera])[0]
    camera.ended = True  # the stream ended meanwhile
    (stall,) = watch.close([camera])
    assert (stall.first_frame, stall.last_frame) == (1, 90)


def test_a_stall_that_ends_with_the_frame_the_worker_held_counts_the_frames_skipped_after_it():
    """The worker stopped with frame 5 in hand: its pose comes 4 s late, then frame 126."""
    watch = AnalysisStallWatch()
    watch.watch("arena", 30.0, None, -1)
    now = time.perf_counter_ns()
    for frame in range(5):
        watch.on_pose("arena", pose(frame, now - 5 * S + frame * 33_000_000))
    # picked up before the silence, finished after it
    watch.on_pose("arena", pose(5, now, picked_up_ns=now - 4 * S))
    assert watch.count == 0  # nothing skipped yet: the frames that came meanwhile follow
    watch.on_pose("arena", pose(126, now + 10_000_000))
    (stall,) = watch.check([branch(126)])[1]
    assert (stall.first_frame, stall.last_frame, stall.frames) == (6, 125, 120)
    assert stall.duration_s > 4.0


def test_a_late_frame_that_skipped_nothing_is_no_stall_and_a_held_one_at_the_end_counts():
    watch = AnalysisStallWatch()
    watch.watch("arena", 30.0, None, -1)
    now = time.perf_counter_ns()
    watch.on_pose("arena", pose(0, now - 5 * S))
    watch.on_pose("arena", pose(1, now))  # the camera was silent: frame 1 came late, taken at once
    watch.on_pose("arena", pose(2, now + 33_000_000))
    assert watch.count == 0
    # held from 40 ms to 12 s: beyond 4 x the pace of these poses (2.5 s)
    watch.on_pose("arena", pose(3, now + 12 * S, picked_up_ns=now + 40_000_000))
    camera = branch(150)
    camera.ended = True  # the stream ended before another pose
    (stall,) = watch.close([camera])
    assert (stall.first_frame, stall.last_frame) == (4, 150)


def analysis(checked: int, misses: int, stage: str, deadline_ms: float = 66.667):
    """An analysis as the verdict reads it (finished, with its worker's deadline figures)."""
    by_stage = dict.fromkeys(("wait", "transport", "inference", "experiment", "output"), 0)
    by_stage[stage] = misses
    end = {"p50": 520.0, "p95": 600.0, "p99": 640.0, "max": 650.0}
    figures = {
        "frames_checked": checked, "misses": misses, "misses_by_stage": by_stage,
        "end_to_end_ms": end,
    }  # fmt: skip
    return SimpleNamespace(
        finished=SimpleNamespace(cameras={"arena": {"deadline": figures}}),
        live_deadline={"arena": LiveDeadline()},
        deadlines={"arena": round(deadline_ms * 1e6)},
    )


UPDATE = {
    "name": "SlowUpdate",
    "update_ms": {"p50": 500.1, "p95": 500.5, "p99": 500.9, "max": 501.2},
}


def test_a_closed_loop_above_the_tolerance_is_an_error_naming_the_stage_and_its_figure():
    health = SessionHealth(ExperimentSettings(), live=True)
    (news,) = health.judge([analysis(20, 20, "experiment")], [UPDATE])
    assert news.level == logging.ERROR
    assert news.text.startswith(
        "camera 'arena': 20 of 20 analysed frames (100.0 %) missed the 66.7 ms deadline "
        "(tolerance 1 %), 20 of them in the experiment's update; its update took p50 500.1 / "
        "p99 500.9 / max 501.2 ms"
    )
    assert health.verdict == "error"


def test_pose_estimation_alone_above_a_set_deadline_is_an_error_naming_the_stage_and_its_figure():
    health = SessionHealth(ExperimentSettings(deadline_ms=66.667), live=True)
    (news,) = health.judge([analysis(300, 30, "inference")], [])
    assert news.level == logging.ERROR
    assert news.text.startswith(
        "camera 'arena': 30 of 300 analysed frames (10.0 %) missed the 66.7 ms deadline "
        "(tolerance 1 %), 30 of them in inference; frame -> end of the loop p50 520.0 / "
        "p99 640.0 / max 650.0 ms"
    )
    assert "warning" not in news.text
    assert health.verdict == "error" and health.problems == [news.text]


def test_pose_estimation_alone_is_only_warned_about_the_experiments_auto_deadline():
    """Issue 38: without an experiment, the auto deadline (the experiment's) fails no session."""
    health = SessionHealth(ExperimentSettings(), live=True)  # DEADLINE_MS = auto
    (news,) = health.judge([analysis(300, 30, "inference")], [])
    assert news.level == logging.WARNING
    assert "no experiment ran, so this is a warning" in news.text
    assert health.verdict == "warning" and health.loop_warnings == [news.text]


def test_the_verdict_counts_every_error_and_warning_of_the_session():
    """Issue 37: a session that ended with errors never reads "ok", whatever its loop did."""
    health = SessionHealth(ExperimentSettings(), live=True)
    assert health.judge([analysis(100, 0, "inference")], [UPDATE]) == []
    section = health.section([], [], 0, errors=["the pose worker died (SIGKILL)"], warnings=[])
    assert section.verdict == "error"
    assert section.to_json()["counted"] == {"errors": 1, "warnings": 0}
    assert health.section([], [], 0, errors=[], warnings=["disk space low"]).verdict == "warning"
    assert health.section([], [], 0, errors=[], warnings=[]).verdict == "ok"


def test_a_few_misses_the_deadline_off_and_a_replay_are_nothing():
    assert (
        SessionHealth(ExperimentSettings(), live=True).judge([analysis(100, 2, "wait")], [UPDATE])
        == []
    )
    off = SessionHealth(ExperimentSettings(deadline_ms="off"), live=True)
    assert off.judge([analysis(20, 20, "experiment")], [UPDATE]) == []
    replay = SessionHealth(ExperimentSettings(), live=False)
    assert replay.judge([analysis(20, 20, "experiment")], [UPDATE]) == []


def test_the_summary_says_what_session_json_says():
    record = {
        "stop_reason": "every camera has ended (frame limit reached)",
        "errors": ["camera 'arena': recording stopped"],
        "cameras": {
            "arena": {
                "frames_captured": 900, "measured_fps": 60.0, "frames_recorded": 285,
                "frames_lost_in_recording": 615, "frames_dropped_by_camera": 0,
                "recordings": [{"video": "arena.mp4"}],
            },
        },
        "pose_runs": [{"cameras": {"arena": {
            "frames_analysed": 108, "frames_skipped": 0, "frames_lost": 0,
            "frames_not_analysed_worker_gone": 792, "analysed_fps": 30.0,
            "latency_ms": {"p50": 3.1, "p99": 4.0},
        }}}],
        "experiment_runs": [],
        "health": {"cameras": {}, "stalls": {"count": 0}, "verdict": "ok"},
    }  # fmt: skip
    assert summary_lines(record, None) == [
        "Stopped: every camera has ended (frame limit reached)",
        "  arena: 900 frames captured (60.00 fps), 285 recorded + 615 lost in recording, 0 dropped "
        "by the camera",
        "  arena: 108 frames analysed (30.0 fps), 0 skipped, 792 not analysed (the pose worker was "
        "gone); frame-to-pose latency p50 3.1 ms, p99 4.0 ms",
        "  error: camera 'arena': recording stopped",
    ]
