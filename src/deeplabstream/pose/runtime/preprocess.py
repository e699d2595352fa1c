"""Frames to the network's input, in a buffer allocated once.

Design: docs/pose-internals.md, "pose.runtime.preprocess".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from deeplabstream.pose.model import Convention, ModelDescription, decoder_of
from deeplabstream.pose.runtime.transforms import (
    FrameTransform,
    letterbox_size,
    make_transform,
)


def coordinate_convention(description: ModelDescription) -> Convention:
    """Return ``corners`` for Lightning Pose's decoder, else ``centres``."""
    return decoder_of(description).convention


class Preprocessor:
    """Turns a batch of frames into the network's input, in place.

    ``frame_shape``: (height, width) mono or (height, width, 3) BGR; ``crop``: (x, y, width,
    height), None: the whole frame. ``buffer`` is rewritten by every call.
    """

    def __init__(
        self,
        description: ModelDescription,
        frame_shape: tuple[int, ...],
        max_batch: int,
        crop: tuple[int, int, int, int] | None = None,
        allocate: Callable[[tuple[int, ...], Any], np.ndarray] | None = None,
    ) -> None:
        if len(frame_shape) not in (2, 3) or (len(frame_shape) == 3 and frame_shape[2] != 3):
            raise ValueError(f"frames must be (H, W) or (H, W, 3), got shape {frame_shape}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.description = description
        self.frame_shape = tuple(frame_shape)
        self.max_batch = max_batch
        self.crop = _checked_crop(crop, frame_shape)
        d = description
        height, width = self.crop[3], self.crop[2]
        input_size = (d.input_height, d.input_width)
        # The resized image's size: the whole input, or the letterboxed content in its corner.
        self._content = letterbox_size((height, width), input_size) if d.letterbox else input_size
        self._size = (self._content[1], self._content[0])  # OpenCV's order
        self._mono_frames = len(frame_shape) == 2
        # Channels resized per frame: one for mono frames or a gray network, else three.
        self._resize_channels = 1 if self._mono_frames or d.color_order == "gray" else 3
        self._mean = np.asarray(d.mean, np.float32)
        self._std = np.asarray(d.std, np.float32)
        self._raw = d.normalization == "in-graph"
        self._allocate = allocate
        half = d.input_dtype == np.float16
        # The array the network reads comes from ``allocate``: the fp16 copy, or the buffer.
        self.buffer = self._empty_buffer(allocated=not half)
        self._half: np.ndarray | None = None
        if half:
            self._half = self._zeros(self.buffer.shape, np.float16, allocated=True)
            to_half(self.buffer, self._half)  # the letterbox's black
        shape = (height, width) if self._resize_channels == 1 else (height, width, 3)
        self._colour = np.empty(shape, np.uint8)  # the frame in the network's colour order
        self._float = np.empty(shape, np.float32)  # ... scaled to 0..1 (bilinear-float)
        small = (*self._content, *shape[2:])
        self._resized = np.empty(small, np.float32)
        self._resized_uint8 = np.empty(small, np.uint8)
        # Channel planes of the resized image, in the network's order (in-graph normalisation).
        plane_type = np.float32 if d.resize == "bilinear-float" else np.uint8
        self._planes = np.empty((self._resize_channels, *self._content), plane_type)
        convention = coordinate_convention(d)
        frame_size = (frame_shape[0], frame_shape[1])
        self._transforms = {
            flip: make_transform(
                frame_size,
                input_size,
                crop=self.crop,
                flip=flip,
                convention=convention,
                letterbox=d.letterbox,
            )
            for flip in (False, True)
        }

    def _zeros(self, shape: tuple[int, ...], dtype: Any, allocated: bool) -> np.ndarray:
        """Return zeros of ``shape``, from ``allocate`` when ``allocated`` and one was given."""
        if not allocated or self._allocate is None:
            return np.zeros(shape, dtype)
        array = self._allocate(shape, dtype)
        array.fill(0)
        return array

    def _empty_buffer(self, allocated: bool) -> np.ndarray:
        """Make the input buffer, its letterbox padding black once and for all."""
        d = self.description
        dtype = np.uint8 if d.input_type == "uint8" else np.float32
        # Zeros, so that slots padding a fixed-size batch hold defined numbers.
        buffer = self._zeros(d.input_shape(self.max_batch), dtype, allocated)
        if d.letterbox and not self._raw:
            # Black is 0 for a graph of raw pixels; normalised, it is -mean / std.
            for c in range(d.channels):
                self._channel(buffer, c, whole=True)[...] = -self._mean[c] / self._std[c]
        return buffer

    def _channel(self, batch: np.ndarray, c: int, whole: bool = False) -> np.ndarray:
        """Channel ``c`` of every slot of ``batch``, (N, h, w): the content region or all."""
        rows, cols = (slice(None), slice(None)) if whole else self._content_slices
        if self.description.input_layout == "nhwc":
            return batch[:, rows, cols, c]
        return batch[:, c, rows, cols]

    @property
    def _content_slices(self) -> tuple[slice, slice]:
        """Rows and columns of the input that the resized frame fills."""
        return slice(0, self._content[0]), slice(0, self._content[1])

    def transform(self, flip: bool = False) -> FrameTransform:
        """Return the geometric transform of a frame fed with or without a horizontal flip."""
        return self._transforms[bool(flip)]

    def prepare(
        self,
        frames: Sequence[np.ndarray],
        flips: Sequence[bool] | None = None,
        *,
        whole_buffer: bool = False,
    ) -> tuple[np.ndarray, list[FrameTransform]]:
        """Fill the buffer with the network input for up to ``max_batch`` BGR or mono uint8 frames.

        ``whole_buffer`` returns all ``max_batch`` slots (a fixed-batch network). Returns the batch,
        a view valid until the next call, and each frame's
        :class:`~pose.runtime.transforms.FrameTransform`.
        """
        n = len(frames)
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"prepare takes 1 to {self.max_batch} frames, got {n}")
        if flips is None:
            flips = [False] * n
        elif len(flips) != n:
            raise ValueError(f"{len(flips)} flips for {n} frames")
        for slot, (frame, flip) in enumerate(zip(frames, flips, strict=True)):
            self._prepare_one(frame, slot, bool(flip))
        transforms = [self._transforms[bool(f)] for f in flips]
        size = self.max_batch if whole_buffer else n
        if self._half is not None:
            to_half(self.buffer[:n], self._half[:n])
            return self._half[:size], transforms
        return self.buffer[:size], transforms

    def _prepare_one(self, frame: np.ndarray, slot: int, flip: bool) -> None:
        """Colour, resize, normalise and flip one frame into ``buffer[slot]``."""
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(
                f"frame of shape {frame.shape} and type {frame.dtype}, expected "
                f"{self.frame_shape} uint8"
            )
        x, y, width, height = self.crop
        region = frame[y : y + height, x : x + width]
        if self._raw:
            self._write_pixels(self._resize_raw(region, flip), slot)
            return
        self._convert_colour(region)
        if flip:
            # Flipped before the resize, so that a flipped frame gives exactly the input of a
            # frame that was mirrored to begin with (OpenCV's resize is not exactly symmetric:
            # flipping the small image instead differs by 2e-5). In place, and cheap on uint8.
            cv2.flip(self._colour, 1, dst=self._colour)
        resized = self._resize()
        if resized.ndim == 2:
            resized = resized[:, :, None]
        out = self.buffer[slot : slot + 1]
        for c in range(self.description.channels):
            target = self._channel(out, c)[0]
            source = resized[:, :, c % resized.shape[2]]  # mono: one channel into all three
            # (x - mean) / std in two steps, as torchvision's Normalize does it.
            np.subtract(source, self._mean[c], out=target)
            np.divide(target, self._std[c], out=target)

    def _resize_raw(self, region: np.ndarray, flip: bool) -> np.ndarray:
        """Resize the frame's region (0..255, BGR); only a flip or grey conversion copies it."""
        source = region
        if self.description.color_order == "gray" and not self._mono_frames:
            cv2.cvtColor(region, cv2.COLOR_BGR2GRAY, dst=self._colour)
            source = self._colour
        if flip:
            # Before the resize, as in the normalised path (see _prepare_one).
            cv2.flip(source, 1, dst=self._colour)
            source = self._colour
        method = self.description.resize
        if method == "bilinear-float":
            np.copyto(self._float, source)
            return _resize_into(self._float, self._size, cv2.INTER_LINEAR, self._resized)
        interpolation = cv2.INTER_CUBIC if method == "bicubic-uint8" else cv2.INTER_AREA
        return _resize_into(source, self._size, interpolation, self._resized_uint8)

    def _write_pixels(self, small: np.ndarray, slot: int) -> None:
        """Write resized pixels, unnormalised, into ``buffer[slot]`` in the graph's layout."""
        out = self.buffer[slot : slot + 1]
        channels = self.description.channels
        swap = self.description.color_order == "rgb" and small.ndim == 3
        if self.description.input_layout == "nhwc" and small.ndim == 3:
            rows, cols = self._content_slices
            target = out[0, rows, cols]
            if swap and target.flags.c_contiguous and target.dtype == np.uint8:
                cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=target)  # faster than numpy's copy
            else:
                np.copyto(target, small[:, :, ::-1] if swap else small)
            return
        if small.ndim == 3:
            # Split into contiguous planes in the network's channel order (cv2.split writes
            # into the given arrays), then one copy (and cast) per plane: much faster than
            # numpy's strided transpose.
            order = (2, 1, 0) if swap else (0, 1, 2)
            cv2.split(small, [self._planes[i] for i in order])
            planes = self._planes
        else:
            planes = small[None]
        for c in range(channels):
            np.copyto(self._channel(out, c)[0], planes[c % len(planes)])

    def _convert_colour(self, frame: np.ndarray) -> None:
        """Write the frame into ``_colour`` in the network's channel order."""
        order = self.description.color_order
        if self._mono_frames:
            np.copyto(self._colour, frame)
        elif order == "gray":
            cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=self._colour)
        elif order == "rgb":
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=self._colour)
        else:
            np.copyto(self._colour, frame)

    def _resize(self) -> np.ndarray:
        """Resize ``_colour`` by the description's method to a float image in 0..1."""
        method = self.description.resize
        if method == "bilinear-float":
            np.divide(self._colour, np.float32(255), out=self._float)
            return _resize_into(self._float, self._size, cv2.INTER_LINEAR, self._resized)
        interpolation = cv2.INTER_CUBIC if method == "bicubic-uint8" else cv2.INTER_AREA
        small = _resize_into(self._colour, self._size, interpolation, self._resized_uint8)
        np.divide(small, np.float32(255), out=self._resized)
        return self._resized


