"""The experiment the inference worker runs now: opened with its devices, stopped, reported.

Design: docs/architecture.md, "Processes and what crosses between them".
"""

from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import ExperimentError
from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.unwritten_rows import UnwrittenRows
from deeplabstream.experiments.base import Experiment, ExperimentSetup
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EventCsvWriter
from deeplabstream.hardware.stimulation import DEVICES, StimulationDevice
from deeplabstream.hardware.stimulation.latency import LatencyTestSpec
from deeplabstream.hardware.stimulation.serial_device import SerialStimulator
from deeplabstream.live.processes.analysis.dispatch import (
    DEVICE_FAILURES,
    EVENTS_FILE,
    ExperimentRun,
)
from deeplabstream.live.processes.analysis.experiment_report import StatusReporter, run_summary
from deeplabstream.live.processes.analysis.latency_board import (
    finish_latency_test,
    start_latency_test,
)
from deeplabstream.live.processes.analysis.markers import MarkedWriter
from deeplabstream.live.processes.messages import (
    ExperimentEndsSession,
    ExperimentFailed,
    ExperimentSpec,
    ExperimentStarted,
    StartExperiment,
)
from deeplabstream.outputs.interface import EventMarkers
from deeplabstream.settings.experiment_plan import resolve_experiment
from deeplabstream.settings.sections import DeviceSettings

log = logging.getLogger(__name__)

STATUS_INTERVAL_NS = 100_000_000  # experiment status to the GUI at most 10 times a second
#: A stop that comes while an experiment's devices open waits this long for them (a board's
#: HELLO wait is 4 s), so that they are closed with their outputs off.
OPENING_WAIT_AT_STOP_S = 10.0


class ExperimentStartError(ExperimentError, RuntimeError):
    """The experiment or one of its devices could not start; the message says what to do."""


class OpenRun:
    """A run with what its opening started beside it: the latency self-test's board, if any."""

    def __init__(self, run: ExperimentRun, board: SerialStimulator | None = None) -> None:
        self.run = run
        self.board = board
        self.status = StatusReporter(run)

    def stop(self) -> dict[str, Any]:
        """Stop the experiment, the latency test and the devices; return the run's summary."""
        try:
            self.run.stop()
        except Exception:  # the pose files and the figures must still be reported
            log.exception("the experiment did not stop cleanly")
        if self.board is not None:
            finish_latency_test(self.board, self.run.events_path)
        self.run.close_devices()
        return run_summary(self.run)


def open_run(
    spec: ExperimentSpec,
    session_dir: Path,
    events_file: str = EVENTS_FILE,
    markers: EventMarkers | None = None,
    unwritten: UnwrittenRows | None = None,
) -> OpenRun:
    """Load the experiment, open every device it uses, and start its event file.

    ``spec.latency_test``: its board runs the latency self-test until the stop; ``markers``:
    every event also goes there. Raises ExperimentStartError saying what failed.
    """
    try:
        runtime = ExperimentRuntime(spec.plan.build())
    except Exception as error:  # a config or class error must reach the user as a message
        raise ExperimentStartError(f"experiment {spec.name!r}: {error}") from None
    test = spec.latency_test
    devices = _open_devices(devices_to_open(runtime.experiment, spec.devices, test))
    board = None
    if test is not None:
        try:
            board = start_latency_test(devices, test)
        except ExperimentError as error:
            _close_all(devices)
            raise ExperimentStartError(str(error)) from None
    writer = EventCsvWriter(session_dir / events_file)
    runtime.events.attach(writer if markers is None else MarkedWriter(writer, markers))
    runtime.start()  # the session's clock starts at the first pose update
    log.info("experiment %s ready with devices %s", spec.name, ", ".join(devices) or "none")
    run = ExperimentRun(
        runtime, devices, session_dir / events_file, spec.plan.record(), writer, unwritten
    )
    run.keep_unwritten()  # the file's header is in: nothing lacks yet
    return OpenRun(run, board)


def open_experiment_run(
    name: str,
    devices: dict[str, DeviceSettings],
    session_dir: Path,
    events_file: str = EVENTS_FILE,
    settings_folder: Path | None = None,
) -> ExperimentRun:
    """Return experiment ``name`` running with its devices open (the naive loop's, tests')."""
    plan = resolve_experiment(name, settings_folder, name)
    return open_run(ExperimentSpec(plan, devices), session_dir, events_file).run


def devices_to_open(
    experiment: Experiment,
    device_settings: dict[str, DeviceSettings],
    latency_test: LatencyTestSpec | None = None,
) -> dict[str, DeviceSettings]:
    """Return the devices a start of ``experiment`` opens: those it declares (none: all).

    ExperimentStartError names the devices it uses that the settings do not declare.
    """
    needed = sorted({device for device, _ in ExperimentSetup.of(experiment).declared_outputs})
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


def _device_problem(name: str, settings: DeviceSettings, error: Exception) -> str:
    if isinstance(error, (*DEVICE_FAILURES, ImportError)):  # the device's own message
        return f"[Device {name}] (TYPE = {settings.type}): {error}"
    return device_raised(name, settings, "open", error)


