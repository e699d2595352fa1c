"""Loud losses: decide when a camera loses too many frames, and keep saying so until seen.

Design: docs/gui.md, "Messages and errors".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from PyQt5.QtCore import pyqtSignal

from deeplabstream.app.gui.banner import Banner, BarColours

DEFAULT_WINDOW_S = 10.0
LOSS_COLOURS = BarColours("#e65100", "white", bold=True)
#: The alerts' figures, most serious first, and how the headline names each.
SEVERITY = {
    "recorder": "the recorder lost frames (the video has holes)",
    "dropped": "the camera dropped frames",
    "stalled": "analysis stalled",
    "late": "the loop missed its deadline",
    "skipped": "pose estimation skipped most frames",
}

#: What to do when pose estimation skips more than its share of the frames.
SKIPPING_ADVICE = (
    "What to do about skipped frames: pose estimation cannot keep up with the camera. Use a "
    "lighter model, turn on dynamic cropping ([Pose] DYNAMIC_CROP = on: the network sees only "
    "the animal's surroundings), run the model on a GPU ([Pose] DEVICE = cuda), or lower the "
    "camera's frame rate (its FRAMERATE)."
)
RECORDING_KEEPS_ALL = "Skipped frames are only not analysed: the recording keeps them."
RECORDER_LOST_TOO = (
    "Skipped frames are only not analysed, but the recorder lost frames (said above): those are "
    "missing from the video. A computer that cannot keep up costs both: the remedies above "
    "help the recording too."
)


def skipping_advice(recording: bool, recorder_lost: bool) -> str:
    """Return the advice for skipped frames, with what it means for the recording now."""
    if recorder_lost:
        return f"{SKIPPING_ADVICE} {RECORDER_LOST_TOO}"
    return f"{SKIPPING_ADVICE} {RECORDING_KEEPS_ALL}" if recording else SKIPPING_ADVICE


class LossFigures(Protocol):
    """The counters the alarm reads (:class:`live.session.runner.CameraFigures` has them)."""

    @property
    def name(self) -> str:
        """The camera's name."""
        ...

    @property
    def captured(self) -> int:
        """Frames captured so far."""
        ...

    @property
    def dropped(self) -> int:
        """Frames the camera dropped, so far (the recorder's losses are ``record_lost``)."""
        ...

    @property
    def skipped(self) -> int:
        """Frames the pose model passed over, so far."""
        ...


@dataclass(frozen=True)
class LossThresholds:
    """When losses turn loud (fractions of the frames captured in the window)."""

    window_s: float = DEFAULT_WINDOW_S
    dropped_fraction: float = 0.01
    skipped_fraction: float = 0.5
    any_recorder_loss: bool = True
    late_fraction: float = 0.01  # as DEADLINE_MISS_TOLERANCE's default
    min_late: int = 3  # as live/session/report/health.py's MIN_MISSES


@dataclass(frozen=True)
class LossAlert:
    """One latched alert: which camera, which figure, how bad, and when it was raised."""

    camera: str
    figure: str  # "dropped", "recorder", "skipped", "late" or "stalled"
    lost: int  # frames lost in the window
    frames: int  # frames captured in the window
    time_s: float  # when it was raised (the time given to update)
    message: str  # while it holds: "... in the last 10 s"
    past: str = ""  # once it no longer holds: until when it held, and "not since"

    def text(self, holds: bool, ended: bool = False) -> str:
        """Return the line to show: live while the condition ``holds``, past tense after."""
        if ended and self.past:
            return self.past
        return self.message if holds or not self.past else f"{self.past}; not since"


@dataclass(frozen=True)
class _Sample:
    time_s: float
    captured: int
    dropped: int
    skipped: int
    record_lost: int
    analysed: int = 0
    late: int = 0
    stalled_s: float | None = None


