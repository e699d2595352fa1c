"""A video file played back as if it were a camera (``SOURCE = video``).

docs/cameras.md, "A video file as a camera".
"""

from __future__ import annotations

import logging
import math
import time
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from deeplabstream.core.frames import FrameGeometry, FrameStamp, PixelFormat
from deeplabstream.core.schema import existing_file, setting
from deeplabstream.core.timing import host_now_ns, percentiles
from deeplabstream.hardware.cameras.base import Camera, CameraError

logger = logging.getLogger(__name__)

ReaderName = Literal["pyav", "opencv"]


def readable_video(path: Path) -> None:
    """``check`` of ``PATH``: an existing file FFmpeg reads as a video, with a first frame."""
    existing_file(path)
    advice = "choose the video file itself, or convert it with ffmpeg -i IN -c:v libx264 OUT.mp4"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} holds no video stream (audio or data only): {advice}")
            next(container.decode(video=0))
    except StopIteration:
        raise ValueError(f"{path}: its video stream has no frame: {advice}") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ValueError(
            f"{path} cannot be read as a video (FFmpeg: {reason}); the file is damaged or not a "
            f"video: {advice}"
        ) from None


@dataclass(frozen=True)
class VideoSettings:
    """Keys of a ``[Camera NAME]`` section with ``SOURCE = video``."""

    path: Path = setting(
        doc="The video file to play (any format FFmpeg reads: `.mp4`, `.mkv`, `.avi`...). A "
        "relative path is relative to the settings file.",
        check=readable_video,
    )
    pacing: Literal["native", "free", "lockstep"] = setting(
        "native",
        doc="`native` delivers each frame at its own timestamp relative to the first, like a "
        "live camera (a frame that is late because decoding fell behind goes at once; none is "
        "skipped). `free` delivers frames as fast as they decode, to process a file offline. "
        "`lockstep` delivers the next frame only once pose estimation has taken the previous "
        "one, so every frame is analysed, as fast as the model allows (what "
        "`utils/VideoAnalyzer.py --fast` uses); without pose estimation it is `free`.",
    )
    loop: bool = setting(
        False,
        doc="Start again from the first frame at the end of the file instead of ending the "
        "stream. Frame numbers and timestamps keep increasing across loops.",
    )
    pixel_format: PixelFormat = setting(
        "bgr8",
        doc="Pixels handed on: `bgr8` (colour, 3 bytes per pixel) or `mono8` (grey, 1 byte).",
    )
    reader: Literal["pyav", "opencv"] = setting(
        "pyav",
        doc="Decoder: `pyav` (FFmpeg through PyAV, multithreaded) or `opencv` "
        "(`cv2.VideoCapture`, the decoder DeepLabCut uses). Both number frames the same way.",
    )
    frames: tuple[int, ...] = setting(
        (),
        doc="Deliver only these frames of the file (positions from 0, ascending), each with its "
        "own position as its frame index; the stream ends after the last. Empty: every frame. "
        "`deeplabstream-verify` plays a recording on the live session's schedule with it (the "
        "frames the live loop analysed, and only those).",
        allowed="a comma-separated list of frame positions from 0, ascending",
    )


class _FrameDecodeError(Exception):
    """A reader could not decode the next frame; the camera adds the file and frame index."""


