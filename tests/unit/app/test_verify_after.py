"""``[Session] VERIFY = after`` stopped by Ctrl-C: said, a stop's exit code, no empty verify/.

A real child process stands in for the verify command (it makes ``verify/`` and waits, as
verify does before its first file); a real SIGINT reaches this process while it waits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from deeplabstream.app import verify_after

WAITS = (
    "import pathlib, sys, time\n"
    "pathlib.Path(sys.argv[1], 'verify').mkdir()\n"
    "pathlib.Path(sys.argv[1], 'started').touch()\n"
    "time.sleep(60)\n"
)


def test_ctrl_c_during_verify_after_says_interrupted_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def waits(folder: Path, *_: object, **__: object) -> list[str]:
        return [sys.executable, "-c", WAITS, str(folder)]

    monkeypatch.setattr(verify_after, "verify_command", waits)
    started = threading.Event()

    def ctrl_c_once_started() -> None:
        while not (tmp_path / "started").exists():
            if started.wait(0.05):
                return
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=ctrl_c_once_started, daemon=True)
    sender.start()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = verify_after.verify_in_console(tmp_path)
    finally:
        started.set()
        sender.join(timeout=10)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    said = capsys.readouterr().out
    assert code == 130, said
    assert "Verify stopped before it finished: interrupted (Ctrl-C), no verdict" in said
    assert f"deeplabstream-verify {tmp_path}" in said
    assert not (tmp_path / "verify").exists()  # the folder it left empty is taken away


def test_verify_after_gives_the_runs_settings_file_for_the_labs_signers(tmp_path: Path) -> None:
    settings = tmp_path / "settings.ini"
    folder = tmp_path / "session"
    assert verify_after.verify_command(folder, settings)[-3:] == [
        "--settings",
        str(settings),
        str(folder),
    ]
    assert "--settings" not in verify_after.verify_command(folder)
