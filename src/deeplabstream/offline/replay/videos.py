"""The videos of a replay: expand the command line's files and folders, check each one early."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.regular_files import SpecialFileError, regular_file
from deeplabstream.hardware.cameras.video_length import AnnouncedLength, announced_frames
from deeplabstream.outputs.frames_table import recorded_frames

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".wmv")
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class ReplayError(DeepLabStreamError, RuntimeError):
    """A video cannot be replayed; the message names the file and what to do."""


@dataclass(frozen=True)
class VideoInfo:
    """What the replay needs to know about a video before it starts."""

    path: Path
    frames: int | None  # as the container states it, else estimated from duration x rate
    frames_exact: bool  # False when estimated
    fps: float | None
    width: int
    height: int


def find_videos(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand files and folders (not recursive) into videos: (absolute paths, problems)."""
    videos: list[Path] = []
    problems: list[str] = []
    for given in inputs:
        path = given.expanduser().resolve()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                problems.append(
                    f"{path}: the folder holds no video file (looked for "
                    f"{', '.join(VIDEO_SUFFIXES)}); name the videos themselves"
                )
            videos += found
        elif path.is_file():
            videos.append(path)
        else:
            problems.append(f"{path}: no such file or folder; check the path")
    return list(dict.fromkeys(videos)), problems


def probe_video(path: Path) -> VideoInfo:
    """Read ``path``'s frame count, rate and size with PyAV; ReplayError when it is no video."""
    try:
        regular_file(path)  # a FIFO in a video's place would block the open
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file; check the path") from None
    except SpecialFileError as error:
        raise ReplayError(str(error)) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ReplayError(f"{path}: the file has no video stream; is it a video?")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            recorded = recorded_frames(path)  # a recording of ours: its frames table counts
            length = (
                AnnouncedLength(recorded, True)
                if recorded is not None
                else announced_frames(stream, container, fps)
            )
            width, height = stream.codec_context.width, stream.codec_context.height
            return VideoInfo(path, length.frames, length.exact, fps, width, height)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ReplayError(
            f"{path}: cannot be read as a video file ({reason}); check that the copy is "
            "complete, or leave the file out"
        ) from None


def camera_name_for(video: Path) -> str:
    """Return the camera name a video gets in its replay (its stem, in allowed characters)."""
    name = _NOT_IN_A_NAME.sub("_", video.stem).strip("_-")[:64]
    return name or "video"
