"""Lab Streaming Layer outlets: poses and experiment events for LabRecorder and other consumers.

Creating an outlet raises :class:`LslError`; a push never blocks or raises.
Design: docs/outputs.md, "Lab Streaming Layer (LSL)".
"""

from __future__ import annotations

import ctypes
import logging
import math
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.core.errors import OutputError
from deeplabstream.core.timing import host_now_ns

log = logging.getLogger(__name__)

POSE_STREAM_TYPE = "MoCap"  # LSL's content type for motion capture (XDF meta-data conventions)
EVENT_STREAM_TYPE = "Markers"  # LSL's content type for event markers (one string per event)
#: Samples an outlet keeps per consumer that is not reading; older ones are dropped. liblsl
#: counts an irregular stream's buffer in hundreds of samples: 100 x 100 = 10,000 samples (over
#: a minute of poses at 150 Hz; about 2.4 MB for 20 keypoints).
MAX_BUFFERED_SAMPLES = 10_000
#: Mapping offsets smaller than this are the readings' own cost, not a second clock: LSL and
#: the host clock are then one clock and the mapping is exact (offset 0).
SAME_CLOCK_S = 1e-3
CLOCK_READINGS = 9
#: Seconds a closing outlet with connected consumers waits for liblsl to send its last samples.
LINGER_S = 0.2
#: An outlet looks whether a consumer is connected at its first sample and every this many
#: samples after, until it sees one (a liblsl call: cheap, but not for every sample).
CONSUMER_LOOK_EVERY = 32


class LslError(OutputError, RuntimeError):
    """An outlet could not be created; the message says why and that the session goes on."""


def rig_name() -> str:
    """Return this machine's name, as source ids use it (stable per rig)."""
    return socket.gethostname() or "localhost"


def pose_source_id(camera: str, host: str | None = None) -> str:
    """Return the stable source id of ``camera``'s pose stream on this rig (machine and camera)."""
    return f"deeplabstream-{host or rig_name()}-{camera}"


def event_source_id(host: str | None = None) -> str:
    """Return the stable source id of the event marker stream on this rig."""
    return f"deeplabstream-{host or rig_name()}-events"


def pose_stream_name(camera: str) -> str:
    """Return the LSL stream name of ``camera``'s poses."""
    return f"DeepLabStream {camera} pose"


EVENT_STREAM_NAME = "DeepLabStream events"


@dataclass(frozen=True)
class ClockMapping:
    """Host clock (``core.timing.host_now_ns``) -> LSL clock (``pylsl.local_clock``), seconds.

    ``offset_s``: LSL minus host time (0: one clock); ``measured_s``: the readings' median;
    ``spread_s``: the largest reading's distance from it, the mapping's error bound.
    """

    offset_s: float
    measured_s: float
    spread_s: float

    def to_lsl(self, host_time_s: float) -> float:
        """Return the LSL time of a host time."""
        return host_time_s + self.offset_s

    @classmethod
    def measure(cls, readings: int = CLOCK_READINGS) -> ClockMapping:
        """Measure the offset: the median of ``readings`` paired readings of both clocks.

        Each pairing reads the host clock before and after LSL's and takes their middle.
        """
        import pylsl

        offsets = []
        for _ in range(readings):
            before = host_now_ns()
            lsl_s = pylsl.local_clock()
            after = host_now_ns()
            offsets.append(lsl_s - (before + after) / 2e9)
        median = statistics.median(offsets)
        spread = max(abs(value - median) for value in offsets)
        offset = 0.0 if abs(median) < SAME_CLOCK_S else median
        return cls(offset, median, spread)


def pose_channel_labels(keypoints: Sequence[str]) -> list[str]:
    """Return the channel labels of a pose stream: ``<keypoint>_x``, ``_y``, ``_likelihood``."""
    return [f"{name}_{part}" for name in keypoints for part in ("x", "y", "likelihood")]


def marker_text(
    kind: str,
    name: str,
    detail: str = "",
    trial: int | None = None,
    camera: str = "",
    frame_index: int | None = None,
) -> str:
    """Return one event as a marker: ``kind name [detail] [trial=N] [camera=C frame=I]``."""
    parts = [kind, name]
    if detail:
        parts.append(detail)
    if trial is not None:
        parts.append(f"trial={trial}")
    if camera:
        parts.append(f"camera={camera}")
    if frame_index is not None:
        parts.append(f"frame={frame_index}")
    return " ".join(part for part in parts if part)


