"""How many frames a video file announces, and whether a reading of it ended short (truncated).

Shared by replay and the video camera; a fragmented MP4 short by a frame or two goes unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from deeplabstream.core.regular_files import regular_file

#: An estimated frame count (duration x rate) may be off by rounding and by the last frame's
#: duration: a shortfall up to this many frames, or this fraction, is not called a truncation.
ESTIMATE_SLACK_FRAMES = 2
ESTIMATE_SLACK_FRACTION = 0.02


@dataclass(frozen=True)
class AnnouncedLength:
    """The frames a video's container announces: stated (``exact``) or duration x rate."""

    frames: int | None
    exact: bool


def announced_frames(stream: Any, container: Any, fps: float | None) -> AnnouncedLength:
    """Frames as the container states them, else duration x rate (Matroska states no count)."""
    if stream.frames:
        return AnnouncedLength(int(stream.frames), True)
    if fps and stream.duration and stream.time_base:
        return AnnouncedLength(
            round(float(stream.duration * Fraction(stream.time_base)) * fps), False
        )
    if fps and container.duration:
        return AnnouncedLength(round(container.duration / av.time_base * fps), False)
    return AnnouncedLength(None, False)


def read_announced_frames(path: Path) -> AnnouncedLength:
    """Open ``path`` (no decoding) and return its announced length; unknown when unreadable."""
    try:
        with av.open(str(regular_file(path))) as container:
            if not container.streams.video:
                return AnnouncedLength(None, False)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return announced_frames(stream, container, float(rate) if rate else None)
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return AnnouncedLength(None, False)


def truncation_text(path: Path, length: AnnouncedLength, frames_decoded: int) -> str:
    """Why the video counts as truncated (it ended before its container says), or ""."""
    expected = length.frames
    if not expected or frames_decoded >= expected:
        return ""
    if not length.exact:  # duration x rate: a fragmented MP4 short by a frame or two passes
        slack = max(ESTIMATE_SLACK_FRAMES, round(expected * ESTIMATE_SLACK_FRACTION))
        if frames_decoded >= expected - slack:
            return ""
    stated = "states" if length.exact else "announces (duration x rate)"
    return (
        f"{path}: truncated: the video ended after {frames_decoded} of the {expected} "
        f"frames its container {stated}; the file is probably cut short (an interrupted copy "
        "or recording). The session has the frames that were there"
    )
