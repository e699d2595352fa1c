"""Settings files and test videos."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np


def write_settings(folder: Path, text: str, name: str = "settings.ini") -> Path:
    """Write a settings file whose recording limits and deadline suit a test machine.

    The loop's deadline ([Experiment] DEADLINE_MS) judges the machine's speed: a test that is
    not about timing turns it off, so that a loaded machine cannot fail it. The tests of the
    deadline set it themselves and make misses happen on purpose.
    """
    path = folder / name
    if "[Recording]" not in text:
        text += "\n[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    if "DEADLINE_MS" not in text:
        text = with_key(text, "Experiment", "DEADLINE_MS = off")
    path.write_text(text, encoding="utf-8")
    return path


def with_key(text: str, section: str, line: str) -> str:
    """Return ``text`` with ``line`` first in ``[section]`` (the section added when absent)."""
    header = f"[{section}]"
    lines = text.splitlines()
    for number, existing in enumerate(lines):
        if existing.strip() == header:
            lines.insert(number + 1, line)
            return "\n".join(lines) + "\n"
    return text.rstrip("\n") + f"\n\n{header}\n{line}\n"


def patterned_frame(index: int, height: int, width: int, channels: int) -> np.ndarray:
    """A frame whose pixels say which frame it is (distinct for the first 256 frames)."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    frame = np.empty(shape, np.uint8)
    ramp = (np.arange(width, dtype=np.uint16) + 3 * index) % 256
    frame[...] = ramp[None, :] if channels == 1 else ramp[None, :, None]
    if channels > 1:
        frame[..., 1] = index % 256
    return frame


def write_ffv1(path: Path, pictures: Iterable[np.ndarray], fps: Any = 30) -> list[np.ndarray]:
    """Write ``pictures`` (BGR, or 2-D gray) to ``path`` losslessly (FFV1); return them."""
    written: list[np.ndarray] = []
    with av.open(str(path), "w") as container:
        stream = None
        for index, pixels in enumerate(pictures):
            layout = "gray" if pixels.ndim == 2 else "bgr24"
            if stream is None:  # its size and layout: the first picture's
                stream = container.add_stream("ffv1", rate=fps)
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "gray" if layout == "gray" else "bgr0"
            frame = av.VideoFrame.from_ndarray(pixels, format=layout)
            frame = frame.reformat(format=stream.pix_fmt)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            written.append(pixels)
        for packet in stream.encode(None) if stream is not None else ():
            container.mux(packet)
    return written


def make_ffv1_video(
    path: Path, frames: int, width: int = 160, height: int = 120, fps: int = 30, channels: int = 3
) -> list[np.ndarray]:
    """Write a lossless video of patterned frames; return the frames written."""
    pictures = (patterned_frame(index, height, width, channels) for index in range(frames))
    return write_ffv1(path, pictures, fps)


def first_frames_clip(video: Path, path: Path, frames: int) -> Path:
    """Write the first ``frames`` frames of ``video`` to ``path`` losslessly (FFV1); return it.

    A replay of the clip sees exactly those frames, decoded once here: a shorter run of the same
    pictures where a test needs the pictures, not their number.
    """
    with av.open(str(video)) as source:
        decoded = source.streams.video[0]
        pictures = (frame.to_ndarray(format="bgr24") for frame in source.decode(decoded))
        write_ffv1(path, itertools.islice(pictures, frames), decoded.average_rate or 30)
    return path


def read_video(path: Path, gray: bool = False) -> list[np.ndarray]:
    """Every frame of a video file, decoded with PyAV."""
    with av.open(str(path)) as container:
        return [
            frame.to_ndarray(format="gray" if gray else "bgr24")
            for frame in container.decode(container.streams.video[0])
        ]


def camera_frames(path: Path, count: int | None = None) -> list[np.ndarray]:
    """A video's first ``count`` frames (all: None) as the app's video camera delivers them.

    The camera plugin decodes with PyAV into BGR uint8 (mono for a gray stream), as live.
    """
    from deeplabstream.hardware.cameras.video import VideoCamera, VideoSettings

    camera = VideoCamera("clip", VideoSettings(path=path, pacing="free"))
    out = np.empty(camera.open().shape, np.uint8)
    frames: list[np.ndarray] = []
    try:
        while (count is None or len(frames) < count) and camera.grab(out) is not None:
            frames.append(out.copy())
    finally:
        camera.close()
    return frames