class _Outlet:
    """What both outlets share: creation with a bounded buffer, error counting, closing."""

    def __init__(self, info: Any, clock: ClockMapping | None) -> None:
        import pylsl

        # liblsl counts max_buffered in seconds at a nominal rate, in hundreds of samples for an
        # irregular stream: either way at most MAX_BUFFERED_SAMPLES per consumer.
        rate = info.nominal_srate()
        buffered = (
            math.ceil(MAX_BUFFERED_SAMPLES / rate) if rate > 0 else MAX_BUFFERED_SAMPLES // 100
        )
        try:
            self._outlet: Any = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=buffered)
        except Exception as error:  # liblsl raises RuntimeError, or worse on a broken network
            raise LslError(
                f"LSL stream {info.name()!r} could not be opened ({error}); the session goes "
                "on without LSL"
            ) from None
        self.name: str = info.name()
        self.source_id: str = info.source_id()
        self.clock = clock or ClockMapping.measure()
        self.samples = 0  # pushed (whether or not anyone listened)
        self.failures = 0
        self.error: str | None = None  # the first failed push's message
        self.consumer_seen = False  # a consumer was seen connected (looked at now and then)

    def _look_for_consumer(self) -> None:
        """Look whether a consumer is connected, every CONSUMER_LOOK_EVERY samples until one is."""
        if not self.consumer_seen and self.samples % CONSUMER_LOOK_EVERY == 0:
            self.consumer_seen = self.consumers

    @property
    def unheard(self) -> str | None:
        """Say that no consumer was seen while it sent samples (they went nowhere); else None."""
        if self.consumer_seen or not self.samples:
            return None
        return f"{self.name!r} ({self.samples} samples)"

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        if self.error is None:
            self.error = f"LSL stream {self.name!r}: a sample could not be sent ({error})"
            log.error("%s", self.error)

    @property
    def consumers(self) -> bool:
        """True while at least one inlet (LabRecorder, a script) is connected."""
        outlet = self._outlet
        return outlet is not None and bool(outlet.have_consumers())

    def close(self, linger: bool = True) -> None:
        """Stop the stream; with ``linger``, connected consumers get the last samples first."""
        if self._outlet is not None and not self.consumer_seen:
            self.consumer_seen = self.consumers  # one connected at the end got samples too
        outlet, self._outlet = self._outlet, None
        if outlet is None:
            return
        if linger and outlet.have_consumers():
            time.sleep(LINGER_S)  # liblsl sends from its own threads: let the last ones leave
        del outlet  # liblsl destroys the outlet with its last reference


class PoseOutlet(_Outlet):
    """One camera's poses as an LSL stream of type ``MoCap`` (docs/outputs.md, LSL).

    ``nominal_srate`` 0 (irregular, the default): frames are skipped, each sample has its
    frame's time. ``source_id``/``clock`` None: :func:`pose_source_id`, a measured mapping.
    """

    def __init__(
        self,
        camera: str,
        keypoints: Sequence[str],
        nominal_srate: float = 0.0,
        source_id: str | None = None,
        clock: ClockMapping | None = None,
    ) -> None:
        import pylsl

        self.channel_count = 3 * len(keypoints)
        info = pylsl.StreamInfo(
            pose_stream_name(camera),
            POSE_STREAM_TYPE,
            self.channel_count,
            nominal_srate,
            "float32",
            source_id or pose_source_id(camera),
        )
        _describe_pose(info, camera, keypoints)
        super().__init__(info, clock)
        self._push = self._outlet.do_push_sample  # liblsl's float32 push, called with a pointer

    def push(self, pose: np.ndarray, host_time_s: float) -> None:
        """Send one pose ((keypoints, 3): x, y, likelihood) at its frame's time; never raises."""
        if self._outlet is None:
            return
        self._look_for_consumer()
        try:
            values = np.ascontiguousarray(pose, np.float32)  # no copy for a worker's pose
            if values.size != self.channel_count:
                raise ValueError(f"{values.size} values for {self.channel_count} channels")
            self._push(
                self._outlet.obj,
                ctypes.c_void_p(values.ctypes.data),  # liblsl reads channel_count floats there
                ctypes.c_double(self.clock.to_lsl(host_time_s)),
                ctypes.c_int(1),  # pushthrough: send now, a pose is worth most when it is new
            )
            self.samples += 1
        except Exception as error:  # never stop the loop for a stream nobody may be reading
            self._failed(error)


class EventOutlet(_Outlet):
    """The experiment's events as an LSL ``Markers`` stream: one string sample per event.

    ``source_id`` None: :func:`event_source_id`; ``clock`` None: a measured mapping.
    """

    def __init__(self, source_id: str | None = None, clock: ClockMapping | None = None) -> None:
        import pylsl

        info = pylsl.StreamInfo(
            EVENT_STREAM_NAME,
            EVENT_STREAM_TYPE,
            1,
            pylsl.IRREGULAR_RATE,
            "string",
            source_id or event_source_id(),
        )
        _describe_events(info)
        super().__init__(info, clock)

    def push(self, text: str, host_time_s: float | None = None) -> None:
        """Send one marker stamped with the host time it describes (None: now). Never blocks."""
        if self._outlet is None:
            return
        self._look_for_consumer()
        try:
            stamp = host_now_ns() / 1e9 if host_time_s is None else host_time_s
            self._outlet.push_sample([text], self.clock.to_lsl(stamp))
            self.samples += 1
        except Exception as error:  # never stop the experiment for a stream
            self._failed(error)


