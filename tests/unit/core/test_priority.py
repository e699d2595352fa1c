"""The loop has priority: side processes run niced, the inference worker on its own cores."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import psutil
import pytest

from deeplabstream.core import priority as priority_rules
from deeplabstream.core.priority import (
    SIDE_NICENESS,
    ProcessPriority,
    apply_process_priority,
    can_pin,
    inference_pool_may_spin,
    inference_thread_count,
    plan_priorities,
)
from deeplabstream.live.session.live import LiveSession
from deeplabstream.settings import load_settings
from tests.support.files import make_ffv1_video, write_settings


def test_pinning_gives_the_worker_its_own_cores_and_leaves_the_rest_to_side_work() -> None:
    two = plan_priorities("on", 1, (0, 1))
    assert two.inference_cpus == (1,) and two.other_cpus == (0,)
    eight = plan_priorities("auto", 3, tuple(range(8)))
    assert eight.inference_cpus == (5, 6, 7) and eight.other_cpus == (0, 1, 2, 3, 4)
    greedy = plan_priorities("on", 4, (2, 3))  # never every core: capture needs one
    assert greedy.inference_cpus == (3,) and greedy.other_cpus == (2,)
    four = plan_priorities("auto", 3, (0, 1, 2, 3))  # auto keeps two cores for side work
    assert four.inference_cpus == (2, 3) and four.other_cpus == (0, 1)


def test_auto_does_not_confine_side_work_to_one_core_of_two() -> None:
    plan = plan_priorities("auto", 1, (0, 1))
    assert plan.inference_cpus == () and plan.other_cpus == ()


def test_off_and_a_single_core_pin_nothing_but_still_nice_the_recorders() -> None:
    for plan in (plan_priorities("off", 1, (0, 1, 2, 3)), plan_priorities("auto", 1, (0,))):
        assert plan.inference_cpus == () and plan.other_cpus == ()
        assert plan.for_role("inference").cpus is None
        assert plan.for_role("recorder") == ProcessPriority("recorder", SIDE_NICENESS, None)
        assert SIDE_NICENESS == 0  # off by default: niced recorders lose frames on a busy CPU
        assert plan.for_role("capture").niceness == 0


def test_the_thread_count_rule_keeps_a_core_free() -> None:
    assert inference_thread_count(3) == 3  # as configured
    assert inference_thread_count(0, (4, 5)) == 2  # one per pinned core
    cores = len(os.sched_getaffinity(0))
    assert inference_thread_count(0) == max(1, min(4, cores - 1))


def test_pool_threads_spin_only_on_cores_of_the_workers_own(monkeypatch) -> None:
    assert inference_pool_may_spin((2, 3), 2)  # pinned: those cores are the worker's
    if can_pin():  # this platform pins: unpinned (2 cores, or CPU_AFFINITY = off) sleeps
        assert not inference_pool_may_spin(None, 2)
        assert not inference_pool_may_spin((), 1)
    # A platform that cannot pin (macOS) spins with two cores to spare beyond the threads;
    # emulated here (a mock of the platform's answer and of its core count)
    monkeypatch.setattr(priority_rules, "can_pin", lambda: False)
    monkeypatch.setattr(priority_rules, "available_cpus", lambda: tuple(range(8)))
    assert inference_pool_may_spin(None, 4) and inference_pool_may_spin(None, 6)
    assert not inference_pool_may_spin(None, 7)
    monkeypatch.setattr(priority_rules, "available_cpus", lambda: (0, 1))
    assert not inference_pool_may_spin(None, 1)


def _apply_and_report(priority: ProcessPriority, out: multiprocessing.Queue) -> None:
    applied = apply_process_priority(priority)
    out.put((applied, os.nice(0), sorted(os.sched_getaffinity(0))))


def test_a_process_applies_its_priority_to_itself() -> None:
    cores = sorted(os.sched_getaffinity(0))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    priority = ProcessPriority("recorder", 5, (cores[0],))
    process = context.Process(target=_apply_and_report, args=(priority, out))
    process.start()
    applied, nice, affinity = out.get(timeout=60)
    process.join(30)
    assert nice == os.nice(0) + 5
    assert affinity == [cores[0]]
    assert applied == {"role": "recorder", "nice": nice, "cpus": [cores[0]]}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores")
def test_a_recording_session_reports_the_priorities_its_processes_run_with(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        write_settings(
            tmp_path,
            "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nSEED = 3\n"
            "[Streaming]\nCPU_AFFINITY = on\nSIDE_NICENESS = 5\n",
        )
    )
    stream = LiveSession(settings, output_dir=tmp_path / "out", max_frames=30)
    try:
        stream.open()
        stream.pose.start_analysis()
        stream.start_recording()
        stream.start()
        pids = stream.process_ids()
        # What the OS says while they run: the recorder niced, the worker on its own core.
        recorder = psutil.Process(pids["recorder:arena"])
        worker = psutil.Process(pids["pose"])
        capture = psutil.Process(pids["capture:arena"])
        plan = stream.priority_plan
        assert recorder.nice() == os.nice(0) + 5
        assert worker.nice() == capture.nice() == os.nice(0)
        assert tuple(worker.cpu_affinity()) == plan.inference_cpus
        assert tuple(capture.cpu_affinity()) == plan.other_cpus
        assert tuple(recorder.cpu_affinity()) == plan.other_cpus
        assert tuple(os.sched_getaffinity(0)) == plan.other_cpus  # the main process too
        while not stream.all_ended:
            stream.service(0.2)
    finally:
        stream.stop("test over")
    assert tuple(sorted(os.sched_getaffinity(0))) == plan.available  # given back at stop
    assert stream.session_dir is not None
    session = json.loads((stream.session_dir / "session.json").read_text())
    priority = session["priority"]
    assert priority["cpu_affinity"] == "on"
    assert priority["inference_cores"] == list(plan.inference_cpus)
    seen = priority["processes"]
    assert seen["pose"]["cpus"] == list(plan.inference_cpus)
    assert seen["recorder:arena"]["nice"] == os.nice(0) + 5
    assert seen["capture:arena"]["cpus"] == list(plan.other_cpus)
    # the worker's own cores: its ONNX Runtime pool threads spin between frames
    assert session["pose"]["model"]["providers"]["idle_threads"] == "spin"


def test_live_sessions_nice_their_recorders_by_the_setting_and_offline_ones_do_not(
    tmp_path: Path,
) -> None:
    live = load_settings(
        write_settings(
            tmp_path,
            "[Camera arena]\nSOURCE = synthetic\n[Streaming]\nSIDE_NICENESS = 7\n",
            "live.ini",
        )
    )
    assert LiveSession(live).priority_plan.for_role("recorder").niceness == 7
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 5)
    offline = load_settings(
        write_settings(
            tmp_path,
            f"[Camera clip]\nSOURCE = video\nPATH = {video}\nPACING = lockstep\n",
            "offline.ini",
        )
    )
    # Replayed as fast as analysed: the CPU is saturated by design, encoding must keep up.
    assert LiveSession(offline).priority_plan.for_role("recorder").niceness == 0
