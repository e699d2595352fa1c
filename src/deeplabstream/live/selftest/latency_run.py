"""The latency self-test as the app runs it: plan, stream with the board's test, then the figures.

Design: docs/latency-test.md.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.timing import percentiles
from deeplabstream.experiments.events import EVENT_COLUMNS
from deeplabstream.hardware.stimulation.latency import LatencyTestSpec, run_file
from deeplabstream.hardware.stimulation.protocol import ID_MAX
from deeplabstream.hardware.stimulation.serial_device import SerialSettings
from deeplabstream.hardware.stimulation.simulated_board import (
    PIN_LOG_FILE,
    SIMULATED_BITS_PER_BYTE,
    SIMULATED_LINK_DELAY_MS,
    SimulatedBoard,
    pin_name,
)
from deeplabstream.live.selftest.latency_analysis import LineTiming, analyse_session
from deeplabstream.live.selftest.latency_plot import plot_histogram
from deeplabstream.settings.sections import CameraSettings, DeviceSettings, Settings

EXPERIMENT_FILE = "latency_test.ini"
SIMULATED_LINE = LineTiming(
    SIMULATED_BITS_PER_BYTE,
    SIMULATED_LINK_DELAY_MS,
    "the simulated board: simavr's 11-bit bytes and simstim's pty polling every 100 us",
)
SIMULATED_DEVICE = "latency_board"
MIN_ON_S = 0.1


class LatencyTestError(SettingsError):
    """The settings cannot run the latency test; the message names the key and what to do."""

    lists_problems = False


@dataclass(frozen=True)
class LatencyTestPlan:
    """What the test runs with: the settings to stream, the board's test, the experiment."""

    settings: Settings
    spec: LatencyTestSpec
    camera: str
    baudrate: int
    line: LineTiming = field(default_factory=LineTiming)  # how the answer reaches the board


def plan_latency_test(settings: Settings, board: SimulatedBoard | None = None) -> LatencyTestPlan:
    """Check ``[LatencyTest]`` against the cameras and devices; wire in a simulated board."""
    test = settings.latency_test
    where = f"{settings.source_file}: [LatencyTest]"
    camera = _camera(settings, test.camera, where)
    if board is not None:
        settings = _with_simulated_board(settings, camera, board, test.channel)
        device = SIMULATED_DEVICE
    else:
        device = _board_device(settings, test.device, where)
    framerate = float(getattr(camera.options, "framerate", 0.0) or 0.0)
    on_s = test.on_time or max(MIN_ON_S, 2.0 / framerate if framerate else MIN_ON_S)
    seed = test.seed or random.randrange(1, ID_MAX)
    spec = LatencyTestSpec(
        device=device,
        channel=test.channel,
        min_interval_s=test.min_interval,
        max_interval_s=test.max_interval,
        on_s=round(on_s, 3),
        seed=seed,
    )
    baudrate = settings.devices[device].options.baudrate
    line = LineTiming() if board is None else SIMULATED_LINE
    return LatencyTestPlan(settings, spec, camera.name, baudrate, line)


def experiment_config(plan: LatencyTestPlan) -> str:
    """Return the test's experiment: answer each flash the ``light`` trigger sees, at once."""
    test = plan.settings.latency_test
    box = test.region_box()
    roi = "" if box is None else "ROI = rect " + " ".join(f"{value:g}" for value in box) + "\n"
    return (
        "# Written by the latency self-test (deeplabstream.live.selftest.latency_run) for this "
        "session.\n"
        "[Experiment]\n"
        "DESCRIPTION = Latency self-test: answer each flash of the board's LED the moment "
        "it is seen\n\n"
        "[Trigger led]\n"
        "KIND = light\n"
        f"CAMERA = {plan.camera}\n"
        f"{roi}"
        f"THRESHOLD = {test.threshold:g}\n"
        f"SEARCH_S = {test.search:g}\n\n"
        "[Stimulation answer]\n"
        f"DEVICE = {plan.spec.device}\n"
        "COMMAND = off\n"
        f"CHANNEL = {test.answer_channel}\n\n"
        "[Rule answer]\n"
        "WHEN = led\n"
        "EDGE = rising\n"
        "DO = answer\n"
    )


