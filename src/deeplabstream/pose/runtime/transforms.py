"""Where a frame pixel lands in the network's input, and back.

Design: docs/pose-internals.md, "pose.runtime.transforms".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.pose.model import Convention


@dataclass(frozen=True)
class FrameTransform:
    """The geometric path from a frame to the network's input.

    ``scale_x``, ``scale_y``: input pixels per (cropped) frame pixel; ``offset_x``, ``offset_y``:
    the crop's corner; ``flip_width``: the flipped width, None when not flipped.
    """

    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0
    flip_width: float | None = None
    convention: Convention = "centres"

    @property
    def _half(self) -> float:
        """The shift that turns this convention's coordinates into corner coordinates."""
        return 0.5 if self.convention == "centres" else 0.0

    def _flip(self, x: np.ndarray) -> np.ndarray:
        """Mirror x within ``flip_width`` (its own inverse)."""
        assert self.flip_width is not None
        return (self.flip_width - 2 * self._half) - x

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels to input pixels: a float64 copy of (..., 2+), x, y mapped, the rest kept."""
        out = np.array(points, dtype=np.float64)
        x = out[..., 0] - self.offset_x
        if self.flip_width is not None:
            x = self._flip(x)
        out[..., 0] = (x + self._half) * self.scale_x - self._half
        out[..., 1] = (out[..., 1] - self.offset_y + self._half) * self.scale_y - self._half
        return out

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Return a float64 copy of (..., 2+) input-pixel ``points`` with x, y in frame pixels."""
        out = np.array(points, dtype=np.float64)
        x = (out[..., 0] + self._half) / self.scale_x - self._half
        if self.flip_width is not None:
            x = self._flip(x)
        out[..., 0] = x + self.offset_x
        out[..., 1] = (out[..., 1] + self._half) / self.scale_y - self._half + self.offset_y
        return out


def letterbox_size(image_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """Return the (height, width) an image is resized to inside a letterboxed input (each >= 1)."""
    height, width = image_size
    scale = min(input_size[0] / height, input_size[1] / width)
    return (
        min(input_size[0], max(1, round(height * scale))),
        min(input_size[1], max(1, round(width * scale))),
    )


def make_transform(
    frame_size: tuple[int, int],
    input_size: tuple[int, int],
    *,
    crop: tuple[int, int, int, int] | None = None,
    flip: bool = False,
    convention: Convention = "centres",
    letterbox: bool = False,
) -> FrameTransform:
    """Make the transform of a frame resized (after an optional crop and flip) to the input size.

    Sizes are (height, width); ``crop`` is (x, y, width, height), None: the whole frame.
    """
    x0, y0, width, height = crop if crop is not None else (0, 0, frame_size[1], frame_size[0])
    if letterbox:
        input_size = letterbox_size((height, width), input_size)
    return FrameTransform(
        scale_x=input_size[1] / width,
        scale_y=input_size[0] / height,
        offset_x=float(x0),
        offset_y=float(y0),
        flip_width=float(width) if flip else None,
        convention=convention,
    )
