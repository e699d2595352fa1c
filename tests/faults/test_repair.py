"""Issue 25: a killed session repaired at the next start keeps the rules of a finished one.

A session killed hard leaves ``session.json`` as of its last update (every 2 s), while its video
and frames table went on growing until the kill. The next start repairs it: the figures must
then come from the files, so that captured >= recorded and recorded + lost = captured, with
recorded = the frames the video holds = the rows of its frames table.
"""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from deeplabstream.outputs.frames_table import count_table_rows
from deeplabstream.outputs.video import count_decodable_frames
from tests.faults.test_session_faults import start, wait_for_session

AHEAD_BY = 45  # frames the files get beyond session.json's last figures (1.5 s at 30 fps)


@pytest.mark.slow  # a whole session: the slow step (the default suite's 15 minutes)
def test_a_killed_session_is_repaired_from_its_files_and_keeps_the_invariants(tmp_path):
    process = start(tmp_path, "--recording-enabled", "--frames", "1800", new_session=True)
    session, _ = wait_for_session(
        tmp_path, lambda d: d["cameras"]["arena"]["frames_recorded"] >= 30
    )
    pids = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    # Freeze the main process, the only writer of session.json: the camera and the recorder go
    # on, so the files get ahead of its figures on purpose (as between two updates), then kill
    # the whole group as a power cut would.
    os.kill(process.pid, signal.SIGSTOP)
    stale = json.loads((session / "session.json").read_text())["cameras"]["arena"]
    table = session / "arena.frames.csv"
    deadline = time.monotonic() + 120
    while count_table_rows(table) < stale["frames_captured"] + AHEAD_BY:
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the recording did not get ahead of session.json")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)

    again = start(tmp_path, "--frames", "10")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr[-2000:]
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "interrupted"
    camera = info["cameras"]["arena"]
    decodable = count_decodable_frames(session / "arena.mp4")
    assert camera["frames_recorded"] == decodable == count_table_rows(table) > 0
    assert camera["frames_captured"] >= camera["frames_recorded"]
    recorded, lost = camera["frames_recorded"], camera["frames_lost_in_recording"]
    assert recorded + lost == camera["frames_captured"]
    # Re-derived from the files: more than session.json's stale figure said.
    assert camera["frames_captured"] >= stale["frames_captured"] + AHEAD_BY
    assert camera["frames_dropped"] == (
        camera["frames_dropped_by_camera"] + camera["frames_lost_in_recording"]
    )
    [recording] = camera["recordings"]
    assert recording["frames"] == camera["frames_recorded"]
    assert recording["lost"] == camera["frames_lost_in_recording"]
    assert camera["repaired_from_files"] is True
