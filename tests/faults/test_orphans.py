"""Fault: the batch's main process is killed or interrupted; no process of the batch lives on.

``utils/VideoAnalyzer.py --jobs 2`` runs a replay process per video, and each of those a capture
process and a pose worker. A SIGKILL of the main process must take every one of them down (the
replays stop their streams and keep their files); a SIGINT to the main process alone (not the
terminal's whole process group) must stop the batch within seconds, without a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.files import make_ffv1_video
from tests.support.paths import PROJECT_ROOT

ANALYZER = PROJECT_ROOT / "utils" / "VideoAnalyzer.py"
# 300 s at 5 fps in --realtime (frames go out at the video's rate): far longer than any of the
# waits below, and written in a fraction of a second.
FPS = 5
FRAMES = 300 * FPS
# An orphan would run until its video ends (minutes); a child that noticed its parent's death
# ends in seconds, or tens of seconds on a loaded machine while it finalises its files. The
# bound only has to tell the two apart, whatever the machine's speed.
GONE_WITHIN_S = 90.0
START_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    # made once for the module (seconds each): the batches only read them
    folder = tmp_path_factory.mktemp("orphan_videos")
    paths = [folder / f"v{index}.mkv" for index in range(1, 4)]
    make_ffv1_video(paths[0], FRAMES, width=64, height=48, fps=FPS)
    for path in paths[1:]:
        shutil.copyfile(paths[0], path)
    return paths


@contextlib.contextmanager
def analyzer(videos: list[Path], output: Path) -> Iterator[subprocess.Popen]:
    """VideoAnalyzer on ``videos``, two at a time; whatever is left is killed at the end."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(ANALYZER),
            "--jobs",
            "2",
            *map(str, videos),
            "--realtime",
            "--no-experiment",
            "--output-dir",
            str(output),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[psutil.Process] = []
    try:
        yield process
    finally:
        with contextlib.suppress(psutil.Error):
            seen += psutil.Process(process.pid).children(recursive=True)
        for child in seen + _recorded.get(process.pid, []):
            with contextlib.suppress(psutil.Error):
                child.kill()
        process.kill()
        process.communicate(timeout=10)


_recorded: dict[int, list[psutil.Process]] = {}


def wait_until_streaming(process: subprocess.Popen, output: Path) -> list[psutil.Process]:
    """Every descendant of ``process`` once both replays stream (captures and pose workers up)."""
    main = psutil.Process(process.pid)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        sessions = [p for p in output.glob("*/session.log")] if output.is_dir() else []
        children = [c for c in main.children(recursive=True) if not _is_tracker(c)]
        if len(sessions) >= 2 and len(children) >= 6 and _analysing(output) >= 2:
            # Both replays stream: each has a capture and a pose worker, and poses are written
            # (a replay stopped before its stream started keeps no folder).
            descendants = main.children(recursive=True)
            _recorded[process.pid] = descendants
            return descendants
        time.sleep(0.2)
    raise AssertionError(f"the replays did not start within {START_TIMEOUT_S:.0f} s")


def _analysing(output: Path) -> int:
    """How many replays in ``output`` have written a pose row (below the CSV's 3 header rows)."""
    tables = output.glob("*/*.pose.csv") if output.is_dir() else []
    return sum(1 for table in tables if table.read_text(errors="replace").count("\n") > 3)


def _is_tracker(child: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return "resource_tracker" in " ".join(child.cmdline())
    return False


def still_running(processes: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    """The processes still running (zombies count as ended) after up to ``within_s`` s."""
    deadline = time.monotonic() + within_s
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(processes: list[psutil.Process]) -> list[str]:
    names = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            names.append(f"{process.pid}: {' '.join(process.cmdline())[-80:]}")
    return names


def test_sigkill_of_the_main_process_takes_every_child_down(
    videos: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "out"
    with analyzer(videos, output) as process:
        descendants = wait_until_streaming(process, output)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        left = still_running(descendants, GONE_WITHIN_S)
        assert not left, f"processes outlived the killed main process: {describe(left)}"
    for session in output.glob("*/session.json"):  # what the replays kept is readable
        json.loads(session.read_text(encoding="utf-8"))


def test_sigint_to_the_main_process_alone_stops_the_batch_within_seconds(
    videos: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "out"
    with analyzer(videos, output) as process:
        descendants = wait_until_streaming(process, output)
        os.kill(process.pid, signal.SIGINT)  # to the main pid only, not its process group
        try:
            stdout, stderr = process.communicate(timeout=GONE_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the batch did not stop within {GONE_WITHIN_S:.0f} s of SIGINT")
        left = still_running(descendants, 2.0)
        assert not left, f"processes outlived the batch: {describe(left)}"
    assert process.returncode not in (0, None), stdout + stderr
    assert "Traceback" not in stderr, stderr
    assert "interrupted" in (stdout + stderr).lower(), stdout + stderr
    sessions = list(output.glob("*/session.json"))
    assert len(sessions) == 2, sessions  # the third video never started
    for session in sessions:  # each replay stopped its stream and finalised its files
        info = json.loads(session.read_text(encoding="utf-8"))
        assert info["status"] == "finished", info
