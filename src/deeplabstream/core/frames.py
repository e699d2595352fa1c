"""What every frame carries across processes: its geometry and its stamps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

PixelFormat = Literal["bgr8", "mono8"]

NO_CAMERA_TIMESTAMP = math.nan


@dataclass(frozen=True)
class FrameGeometry:
    """Shape and type of a camera's frames; fixed for the life of a stream."""

    height: int
    width: int
    channels: int  # 1 = mono, 3 = BGR
    dtype: str = "uint8"

    @property
    def shape(self) -> tuple[int, ...]:
        """The numpy shape of one frame: (H, W) for mono, (H, W, C) otherwise."""
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)

    @property
    def nbytes(self) -> int:
        """Bytes in one frame."""
        return self.height * self.width * self.channels * np.dtype(self.dtype).itemsize

    @classmethod
    def for_pixel_format(cls, width: int, height: int, pixel_format: PixelFormat) -> FrameGeometry:
        """Geometry of a frame of ``width`` x ``height`` in ``pixel_format``."""
        return cls(height=height, width=width, channels=1 if pixel_format == "mono8" else 3)


@dataclass(frozen=True)
class FrameStamp:
    """What a camera says about one frame it delivered.

    ``camera_timestamp`` is in seconds, NaN when the camera has no clock; ``host_timestamp_ns`` is
    :func:`host_now_ns` at arrival in the capture process.
    """

    frame_index: int
    camera_timestamp: float
    host_timestamp_ns: int
