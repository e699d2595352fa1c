"""The window's slow work, run in a helper process: cameras, models, calibration.

No Qt here; a job is ``job(say, *args)``. Design: docs/architecture.md, "The desktop app".
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import CalibrationError, DeepLabStreamError
from deeplabstream.hardware.cameras.detect import detect_with_notes
from deeplabstream.pose.inspect import facts
from deeplabstream.pose.loading import converted_on_first_use, load_model
from deeplabstream.spatial.calibration.calibrate import CalibrationOptions, calibrate

Say = Callable[[str], None]


@dataclass(frozen=True)
class ModelFacts:
    """What Inspect shows of a model: its path, the lines to show and its keypoints."""

    path: str  # as the settings name it ("" for the bundled model)
    text: str
    keypoints: tuple[str, ...]


# -- the jobs --------------------------------------------------------------------------------


def detect_cameras_job(say: Say) -> Any:
    """Return the cameras found (:class:`hardware.cameras.detect.Detection`) and why not others."""
    say("looking for Basler, RealSense and OpenCV cameras")
    return detect_with_notes(say)


def describe_model_job(say: Say, path: str, precision: str) -> ModelFacts:
    """Load the model at ``path`` (converting it on first use) and describe it."""
    model = Path(path).expanduser() if path else None
    if converted_on_first_use(model):  # a framework's folder: the model inside it
        say(
            "converting the model to ONNX (first use only: later loads reuse the converted "
            "graph; can take a minute)"
        )
    else:
        say("reading the model")
    description = load_model(model, precision=precision)  # type: ignore[arg-type]
    text = "\n".join(inspect_lines(facts(description)))
    return ModelFacts(path, text, tuple(description.keypoints))


def inspect_lines(rows: list[tuple[str, str]]) -> list[str]:
    """Return Inspect's lines: the model's facts, the file named left to the box's heading."""
    named = dict(rows).get("model")
    return [
        f"{label + ':':<11}{value}"
        for label, value in rows
        if label != "model" and not (label == "graph" and value == named)
    ]


def prepare_models_job(say: Say, paths: list[str], precision: str) -> None:
    """Convert every model of ``paths`` that needs it, so the pose worker finds it cached."""
    for path in paths:
        say(
            f"converting {Path(path).name} to ONNX (first use only: later starts reuse it; "
            "can take a minute)"
        )
        load_model(Path(path), precision=precision)  # type: ignore[arg-type]


def calibrate_job(say: Say, folder: str) -> tuple[str, str]:
    """Calibrate from a recorded board session; return (calibration.toml or "", what to show)."""
    say(f"calibrating from {folder}")
    try:
        run = calibrate([Path(folder)], CalibrationOptions(), say)
    except CalibrationError as error:
        return "", f"calibration failed: {error}"
    result = run.result
    lines = [
        f"{camera}: mean reprojection error {figures.error_mean_px:.3f} px"
        for camera, figures in result.figures.items()
    ]
    lines.append(f"wrote {run.calibration_path} (all cameras: {result.error_mean_px:.3f} px)")
    return str(run.calibration_path), "\n".join(lines)


# -- the helper process ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """The job's news: the stage it is in now."""

    text: str


@dataclass(frozen=True)
class LogLine:
    """A log record of the job, to be logged in the window's process."""

    name: str
    level: int
    message: str


@dataclass(frozen=True)
class Outcome:
    """How the job ended: its return value, or why it failed (``error`` not empty)."""

    value: Any = None
    error: str = ""
    expected: bool = True  # the error is the user's to fix (no traceback worth logging)


class _ToParent(logging.Handler):
    """Send the job's log records (INFO and up) to the window's process."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(logging.INFO)
        self._connection = connection

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._connection.send(LogLine(record.name, record.levelno, record.getMessage()))
        except Exception:  # the window went away: nothing to tell
            pass


def child_main(connection: Connection, job: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Run ``job(say, *args)`` in the helper process and send its stages, logs and outcome."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_ToParent(connection))

    def say(text: str) -> None:
        connection.send(Stage(text))

    try:
        outcome = Outcome(value=job(say, *args))
    except Exception as error:
        outcome = Outcome(error=_reason(error), expected=_expected(error))
        if not outcome.expected:
            logging.getLogger(__name__).error("%s", traceback.format_exc())
    try:
        connection.send(outcome)
    finally:
        connection.close()


def _expected(error: Exception) -> bool:
    """Whether ``error`` is a user's to fix (a model or file that is not right), not a bug."""
    return isinstance(error, DeepLabStreamError | OSError | ValueError)


def _reason(error: Exception) -> str:
    """Return the error's own message; its type where the message alone says little."""
    text = str(error)
    if _expected(error) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
