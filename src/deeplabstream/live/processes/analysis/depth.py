"""Depth for experiments: a RealSense's aligned depth image, read beside each colour frame.

Read from the camera's companion ring when an experiment asks (``Observation.depth_m``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deeplabstream.live.processes.capture.companion import CompanionReader, companion_rings
from deeplabstream.transport.ring import RingSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepthSource:
    """A camera's depth image, aligned to its analysed frames: its companion ring and units."""

    ring: RingSpec  # the ``depth`` companion ring (frame ``seq`` belongs to main frame ``seq``)
    units_m: float  # metres per depth unit (``depth_units_m``; a RealSense: usually 0.001)


def depth_source(
    camera: str, description: Mapping[str, Any], frame_size: tuple[int, int]
) -> DepthSource | None:
    """Return the depth experiments may read for a camera, from its ``Opened.description``.

    None without a ``depth`` companion, and (warned) when the depth is not pixel-aligned to the
    analysed image (aligned by the camera or its infrared image, of ``frame_size``).
    """
    entry = (description.get("companions") or {}).get("depth")
    if not entry:
        return None
    aligned = entry.get("aligned_to") is not None or description.get("main_stream") == "infrared"
    ring = companion_rings(description)["depth"]
    size = (ring.geometry.height, ring.geometry.width)
    units = entry.get("depth_units_m")
    problem = None
    if not aligned:
        problem = "it is not aligned to the analysed image (set ALIGN_DEPTH = true)"
    elif size != tuple(frame_size):
        problem = f"its size {size[1]}x{size[0]} differs from the image's"
    elif not units or not math.isfinite(units) or units <= 0:
        problem = f"its depth units are unknown ({units!r})"
    if problem:
        log.warning("camera %s: experiments get no depth from it: %s", camera, problem)
        return None
    return DepthSource(ring, float(units))


def depth_reader(source: DepthSource | None) -> CompanionReader | None:
    """Return a reader of the camera's depth ring, mapped now; None without depth."""
    if source is None:
        return None
    reader = CompanionReader(source.ring)
    reader.ring  # noqa: B018 - map it now, like the camera's own ring, not in the first decision
    return reader


class FrameDepth:
    """:data:`experiments.observation.DepthLookup` of one frame, readable for about 2 s."""

    __slots__ = ("reader", "seq", "units_m")

    def __init__(self, reader: Any, seq: int, units_m: float) -> None:
        self.reader, self.seq, self.units_m = reader, seq, units_m

    def __call__(self, x: float, y: float, radius: int) -> float | None:
        """Metres from the camera under (x, y): the median of the measured pixels; None if none."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        value = self.reader.value_at(self.seq, x, y, radius)
        return None if value is None else value * self.units_m
