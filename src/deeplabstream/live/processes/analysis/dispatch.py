"""Decide and send: an experiment's update on each batch of poses, its commands to its devices.

Design: docs/architecture.md, "Experiments and stimulation".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.core.errors import DeviceError
from deeplabstream.core.timing import DurationHistogram, host_now_ns
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.experiments.observation import (
    MissingKeypointError,
    Observation,
    Observations,
    Points3D,
    paired_update,
)
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.hardware.stimulation import StimulationDevice
from deeplabstream.hardware.stimulation.base import ActionRecord, DeviceLostError

log = logging.getLogger(__name__)

EVENTS_FILE = "events.csv"
ACK_WAIT_AT_STOP_S = 1.0
#: An action's row waits this long at most for its device's acknowledgement before it (and the
#: rows after it) go to the file without one: a screen acknowledges once it painted, often after
#: the next frame's update; an answer seconds late is a device fault, and the row must not wait.
ACK_HOLD_S = 2.0
#: What a device's command or opening may raise: the device's own error (DeviceError, its message
#: names the device), an OSError of a port or driver it did not wrap, a ValueError of a value the
#: device refuses.
DEVICE_FAILURES = (DeviceError, OSError, ValueError)
#: An experiment's update that has not returned after this long is stopped (it is stuck: a
#: loop that never ends, a wait for something that never comes); a slow one (tenths of a
#: second) is a late decision, judged by the deadline, not stopped.
UPDATE_LIMIT_S = 3.0
#: A device's command (its ``perform``) or close that has not returned after this long is
#: stopped: a command returns at once (a pulse is timed by the device), so seconds mean it hangs
#: (a driver call that never returns); the experiment stops, the device gets no more commands.
PERFORM_LIMIT_S = 3.0


class DeviceHungError(DeviceError):
    """A device's call did not return within :data:`PERFORM_LIMIT_S` and was interrupted."""