def _describe_pose(info: Any, camera: str, keypoints: Sequence[str]) -> None:
    """Fill ``desc``: channels (label, marker, type, unit) as XDF's MoCap meta-data has them."""
    desc = info.desc()
    desc.append_child_value("manufacturer", "DeepLabStream")
    desc.append_child_value("camera", camera)
    channels = desc.append_child("channels")
    for keypoint in keypoints:
        for part, kind, unit in (
            ("x", "PositionX", "pixels"),
            ("y", "PositionY", "pixels"),
            ("likelihood", "Likelihood", "normalized"),
        ):
            channel = channels.append_child("channel")
            channel.append_child_value("label", f"{keypoint}_{part}")
            channel.append_child_value("marker", keypoint)
            channel.append_child_value("type", kind)
            channel.append_child_value("unit", unit)


def _describe_events(info: Any) -> None:
    desc = info.desc()
    desc.append_child_value("manufacturer", "DeepLabStream")
    desc.append_child_value(
        "format", "kind name [detail] [trial=N] [camera=C frame=I] (docs/outputs.md)"
    )


@dataclass
class LslOutlets:
    """The outlets of one analysis: a pose stream per camera and the event markers.

    A stream that cannot be opened by :meth:`open` is left out, its message in :attr:`errors`.
    """

    poses: dict[str, PoseOutlet]
    events: EventOutlet | None
    clock: ClockMapping | None
    errors: list[str]

    @classmethod
    def off(cls) -> LslOutlets:
        """Return no outlets (``[Output] LSL = off``)."""
        return cls({}, None, None, [])

    @classmethod
    def open(cls, cameras: dict[str, Sequence[str]]) -> LslOutlets:
        """Open a pose outlet for each camera (name -> keypoints) and the event outlet."""
        outlets = cls.off()
        try:
            clock = ClockMapping.measure()
        except Exception as error:  # liblsl missing or broken: no outlet can work either
            outlets.errors.append(f"LSL is not available ({error}); the session goes on without")
            log.error("%s", outlets.errors[-1])
            return outlets
        outlets.clock = clock
        log.info(
            "LSL clock = host clock + %.6f s (measured %.3g s, spread %.3g s)",
            clock.offset_s,
            clock.measured_s,
            clock.spread_s,
        )
        for camera, keypoints in cameras.items():
            try:
                outlets.poses[camera] = PoseOutlet(camera, keypoints, clock=clock)
            except Exception as error:  # LslError, or liblsl refusing the stream's description
                outlets._failed(pose_stream_name(camera), error)
        try:
            outlets.events = EventOutlet(clock=clock)
        except Exception as error:
            outlets._failed(EVENT_STREAM_NAME, error)
        return outlets

    def _failed(self, stream: str, error: Exception) -> None:
        message = str(error)
        if not isinstance(error, LslError):
            message = f"LSL stream {stream!r} could not be opened ({error}); the session goes on"
        self.errors.append(message)
        log.error("%s", message)

    def wait_for_consumers(self, timeout_s: float) -> list[str]:
        """Wait up to ``timeout_s`` for an inlet on every outlet; return the streams without one.

        LSL keeps no history: a consumer connecting after the first samples misses them.
        """
        deadline = time.monotonic() + timeout_s
        outlets: list[_Outlet] = [*self.poses.values()]
        if self.events is not None:
            outlets.append(self.events)
        waiting = []
        for outlet in outlets:
            remaining = max(0.0, deadline - time.monotonic())
            inner = outlet._outlet
            if inner is None or not inner.wait_for_consumers(remaining):
                waiting.append(outlet.name)
        return waiting

    @property
    def warning(self) -> str | None:
        """Say which streams sent samples while no consumer was connected (they reached nobody)."""
        outlets: list[_Outlet] = [*self.poses.values()]
        if self.events is not None:
            outlets.append(self.events)
        unheard = [text for outlet in outlets if (text := outlet.unheard) is not None]
        if not unheard:
            return None
        return (
            f"LSL: no consumer (LabRecorder, an inlet) was seen connected to {', '.join(unheard)}"
            f" while it sent them (looked every {CONSUMER_LOOK_EVERY} samples): LSL keeps no "
            "history, so those samples reached nobody. Start the consumer before the analysis, "
            "or give [Output lsl] WAIT seconds to wait for it"
        )

    @property
    def error(self) -> str | None:
        """Return every creation or push failure in one message, or None."""
        outlets: list[_Outlet] = [*self.poses.values()]
        if self.events is not None:
            outlets.append(self.events)
        messages = [*self.errors, *(o.error for o in outlets if o.error)]
        return "; ".join(messages) or None

    def close(self) -> None:
        """Close every outlet (consumers get the last samples first: one bounded wait)."""
        outlets: list[_Outlet] = [*self.poses.values()]
        if self.events is not None:
            outlets.append(self.events)
        if any(outlet.consumers for outlet in outlets):
            time.sleep(LINGER_S)  # liblsl sends from its own threads: let the last ones leave
        for outlet in outlets:
            outlet.close(linger=False)