def write_experiment(session_dir: Path, plan: LatencyTestPlan) -> Path:
    """Write the test's experiment into the session folder; returns its path."""
    path = session_dir / EXPERIMENT_FILE
    path.write_text(experiment_config(plan), encoding="utf-8")
    return path


def finish_latency_test(
    session_dir: Path, plan: LatencyTestPlan, events_file: str = "events.csv"
) -> dict[str, Any]:
    """Analyse the run; write ``latency_test[.run2].json``, its histogram and events rows."""
    figures = analyse_session(session_dir, plan.baudrate, events_file, plan.line)
    figures["test"] = dataclasses.asdict(plan.spec)
    json_file = run_file(events_file, "latency_test")
    figures["plot"] = json_file[: -len(".csv")] + ".png"
    figures["simulated_board"] = simulated_board_lag(session_dir / PIN_LOG_FILE, plan.spec)
    scheduling = session_dir / "board_scheduling.txt"
    if figures["simulated_board"] is not None and scheduling.exists():
        figures["simulated_board"]["scheduling"] = scheduling.read_text(encoding="utf-8").strip()
    (session_dir / (json_file[: -len(".csv")] + ".json")).write_text(
        json.dumps(figures, indent=2), encoding="utf-8"
    )
    plot_histogram(figures, session_dir / figures["plot"])
    append_event_rows(session_dir / events_file, figures)
    return figures


def simulated_board_lag(pin_log: Path, spec: LatencyTestSpec) -> dict[str, Any] | None:
    """How far the simulated board fell behind the host clock at each LED switch-on (ms).

    Zero is the least lag seen; None without a simulated board.
    """
    if not pin_log.exists():
        return None
    pin = pin_name(spec.channel)
    lags = []
    with pin_log.open(encoding="utf-8") as file:
        for line in file:
            words = line.split()
            if len(words) == 5 and words[1] == pin and words[2] == "1":
                lags.append(int(words[4]) - int(words[3]))
    if not lags:
        return None
    least = min(lags)
    return {
        "lag_at_switch_on_ms": percentiles([(lag - least) / 1e6 for lag in lags]),
        "switch_ons": len(lags),
    }


def note_simulated_board(session_dir: Path, board: SimulatedBoard) -> None:
    """Keep the simulator's pin log in the session folder, and how it was scheduled."""
    if board.pin_log.exists():
        shutil.copy(board.pin_log, session_dir / PIN_LOG_FILE)
    (session_dir / "board_scheduling.txt").write_text(board.scheduling + "\n", encoding="utf-8")