def device_raised(name: str, settings: DeviceSettings, call: str, error: BaseException) -> str:
    """Say that a device's ``call`` raised an exception no device is meant to raise."""
    return (
        f"[Device {name}] (TYPE = {settings.type}{_plugin_file(settings)}): its {call}() "
        f"raised {type(error).__name__}: {error}"
    )


def _plugin_file(settings: DeviceSettings) -> str:
    """Return ", <the lab's file>" for a device of the lab's folder; "" for any other."""
    try:
        source = DEVICES.source_of(settings.type, settings.settings_folder)
    except Exception:  # only for the message: the device was made from it already
        return ""
    return f", {source.file}" if source is not None and source.file is not None else ""


def _open_devices(settings: dict[str, DeviceSettings]) -> dict[str, StimulationDevice]:
    devices: dict[str, StimulationDevice] = {}
    for name, device_settings in settings.items():
        try:
            device = device_settings.create()
            device.open()
        # Any exception: a lab's device may raise what it likes, and the worker must say which
        # device it was (DEVICE_FAILURES and ImportError, its driver's package, say it already).
        except Exception as error:
            _close_all(devices)
            raise ExperimentStartError(_device_problem(name, device_settings, error)) from None
        devices[name] = device
    return devices


def _close_all(devices: dict[str, StimulationDevice]) -> None:
    for device in devices.values():
        device.close()


class ExperimentSlot:
    """The experiment the inference worker runs now (if any), and the summaries of those it ran."""

    def __init__(
        self,
        control: Connection,
        session_dir: Path,
        markers: EventMarkers | None = None,
        unwritten: UnwrittenRows | None = None,
    ) -> None:
        self.control = control
        self.session_dir = session_dir
        self.markers = markers  # every experiment's events also go out as LSL markers
        self.unwritten = unwritten  # where each run publishes the rows its file lacks
        self.open_run: OpenRun | None = None
        self.summaries: list[dict[str, Any]] = []
        self.status_wanted = True
        self._next_status_ns = 0
        self._last_actions = -1
        self._session_end_passed = False
        self._opening: _Opening | None = None  # an experiment whose devices open now

    @property
    def run(self) -> ExperimentRun | None:
        """The experiment running now (None: none)."""
        return self.open_run.run if self.open_run is not None else None

    def open(self, spec: ExperimentSpec | None, events_file: str) -> None:
        """Open ``spec``'s experiment and devices (nothing when None); ExperimentStartError."""
        if spec is not None:
            self.open_run = open_run(
                spec, self.session_dir, events_file, self.markers, self.unwritten
            )

    def start(self, message: StartExperiment) -> None:
        """Start an experiment while analysis runs, its devices opened on a thread of their own.

        :meth:`take_opened` answers ExperimentStarted or ExperimentFailed once it is done.
        """
        if self.open_run is not None or self._opening is not None:
            run = self.run
            name = run.runtime.name if run is not None else message.spec.name
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
        self.open_run = opening.result
        self._last_actions = -1  # the first status goes out at once
        self._session_end_passed = False
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
                self.open_run = opening.result
            else:
                log.error("the experiment stopped while it opened: %s", opening.error)
        current, self.open_run = self.open_run, None
        if current is None:
            return None
        summary = current.stop()
        try:  # the status after the stop, whatever the credit: the GUI's log gets the finish
            self.control.send(current.status.status())
        except (OSError, ValueError):  # the main process is gone or its pipe closed
            pass
        self.summaries.append(summary)
        return summary

    def after_turn(self) -> None:
        """Call after each loop turn that analysed: pass news on (status, an end of session)."""
        current = self.open_run
        if current is None:
            return
        reason = current.run.runtime.session_end_requested
        if reason is not None and not self._session_end_passed:
            self._session_end_passed = True
            self.control.send(ExperimentEndsSession(current.run.runtime.name, reason))
        self._send_status(current)

    def _send_status(self, current: OpenRun) -> None:
        """Send the experiment's status if the main process wants one and there is news."""
        if not self.status_wanted:
            return
        now = host_now_ns()
        if now < self._next_status_ns and current.run.actions == self._last_actions:
            return  # an action is news at once (the live view flashes); otherwise 10 Hz
        self.status_wanted = False
        self._next_status_ns = now + STATUS_INTERVAL_NS
        self._last_actions = current.run.actions
        self.control.send(current.status.status())


class _Opening(threading.Thread):
    """Open an experiment and its devices beside the loop (the slot's :meth:`start`)."""

    def __init__(self, slot: ExperimentSlot, message: StartExperiment) -> None:
        super().__init__(name=f"opening experiment {message.spec.name}", daemon=True)
        self.slot = slot
        self.message = message
        self.result: OpenRun | None = None
        self.error: str | None = None
        self.start()

    def run(self) -> None:
        """Open the experiment; keep it, or the message that says why it could not start."""
        slot = self.slot
        try:
            self.result = open_run(
                self.message.spec,
                slot.session_dir,
                self.message.events_file,
                slot.markers,
                slot.unwritten,
            )
        except ExperimentStartError as error:
            self.error = str(error)
        except Exception as error:  # a bug must reach the window as a message, not end a thread
            log.exception("the experiment could not be opened")
            self.error = f"experiment {self.message.spec.name!r} could not start: {error!r}"
