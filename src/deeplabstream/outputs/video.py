"""Raw video files with PyAV: H.264 in fragmented MP4 or lossless FFV1 in Matroska.

Both stay playable after a kill; presentation times are the frames' own stamps.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.core.regular_files import regular_file

TIME_BASE = Fraction(1, 90_000)  # the usual MPEG clock: 11 us resolution

CODEC_FILE_SUFFIX = {"h264": ".mp4", "ffv1": ".mkv"}
#: The suffixes of the video files a recording writes (one per codec).
RECORDED_VIDEO_SUFFIXES = frozenset(CODEC_FILE_SUFFIX.values())


def recorded_video_bytes(folder: Path | None) -> int:
    """Return the bytes of video written so far in the session ``folder`` (all cameras)."""
    total = 0
    for path in folder.iterdir() if folder is not None and folder.is_dir() else ():
        if path.suffix in RECORDED_VIDEO_SUFFIXES:
            try:
                total += path.stat().st_size
            except OSError:  # a file being renamed or removed: count it next time
                pass
    return total


def video_file_name(stem: str, codec: str) -> str:
    """Return the file name of a camera's video for ``codec``."""
    return stem + CODEC_FILE_SUFFIX[codec]


def recording_stem(camera: str, part: int) -> str:
    """Return the stem of a camera's recording ``part`` (1: ``arena``, 2: ``arena.part2``, ...)."""
    return camera if part <= 1 else f"{camera}.part{part}"


def input_format(geometry: FrameGeometry) -> str:
    """PyAV's name for frames of ``geometry``: ``gray``, ``bgr24`` or ``gray16le`` (16-bit)."""
    if geometry.dtype == "uint16":
        if geometry.channels != 1:
            raise ValueError(f"16-bit frames must have one channel, not {geometry.channels}")
        return "gray16le"
    if geometry.dtype != "uint8":
        raise ValueError(f"frames of {geometry.dtype} cannot be recorded (uint8 or uint16)")
    return "gray" if geometry.channels == 1 else "bgr24"


class VideoWriter:
    """Encode frames of one camera into one file, in the order they are given."""

    def __init__(
        self,
        path: Path,
        geometry: FrameGeometry,
        codec: str,
        nominal_fps: float | None,
        *,
        crf: int = 18,
        preset: str = "ultrafast",
        threads: int = 1,
        flush_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.frames_written = 0
        fps = nominal_fps if nominal_fps and nominal_fps > 0 else 30.0
        self._input_format = input_format(geometry)
        options, container_options, pixel_format = codec_setup(
            codec, geometry, fps, crf, preset, flush_interval
        )
        self._container = av.open(str(path), mode="w", options=container_options)
        try:
            self._stream = self._container.add_stream(
                "libx264" if codec == "h264" else "ffv1",
                rate=Fraction(fps).limit_denominator(1001),
                options=options,
            )
        except Exception:
            self._container.close()
            raise
        self._stream.width = geometry.width
        self._stream.height = geometry.height
        self._stream.pix_fmt = pixel_format
        self._stream.time_base = TIME_BASE
        self._stream.codec_context.time_base = TIME_BASE
        self._stream.codec_context.thread_count = threads
        self._pixel_format = pixel_format
        self._first_time: float | None = None
        self._last_pts = -1

    def encode(self, frame: av.VideoFrame, timestamp_s: float) -> None:
        """Encode one frame made by :meth:`frame_from`, presented at ``timestamp_s``."""
        if self._first_time is None:
            self._first_time = timestamp_s
        pts = round((timestamp_s - self._first_time) / TIME_BASE)
        pts = max(pts, self._last_pts + 1)  # strictly increasing even if clocks repeat
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def frame_from(self, pixels: np.ndarray) -> av.VideoFrame:
        """Copy ``pixels`` into a new encoder frame (this copy is the only one made)."""
        frame = av.VideoFrame.from_ndarray(pixels, format=self._input_format)
        if frame.format.name != self._pixel_format:
            frame = frame.reformat(format=self._pixel_format)
        return frame

    def close(self) -> None:
        """Flush the encoder and finalise the file. Safe to call more than once."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        finally:
            container.close()


def codec_setup(
    codec: str, geometry: FrameGeometry, fps: float, crf: int, preset: str, flush_interval: float
) -> tuple[dict[str, str], dict[str, str], str]:
    """Choose the encoder options, container options and pixel format for ``codec``."""
    mono = geometry.channels == 1
    deep = geometry.dtype == "uint16"
    if deep and codec != "ffv1":
        raise ValueError("16-bit frames are recorded losslessly only: use CODEC = ffv1")
    if codec == "h264":
        keyframe_every = max(1, math.ceil(fps * flush_interval))
        options = {
            "crf": str(crf),
            "preset": preset,
            "g": str(keyframe_every),
            "keyint_min": str(keyframe_every),
            "sc_threshold": "0",  # keyframes on schedule, so fragments close on schedule
        }
        container = {
            "movflags": "frag_keyframe+empty_moov+default_base_moof",
            "flush_packets": "1",  # each finished fragment goes to the OS at once
        }
        return options, container, "gray" if mono else "yuv420p"
    if codec == "ffv1":
        options = {"level": "3", "g": "1", "slicecrc": "1"}
        # Matroska writes a cluster once it is complete: half the interval keeps what a killed
        # recorder loses (the open cluster) within FLUSH_INTERVAL.
        cluster_ms = str(max(100, round(flush_interval * 500)))
        container = {
            "cluster_time_limit": cluster_ms,
            "cluster_size_limit": str(8 << 20),
            "flush_packets": "1",
        }
        return options, container, "gray16le" if deep else "gray" if mono else "bgr0"
    raise ValueError(f"unknown codec {codec!r}")


def count_decodable_frames(path: Path) -> int:
    """How many frames of ``path`` decode, up to the first damage; 0 if it cannot be opened."""
    frames = 0
    try:
        with av.open(str(regular_file(path))) as container:
            stream = container.streams.video[0]
            for _ in container.decode(stream):
                frames += 1
    except (av.error.FFmpegError, OSError, IndexError):
        pass
    return frames