class LossAlarm:
    """Watch each camera's loss counters over a sliding window; latch alerts until acknowledged.

    ``thresholds`` None: :class:`LossThresholds` defaults.
    """

    def __init__(self, thresholds: LossThresholds | None = None) -> None:
        self.thresholds = thresholds or LossThresholds()
        self._history: dict[str, deque[_Sample]] = {}
        self._alerts: dict[tuple[str, str], LossAlert] = {}
        self._holding: set[tuple[str, str]] = set()  # latched alerts whose condition holds now
        self._ended = False  # the stream stopped: every line is in the past tense

    @property
    def alerts(self) -> list[LossAlert]:
        """Return the alerts raised since the last acknowledgement, most serious first."""
        order = list(SEVERITY)
        return sorted(
            self._alerts.values(),
            key=lambda a: order.index(a.figure) if a.figure in order else len(order),
        )

    @property
    def loud(self) -> bool:
        """Whether any alert is latched."""
        return bool(self._alerts)

    def message(self) -> str:
        """Return one line per latched alert (empty when all is well), most serious first."""
        alerts = self.alerts
        lines = [
            alert.text((alert.camera, alert.figure) in self._holding, self._ended)
            for alert in alerts
        ]
        if len(alerts) > 1:
            lines.insert(0, _headline(alerts))
        return "\n".join(lines)

    def end_stream(self) -> None:
        """Say every latched line in the past tense from now on: the stream stopped."""
        self._ended = True
        self._holding.clear()

    def update(self, figures: Sequence[LossFigures], time_s: float) -> list[LossAlert]:
        """Take every camera's counters at ``time_s`` (seconds); return the alerts newly raised."""
        raised = []
        self._ended = False  # figures come: a stream runs
        for camera in figures:
            sample = _Sample(
                float(time_s),
                camera.captured,
                camera.dropped,
                camera.skipped,
                # CameraFigures may not carry the recorder's own losses; they are in dropped then.
                int(getattr(camera, "record_lost", 0) or 0),
                int(getattr(camera, "analysed", 0) or 0),
                int(getattr(camera, "late", 0) or 0),
                getattr(camera, "stalled_s", None),
            )
            history = self._history.setdefault(camera.name, deque())
            if history and _went_back(history[-1], sample):
                history.clear()  # a new stream: its counters start again from zero
            history.append(sample)
            self._forget_before(history, sample.time_s - self.thresholds.window_s)
            found = self._check(camera.name, history[0], sample)
            raised += self._latch(camera.name, found)
        return raised

    def _latch(self, camera: str, found: list[LossAlert]) -> list[LossAlert]:
        """Latch ``found``; return those newly raised (one not found now stays, past tense)."""
        raised = []
        self._holding = {key for key in self._holding if key[0] != camera}
        for alert in found:
            key = (alert.camera, alert.figure)
            latched = self._alerts.get(key)
            if latched is None:
                raised.append(alert)
            else:  # the newest figures, raised when it first was
                alert = replace(alert, time_s=latched.time_s)
            self._alerts[key] = alert
            self._holding.add(key)
        return raised

    def acknowledge(self) -> None:
        """Clear the alerts (the user has seen them); losses before now are not raised again."""
        self._alerts.clear()
        self._holding.clear()
        for history in self._history.values():
            while len(history) > 1:
                history.popleft()  # the newest sample is the new baseline

    def clear(self) -> None:
        """Forget everything: a new session starts quiet."""
        self._history.clear()
        self._alerts.clear()
        self._holding.clear()
        self._ended = False

    @staticmethod
    def _forget_before(history: deque[_Sample], start_s: float) -> None:
        """Drop samples older than the window, keeping one at or before its start as baseline."""
        while len(history) > 1 and history[1].time_s <= start_s:
            history.popleft()

    def _check(self, camera: str, first: _Sample, last: _Sample) -> list[LossAlert]:
        """Return the alerts the losses between ``first`` and ``last`` call for."""
        limits = self.thresholds
        seconds = last.time_s - first.time_s
        frames = last.captured - first.captured
        found = []
        dropped = last.dropped - first.dropped  # by the camera: the recorder's are record_lost
        # Dropped frames never reached the capture process: they count in the total too.
        if dropped > 0 and dropped > limits.dropped_fraction * (frames + dropped):
            share = dropped / (frames + dropped)
            found.append(
                LossAlert(
                    camera,
                    "dropped",
                    dropped,
                    frames,
                    last.time_s,
                    f"camera {camera!r}: {dropped} frames dropped of {frames + dropped} "
                    f"({share:.1%}) in the last {seconds:.0f} s",
                    f"camera {camera!r}: {dropped} frames dropped of {frames + dropped} "
                    f"({share:.1%}) in the {seconds:.0f} s {_up_to(last.time_s)}",
                )
            )
        record_lost = last.record_lost - first.record_lost
        if limits.any_recorder_loss and record_lost > 0:
            found.append(
                LossAlert(
                    camera,
                    "recorder",
                    record_lost,
                    frames,
                    last.time_s,
                    f"camera {camera!r}: the recorder lost {record_lost} frames in the last "
                    f"{seconds:.0f} s (the video has holes)",
                    f"camera {camera!r}: the recorder lost {record_lost} frames in the "
                    f"{seconds:.0f} s {_up_to(last.time_s)} (the video has holes there)",
                )
            )
        skipped = last.skipped - first.skipped
        if frames > 0 and skipped > limits.skipped_fraction * frames:
            found.append(
                LossAlert(
                    camera,
                    "skipped",
                    skipped,
                    frames,
                    last.time_s,
                    f"camera {camera!r}: pose estimation skipped {skipped} of {frames} frames "
                    f"({skipped / frames:.0%}) in the last {seconds:.0f} s",
                    f"camera {camera!r}: pose estimation skipped {skipped} of {frames} frames "
                    f"({skipped / frames:.0%}) in the {seconds:.0f} s {_up_to(last.time_s)}",
                )
            )
        found += self._loop_alerts(camera, first, last)
        return found

    def _loop_alerts(self, camera: str, first: _Sample, last: _Sample) -> list[LossAlert]:
        """Return the alerts of a loop that is late (deadline misses) or stalled."""
        limits = self.thresholds
        found = []
        seconds = last.time_s - first.time_s
        late, analysed = last.late - first.late, last.analysed - first.analysed
        if late >= limits.min_late and late > limits.late_fraction * analysed:
            found.append(
                LossAlert(
                    camera,
                    "late",
                    late,
                    analysed,
                    last.time_s,
                    f"camera {camera!r}: {late} of {analysed} analysed frames missed the loop's "
                    f"deadline in the last {seconds:.0f} s",
                    f"camera {camera!r}: {late} of {analysed} analysed frames missed the loop's "
                    f"deadline in the {seconds:.0f} s {_up_to(last.time_s)}",
                )
            )
        if last.stalled_s is not None:
            found.append(
                LossAlert(
                    camera,
                    "stalled",
                    0,
                    last.captured - first.captured,
                    last.time_s,
                    f"camera {camera!r}: analysis stalled for {last.stalled_s:.1f} s: its frames "
                    "are not analysed",
                    f"camera {camera!r}: analysis stalled for {last.stalled_s:.1f} s "
                    f"{_up_to(last.time_s)}: those frames were not analysed",
                )
            )
        return found


