"""An experiment at run time: its devices, its event file, and the latency of every action.

The inference worker owns one :class:`ExperimentRun` and calls :meth:`ExperimentRun.on_poses`
right after each batch of poses, in the same process, so a decision costs no extra hop. Each
action's command (made with the action) goes to its device's ``send`` at once, as it is; a device
returns immediately (a pulse's length is kept by the device or its timer, never by sleeping
here). Every action's times land in ``events.csv``: the source frame's host arrival time, when
its pose was ready, when the decision was taken, when the command was written, and when the
device acknowledged it (where it does).

With forward prediction on (:mod:`experiments.prediction`), the run feeds the experiment's lead
estimator: before each update, the time from the prompting frame's arrival to now (the lead
until a command has been measured), and after each action, its latency frame -> command written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.core.clock import host_now_ns
from deeplabstream.core.errors import DeviceError, ExperimentError
from deeplabstream.core.plugins import code_origin
from deeplabstream.core.stats import DurationHistogram
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.events import EventCsvWriter, ExperimentEvent
from deeplabstream.experiments.observation import (
    MissingKeypointError,
    Observation,
    Observations,
    Points3D,
)
from deeplabstream.experiments.registry import load_experiment
from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.hardware.stimulation import StimulationDevice
from deeplabstream.hardware.stimulation.base import ActionRecord, DeviceLostError
from deeplabstream.hardware.stimulation.latency import (
    LatencyTestSpec,
    run_file,
    write_board_reports,
)
from deeplabstream.hardware.stimulation.serial_device import SerialStimulator
from deeplabstream.live.processes.messages import (
    EventView,
    ExperimentFailed,
    ExperimentSpec,
    ExperimentStarted,
    ExperimentStatus,
    StartExperiment,
    TriggerView,
)
from deeplabstream.outputs.interface import EventMarkers
from deeplabstream.outputs.lsl import marker_text
from deeplabstream.settings.sections import DeviceSettings

log = logging.getLogger(__name__)

EVENTS_FILE = "events.csv"
ACK_WAIT_AT_STOP_S = 1.0
#: The board reports a flash nobody answered (MISS) 1 s after it began: wait for the last one.
FLASH_REPORT_WAIT_S = 1.2
STALE_PAIRING_S = 0.5  # a camera without a pose for this long is not paired with the others
#: At most this many events ride on one status (the newest); a status says how many there were.
#: A few per status is usual; the bound keeps a status well inside a pipe's buffer (64 KiB), so
#: sending it never waits for the GUI.
STATUS_EVENTS = 200
#: What a device's command or opening may raise: the device's own error (DeviceError, its message
#: names the device), an OSError of a port or driver it did not wrap, a ValueError of a value the
#: device refuses.
_DEVICE_FAILURES = (DeviceError, OSError, ValueError)


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


class ExperimentStartError(ExperimentError, RuntimeError):
    """The experiment or one of its devices could not start; the message says what to do."""


class ExperimentRun:
    """One experiment with its open devices, driven by pose updates."""

    def __init__(
        self,
        experiment: Experiment,
        devices: dict[str, StimulationDevice],
        events_path: Path,
        latency_board: SerialStimulator | None = None,
    ) -> None:
        self.experiment = experiment
        # Events are formatted after the commands are out (on_poses settles them).
        experiment.defer_event_details = True
        self.devices = devices
        self.events_path = events_path
        self.latency_board = latency_board  # runs the board's latency self-test beside us
        self.error: str | None = None
        self._latest: dict[str, Observation] = {}
        self._unacknowledged: list[tuple[Action, ActionRecord]] = []
        # In fixed bins, not lists: the pairing error is counted on every update, and a list of
        # every value grew the worker by tens of bytes a frame.
        self._write_ns = DurationHistogram()  # frame arrival -> command written
        self._ack_ns = DurationHistogram()  # frame arrival -> device acknowledgement
        self._pairing_ns = DurationHistogram()  # several cameras: largest pairing error per update
        self._actions = 0
        self._not_sent = 0  # actions decided whose command never left (events.csv not_sent)
        self._hung: set[str] = set()  # devices whose call had to be interrupted: no more calls
        self._events_sent = 0  # events of the log already sent with a status
        self._seconds_active = dict.fromkeys(experiment.triggers, 0.0)
        self._true_since_last: set[str] = set()  # triggers true after the previous update
        self._last_update_s: float | None = None  # frame time of the previous update
        # The last update's decision and its last command written (host clock, ns; 0: none),
        # which the worker reads to time the frame against the deadline (core/deadline.py).
        self.last_decided_ns = 0
        self.last_written_ns = 0
        self._update_ns = DurationHistogram()  # the experiment's update alone, every update

    @classmethod
    def open(
        cls,
        name: str,
        device_settings: dict[str, DeviceSettings],
        session_dir: Path,
        events_file: str = EVENTS_FILE,
        latency_test: LatencyTestSpec | None = None,
        markers: EventMarkers | None = None,
    ) -> ExperimentRun:
        """Load the experiment, open every device it uses, and start its event file.

        With ``latency_test``, its board (a device the experiment answers the flashes on) runs
        the latency self-test from now until :meth:`stop`, which writes the board's reports.
        With ``markers`` (``[Output] LSL = on``), every event written to the file is also sent
        as an LSL marker.
        """
        try:
            experiment = load_experiment(name)
        except Exception as error:  # a config or class error must reach the user as a message
            raise ExperimentStartError(f"experiment {name!r}: {error}") from None
        devices = _open_devices(devices_to_open(experiment, device_settings, latency_test))
        board = None
        if latency_test is not None:
            board = _start_latency_test(devices, latency_test)
        writer = EventCsvWriter(session_dir / events_file)
        experiment.events.attach(writer if markers is None else MarkedWriter(writer, markers))
        experiment.start()  # the session's clock starts at the first pose update
        log.info("experiment %s ready with devices %s", name, ", ".join(devices) or "none")
        return cls(experiment, devices, session_dir / events_file, board)

    def on_poses(
        self,
        observations: list[Observation],
        pose_ready_ns: int,
        points3d: Points3D | None = None,
    ) -> None:
        """Feed the poses of one batch to the experiment and perform its actions at once.

        ``points3d``: the calibrated cameras' set triangulated after this batch (live 3D), which
        the experiment reads as :attr:`Observations.points3d`; None when there is none.
        Afterwards :attr:`last_decided_ns` and :attr:`last_written_ns` say when it decided and
        wrote its last command (0: no decision, or no action).
        """
        self.last_decided_ns = self.last_written_ns = 0
        if self.error is not None or not observations:
            return
        self._fill_acknowledgements()
        for observation in observations:
            self._latest[observation.camera] = observation
        newest = max(observations, key=lambda o: o.time_s)
        subject: Observation | Observations = newest
        if len(self._latest) > 1:
            # Each other camera's newest pose is the nearest in time that exists yet (the loop
            # never waits for a future frame); the pairing error is kept for session.json. A
            # camera whose newest pose is stale (it ended or stalled) is left out, not paired.
            fresh = {
                camera: obs
                for camera, obs in self._latest.items()
                if newest.time_s - obs.time_s <= STALE_PAIRING_S
            }
            subject = Observations(newest.time_s, fresh, points3d)
            if len(fresh) > 1:
                self._pairing_ns.add(round(subject.max_error_s * 1e9))
        elif points3d is not None:  # the 3D set rides on the paired form, even with one camera
            subject = Observations(newest.time_s, {newest.camera: newest}, points3d)
        self._report_elapsed(newest)
        update_started_ns = host_now_ns()
        try:
            # An update that never returns is interrupted (core/call_watchdog.py): the
            # experiment is blamed and stopped; pose estimation and its files go on.
            with time_limit(f"experiment {self.experiment.name!r}: its update", UPDATE_LIMIT_S):
                actions = self.experiment.update(subject)
        except CallStalled as stall:
            where = f"at frame {newest.frame_index} of camera {newest.camera!r}"
            self._fail(f"{stall} {where}{_trigger_stalled(stall)}")
            return
        except MissingKeypointError as error:  # a setting to fix, not a bug: no traceback
            self._fail(f"experiment {self.experiment.name!r}: {error}")
            return
        except Exception as error:  # a bug or a config mistake stops the experiment, not tracking
            log.exception("experiment %s failed", self.experiment.name)
            self._fail(f"experiment {self.experiment.name!r} raised {error}")
            return
        decided_ns = self.last_decided_ns = host_now_ns()
        if actions:
            self._perform(actions, pose_ready_ns, decided_ns, newest)
        # After the commands: the update's events take their final form, the figures count.
        self.experiment.events.settle()
        self._update_ns.add(decided_ns - update_started_ns)
        self._count_active()

    def _send(self, action: Action) -> ActionRecord:
        """Send ``action``'s command to its device under the watchdog; a hung device gets no more.

        The action is the command its device performs: it goes to the device's one way in,
        :meth:`StimulationDevice.send`, as it is.
        Raises DeviceHungError when the call had to be interrupted (or the device hung before).
        """
        name = action.device
        if name in self._hung:
            raise DeviceHungError(f"device {name!r} hung earlier: no more commands go to it")
        try:
            with time_limit(f"device {name!r}: its {action.command}", PERFORM_LIMIT_S):
                return self.devices[name].send(action)
        except CallStalled as stall:
            self._hung.add(name)
            raise DeviceHungError(str(stall)) from None

    def _stop_experiment(self, time_s: float | None, reason: str) -> list[Action]:
        """Stop the experiment under the watchdog (a trial's end runs the lab's hook).

        A stop that hangs gives no switch-off actions: closing the devices switches them off.
        """
        name = self.experiment.name
        try:
            with time_limit(f"experiment {name!r}: its stop", UPDATE_LIMIT_S):
                return self.experiment.stop(time_s, reason)
        except CallStalled as stall:
            log.error("%s; its devices are switched off by their close", stall)
            return []

    def _count_active(self) -> None:
        """Add the frame time since the previous update to each trigger that was true then.

        A trigger's state holds from one update to the next, so the interval counts for the
        state it had at its start (a few dict operations per update: cheap).
        """
        experiment = self.experiment
        now = experiment.now_s
        if now is None:
            return
        if self._last_update_s is not None and now > self._last_update_s:
            interval = now - self._last_update_s
            for name in self._true_since_last:
                self._seconds_active[name] = self._seconds_active.get(name, 0.0) + interval
        self._last_update_s = now
        self._true_since_last = {name for name in experiment.triggers if experiment.is_true(name)}

    def _report_elapsed(self, newest: Observation) -> None:
        """Tell the lead estimator how old the prompting frame is now (auto lead, at first)."""
        prediction = self.experiment.prediction
        if prediction is not None:
            host_s = newest.host_time_s
            prediction.lead.set_elapsed(None if host_s is None else host_now_ns() / 1e9 - host_s)

    def _perform(
        self, actions: list[Action], pose_ready_ns: int, decided_ns: int, source: Observation
    ) -> None:
        events = self.experiment.events
        sent: list[tuple[Action, ActionRecord]] = []
        failure_text = None
        for index, action in enumerate(actions):  # every command first; their bookkeeping after
            try:
                sent.append((action, self._send(action)))
            except _DEVICE_FAILURES as failure:
                failure_text = _failure_text(action.device, failure)
                self._mark_not_sent(action, _why_not_sent(failure))
                for later in actions[index + 1 :]:  # the experiment stops: never tried
                    self._mark_not_sent(later, "an earlier command failed")
                break
        for action, record in sent:
            self._actions += 1
            events.fill_times(
                action,
                pose_ready=pose_ready_ns / 1e9,
                decided=decided_ns / 1e9,
                written=record.written_ns / 1e9,
            )
            self._unacknowledged.append((action, record))
            self.last_written_ns = record.written_ns
            if source.host_time_s is not None:
                latency_s = record.written_ns / 1e9 - source.host_time_s
                self._write_ns.add(round(latency_s * 1e9))
                if self.experiment.prediction is not None:  # the auto lead follows it
                    self.experiment.prediction.lead.add_latency(latency_s)
        if failure_text is not None:
            self._fail(failure_text)

    def _fill_acknowledgements(self) -> None:
        """Put the acknowledgements that arrived into the events not yet written to the file."""
        still_waiting = []
        for action, record in self._unacknowledged:
            if record.acked_ns is not None:
                self.experiment.events.fill_times(action, acknowledged=record.acked_ns / 1e9)
                self._record_ack_latency(action, record)
            elif record.error is not None:
                self._fail(f"device {action.device!r} refused {record.command!r}: {record.error}")
            else:
                still_waiting.append((action, record))
        self._unacknowledged = still_waiting

    def _record_ack_latency(self, action: Action, record: ActionRecord) -> None:
        acked_ns = record.acked_ns
        if acked_ns is None:
            return
        for event in self.experiment.events.pending:
            if event.action is action and event.host_timestamp is not None:
                self._ack_ns.add(round(acked_ns - event.host_timestamp * 1e9))
                return

    def _fail(self, message: str) -> None:
        """Handle a failed device: stop the experiment (outputs off where possible), keep events."""
        if self.error is not None:
            return
        self.error = f"experiment stopped: {message}"
        log.error("%s", self.error)
        # The finish row of events.csv says why, not only "stopped".
        for action in self._stop_experiment(None, f"failed: {message}"):
            if action.device not in self.devices:
                self._mark_not_sent(action, f"no device {action.device!r}")
                continue
            try:
                record = self._send(action)
            except _DEVICE_FAILURES as failure:
                # already failing: the first failure is the one reported, this one is logged
                self._mark_not_sent(action, _why_not_sent(failure))
                continue
            self._actions += 1  # a command sent: counted as the update's are
            self.experiment.events.fill_times(action, written=record.written_ns / 1e9)
        self.experiment.events.close()

    def stop(self) -> None:
        """End the experiment: switch outputs off, wait briefly for acknowledgements, close all."""
        if self.error is None:
            latest = max((o.time_s for o in self._latest.values()), default=None)
            actions = self._stop_experiment(latest, "stopped")
            if actions:
                now = host_now_ns()
                for action in actions:
                    try:
                        record = self._send(action)
                    except _DEVICE_FAILURES as failure:
                        log.error("could not switch off %s: %s", action.device, failure)
                        self._mark_not_sent(action, _why_not_sent(failure))
                        continue
                    self._actions += 1  # the switch-offs are commands sent, as the update's
                    self.experiment.events.fill_times(
                        action, decided=now / 1e9, written=record.written_ns / 1e9
                    )
                    self._unacknowledged.append((action, record))
            deadline = time.monotonic() + ACK_WAIT_AT_STOP_S
            while self._unacknowledged and time.monotonic() < deadline:
                self._fill_acknowledgements()
                time.sleep(0.01)
            self._fill_acknowledgements()
            self.experiment.events.close()
        self._finish_latency_test()
        for name, device in self.devices.items():
            try:
                with time_limit(f"device {name!r}: its close", PERFORM_LIMIT_S):
                    device.close()
            except CallStalled as stall:  # a hung driver must not hold the stop
                log.error("%s", stall)
            except Exception as failure:  # closing one device must not keep others open
                log.error("device %s did not close cleanly: %s", name, failure)

    def _finish_latency_test(self) -> None:
        """Stop the board's latency test and write its reports (``latency_board.csv``)."""
        board = self.latency_board
        if board is None:
            return
        if board.error is None:
            time.sleep(FLASH_REPORT_WAIT_S)  # the last flash's LAT or MISS comes within 1 s
            try:
                board.stop_latency_test().wait(ACK_WAIT_AT_STOP_S)
            except DeviceError as failure:
                log.error("could not stop the latency test: %s", failure)
        reports = list(board.flash_reports)
        board_file = run_file(self.events_path.name, "latency_board")
        write_board_reports(self.events_path.parent / board_file, reports)
        log.info("latency test: the board reported %d flashes", len(reports))

    def _mark_not_sent(self, action: Action, why: str) -> None:
        """Log in events.csv that ``action``'s command never left (``not_sent``), and count it."""
        self._not_sent += 1
        self.experiment.events.mark_not_sent(action, why)

    def flush_events(self) -> None:
        """Push the events written so far to ``events.csv`` (the worker is about to end)."""
        flush = getattr(self.experiment.events.writer, "flush", None)
        if flush is not None:
            flush()

    @property
    def actions(self) -> int:
        """Actions performed so far."""
        return self._actions

    @property
    def actions_not_sent(self) -> int:
        """Actions the experiment decided whose command never left for the device."""
        return self._not_sent

    def status(self) -> ExperimentStatus:
        """Return what the live view shows of the experiment now, with the events since the last.

        Each call takes the events recorded since the previous call (at most the newest
        :data:`STATUS_EVENTS`; ``events_total`` lets the GUI count those it did not get), so call
        it only to send the status. Cheap: no copy of the whole event log.
        """
        experiment = self.experiment
        events = experiment.events.events
        first = max(self._events_sent, len(events) - STATUS_EVENTS)
        new_events = tuple(
            EventView(
                event.time_s, event.kind, event.name, event.detail, event.trial, event.animal
            )
            for event in events[first:]
        )
        self._events_sent = len(events)
        last = events[-1] if events else None
        last_text = ""
        if last is not None:
            last_text = f"{last.kind} {last.name} {last.detail}".strip()
            if last.trial is not None:
                last_text += f" (trial {last.trial})"
        triggers = tuple(
            TriggerView(
                name,
                bool(experiment.is_true(name)),
                tuple(trigger.shapes()),
                getattr(trigger, "camera", None),
                experiment.trigger_counts.get(name, 0),
                self._seconds_active.get(name, 0.0),
                tuple(sorted((trigger.animal_states() or {}).items())),
            )
            for name, trigger in experiment.triggers.items()
        )
        started, now = experiment.started_s, experiment.now_s
        elapsed = now - started if started is not None and now is not None else 0.0
        return ExperimentStatus(
            name=experiment.name,
            state=experiment.state,
            trials=len(experiment.trials),
            trial=experiment.trial.index if experiment.trial is not None else None,
            actions=self._actions,
            last_event=last_text,
            triggers=triggers,
            error=self.error,
            new_events=new_events,
            events_total=len(events),
            elapsed_s=elapsed,
        )

    def summary(self) -> dict[str, Any]:
        """For ``session.json``: the experiment's own summary plus action latencies."""
        return {
            **self.experiment.summary(),
            "events_file": self.events_path.name,
            "actions": self._actions,
            # decided, but the command never left (the device was gone): events.csv not_sent
            "actions_not_sent": self._not_sent,
            "plugins": experiment_plugins(self.experiment),
            "error": self.error,
            "file_errors": [
                e for e in (getattr(self.experiment.events.writer, "error", None),) if e
            ],
            # The experiment's update alone, on every update (docs/outputs.md, health).
            "update_ms": self._update_ns.figures(),
            "latency_ms": {
                "frame_to_command_written": self._write_ns.figures(),
                "frame_to_device_acknowledged": self._ack_ns.figures(),
                "camera_pairing_error": self._pairing_ns.figures(),
            },
        }


