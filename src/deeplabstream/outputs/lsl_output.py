"""The built-in ``lsl`` output: poses and the experiment's events on Lab Streaming Layer outlets.

Its failures are reported in ``session.json``, never stopping the session (docs/outputs.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from deeplabstream.core.schema import setting
from deeplabstream.outputs.interface import (
    AnalysedFrame,
    EventMarkers,
    LiveOutput,
    Output,
    OutputCamera,
    OutputSession,
    PoseSink,
)
from deeplabstream.outputs.lsl import LslOutlets, PoseOutlet
from deeplabstream.transport.channel import FrameRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LslOutputSettings:
    """``[Output lsl]`` (or ``[Output] LSL = on`` with ``LSL_WAIT``)."""

    wait: float = setting(
        0.0,
        doc="At Start Analysis, wait up to this many seconds for a consumer (LabRecorder, a "
        "script) to connect to every outlet before the first pose is sent. LSL keeps no history: "
        "a pose sent before an inlet connects is not received. 0: no wait.",
        minimum=0,
        maximum=120,
        unit="s",
    )


class LslPoseSink:
    """The camera's LSL pose stream: (K, 3), or every identity's (A * K, 3), per frame."""

    def __init__(self, outlet: PoseOutlet) -> None:
        self._outlet = outlet

    def write(self, frame: AnalysedFrame) -> None:
        """Push its animals' keypoints."""
        self._outlet.push(frame.animals.reshape(-1, 3), frame.record.host_timestamp_ns / 1e9)

    def write_not_analysed(self, record: FrameRecord) -> None:
        """Nothing: a stream carries analysed poses only."""

    def close(self, last_index: int | None) -> dict[str, Any]:
        """Add nothing: the outlets close with the experiment's events, after the last."""
        return {}


class LslOutput(Output):
    """``lsl``: one ``MoCap`` stream per camera and one ``Markers`` stream of events."""

    settings_class = LslOutputSettings

    @property
    def start_up_s(self) -> float:
        """Its wait for consumers, before the first pose."""
        return float(self.settings.wait)

    def open_live(self, session: OutputSession) -> LiveOutput:
        """Open the outlets (failures are kept), then wait for consumers (``WAIT``)."""
        outlets = LslOutlets.open({camera.name: lsl_channels(camera) for camera in session.cameras})
        wait_s = self.start_up_s
        if wait_s > 0:  # before any frame is analysed: a consumer gets every pose
            waiting = outlets.wait_for_consumers(wait_s)
            if waiting:
                log.warning(
                    "LSL: no consumer after %g s on %s; sending anyway (LSL_WAIT)",
                    wait_s,
                    ", ".join(waiting),
                )
            else:
                log.info("LSL: every outlet has a consumer")
        return _LiveLsl(outlets)


class _LiveLsl(LiveOutput):
    def __init__(self, outlets: LslOutlets) -> None:
        self.outlets = outlets
        self.markers: EventMarkers | None = outlets.events

    def camera_sink(self, camera: OutputCamera) -> PoseSink | None:
        outlet = self.outlets.poses.get(camera.name)
        return LslPoseSink(outlet) if outlet is not None else None

    def close(self) -> None:
        self.outlets.close()

    @property
    def error(self) -> str | None:
        return self.outlets.error

    @property
    def warning(self) -> str | None:
        return self.outlets.warning


def lsl_channels(camera: OutputCamera) -> tuple[str, ...]:
    """Return the channels of a camera's LSL pose stream (``animal1_nose``, ... for several)."""
    if not camera.multi_animal:
        return camera.keypoints
    return tuple(f"{animal}_{name}" for animal in camera.individuals for name in camera.keypoints)