def _headline(alerts: list[LossAlert]) -> str:
    """Name each kind of loss and its cameras, most serious first, in one line."""
    cameras: dict[str, list[str]] = {}
    for alert in alerts:
        cameras.setdefault(alert.figure, []).append(repr(alert.camera))
    kinds = [
        f"{SEVERITY.get(figure, figure)} ({', '.join(names)})" for figure, names in cameras.items()
    ]
    return "Losses: " + "; ".join(kinds)


def _up_to(time_s: float) -> str:
    """Say until when a loss held, on the stream's clock: "up to 0:02:10 of the stream"."""
    whole = int(time_s)
    clock = f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"up to {clock} of the stream"


def _went_back(before: _Sample, now: _Sample) -> bool:
    """Whether a counter decreased: the figures come from a new stream."""
    return (
        now.captured < before.captured
        or now.dropped < before.dropped
        or now.skipped < before.skipped
        or now.record_lost < before.record_lost
        or now.late < before.late
    )


class LossBanner(Banner):
    """A loud bar (``loss_banner``) with the latched loss alerts; stays until acknowledged.

    ``alarm`` None: a :class:`LossAlarm` with default thresholds. While heavy skipping is
    latched, its last line says what to do and what it means for the recording.
    """

    acknowledged = pyqtSignal()  # the user pressed Acknowledge: the alerts are cleared

    def __init__(self, alarm: LossAlarm | None = None) -> None:
        super().__init__(
            "loss_banner", LOSS_COLOURS, "Acknowledge", "acknowledge_losses", self.acknowledge
        )
        self.alarm = alarm if alarm is not None else LossAlarm()
        self.label.setObjectName("loss_message")
        self.recording = False  # the window says whether a recording runs (the advice's words)

    def update_figures(self, figures: Sequence[LossFigures], time_s: float) -> list[LossAlert]:
        """Feed the alarm one second's figures; show the bar while alerts are latched."""
        raised = self.alarm.update(figures, time_s)
        self._show()
        return raised

    def end_stream(self) -> None:
        """Say the losses in the past tense (never "in the last 10 s"): the stream stopped."""
        self.alarm.end_stream()
        self.recording = False
        self._show()

    def acknowledge(self) -> None:
        """Clear the alerts and hide the bar (losses from now on raise new alerts)."""
        self.alarm.acknowledge()
        self._show()
        self.acknowledged.emit()

    def clear(self) -> None:
        """Forget every figure and alert: a new session starts quiet."""
        self.alarm.clear()
        self._show()

    def advice(self) -> str:
        """Return what to do about heavy skipping while it is latched ("" otherwise)."""
        figures = {alert.figure for alert in self.alarm.alerts}
        if "skipped" not in figures:
            return ""
        return skipping_advice(self.recording, recorder_lost="recorder" in figures)

    def _show(self) -> None:
        text = self.alarm.message()
        advice = self.advice()
        if text and advice:
            text = f"{text}\n{advice}"
        if text != self.label.text():
            self.label.setText(text)
        self.setVisible(bool(text))
