"""Issue 53 (18): every process's log lines reach ``session.log``, those before it existed too.

A capture process opens its camera before the session folder (and its log) exists, and the
main process logs the cameras opening then: their lines are held and written to ``session.log``
first thing when it exists (core/logs.py). A lab's camera logs when it opens and closes; both
lines, and the main process's, are in the file, named by their process.
"""

from __future__ import annotations

import subprocess
import sys

from tests.faults.test_loop_health import session_of
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT

CHATTY_CAMERA = '''
import logging

from deeplabstream.hardware.cameras.synthetic import SyntheticCamera

log = logging.getLogger("lab.chatty")


class Chatty(SyntheticCamera):
    """The simulated camera, saying when it opens and closes (as a lab's driver does)."""

    def open(self, *args, **kwargs):
        log.warning("chatty: the lab's camera opens")
        return super().open(*args, **kwargs)

    def close(self):
        log.warning("chatty: the lab's camera closes")
        super().close()
'''


def test_every_process_s_lines_reach_session_log_those_before_it_existed_too(tmp_path):
    (tmp_path / "cameras").mkdir()
    (tmp_path / "cameras" / "chatty.py").write_text(CHATTY_CAMERA, encoding="utf-8")
    settings = write_settings(
        tmp_path, "[Camera arena]\nSOURCE = chatty\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
    )
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--frames", "15",
         "--recording-enabled"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder, _ = session_of(tmp_path / "out")
    log = (folder / "session.log").read_text(encoding="utf-8")
    # The capture process's line from before the folder existed, and one from its end.
    assert "[capture:arena] lab.chatty: chatty: the lab's camera opens" in log, log
    assert "[capture:arena] lab.chatty: chatty: the lab's camera closes" in log, log
    # The main process's line of the cameras opening (before the folder existed).
    assert "[main] deeplabstream.live.session.cameras: camera 'arena' opened" in log, log
