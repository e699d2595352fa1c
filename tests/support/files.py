"""Settings files and test videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_settings(folder: Path, text: str, name: str = "settings.ini") -> Path:
    """Write a settings file whose recording limits suit a test machine."""
    path = folder / name
    if "[Recording]" not in text:
        text += "\n[Recording]\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
    path.write_text(text, encoding="utf-8")
    return path


def patterned_frame(index: int, height: int, width: int, channels: int) -> np.ndarray:
    """A frame whose pixels say which frame it is (distinct for the first 256 frames)."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    frame = np.empty(shape, np.uint8)
    ramp = (np.arange(width, dtype=np.uint16) + 3 * index) % 256
    frame[...] = ramp[None, :] if channels == 1 else ramp[None, :, None]
    if channels > 1:
        frame[..., 1] = index % 256
    return frame


def make_ffv1_video(
    path: Path, frames: int, width: int = 160, height: int = 120, fps: int = 30, channels: int = 3
) -> list[np.ndarray]:
    """Write a lossless video of patterned frames; return the frames written."""
    written = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "gray" if channels == 1 else "bgr0"
        for index in range(frames):
            pixels = patterned_frame(index, height, width, channels)
            written.append(pixels)
            frame = av.VideoFrame.from_ndarray(pixels, format="gray" if channels == 1 else "bgr24")
            frame = frame.reformat(format=stream.pix_fmt)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return written


def read_video(path: Path, gray: bool = False) -> list[np.ndarray]:
    """Every frame of a video file, decoded with PyAV."""
    with av.open(str(path)) as container:
        return [
            frame.to_ndarray(format="gray" if gray else "bgr24")
            for frame in container.decode(container.streams.video[0])
        ]
