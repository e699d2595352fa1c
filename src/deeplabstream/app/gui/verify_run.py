"""One run of ``deeplabstream-verify`` on a finished session, in a process of its own."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QProcess, pyqtSignal

from deeplabstream.app.verify_after import verify_command
from deeplabstream.outputs.session_record import (
    SESSION_JSON,
    DamagedRecordError,
    read_record_data,
)

COMMAND_NAME = "deeplabstream-verify"  # how its messages start
VERIFY_FOLDER = "verify"  # what the command writes in the session folder
SUMMARY_NAME = "summary.json"
PROGRESS_PREFIX = "verify:"
AGREES, DIFFERS, IN_PART = "agrees", "differs", "agrees in part"
EXIT_AGREES, EXIT_DIFFERS, EXIT_CANNOT, EXIT_IN_PART, EXIT_UNTRUSTED = 0, 1, 2, 3, 4
# 4: nothing differs, but the signer is in no list of trusted signers (named under not checked)
VERDICT_OF_EXIT = {
    EXIT_AGREES: AGREES,
    EXIT_DIFFERS: DIFFERS,
    EXIT_IN_PART: IN_PART,
    EXIT_UNTRUSTED: IN_PART,
}
STOP_GRACE_MS = 3000  # after SIGTERM, how long the command may take to exit before it is killed
KEPT_LINES = 200  # the newest stdout lines kept: the reasons when summary.json cannot be read
KEPT_ERROR_CHARS = 4000  # the end of stderr kept for the message


def recorded_videos(session_dir: Path) -> list[Path]:
    """Return the recordings ``session.json`` names that exist in ``session_dir``."""
    try:
        data = read_record_data(session_dir / SESSION_JSON)
    except (OSError, DamagedRecordError):
        return []
    return [path for path in _named_videos(session_dir, data) if path.is_file()]


def _named_videos(session_dir: Path, data: Any) -> list[Path]:
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cameras, dict):
        return []
    named = []
    for camera in cameras.values():
        recordings = camera.get("recordings") if isinstance(camera, dict) else None
        for recording in recordings if isinstance(recordings, list) else []:
            video = recording.get("video") if isinstance(recording, dict) else None
            if isinstance(video, str) and video:
                named.append(session_dir / video)
    return named


def why_not_verifiable(session_dir: Path | None) -> str | None:
    """Say why the finished session ``session_dir`` cannot be verified; None when it can."""
    if session_dir is None:
        return "no session yet: verify checks a finished session against its recording"
    record = session_dir / SESSION_JSON
    if not record.is_file():
        return f"{session_dir} has no {SESSION_JSON}: it is not a finished session folder"
    try:
        read_record_data(record)
    except (OSError, DamagedRecordError) as error:
        return f"{record} cannot be read ({error})"
    if not recorded_videos(session_dir):
        return (
            f"{session_dir} holds no recording: verify re-analyses the recorded video, so tick "
            "Record for a camera (Rig tab) and press Start Recording in the next session"
        )
    return None


@dataclass(frozen=True)
class VerifyOutcome:
    """What one verify run found: the verdict and why, or why it could not verify."""

    session_dir: Path
    exit_code: int | None  # None: it crashed or was stopped
    verdict: str | None = None  # AGREES, IN_PART or DIFFERS; None when it could not verify
    reasons: tuple[str, ...] = ()
    report: Path | None = None  # verify/report.html when it was written
    error: str = ""  # why there is no verdict
    stopped: bool = False  # stopped on purpose (the window closed, a stream started)
    coverage: str = ""  # "58 of 905 analysed frames checked (6 %)" (summary.json)

    @property
    def agrees(self) -> bool:
        """Whether the session agrees with its recording (everything checked)."""
        return self.verdict == AGREES

    def headline(self) -> str:
        """One line: the verdict with its coverage, or why there is none."""
        checked = f": {self.coverage}" if self.coverage else ""
        if self.verdict == AGREES:
            return f"Verify: the session agrees with its recording{checked}"
        if self.verdict == IN_PART:
            return f"Verify: it agrees in part, not everything could be checked{checked}"
        if self.verdict == DIFFERS:
            return f"Verify: the session differs from its recording{checked}"
        if self.stopped:
            return "Verify stopped before it finished"
        error = self.error.removeprefix(f"{COMMAND_NAME}: ")
        if str(self.session_dir) in error:  # the command's message names the folder itself
            return f"Verify: {error}"
        return f"Verify could not check {self.session_dir}: {error}"


def read_outcome(
    session_dir: Path, exit_code: int | None, stdout_lines: list[str], stderr: str
) -> VerifyOutcome:
    """Turn a finished command's exit code and output into its :class:`VerifyOutcome`.

    Exit 0 agrees, 1 differs, 3 agrees in part, 2 could not verify; else the command failed.
    """
    error = stderr.strip()[-KEPT_ERROR_CHARS:]
    if exit_code not in VERDICT_OF_EXIT:
        if exit_code == EXIT_CANNOT:
            return VerifyOutcome(session_dir, exit_code, error=error or "no reason given")
        said = f"; it said: {error}" if error else ""
        what = "crashed" if exit_code is None else f"ended with exit code {exit_code}"
        return VerifyOutcome(session_dir, exit_code, error=f"the verify command {what}{said}")
    folder = session_dir / VERIFY_FOLDER
    summary = _read_summary(folder / SUMMARY_NAME)
    verdict = VERDICT_OF_EXIT[exit_code]
    reasons = _reasons(summary, verdict)
    if reasons is None:  # no summary to read: the reasons are the last lines it printed
        printed = [line for line in stdout_lines if line and not line.startswith(PROGRESS_PREFIX)]
        reasons = tuple(printed[-10:]) if verdict == DIFFERS else ()
    report_name = summary.get("report") if isinstance(summary.get("report"), str) else None
    report = folder / (report_name or "report.html")
    line = summary.get("verdict_line")
    return VerifyOutcome(
        session_dir,
        exit_code,
        verdict=verdict,
        reasons=reasons,
        report=report if report.is_file() else None,
        coverage=line.partition(": ")[2] if isinstance(line, str) else "",
    )


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _reasons(summary: dict[str, Any], verdict: str = DIFFERS) -> tuple[str, ...] | None:
    """Return what differs (``reasons``), or for "agrees in part" what was not checked."""
    reasons = summary.get("not_checked" if verdict == IN_PART else "reasons")
    if not isinstance(reasons, list):
        return None
    return tuple(str(reason) for reason in reasons)


class VerifyProcess(QObject):
    """Run the verify command on one session folder; never blocks the event loop.

    ``progress`` carries each ``verify: ...`` line, ``finished`` the :class:`VerifyOutcome`
    (also after :meth:`stop`, with ``stopped`` set).
    """

    progress = pyqtSignal(str)
    finished = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session_dir: Path | None = None
        self.outcome: VerifyOutcome | None = None
        self._process: QProcess | None = None
        self._stdout_lines: deque[str] = deque(maxlen=KEPT_LINES)
        self._partial = ""  # a line not yet ended by its newline
        self._stderr = ""
        self._started = 0.0
        self._stopping = False

    @property
    def running(self) -> bool:
        """Whether the command runs now."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The command's process id while it runs (tests look for it afterwards)."""
        process = self._process
        return int(process.processId()) if process is not None else None

    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._started if self._started else 0.0

    def start(self, session_dir: Path, lab_settings: Path | None = None) -> None:
        """Start verifying ``session_dir`` (returns at once), with the lab's settings file."""
        if self.running:
            raise RuntimeError("a verify run is already going")
        self.session_dir, self.outcome = session_dir, None
        self._stdout_lines.clear()
        self._partial, self._stderr, self._stopping = "", "", False
        process = self._process = QProcess(self)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._failed_to_start)
        program, *arguments = verify_command(session_dir, lab_settings)
        self._started = time.monotonic()
        process.start(program, arguments)

    def stop(self) -> None:
        """Stop the command: SIGTERM, then a kill; waits at most twice :data:`STOP_GRACE_MS`."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        process.terminate()
        if not process.waitForFinished(STOP_GRACE_MS):
            process.kill()
            process.waitForFinished(STOP_GRACE_MS)
        if self._process is process:  # no finished signal came (it never started)
            self._end(VerifyOutcome(self.session_dir or Path(), None, stopped=True))

    # -- on the event loop -----------------------------------------------------------------

    def _read_stdout(self) -> None:
        process = self._process
        if process is None:
            return
        text = self._partial + bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._partial = text.split("\n")
        for line in (raw.rstrip("\r") for raw in lines):
            self._stdout_lines.append(line)
            if line.startswith(PROGRESS_PREFIX):
                self.progress.emit(line)

    def _read_stderr(self) -> None:
        process = self._process
        if process is not None:
            text = bytes(process.readAllStandardError()).decode("utf-8", "replace")
            self._stderr = (self._stderr + text)[-KEPT_ERROR_CHARS:]

    def _finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._partial:
            self._stdout_lines.append(self._partial)
        folder = self.session_dir or Path()
        if self._stopping:
            outcome = VerifyOutcome(folder, None, stopped=True)
        else:
            crashed = exit_status != QProcess.NormalExit
            code = None if crashed else exit_code
            outcome = read_outcome(folder, code, list(self._stdout_lines), self._stderr)
        self._end(outcome)

    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.FailedToStart or self._process is None:
            return  # a crash is reported by finished
        program = verify_command(self.session_dir or Path())[0]
        self._end(
            VerifyOutcome(
                self.session_dir or Path(),
                None,
                error=f"{program} could not be started ({self._process.errorString()})",
            )
        )

    def _end(self, outcome: VerifyOutcome) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.outcome = outcome
        self.finished.emit(outcome)