class _FrameReader(Protocol):
    """What :class:`VideoCamera` needs from a decoder: decode, convert, rewind."""

    width: int
    height: int
    nominal_fps: float | None

    def next_frame(self) -> float | None:
        """Decode the next frame; return its presentation time in seconds, None at the end."""
        ...

    def write_frame(self, out: np.ndarray) -> None:
        """Convert the frame decoded last into ``out`` (bgr24 or gray, by ``out``'s shape)."""
        ...

    def rewind(self) -> None:
        """Go back to the first frame of the file."""
        ...

    def describe(self) -> dict[str, Any]:
        """Codec and frame count as far as the decoder knows them."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class _PyAVReader:
    """Decodes the first video stream of a file with PyAV (FFmpeg), on several threads."""

    def __init__(self, path: Path) -> None:
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as error:
            raise CameraError(f"{path}: cannot be read as a video file ({error})") from None
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"{path}: the file has no video stream")
        self._stream = self._container.streams.video[0]
        # Frame threading decodes several frames at once; it adds latency, which does not
        # matter for a file, and keeps large videos at their native rate.
        self._stream.thread_type = "AUTO"
        self._time_base: Fraction = self._stream.time_base or Fraction(1, 1)
        # Timestamps count from the stream's start, as OpenCV's do, so both readers agree.
        self._start_pts: int = self._stream.start_time or 0
        self._decoded = self._container.decode(self._stream)
        self._frame: av.VideoFrame | None = None
        # One reformatter for the whole file: frame.to_ndarray(format=...) would build a new
        # swscale context for every frame.
        self._reformatter = VideoReformatter()
        self.width = self._stream.codec_context.width
        self.height = self._stream.codec_context.height
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.nominal_fps = float(rate) if rate else None

    def next_frame(self) -> float | None:
        """Decode the next frame; return its presentation time in seconds, None at the end."""
        try:
            self._frame = next(self._decoded)
        except StopIteration:
            return None
        except av.FFmpegError as error:
            raise _FrameDecodeError(str(error)) from None
        if self._frame.pts is None:
            return math.nan  # the camera fills it in from the frame rate
        return float((self._frame.pts - self._start_pts) * self._time_base)

    def write_frame(self, out: np.ndarray) -> None:
        """Convert the frame decoded last into ``out`` (bgr24 or gray, by ``out``'s shape)."""
        assert self._frame is not None, "next_frame() first"
        target = "gray" if out.ndim == 2 else "bgr24"
        pixels = self._reformatter.reformat(self._frame, format=target).to_ndarray()
        _copy_same_shape(pixels, out)

    def rewind(self) -> None:
        """Go back to the first frame of the file."""
        # seek() flushes the decoder, which has reached its end-of-stream state.
        self._container.seek(self._start_pts, stream=self._stream)
        self._decoded = self._container.decode(self._stream)

    def describe(self) -> dict[str, Any]:
        """Codec and frame count as far as the container states them."""
        return {
            "codec": self._stream.codec_context.name,
            "frames": self._stream.frames or None,  # 0 = the container does not say (MKV)
        }

    def close(self) -> None:
        """Release the file."""
        self._container.close()


class _OpenCVReader:
    """Decodes a file with ``cv2.VideoCapture`` (its FFmpeg backend when available)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._capture = _open_video_capture(path)
        # OpenCV rotates frames by the file's rotation tag by default; PyAV does not. Stored
        # pixels it is, so both readers give the same image.
        self._capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        self._bgr: np.ndarray | None = None  # OpenCV reuses it when the size matches
        self._grabbed = 0  # frames grabbed since the start of the file, to spot early stops
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self._expected_frames = int(count) if count > 0 else None
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = fps if fps > 0 else None

    def next_frame(self) -> float | None:
        """Decode the next frame; return its presentation time in seconds, None at the end."""
        # OpenCV reports end of file and a broken frame the same way (grab() is False), so the
        # best it can do is warn when the stream ends well before the stated frame count.
        if not self._capture.grab():
            self._warn_if_ended_early()
            return None
        self._grabbed += 1
        # After grab(), POS_MSEC is the grabbed frame's pts relative to the stream start.
        return self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0

    def write_frame(self, out: np.ndarray) -> None:
        """Convert the frame grabbed last into ``out`` (bgr24 or gray, by ``out``'s shape)."""
        if out.ndim == 3:
            ok, pixels = self._capture.retrieve(out)
        else:
            ok, self._bgr = self._capture.retrieve(self._bgr)
            pixels = self._bgr
        if not ok:
            raise _FrameDecodeError("OpenCV could not convert the frame")
        if out.ndim == 3:
            if pixels is not out:  # OpenCV allocated instead: the size changed mid-file
                _copy_same_shape(pixels, out)
        else:
            _bgr_to_gray(pixels, out)

    def rewind(self) -> None:
        """Go back to the first frame of the file."""
        if not self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0):
            raise _FrameDecodeError("OpenCV could not seek back to the first frame")
        self._grabbed = 0

    def _warn_if_ended_early(self) -> None:
        # The count is the container's, or OpenCV's estimate from duration x rate: allow slack.
        if self._expected_frames is not None and self._grabbed < self._expected_frames - 2:
            logger.warning(
                "%s: OpenCV stopped after %d of %d frames; the rest may not decode (the pyav "
                "reader reports decoding errors)",
                self._path,
                self._grabbed,
                self._expected_frames,
            )

    def describe(self) -> dict[str, Any]:
        """Codec (FourCC) and frame count (OpenCV estimates it from duration x rate)."""
        fourcc = int(self._capture.get(cv2.CAP_PROP_FOURCC))
        codec = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
        return {"codec": codec or None, "frames": self._expected_frames}

    def close(self) -> None:
        """Release the file."""
        self._capture.release()


def _open_video_capture(path: Path) -> cv2.VideoCapture:
    """Open ``path`` with OpenCV's FFmpeg backend (frame-accurate timestamps), else any backend."""
    for backend in (cv2.CAP_FFMPEG, cv2.CAP_ANY):
        capture = cv2.VideoCapture(str(path), backend)
        if capture.isOpened():
            return capture
        capture.release()
    raise CameraError(f"{path}: OpenCV cannot read this file as a video (damaged, or not a video)")


def _copy_same_shape(pixels: np.ndarray, out: np.ndarray) -> None:
    """Copy a decoded frame into ``out``; a frame of another size is an error, not a crop."""
    if pixels.shape != out.shape:
        raise _FrameDecodeError(
            f"frame size changed to {pixels.shape[1]}x{pixels.shape[0]} "
            f"(the stream started at {out.shape[1]}x{out.shape[0]})"
        )
    np.copyto(out, pixels)


def _bgr_to_gray(bgr: np.ndarray, out: np.ndarray) -> None:
    """Convert a BGR frame to grey straight into ``out``."""
    if bgr.shape[:2] != out.shape:
        _copy_same_shape(bgr[..., 0], out)  # raises, naming both sizes
    converted = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY, dst=out)
    if converted is not out:  # OpenCV could not write in place (non-contiguous slot)
        np.copyto(out, converted)


