"""Issue 44: Ctrl-C (and SIGTERM) is honoured from a command's first instant, in every phase.

``DeepLabStream.py --headless`` went on to a whole run (exit 0) after a Ctrl-C 0.1 s after its
start, or died with a ``KeyboardInterrupt`` traceback from inside numpy's import; ``app.py``
ignored it for its first 1.5 s, and later recorded the stop as "window closed".

Each test runs the real command in its own process group and signals it at a moment made to
happen on purpose: at once after its start (before Python has imported anything), or while it
waits at a named moment (``core/fault_hooks.py``: ``DEEPLABSTREAM_TEST_HOLD``), or once the app
prints its first status line. Some start the command with Ctrl-C ignored, as a script's
``cmd &`` does (how the issue's exit 0 came about): the command takes it all the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deeplabstream.core.fault_hooks import HOLD_DIR_VARIABLE, HOLD_VARIABLE, RELEASE_FILE
from tests.support.files import make_ffv1_video, write_settings
from tests.support.paths import PROJECT_ROOT

SETTINGS = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\nWIDTH = 160\nHEIGHT = 120\n"
WAIT_LIMIT_S = 120.0  # spawning and importing on a busy machine; never a bound on speed
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
SAID = {signal.SIGINT: "Ctrl-C received", signal.SIGTERM: "SIGTERM received"}
COMMANDS = ("headless", "replay", "app")


def _command(tmp_path: Path, which: str, *extra: str) -> tuple[list[str], dict[str, str]]:
    """The command line of ``which`` (a whole run of several seconds if nothing stops it)."""
    settings = write_settings(tmp_path, SETTINGS)
    out = ["--settings", str(settings), "--output-dir", str(tmp_path / "out")]
    if which == "headless":
        script = ["DeepLabStream.py", "--headless", "--duration", "6"]
        return [sys.executable, *script, *out], {}
    if which == "app":
        app = [sys.executable, "app.py", "--duration", "12", *extra, *out]
        return app, {"QT_QPA_PLATFORM": "offscreen"}
    video = tmp_path / "clip.mkv"
    make_ffv1_video(video, 30, 160, 120)
    replay = [sys.executable, "utils/VideoAnalyzer.py", str(video), "--no-experiment"]
    return [*replay, *out], {}


def _start(
    tmp_path: Path, which: str, *extra: str, moment: str = "", sigint_ignored: bool = False
) -> tuple[subprocess.Popen[str], Path]:
    """Start ``which`` in its own process group (a terminal's foreground job)."""
    command, env = _command(tmp_path, which, *extra)
    holds = tmp_path / "holds"
    holds.mkdir()
    hold = {HOLD_VARIABLE: moment, HOLD_DIR_VARIABLE: str(holds)} if moment else {}

    def ignore_ctrl_c() -> None:  # as a non-interactive shell starts `cmd &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def default_ctrl_c() -> None:  # as a terminal starts a foreground job
        # Not this test process's own disposition: a pytest-xdist worker was seen with Ctrl-C
        # ignored (SigIgn 0x1001006: SIGINT and SIGQUIT, as C's system() leaves them while it
        # runs), which a child inherits, and a Ctrl-C at its first instant was then lost.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_ctrl_c if sigint_ignored else default_ctrl_c,  # one thread here
        env={**os.environ, **env, **hold},
    )
    return process, holds


