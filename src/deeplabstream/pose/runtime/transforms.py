"""Where a frame pixel lands in the network's input, and back.

A frame reaches the network through an optional crop, an optional horizontal flip and a resize.
:class:`FrameTransform` records these and maps points both ways.

Two coordinate conventions are in use, and a transform knows which one its points follow:

``centres`` (this project's models)
    Pixel centres sit at whole numbers: pixel ``i`` covers ``[i - 0.5, i + 0.5)``. Resizing a
    row of ``W`` pixels to ``W'`` maps ``x -> (x + 0.5) * W' / W - 0.5``, which is exactly what
    OpenCV's and PyTorch's resizes (``align_corners=False``) do to pixel centres, and a
    horizontal flip of an image ``W`` pixels wide maps ``x -> (W - 1) - x``: the centre of the
    first column goes to the centre of the last one. (The issue text writes ``x -> width - x``;
    that is the same flip in the ``corners`` convention below, where coordinates are shifted by
    half a pixel; with pixel centres at whole numbers it would be off by one pixel.)
``corners`` (Lightning Pose)
    Lightning Pose maps its model-input keypoints to the frame by a pure scale,
    ``x_frame = x * W_frame / W_input`` (after the decoder's shift), which is the resize of
    continuous coordinates where pixel ``i`` covers ``[i, i + 1)``. In that convention the
    horizontal flip is ``x -> W - x``. It is used so that unflipped frames give exactly Lightning
    Pose's numbers, and flipped ones the mirror image of them.

Order from frame to input: subtract the crop's offset, flip within the crop's width, scale.
Flipping within the crop and then scaling equals scaling and then flipping within the input's
width, in both conventions: the transform does not depend on which of the two the
pre-processing does.

A *letterboxed* input (:func:`letterbox_size`) holds the frame resized by one factor for both
axes, the largest that fits, in its top-left corner; the rest is padding. Because the content
starts at the input's origin, the transform is still a pure scale per axis: the scale of the
resize to the content size (``content_width / crop_width``, ``content_height / crop_height``),
which is what OpenCV applies to pixel centres. A 640x480 frame in a 320x256 input, for example,
is resized to 320x240 (exactly half), and ``x -> (x + 0.5) / 2 - 0.5`` on both axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeplabstream.pose.model import Convention


@dataclass(frozen=True)
class FrameTransform:
    """The geometric path from a frame to the network's input.

    Attributes
    ----------
    scale_x, scale_y
        Input pixels per (cropped) frame pixel: ``input_width / crop_width`` and
        ``input_height / crop_height``.
    offset_x, offset_y
        The crop's top-left corner in the frame (0 without a crop).
    flip_width
        Width in frame pixels of the image that is flipped horizontally (the crop's width), or
        None when the frame is not flipped.
    convention
        ``centres`` or ``corners``; see the module's documentation.
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
        """Frame pixels to network-input pixels.

        Parameters
        ----------
        points
            (..., 2 or more) array whose last axis starts with x, y; further columns (such as a
            likelihood) are kept as they are.

        Returns
        -------
        numpy.ndarray
            A float64 copy with x, y mapped.
        """
        out = np.array(points, dtype=np.float64)
        x = out[..., 0] - self.offset_x
        if self.flip_width is not None:
            x = self._flip(x)
        out[..., 0] = (x + self._half) * self.scale_x - self._half
        out[..., 1] = (out[..., 1] - self.offset_y + self._half) * self.scale_y - self._half
        return out

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Network-input pixels to frame pixels: the inverse of :meth:`to_input`.

        Parameters
        ----------
        points
            (..., 2 or more) array whose last axis starts with x, y; further columns are kept.

        Returns
        -------
        numpy.ndarray
            A float64 copy with x, y mapped.
        """
        out = np.array(points, dtype=np.float64)
        x = (out[..., 0] + self._half) / self.scale_x - self._half
        if self.flip_width is not None:
            x = self._flip(x)
        out[..., 0] = x + self.offset_x
        out[..., 1] = (out[..., 1] + self._half) / self.scale_y - self._half + self.offset_y
        return out


def letterbox_size(image_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
    """Return the size an image is resized to inside a letterboxed input.

    Parameters
    ----------
    image_size
        (height, width) of the image (the frame, or its crop).
    input_size
        (height, width) of the network's input.

    Returns
    -------
    tuple of int
        (height, width): the image scaled by one factor, the largest that fits, each side
        rounded to whole pixels and at least 1.
    """
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

    Parameters
    ----------
    frame_size
        (height, width) of the frame.
    input_size
        (height, width) of the network's input.
    crop
        (x, y, width, height) of the region of the frame that is fed, or None for all of it.
    flip
        Whether the (cropped) frame is flipped horizontally.
    convention
        ``centres`` or ``corners``.
    letterbox
        Whether the frame is letterboxed into the input (:func:`letterbox_size`) rather than
        resized to fill it.

    Returns
    -------
    FrameTransform
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