def experiment_plugins(experiment: Experiment) -> dict[str, dict[str, str]]:
    """Return the experiment's class and its triggers' kinds, each with where its code is from."""
    kinds: dict[str, str] = {}
    pending: list[Trigger] = list(experiment.triggers.values())
    while pending:
        trigger = pending.pop()
        # A wrapper of one trigger: an experiment's named trigger, a filter, an animal's view.
        inner = getattr(trigger, "inner", None) or getattr(trigger, "trigger", None)
        children: tuple[Trigger, ...] = (
            (inner,) if isinstance(inner, Trigger) else tuple(getattr(trigger, "children", ()))
        )
        pending.extend(children)
        if trigger.kind and all(child.kind != trigger.kind for child in children):
            kinds.setdefault(trigger.kind, code_origin(type(trigger)))  # not a wrapper's
    found = {"experiment": {experiment.name: code_origin(type(experiment))}}
    return found | ({"trigger": dict(sorted(kinds.items()))} if kinds else {})


class MarkedWriter:
    """``events.csv`` that also sends each event it writes as an LSL marker (``LSL = on``).

    Events reach the file when they are committed (at the start of the next update, once the
    dispatcher has filled in their times), so a marker leaves one frame after its event, with
    the event's own time: LSL keeps a sample's time stamp, not its arrival.
    """

    def __init__(self, file: EventCsvWriter, markers: EventMarkers) -> None:
        self.file = file
        self.markers = markers

    @property
    def error(self) -> str | None:
        """Why the file stopped early (a disk error), or None."""
        return self.file.error

    def write(self, events: Sequence[ExperimentEvent]) -> None:
        """Append ``events`` to the file and send each as a marker (never blocks)."""
        self.file.write(events)
        for event in events:
            self.markers.push(
                marker_text(
                    event.kind,
                    event.name,
                    event.detail,
                    event.trial,
                    event.camera,
                    event.frame_index,
                ),
                marker_time_s(event),
            )

    def flush(self) -> None:
        """Push the rows written so far to the file."""
        self.file.flush()

    def close(self) -> None:
        """Close the file (the outlet belongs to the worker)."""
        self.file.close()


