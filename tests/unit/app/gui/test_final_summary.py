"""The window's final message is the CLI's summary, rendered from the same session.json."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from deeplabstream.app.gui.session import Part, SessionController
from deeplabstream.live.session.report.summary import headline, summary_lines
from deeplabstream.settings import load_settings
from tests.support.files import write_settings
from tests.support.processes import only_session

START_TIMEOUT_MS = 90_000  # spawning processes on a busy 2-core machine


def test_a_killed_recorder_is_in_the_final_message_as_in_session_json(
    qtbot, tmp_path: Path
) -> None:
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nFRAMERATE = 30\n"
    )
    controller = SessionController(lambda: load_settings(settings), output_dir=tmp_path / "out")
    failures: list[str] = []
    controller.failed.connect(failures.append)
    warnings: list[str] = []  # a user's stop with losses: a warning, never an error (issue 44)
    controller.warned.connect(warnings.append)

    def serviced_until(condition) -> None:
        def check() -> None:
            controller.service()
            assert controller.busy is None and condition()

        qtbot.waitUntil(check, timeout=START_TIMEOUT_MS)

    controller.start(Part.STREAM)
    serviced_until(lambda: controller.running(Part.STREAM))
    controller.start(Part.RECORDING)
    serviced_until(lambda: controller.running(Part.RECORDING))
    stream = controller.stream
    assert stream is not None
    serviced_until(lambda: stream.camera_stats()["arena"]["recorded"] >= 30)
    os.kill(stream.process_ids()["recorder:arena"], signal.SIGKILL)
    serviced_until(lambda: stream.camera_stats()["arena"]["captured"] >= 120)
    controller.stop(Part.STREAM)
    serviced_until(lambda: not controller.streaming)

    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text())
    camera = info["cameras"]["arena"]
    assert camera["frames_lost_in_recording"] > 0
    assert (
        camera["frames_recorded"] + camera["frames_lost_in_recording"] <= camera["frames_captured"]
    )
    assert controller.last_summary == summary_lines(info, session)
    # The window's message: the summary, its first line saying what was lost (issue 63: the
    # window shows a message's first lines, and "Stopped by the user" alone hid the holes).
    final = "\n".join([headline(info), *controller.last_summary[1:]])
    assert warnings[-1] == final and final.startswith("Stopped by the user: the recorder lost ")
    assert "of 'arena' (its video has holes)" in final.split("\n")[0]
    assert not any("ended with errors" in failure for failure in failures)
    assert (
        f"{camera['frames_recorded']} recorded + {camera['frames_lost_in_recording']} lost" in final
    )