def _wait_for_hold(process: subprocess.Popen[str], holds: Path, moment: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not any(holds.glob(f"{moment}.*")):
        if process.poll() is not None or time.monotonic() > deadline:
            _end(process)
            out, err = process.communicate()
            pytest.fail(f"never held at {moment}: exit {process.returncode}\n{out}\n{err}")
        time.sleep(0.02)


def _signal_group(process: subprocess.Popen[str], sig: int) -> None:
    # Ctrl-C goes to the whole group, as a terminal sends it; SIGTERM to the main process alone.
    if sig == signal.SIGINT:
        os.killpg(process.pid, sig)
    else:
        os.kill(process.pid, sig)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=WAIT_LIMIT_S)
    finally:
        _end(process)
    return process.returncode, out, err


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def _sessions(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


@pytest.mark.parametrize("which", COMMANDS)
def test_ctrl_c_at_once_after_the_start_runs_nothing(tmp_path: Path, which: str) -> None:
    # Sent as soon as the process exists: Python may not have started; whatever it had
    # reached, the command ends as stopped by Ctrl-C and nothing ran.
    process, _ = _start(tmp_path, which)
    state = _signal_state(process.pid)  # why a lost Ctrl-C was lost, if it was
    os.killpg(process.pid, signal.SIGINT)
    code, out, child_err = _finish(process)
    said = f"\n[test: the child at its start: {state}; this process: {_signal_state(os.getpid())}]"
    err = child_err + said
    # 130: ours; -2: ended by the signal itself; else Python's own start-up took it.
    if code not in (130, -signal.SIGINT):
        if _swallowed_inside_python_start_up(child_err):
            pytest.skip("CPython's start-up caught this Ctrl-C and went on (nothing of ours ran)")
        assert code == 1 and _stopped_inside_python_start_up(child_err), (code, out, err)
    assert _sessions(tmp_path) == [], (out, err)
    assert "Session folder" not in out


def _signal_state(pid: int) -> str:
    """The ignored and blocked signals of process ``pid`` (Linux's /proc; else unknown)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "unknown"
    return ", ".join(line for line in lines if line.startswith(("SigIgn", "SigBlk", "SigCgt")))


def _stopped_inside_python_start_up(err: str) -> bool:
    """Whether the interpreter stopped in its own start-up (exit 1), before any of our code.

    CPython ends with "Fatal Python error: init_<stage>" when Ctrl-C arrives while it sets
    itself up: ``init_import_site`` (importing ``site``), ``init_sys_streams`` (CI, a loaded
    machine) or ``init_interp_main`` ("can't initialize signals"); or with a bare
    "KeyboardInterrupt", no Python frame in a traceback: before the script runs. All four came
    in 800 starts of ``utils/VideoAnalyzer.py --help`` signalled 0 to 8 ms after they began
    (180, 39, 1 and 3 times). No handler of the program exists yet: the process ends with
    nothing started.
    """
    if "KeyboardInterrupt" not in err:
        return False
    return "Fatal Python error: init_" in err or err.strip() == "KeyboardInterrupt"


def _swallowed_inside_python_start_up(err: str) -> bool:
    """Whether CPython caught the Ctrl-C before our handlers, printed it and went on.

    While it checks whether the script's path is an import path entry, CPython 3.11 prints
    "Failed checking if argv[0] is an import path entry" with the ``KeyboardInterrupt``; in an
    import lock's weak reference callback it prints "Exception ignored in: <function
    _get_module_lock...". Either way it runs on: the signal is spent where no handler of the
    program can see it (7 and 1 of the 800 starts above, exit 0 with the usage printed). A limit
    of the interpreter.
    """
    said = ("Failed checking if argv[0] is an import path entry", "Exception ignored in")
    return "KeyboardInterrupt" in err and any(line in err for line in said)


def _stop_at(
    tmp_path: Path, which: str, moment: str, sig: int, *, sigint_ignored: bool = False
) -> tuple[int, str, str]:
    """Run ``which`` until it holds at ``moment``; send ``sig``; let it go on; what it did."""
    process, holds = _start(tmp_path, which, moment=moment, sigint_ignored=sigint_ignored)
    _wait_for_hold(process, holds, moment)
    _signal_group(process, sig)
    (holds / RELEASE_FILE).write_text("go\n")
    return _finish(process)


def _assert_stopped_before_the_start(
    tmp_path: Path, code: int, out: str, err: str, sig: int
) -> None:
    assert code == EXIT_CODES[sig], (code, out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, out + err
    assert f"Stopped before the start: {SAID[sig]}; nothing was started" in out, out
    assert _sessions(tmp_path) == []


SLOW = pytest.mark.slow  # the same path once more: CI's second step (the default's 15 minutes)


def _first_line_case(which: str, sig: int, ignored: bool, slow: bool) -> object:
    name = {signal.SIGINT: "ctrl-c", signal.SIGTERM: "sigterm"}[sig]
    case_id = f"{which}-{name}" + ("-started-ignored" if ignored else "")
    return pytest.param(which, sig, ignored, id=case_id, marks=[SLOW] if slow else [])


@pytest.mark.parametrize(
    ("which", "sig", "sigint_ignored"),
    [
        *(_first_line_case(which, signal.SIGINT, False, False) for which in COMMANDS),
        # the case, `DeepLabStream.py ... &` from a script: Ctrl-C ignored at the start
        _first_line_case("headless", signal.SIGINT, True, False),
        *(_first_line_case(which, signal.SIGINT, True, True) for which in COMMANDS[1:]),
        *(_first_line_case(which, signal.SIGTERM, False, True) for which in COMMANDS),
    ],
)
def test_a_stop_at_the_launchers_first_line_is_honoured_after_the_imports(
    tmp_path: Path, which: str, sig: int, sigint_ignored: bool
) -> None:
    # The signal comes before numpy, Qt or the session's stack are imported (seconds): it is
    # remembered, and the command stops as soon as it looks, before anything starts.
    code, out, err = _stop_at(
        tmp_path, which, "stop-signals-taken", sig, sigint_ignored=sigint_ignored
    )
    _assert_stopped_before_the_start(tmp_path, code, out, err, sig)


@pytest.mark.parametrize("which", [*COMMANDS[:1], pytest.param(COMMANDS[1], marks=SLOW), "app"])
def test_ctrl_c_while_the_command_imports_its_modules_starts_nothing(
    tmp_path: Path, which: str
) -> None:
    code, out, err = _stop_at(tmp_path, which, "command-import", signal.SIGINT)
    _assert_stopped_before_the_start(tmp_path, code, out, err, signal.SIGINT)


@pytest.mark.parametrize(
    ("moment", "sig"),
    [
        ("window-shown", signal.SIGINT),
        pytest.param("window-built", signal.SIGINT, marks=SLOW),
        pytest.param("window-built", signal.SIGTERM, marks=SLOW),
        pytest.param("window-shown", signal.SIGTERM, marks=SLOW),
    ],
    ids=["shown-ctrl-c", "built-ctrl-c", "built-sigterm", "shown-sigterm"],
)
def test_a_stop_while_the_window_is_made_or_shown_starts_no_stream(
    tmp_path: Path, moment: str, sig: int
) -> None:
    # Built: the window exists, not yet shown; shown: on screen, no Start pressed yet.
    code, out, err = _stop_at(tmp_path, "app", moment, sig)
    _assert_stopped_before_the_start(tmp_path, code, out, err, sig)


@pytest.mark.slow  # a whole session of the app (about 20 s on a busy machine)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_of_the_running_app_is_recorded_as_the_signal_not_window_closed(
    tmp_path: Path, sig: int
) -> None:
    # Offscreen, the app prints a status line per second. Two lines saying "recorded": the
    # recording runs, and the window's autopilot (which checks every 0.1 s) has seen it run:
    # the start-up is over.
    process, _ = _start(tmp_path, "app", "--start", "stream,recording")
    assert process.stdout is not None
    recording_lines = 0
    while recording_lines < 2:
        line = process.stdout.readline()  # blocks until the next line (or the end)
        if not line:
            _end(process)
            pytest.fail(f"the app ended before it recorded: exit {process.returncode}")
        recording_lines += ", recorded " in line
    _signal_group(process, sig)
    code, out, err = _finish(process)
    assert code == 0, (code, out, err)  # a stop of a running session: its files are whole
    assert "Traceback" not in out + err, out + err
    [session] = _sessions(tmp_path)
    info = json.loads((session / "session.json").read_text())
    assert info["status"] == "finished", info
    assert info["stop_reason"] == SAID[sig], info["stop_reason"]