def marker_time_s(event: ExperimentEvent) -> float | None:
    """Return the host time an event's marker carries; None: the moment it is sent.

    An action's is when its command was written to the device (nearest to the stimulus);
    others', the arrival of the frame that caused them.
    """
    if event.kind == "action" and event.written is not None:
        return event.written
    return event.host_timestamp


def devices_to_open(
    experiment: Experiment,
    device_settings: dict[str, DeviceSettings],
    latency_test: LatencyTestSpec | None = None,
) -> dict[str, DeviceSettings]:
    """Return the devices a start of ``experiment`` opens: those it uses (none named: all).

    ExperimentStartError names the devices it uses that the settings do not declare.
    """
    needed = sorted({device for device, _ in experiment.outputs})
    if latency_test is not None and latency_test.device not in needed:
        needed.append(latency_test.device)
    missing = [device for device in needed if device not in device_settings]
    if missing:
        declared = ", ".join(sorted(device_settings)) or "none"
        raise ExperimentStartError(
            f"experiment {experiment.name!r} uses the device(s) {', '.join(missing)}, which "
            f"settings.ini does not declare (declared: {declared}). Add a section [Device NAME] "
            "with TYPE = log, serial, nidaq or gpio for each (docs/settings.md)."
        )
    return {name: device_settings[name] for name in needed or device_settings}