def _open_reader(path: Path, reader: ReaderName) -> _FrameReader:
    if reader == "opencv":
        return _OpenCVReader(path)
    return _PyAVReader(path)


class VideoCamera(Camera):
    """Plays a video file as a camera; see :class:`VideoSettings` for the options.

    ``frame_index`` counts on across loops, ``camera_timestamp`` is the presentation time in
    seconds; with ``PACING = native``, ``describe()`` -> ``delivery`` says how late frames came.
    """

    settings_class: ClassVar[type] = VideoSettings
    settings: VideoSettings

    @classmethod
    def lock_keys(cls, settings: VideoSettings) -> tuple[str, ...]:
        """Lock nothing: any number of sessions may read the same file."""
        return ()

    def __init__(self, name: str, settings: VideoSettings) -> None:
        super().__init__(name, settings)
        self._reader: _FrameReader | None = None
        self._rewind_playback()

    def _rewind_playback(self) -> None:
        """Forget what was delivered: the next frame is the first of the file, index 0."""
        self._next_index = 0  # position of the next frame in the file, across loops
        self._scheduled = 0  # with FRAMES: how many of them were delivered
        self._loop_offset_s = 0.0  # length of the completed loops
        self._last_timestamp_s = math.nan  # of the frame delivered last, loop offset included
        self._first_frame_ready = False  # open() decoded the first frame; grab() delivers it
        self._first_timestamp_s = math.nan
        self._pacing_origin_ns: int | None = None  # host time the first frame went out
        # native pacing: how late each frame went out after its due time (ms; 4 bytes a frame)
        self._lateness_ms = array("f")

    # -- Camera interface -----------------------------------------------------------------

    def open(self) -> FrameGeometry:
        """Open the file and decode its first frame; return the frame geometry.

        Raises CameraError when the file cannot be read or decoded or has no video stream.
        """
        self.close()  # opening again starts from the beginning
        self._rewind_playback()
        self._reader = _open_reader(self.settings.path, self.settings.reader)
        try:
            return self._decode_first_frame(self._reader)
        except BaseException:
            self.close()
            raise

    @property
    def nominal_fps(self) -> float | None:
        """The stream's average frame rate (None when the file does not say)."""
        return self._reader.nominal_fps if self._reader is not None else None

    @property
    def waits_for_analysis(self) -> bool:
        """True with ``PACING = lockstep``: a frame waits for the previous one's analysis."""
        return self.settings.pacing == "lockstep"

    @property
    def paced(self) -> bool:
        """True with ``PACING = native``: frames are due at their timestamps' pace."""
        return self.settings.pacing == "native"

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        """Deliver the next frame into ``out``; None at the end of the file (unless LOOP).

        Raises CameraError naming the file and frame when a frame does not decode.
        """
        reader = self._require_open()
        timestamp = self._advance_to_scheduled(reader)
        if timestamp is None:
            return None
        try:
            reader.write_frame(out)
        except _FrameDecodeError as error:
            raise self._decode_error(error) from None
        due_ns = self._wait_until_due(timestamp) if self.settings.pacing == "native" else None
        host_ns = host_now_ns()
        if due_ns is not None:
            self._lateness_ms.append(max(0, host_ns - due_ns) / 1e6)
        if self._pacing_origin_ns is None:
            self._pacing_origin_ns = host_ns
        index = self._next_index
        self._next_index += 1
        self._last_timestamp_s = timestamp
        return FrameStamp(index, timestamp, host_ns)

    def close(self) -> None:
        """Release the file. Safe to call more than once."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def describe(self) -> dict[str, Any]:
        """Return the file, its codec, its frame count (None when unknown) and the decoder used."""
        info: dict[str, Any] = {"file": str(self.settings.path), "reader": self.settings.reader}
        if self._reader is not None:
            info.update(self._reader.describe())
        if self.settings.pacing == "native" and len(self._lateness_ms):
            info["delivery"] = self.delivery_figures()
        return info

    def delivery_figures(self) -> dict[str, Any]:
        """Return how late frames were delivered with ``PACING = native`` (``describe()``).

        ``frames_late``: frames later than one frame interval.
        """
        interval_ms = self._frame_interval_s() * 1e3
        late = np.frombuffer(self._lateness_ms, dtype=np.float32)
        return {
            "frame_interval_ms": round(interval_ms, 3),
            "late_ms": percentiles(late.tolist(), with_count=True),
            "frames_late": int(np.count_nonzero(late > interval_ms)) if interval_ms else 0,
        }

    # -- helpers --------------------------------------------------------------------------

    def _decode_first_frame(self, reader: _FrameReader) -> FrameGeometry:
        """Decode frame 0 now, so an unreadable file is reported at start-up, not mid-run."""
        path = self.settings.path
        first = self._decode_next(reader)
        if first is None:
            raise CameraError(f"{path}: the video stream has no frames")
        if reader.width <= 0 or reader.height <= 0:
            raise CameraError(f"{path}: the video stream does not state its frame size")
        self._first_frame_ready = True
        self._first_timestamp_s = first
        self._last_timestamp_s = first
        return FrameGeometry.for_pixel_format(
            reader.width, reader.height, self.settings.pixel_format
        )

    def _require_open(self) -> _FrameReader:
        if self._reader is None:
            raise CameraError(f"camera '{self.name}': grab() before open() or after close()")
        return self._reader

    def _advance_to_scheduled(self, reader: _FrameReader) -> float | None:
        """Decode up to the next frame to deliver (``FRAMES``: skip the others); its timestamp."""
        schedule = self.settings.frames
        if not schedule:
            return self._advance(reader)
        while self._scheduled < len(schedule):
            wanted = schedule[self._scheduled]
            timestamp = self._advance(reader)
            if timestamp is None:
                return None
            if self._next_index == wanted:
                self._scheduled += 1
                return timestamp
            if self._next_index > wanted:  # a position listed twice or out of order: refuse
                raise CameraError(
                    f"{self.settings.path}: FRAMES must list positions in ascending order "
                    f"(position {wanted} after {self._next_index})"
                )
            self._next_index += 1  # decoded, not delivered
            self._last_timestamp_s = timestamp
        return None

    def _advance(self, reader: _FrameReader) -> float | None:
        """Decode the frame to deliver next; its timestamp with loop offset, None at the end."""
        if self._first_frame_ready:
            self._first_frame_ready = False
            return self._first_timestamp_s
        timestamp = self._decode_next(reader)
        if timestamp is None and self.settings.loop:
            timestamp = self._start_next_loop(reader)
        if timestamp is None:
            return None
        return timestamp + self._loop_offset_s

    def _decode_next(self, reader: _FrameReader) -> float | None:
        """Decode one frame; fill in a missing timestamp from the frame rate."""
        try:
            timestamp = reader.next_frame()
        except _FrameDecodeError as error:
            raise self._decode_error(error) from None
        if timestamp is not None and math.isnan(timestamp):
            # A frame without a timestamp: assume it follows its predecessor at the nominal rate.
            previous = self._last_timestamp_s - self._loop_offset_s
            timestamp = 0.0 if math.isnan(previous) else previous + self._frame_interval_s()
        return timestamp

    def _start_next_loop(self, reader: _FrameReader) -> float:
        """Rewind at the end of the file and decode the first frame again; its timestamp."""
        # The next loop starts one frame interval after this loop's last frame (whose timestamp
        # already includes the earlier loops).
        next_loop_start = self._last_timestamp_s + self._frame_interval_s()
        self._loop_offset_s = next_loop_start - self._first_timestamp_s
        try:
            reader.rewind()
        except _FrameDecodeError as error:
            raise CameraError(f"{self.settings.path}: cannot loop: {error}") from None
        timestamp = self._decode_next(reader)
        if timestamp is None:
            raise CameraError(f"{self.settings.path}: cannot loop: no frame after rewinding")
        return timestamp

    def _frame_interval_s(self) -> float:
        fps = self.nominal_fps
        return 1.0 / fps if fps else 0.0

    def _wait_until_due(self, timestamp: float) -> int | None:
        """Sleep until this frame is due; return that host time (ns), None for the first frame."""
        if self._pacing_origin_ns is None:
            return None  # the first frame sets the origin
        due_ns = self._pacing_origin_ns + round((timestamp - self._first_timestamp_s) * 1e9)
        delay_ns = due_ns - host_now_ns()
        if delay_ns > 0:
            time.sleep(delay_ns / 1e9)
        return due_ns

    def _decode_error(self, error: _FrameDecodeError) -> CameraError:
        return CameraError(
            f"{self.settings.path}: cannot decode frame {self._next_index} "
            f"(reader {self.settings.reader}): {error}"
        )
