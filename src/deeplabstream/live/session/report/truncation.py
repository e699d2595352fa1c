"""A video played as a camera that ended before its file says it should: a truncated file."""

from __future__ import annotations

from pathlib import Path

from deeplabstream.hardware.cameras.video_length import (
    AnnouncedLength,
    read_announced_frames,
    truncation_text,
)
from deeplabstream.live.session.cameras import CameraBranch
from deeplabstream.outputs.frames_table import recorded_frames
from deeplabstream.transport.channel import EndReason


def truncated_videos(branches: list[CameraBranch]) -> list[str]:
    """Return, for each video camera that ended before its file says it should, why."""
    found = []
    for branch in branches:
        finished = branch.finished
        options = branch.settings.options
        if branch.settings.source != "video" or getattr(options, "loop", False):
            continue
        if finished is None or finished.reason != EndReason.END_OF_SOURCE:
            continue
        path = Path(getattr(options, "path", ""))
        schedule = tuple(getattr(options, "frames", ()) or ())
        # Asked for some frames only (FRAMES): it ends after the last, by design; it is short
        # only when it delivered fewer of them.
        length = AnnouncedLength(len(schedule), True) if schedule else _announced(path)
        text = truncation_text(path, length, finished.frames)
        if text:  # the replay's very words: a replayed file's error is said once
            found.append(text)
    return found


def _announced(path: Path) -> AnnouncedLength:
    """Return the frames a video announces: a recording of ours by its frames table."""
    recorded = recorded_frames(path)
    return AnnouncedLength(recorded, True) if recorded is not None else read_announced_frames(path)