def absent_devices(settings: dict[str, DeviceSettings]) -> list[str]:
    """Return, for each device whose hardware, driver or library is absent, what to tell the user.

    Each device checks itself (:meth:`StimulationDevice.check_present`: the board's HELLO, the
    NI driver and DAQ, the Pi's pins) and leaves nothing open; run it before the start, once
    the devices are locked, so that an absent device is refused before anything starts.
    """
    problems = []
    for name, device_settings in settings.items():
        try:
            device_settings.create().check_present()
        except (*_DEVICE_FAILURES, ImportError) as error:  # ImportError: its driver's package
            problems.append(_device_problem(name, device_settings, error))
    return problems


def _device_problem(name: str, settings: DeviceSettings, error: Exception) -> str:
    return f"[Device {name}] (TYPE = {settings.type}): {error}"


def _open_devices(settings: dict[str, DeviceSettings]) -> dict[str, StimulationDevice]:
    devices: dict[str, StimulationDevice] = {}
    for name, device_settings in settings.items():
        try:
            device = device_settings.create()
            device.open()
        except (*_DEVICE_FAILURES, ImportError) as error:  # ImportError: its driver's package
            for opened in devices.values():
                opened.close()
            raise ExperimentStartError(_device_problem(name, device_settings, error)) from None
        devices[name] = device
    return devices


