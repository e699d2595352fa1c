"""The stamps of a Basler camera's frames: its frame counter and timestamp, and its clock's fit.

docs/outputs.md, "Camera clocks".
"""

from __future__ import annotations

import logging
from typing import Any

from deeplabstream.core.frames import NO_CAMERA_TIMESTAMP, FrameStamp
from deeplabstream.hardware.cameras.clock import ClockFit, CounterUnwrapper
from deeplabstream.hardware.cameras.genicam_nodes import NodeMap, first_line

log = logging.getLogger(__name__)


class FrameStamps:
    """Each frame's stamp, and the fit of the camera's clock to the host's.

    ``frame_index``: chunk frame ID, else block ID (GigE's 16-bit IDs unwrapped);
    ``camera_timestamp`` NaN when the camera gives none (the emulator).
    """

    def __init__(self) -> None:
        self._time_source = "grab result"
        self._tick_hz = 1e9
        self._counter: str | None = None  # the frame-counter chunk enabled: FrameID, Framecounter
        self._index = CounterUnwrapper(None)
        self._clock = ClockFit()
        self._timestamps_seen = False

    def set_up(self, nodes: NodeMap, genicam: Any, chunks: bool, device_class: str) -> None:
        """Enable the chunks (with ``chunks``); learn the tick frequency and counter width."""
        if chunks:
            self._enable_chunks(nodes, genicam)
        param = nodes.param("GevTimestampTickFrequency")  # GigE says; USB3 counts nanoseconds
        if param is not None and nodes.readable(param):
            self._tick_hz = float(param.Value)
        if device_class == "BaslerGigE" and self._counter is None:
            self._index = CounterUnwrapper(65535)  # GigE block IDs run 1..65535

    def _enable_chunks(self, nodes: NodeMap, genicam: Any) -> None:
        """Switch on the timestamp and frame-counter chunks where the camera has them."""
        selector, mode = nodes.param("ChunkSelector"), nodes.param("ChunkModeActive")
        if selector is None or mode is None or not nodes.writable(mode):
            return  # no chunk features (pylon's emulator): the grab result's values serve
        offered = tuple(selector.Symbolics)
        counter = next((c for c in ("FrameID", "Framecounter") if c in offered), None)
        if "Timestamp" not in offered and counter is None:
            return
        try:
            mode.Value = True
            for chunk in ("Timestamp", counter):
                if chunk in offered:
                    selector.Value = chunk
                    nodes.param("ChunkEnable").Value = True
        except genicam.GenericException as error:
            log.warning(
                "%s: chunk data could not be enabled (%s); using the grab result's counters",
                nodes.label,
                first_line(error),
            )
            mode.Value = False
            return
        if "Timestamp" in offered:
            self._time_source = "chunk"
        if counter is not None:
            self._counter = counter
            self._index = CounterUnwrapper(1 << 32 if counter == "Framecounter" else None)

    def stamp(self, result: Any, host_ns: int) -> FrameStamp:
        """Return the stamp of a grab result the host got at ``host_ns``; feed the clock fit."""
        raw_index = _chunk_value(result, f"Chunk{self._counter}") if self._counter else None
        ticks = _chunk_value(result, "ChunkTimestamp") if self._time_source == "chunk" else None
        if raw_index is None:
            raw_index = int(result.GetBlockID())
        if ticks is None:
            ticks = int(result.GetTimeStamp())
        if ticks:
            self._timestamps_seen = True
        camera_s = ticks / self._tick_hz if self._timestamps_seen else NO_CAMERA_TIMESTAMP
        self._clock.add(camera_s, host_ns)
        return FrameStamp(self._index(raw_index), camera_s, host_ns)

    def describe(self, frames: int) -> dict[str, Any]:
        """Where the stamps come from; after ``frames`` > 0, the clock fit and counter resets."""
        info: dict[str, Any] = {
            "frame_counter": f"chunk {self._counter}" if self._counter else "block id",
            "timestamp": self._time_source if self._timestamps_seen or not frames else "none",
            "timestamp_tick_hz": self._tick_hz,
        }
        if frames and self._timestamps_seen:
            info["clock"] = self._clock.summary()
        if frames and self._index.resets:
            info["frame_counter_resets"] = self._index.resets
        return info


def _chunk_value(result: Any, name: str) -> int | None:
    """Return a chunk feature of a grab result, None when the frame carries none."""
    try:
        if not result.IsChunkDataAvailable():
            return None
        return int(result.GetChunkDataNodeMap().GetNode(name).Value)
    except Exception:  # a frame without that chunk: fall back to the grab result
        return None