class ExperimentRun:
    """One experiment's runtime with its open devices, driven by pose updates.

    With ``unwritten`` (core/unwritten_rows.py), the rows ``events_file`` lacks and the latest
    frame time are published after each update's commands, so a dying worker loses none.
    """

    def __init__(
        self,
        runtime: ExperimentRuntime,
        devices: dict[str, StimulationDevice],
        events_path: Path,
        plan: dict[str, Any] | None = None,
        events_file: EventCsvWriter | None = None,
        unwritten: UnwrittenRows | None = None,
    ) -> None:
        self.runtime = runtime
        self.events_file = events_file
        self.unwritten = unwritten
        self._published = -1  # the event log's changes when its rows were last published
        self.plan = plan  # the experiment's plan as session.json records it (settings layer)
        runtime.recording.defer_details = True  # events are formatted after the commands are out
        self.devices = devices
        self.events_path = events_path
        self.error: str | None = None
        self.latest: dict[str, Observation] = {}  # each camera's newest pose
        # Each sent command with the prompting frame's host time (None for a stop's switch-off):
        # its acknowledgement is timed from the frame its write was timed from, or not at all.
        self._unacknowledged: list[tuple[Action, ActionRecord, float | None]] = []
        # In fixed bins, not lists: the pairing error is counted on every update, and a list of
        # every value grew the worker by tens of bytes a frame.
        self.write_ns = DurationHistogram()  # frame arrival -> command written
        self.ack_ns = DurationHistogram()  # frame arrival -> device acknowledgement
        self.pairing_ns = DurationHistogram()  # several cameras: largest pairing error per update
        self.update_ns = DurationHistogram()  # the experiment's update alone, every update
        self.actions = 0  # commands sent
        self.not_sent = 0  # actions decided whose command never left (events.csv not_sent)
        self.updates = 0  # updates the experiment was given
        self.batches = (0, 0)  # the worker's batch counts of its first and last update
        self._hung: set[str] = set()  # devices whose call had to be interrupted: no more calls
        # The last update's decision and its last command written (host clock, ns; 0: none),
        # which the worker reads to time the frame against the deadline (core/deadline.py).
        self.last_decided_ns = 0
        self.last_written_ns = 0

    def on_poses(
        self,
        observations: list[Observation],
        pose_ready_ns: int,
        points3d: Points3D | None = None,
        batch: int = 0,
    ) -> None:
        """Feed the poses of one batch to the experiment and perform its actions at once.

        ``points3d``: this batch's live 3D set (None: none); ``batch``: the worker's batch count.
        Then :attr:`last_decided_ns`, :attr:`last_written_ns`: when it decided, wrote (0: not).
        """
        self.last_decided_ns = self.last_written_ns = 0
        if self.error is not None or not observations:
            return
        try:
            self._update(observations, pose_ready_ns, points3d, batch)
        finally:  # after the commands: what the file lacks goes where the main process finds it
            self.keep_unwritten()

    def _update(
        self,
        observations: list[Observation],
        pose_ready_ns: int,
        points3d: Points3D | None,
        batch: int,
    ) -> None:
        """Run the experiment's update on one batch and send its commands (:meth:`on_poses`)."""
        self.batches = (self.batches[0] or batch, batch)
        self._fill_acknowledgements()
        subject, newest = self._subject(observations, points3d)
        self._report_elapsed(newest)
        runtime = self.runtime
        update_started_ns = host_now_ns()
        self.updates += 1
        try:
            # An update that never returns is interrupted (core/call_watchdog.py): the
            # experiment is blamed and stopped; pose estimation and its files go on.
            with time_limit(f"experiment {runtime.name!r}: its update", UPDATE_LIMIT_S):
                actions = runtime.update(subject)
        except CallStalled as stall:
            where = f"at frame {newest.frame_index} of camera {newest.camera!r}"
            self._fail(f"{stall} {where}{_trigger_stalled(stall)}")
            return
        except MissingKeypointError as error:  # a setting to fix, not a bug: no traceback
            self._fail(f"experiment {runtime.name!r}: {error}")
            return
        except Exception as error:  # a bug or a config mistake stops the experiment, not tracking
            log.exception("experiment %s failed", runtime.name)
            self._fail(f"experiment {runtime.name!r} raised {error}")
            return
        decided_ns = self.last_decided_ns = host_now_ns()
        if actions:
            self._perform(actions, pose_ready_ns, decided_ns, newest)
        # After the commands: the update's events take their final form, the figures count.
        runtime.events.settle()
        self.update_ns.add(decided_ns - update_started_ns)

    def _subject(
        self, observations: list[Observation], points3d: Points3D | None
    ) -> tuple[Observation | Observations, Observation]:
        """Return what the experiment is given for this batch, and the batch's newest pose."""
        subject, newest = paired_update(self.latest, observations, points3d)
        if isinstance(subject, Observations) and len(subject) > 1:
            self.pairing_ns.add(round(subject.max_error_s * 1e9))  # kept for session.json
        return subject, newest

    @property
    def lead_s(self) -> float | None:
        """The forward-prediction lead of the last update, s (None: the experiment predicts not)."""
        prediction = self.runtime.prediction
        return prediction.last_lead_s if prediction is not None else None

    def _report_elapsed(self, newest: Observation) -> None:
        """Tell the lead estimator how old the prompting frame is now (auto lead, at first)."""
        prediction = self.runtime.prediction
        if prediction is not None:
            host_s = newest.host_time_s
            prediction.lead.set_elapsed(None if host_s is None else host_now_ns() / 1e9 - host_s)

    def _send(self, action: Action) -> ActionRecord:
        """Send ``action``'s command as it is to its device under the watchdog (DeviceHungError)."""
        name = action.device
        if name in self._hung:
            raise DeviceHungError(f"device {name!r} hung earlier: no more commands go to it")
        try:
            with time_limit(f"device {name!r}: its {action.command}", PERFORM_LIMIT_S):
                return self.devices[name].send(action)
        except CallStalled as stall:
            self._hung.add(name)
            raise DeviceHungError(str(stall)) from None

    def _perform(
        self, actions: list[Action], pose_ready_ns: int, decided_ns: int, source: Observation
    ) -> None:
        events = self.runtime.events
        sent: list[tuple[Action, ActionRecord]] = []
        failure_text = None
        for index, action in enumerate(actions):  # every command first; their bookkeeping after
            try:
                sent.append((action, self._send(action)))
            except DEVICE_FAILURES as failure:
                failure_text = _failure_text(action.device, failure)
                self._mark_not_sent(action, _why_not_sent(failure))
                for later in actions[index + 1 :]:  # the experiment stops: never tried
                    self._mark_not_sent(later, "an earlier command failed")
                break
        prediction = self.runtime.prediction
        for action, record in sent:
            self.actions += 1
            events.fill_times(
                action,
                pose_ready=pose_ready_ns / 1e9,
                decided=decided_ns / 1e9,
                written=record.written_ns / 1e9,
            )
            self._awaiting_acknowledgement(action, record, source.host_time_s)
            self.last_written_ns = record.written_ns
            if source.host_time_s is not None:
                latency_s = record.written_ns / 1e9 - source.host_time_s
                self.write_ns.add(round(latency_s * 1e9))
                if prediction is not None:  # the auto lead follows it
                    prediction.lead.add_latency(latency_s)
        if failure_text is not None:
            self._fail(failure_text)

    def _awaiting_acknowledgement(
        self, action: Action, record: ActionRecord, frame_host_s: float | None
    ) -> None:
        """Wait for ``record``'s acknowledgement; its row stays out of the file until it comes."""
        self._unacknowledged.append((action, record, frame_host_s))
        self.runtime.events.hold(action)

    def _fill_acknowledgements(self) -> None:
        """Put the acknowledgements that arrived into the events not yet written to the file."""
        still_waiting = []
        events = self.runtime.events
        hold_from_ns = host_now_ns() - round(ACK_HOLD_S * 1e9)
        for action, record, frame_host_s in self._unacknowledged:
            if record.acked_ns is not None:
                events.fill_times(action, acknowledged=record.acked_ns / 1e9)
                if frame_host_s is not None:
                    self.ack_ns.add(round(record.acked_ns - frame_host_s * 1e9))
            elif record.error is not None:
                events.release(action)
                self._fail(f"device {action.device!r} failed {record.command!r}: {record.error}")
            else:
                if record.written_ns < hold_from_ns:  # still counted if it comes, not in the row
                    events.release(action)
                still_waiting.append((action, record, frame_host_s))
        self._unacknowledged = still_waiting

    def _send_switch_offs(self, actions: list[Action], decided_ns: int | None) -> None:
        """Send the stop's switch-offs; a failure is logged, the rest still go."""
        for action in actions:
            if action.device not in self.devices:
                self._mark_not_sent(action, f"no device {action.device!r}")
                continue
            try:
                record = self._send(action)
            except DEVICE_FAILURES as failure:
                log.error("could not switch off %s: %s", action.device, failure)
                self._mark_not_sent(action, _why_not_sent(failure))
                continue
            self.actions += 1  # a command sent: counted as the update's are
            decided = None if decided_ns is None else decided_ns / 1e9
            self.runtime.events.fill_times(action, decided=decided, written=record.written_ns / 1e9)
            self._awaiting_acknowledgement(action, record, None)

    def _stop_runtime(self, time_s: float | None, reason: str) -> list[Action]:
        """Stop the experiment under the watchdog; a hung stop gives no switch-off actions."""
        name = self.runtime.name
        try:
            with time_limit(f"experiment {name!r}: its stop", UPDATE_LIMIT_S):
                return self.runtime.stop(time_s, reason)
        except CallStalled as stall:
            log.error("%s; its devices are switched off by their close", stall)
            return []

    def _fail(self, message: str) -> None:
        """Stop the experiment on a failure (outputs off where possible), keep its events."""
        if self.error is not None:
            return
        self.error = f"experiment stopped: {message}"
        log.error("%s", self.error)
        # The finish row of events.csv says why, not only "stopped".
        self._send_switch_offs(self._stop_runtime(None, f"failed: {message}"), None)
        self._unacknowledged = []
        self.runtime.events.close()

    def stop(self) -> None:
        """End the experiment: switch outputs off, wait briefly for acknowledgements."""
        if self.error is not None:
            return
        latest = max((o.time_s for o in self.latest.values()), default=None)
        self._send_switch_offs(self._stop_runtime(latest, "stopped"), host_now_ns())
        deadline = time.monotonic() + ACK_WAIT_AT_STOP_S
        while self._unacknowledged and time.monotonic() < deadline:
            self._fill_acknowledgements()
            time.sleep(0.01)
        self._fill_acknowledgements()
        self.runtime.events.close()
        self.keep_unwritten()  # nothing: the file is whole

    def close_devices(self) -> None:
        """Close every device (each under the watchdog: a hung driver must not hold the stop)."""
        for name, device in self.devices.items():
            try:
                with time_limit(f"device {name!r}: its close", PERFORM_LIMIT_S):
                    device.close()
            except CallStalled as stall:
                log.error("%s", stall)
            except Exception as failure:  # closing one device must not keep others open
                log.error("device %s did not close cleanly: %s", name, failure)

    def _mark_not_sent(self, action: Action, why: str) -> None:
        """Log in events.csv that ``action``'s command never left (``not_sent``), and count it."""
        self.not_sent += 1
        self.runtime.events.mark_not_sent(action, why)

    def keep_unwritten(self) -> None:
        """Publish the rows ``events.csv`` lacks (when changed) and the latest frame time."""
        unwritten, file = self.unwritten, self.events_file
        if unwritten is None or file is None:
            return
        events = self.runtime.events
        unwritten.reached(self.runtime.now_s)
        if events.changes == self._published:
            return
        self._published = events.changes
        file_bytes, handed_over = file.unwritten()
        unwritten.publish(file_bytes, handed_over + file.render(events.pending))


def _trigger_stalled(stall: CallStalled) -> str:
    """Say which trigger's own code the stalled update was in (its traceback), else ""."""
    found = ""
    frame = stall.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        if isinstance(owner, Trigger):
            named = getattr(owner, "name", None)
            found = f", in trigger kind {owner.kind!r}" + (f" ({named!r})" if named else "")
        frame = frame.tb_next
    return found


def _failure_text(device: str, failure: Exception) -> str:
    """Return a device's failure for the error: its name first, once."""
    text = str(failure)
    return text if text.startswith(f"device {device!r}") else f"device {device!r}: {text}"


def _why_not_sent(failure: Exception) -> str:
    """Return why a command was not sent, for events.csv's ``not_sent`` (after ``not sent:``)."""
    if isinstance(failure, DeviceLostError):
        return f"device gone ({failure})"
    if isinstance(failure, DeviceHungError):
        return f"device hung ({failure})"
    return f"device failed ({failure})"