def _start_latency_test(
    devices: dict[str, StimulationDevice], spec: LatencyTestSpec
) -> SerialStimulator:
    """Start the board's latency test on ``spec.device``, which must be the stimulus board."""
    board = devices[spec.device]
    if not isinstance(board, SerialStimulator):
        for device in devices.values():
            device.close()
        raise ExperimentStartError(
            f"the latency test needs the stimulus board: [Device {spec.device}] must have "
            "TYPE = serial (firmware/, docs/latency-test.md)"
        )
    record = board.start_latency_test(spec)
    if not record.wait(ACK_WAIT_AT_STOP_S) or record.error is not None:
        for device in devices.values():
            device.close()
        why = record.error or "no answer within 1 s"
        raise ExperimentStartError(
            f"[Device {spec.device}] did not start the latency test ({why}): it needs the "
            "stimulus firmware 1.1 or later (make -C firmware flash)"
        )
    return board


def _trigger_stalled(stall: CallStalled) -> str:
    """Say which trigger's code the stalled update was in (a lab's kind's step), else "".

    Read from where the interruption landed (its traceback): the innermost trigger, the one
    whose own code runs there (wrappers of it are outer).
    """
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


STATUS_INTERVAL_NS = 100_000_000  # experiment status to the GUI at most 10 times a second