def to_half(source: np.ndarray, target: np.ndarray) -> None:
    """Write float32 ``source`` into float16 ``target`` (C-contiguous, one shape), by OpenCV.

    numpy's cast costs about 3 ms per 640x480 colour frame; OpenCV's values are numpy's (round to
    nearest even) but for a negative zero.
    """
    width = source.shape[-1]
    written = cv2.add(
        source.reshape(-1, width), 0.0, dst=target.reshape(-1, width), dtype=cv2.CV_16F
    )
    if not np.shares_memory(written, target):  # OpenCV made a new array after all
        np.copyto(target, written.reshape(target.shape))


def _resize_into(
    image: np.ndarray, size: tuple[int, int], interpolation: int, out: np.ndarray
) -> np.ndarray:
    """``cv2.resize`` into ``out`` (a copy when the size does not change)."""
    if image.shape[:2] == out.shape[:2]:
        np.copyto(out, image)
        return out
    result = cv2.resize(image, size, dst=out, interpolation=interpolation)
    if not np.shares_memory(result, out):
        np.copyto(out, result.reshape(out.shape))  # OpenCV made a new array after all
    return out


def _checked_crop(
    crop: tuple[int, int, int, int] | None, frame_shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """Return the crop as (x, y, width, height), the whole frame when None; checked to fit."""
    height, width = frame_shape[0], frame_shape[1]
    if crop is None:
        return (0, 0, width, height)
    x, y, w, h = (int(v) for v in crop)
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
        raise ValueError(f"crop {crop} does not fit in a {width}x{height} frame")
    return (x, y, w, h)
