"""What a replay is asked to do and what it reports: small, picklable, cheap to import."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["fast", "realtime"]


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay (picklable: it travels to replay processes and Ray tasks)."""

    settings_file: Path | None = None  # None: the project's settings.ini
    mode: Mode = "fast"
    model: Path | None = None  # overrides [Pose] MODEL_PATH
    experiment: bool = True  # run [Experiment] NAME on the poses
    experiment_name: str | None = None  # overrides [Experiment] NAME
    # Overrides [Experiment] DEADLINE_MS: ms, auto or off (None: the settings' own).
    deadline_ms: float | Literal["auto", "off"] | None = None
    annotated_video: bool = False
    output_dir: Path | None = None  # None: [Output] DIRECTORY
    show: bool = False  # the live view while it runs
    log_devices: bool = False  # every [Device] becomes TYPE = log (a dry run)
    log_level: int = logging.WARNING  # console; session.log always gets INFO
    camera: str | None = None  # every video plays as this camera (None: named after the video)


@dataclass(frozen=True)
class Progress:
    """A replay's progress: ``done`` of ``total`` frames (None: unknown) in ``stage``."""

    video: Path
    stage: str  # starting, replaying, annotating
    done: int
    total: int | None


@dataclass(frozen=True)
class ReplayResult:
    """How the replay of one video went."""

    video: Path
    ok: bool
    session_dir: Path | None = None
    frames_in_video: int | None = None
    frames_captured: int = 0
    frames_analysed: int = 0
    frames_skipped: int = 0
    elapsed_s: float = 0.0
    stop_reason: str = ""
    errors: tuple[str, ...] = ()
    annotated_video: Path | None = None
    warnings: tuple[str, ...] = ()  # e.g. a --realtime replay that fell behind the video
    # The first Ctrl-C or SIGTERM received while the replay held the signals ("SIGTERM
    # received"), also one after its video ended, which stop_reason (the end) leaves out.
    stop_signal: str = ""

    @property
    def analysed_fps(self) -> float | None:
        """Frames analysed per second of the whole replay (start-up included)."""
        return self.frames_analysed / self.elapsed_s if self.elapsed_s > 0 else None


ProgressSink = Callable[[Progress], None]