class ExperimentSlot:
    """The experiment the inference worker runs now (if any), and the summaries of those it ran.

    Experiments are started and stopped by messages from the main process while analysis goes
    on; the slot answers them and sends the experiment's status when the main process has taken
    the last one (a credit, so a slow GUI never fills the pipe) and there is news.
    """

    def __init__(
        self, control: Connection, session_dir: Path, markers: EventMarkers | None = None
    ) -> None:
        self.control = control
        self.session_dir = session_dir
        self.markers = markers  # every experiment's events also go out as LSL markers
        self.run: ExperimentRun | None = None
        self.summaries: list[dict[str, Any]] = []
        self.status_wanted = True
        self._next_status_ns = 0
        self._last_actions = -1
        self._opening: _Opening | None = None  # an experiment whose devices open now

    def open(self, spec: ExperimentSpec | None, events_file: str) -> None:
        """Open ``spec``'s experiment and devices (nothing when None); ExperimentStartError."""
        if spec is not None:
            self.run = self.opened(spec, events_file)

    def opened(self, spec: ExperimentSpec, events_file: str) -> ExperimentRun:
        """Return ``spec``'s experiment with its devices open; ExperimentStartError if it cannot."""
        return ExperimentRun.open(
            spec.name,
            spec.devices,
            self.session_dir,
            events_file,
            latency_test=spec.latency_test,
            markers=self.markers,
        )

    def start(self, message: StartExperiment) -> None:
        """Start an experiment while analysis runs, its devices opened on a thread of their own.

        Opening a device can take seconds (a board restarts when its port opens, and one that
        never answers is waited for): the loop goes on analysing meanwhile, and
        :meth:`take_opened` answers ExperimentStarted or ExperimentFailed once it is done.
        """
        if self.run is not None or self._opening is not None:
            name = self.run.experiment.name if self.run is not None else message.spec.name
            self.control.send(ExperimentFailed(f"experiment {name!r} runs already"))
            return
        self._opening = _Opening(self, message)

    def take_opened(self) -> None:
        """Call every loop turn: once the experiment started by :meth:`start` opened, answer."""
        opening = self._opening
        if opening is None or opening.is_alive():
            return
        self._opening = None
        if opening.error is not None:
            self.control.send(ExperimentFailed(opening.error))
            return
        self.run = opening.result
        self._last_actions = -1  # the first status goes out at once
        spec = opening.message.spec
        self.control.send(ExperimentStarted(spec.name, opening.message.events_file))

    def finish(self) -> dict[str, Any] | None:
        """Stop the running experiment (if any, or the one opening); keep and return its summary."""
        opening, self._opening = self._opening, None
        if opening is not None:  # stopped while it opened: wait for it, then stop it
            opening.join(OPENING_WAIT_AT_STOP_S)
            if opening.is_alive():
                log.error(
                    "the experiment's devices did not open within %g s of the stop; they are "
                    "left to the end of the process",
                    OPENING_WAIT_AT_STOP_S,
                )
            elif opening.result is not None:
                self.run = opening.result
            else:
                log.error("the experiment stopped while it opened: %s", opening.error)
        run, self.run = self.run, None
        if run is None:
            return None
        try:
            run.stop()
        except Exception:  # the pose files and the figures must still be reported
            log.exception("the experiment did not stop cleanly")
        self._send_last_status(run)
        summary = run.summary()
        self.summaries.append(summary)
        return summary

    def _send_last_status(self, run: ExperimentRun) -> None:
        """Send the status after the stop, whatever the credit: the GUI's log gets the finish."""
        try:
            self.control.send(run.status())
        except (OSError, ValueError):  # the main process is gone or its pipe closed
            pass

    def send_status(self) -> None:
        """Send the experiment's status if the main process wants one and there is news."""
        run = self.run
        if run is None or not self.status_wanted:
            return
        now = host_now_ns()
        if now < self._next_status_ns and run.actions == self._last_actions:
            return  # an action is news at once (the live view flashes); otherwise 10 Hz
        self.status_wanted = False
        self._next_status_ns = now + STATUS_INTERVAL_NS
        self._last_actions = run.actions
        self.control.send(run.status())


#: A stop that comes while an experiment's devices open waits this long for them (a board's
#: HELLO wait is 4 s), so that they are closed with their outputs off.
OPENING_WAIT_AT_STOP_S = 10.0


class _Opening(threading.Thread):
    """Open an experiment and its devices beside the loop (the slot's :meth:`start`)."""

    def __init__(self, slot: ExperimentSlot, message: StartExperiment) -> None:
        super().__init__(name=f"opening experiment {message.spec.name}", daemon=True)
        self.slot = slot
        self.message = message
        self.result: ExperimentRun | None = None
        self.error: str | None = None
        self.start()

    def run(self) -> None:
        """Open the experiment; keep it, or the message that says why it could not start."""
        try:
            self.result = self.slot.opened(self.message.spec, self.message.events_file)
        except ExperimentStartError as error:
            self.error = str(error)
        except Exception as error:  # a bug must reach the window as a message, not end a thread
            log.exception("the experiment could not be opened")
            self.error = f"experiment {self.message.spec.name!r} could not start: {error!r}"