def append_event_rows(events_path: Path, figures: dict[str, Any]) -> None:
    """One ``latency`` row per answered flash at the end of ``events.csv``."""
    if not events_path.exists():
        return
    camera = figures["camera"]["name"]
    with events_path.open("a", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        for event in figures["per_event"]:
            row = dict.fromkeys(EVENT_COLUMNS, "")
            row.update(
                kind="latency",
                name=f"flash {event['flash']}",
                detail=(
                    f"board {event['board_ms']:.3f} ms; app {event['app_ms']:.3f} ms "
                    f"(sampling {event['sampling_wait_ms']:.3f} + frame->command "
                    f"{event['frame_to_command_ms']:.3f} + transfer {event['transfer_ms']:.3f}); "
                    f"difference {event['agreement_ms']:+.3f} ms"
                ),
                camera=camera,
                frame_index=event["frame_index"],
            )
            writer.writerow([row[column] for column in EVENT_COLUMNS])


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """Return the figures as a short table for the terminal."""
    lines = [
        f"Latency test: {figures['events']} flashes answered and accounted for "
        f"({figures['flashes']} flashed, {figures['flashes_missed']} not answered)",
        f"{'ms':<34}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    rows = [
        ("board: light on -> command", figures["board_ms"]),
        ("app: its own account", figures["app_ms"]),
        ("  sampling wait", figures["stages_ms"]["sampling_wait"]),
        ("  frame -> command written", figures["stages_ms"]["frame_to_command"]),
        ("  serial transfer", figures["stages_ms"]["transfer"]),
        ("|app - board|", figures["agreement_ms"]),
        ("frame -> command: the model", figures["stages_ms"].get("model")),
        ("  the pipeline around it", figures["stages_ms"].get("pipeline")),
        *((f"    {part}", stats) for part, stats in figures.get("pipeline_parts_ms", {}).items()),
    ]
    for label, stats in rows:
        if stats:
            lines.append(
                f"{label:<34}{stats['p50']:>9.3f}{stats['p95']:>9.3f}{stats['p99']:>9.3f}"
                f"{stats['max']:>9.3f}"
            )
    camera = figures["camera"]
    lines.append(
        f"camera {camera['name']}: frame interval {camera['frame_interval_ms']:.3f} ms, "
        f"exposure {camera['exposure_ms']:.3f} ms ({camera['exposure_source']})"
    )
    return lines


def _camera(settings: Settings, name: str, where: str) -> CameraSettings:
    if not name:
        return settings.cameras[0]
    try:
        return settings.camera(name)
    except KeyError:
        names = ", ".join(camera.name for camera in settings.cameras)
        raise LatencyTestError(
            f"{where} CAMERA = {name}: no such camera (cameras: {names})"
        ) from None


def _board_device(settings: Settings, name: str, where: str) -> str:
    serial_devices = [n for n, device in settings.devices.items() if device.type == "serial"]
    if name:
        if name not in settings.devices:
            raise LatencyTestError(
                f"{where} DEVICE = {name}: no section [Device {name}] in the settings"
            )
        if settings.devices[name].type != "serial":
            raise LatencyTestError(
                f"{where} DEVICE = {name}: the test needs the stimulus board (TYPE = serial), "
                f"not TYPE = {settings.devices[name].type}"
            )
        return name
    if len(serial_devices) == 1:
        return serial_devices[0]
    if not serial_devices:
        raise LatencyTestError(
            f"{where}: no stimulus board: add [Device board] with TYPE = serial and its PORT "
            "(docs/arduino.md), or run with --simulated-board"
        )
    raise LatencyTestError(
        f"{where}: several serial devices ({', '.join(serial_devices)}): name the board in DEVICE"
    )


def _with_simulated_board(
    settings: Settings, camera: CameraSettings, board: SimulatedBoard, channel: int
) -> Settings:
    """Return the simulated board as the test's device; the simulated camera draws its LED."""
    if camera.source != "synthetic":
        raise LatencyTestError(
            f"{settings.source_file}: [Camera {camera.name}] SOURCE = {camera.source}: "
            "--simulated-board draws the board's LED into a simulated camera (SOURCE = "
            "synthetic); with a real camera, wire a real LED and board (docs/latency-test.md)"
        )
    options = dataclasses.replace(
        camera.options, led_pin_log=str(board.pin_log), led_pin=pin_name(channel)
    )
    cameras = tuple(
        dataclasses.replace(c, options=options) if c.name == camera.name else c
        for c in settings.cameras
    )
    devices = {
        **settings.devices,
        SIMULATED_DEVICE: DeviceSettings(type="serial", options=SerialSettings(port=board.port)),
    }
    test = settings.latency_test
    if not test.region:  # the simulated camera says where it draws the LED: no search needed
        x, y, size = options.led_x, options.led_y, options.led_size
        region = tuple(str(v) for v in (x, y, x + size - 1, y + size - 1))
        test = dataclasses.replace(test, region=region)
    return dataclasses.replace(settings, cameras=cameras, devices=devices, latency_test=test)
