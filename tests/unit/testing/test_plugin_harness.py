"""deeplabstream.testing: a broken plugin is caught with its rule named (issue 53).

The page's working example (docs/plugins.md, "Testing a plugin alone") runs in
tests/unit/docs/test_plugins_doc.py; here each harness meets a plugin that breaks a rule of its
interface, written as a lab would by mistake, and must say which rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.cameras.base import Camera
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    StimulationDevice,
)
from deeplabstream.outputs.interface import Output, OutputCamera, PoseSink
from deeplabstream.pose.model_format import ModelFormat
from deeplabstream.testing import (
    PluginCheckError,
    check_model_format,
    plugin_settings,
    run_camera,
    run_device,
    run_output,
)
from tests.support.plugin_page import BUNDLED_GRAPH


@dataclass(frozen=True)
class CountingSettings:
    frames: int = setting(3, doc="Frames before the end.", minimum=1)
    backwards: bool = setting(False, doc="Count down (a broken counter).")


class Counting(Camera):
    """Frames whose pixels are their index; None after FRAMES frames (the stream's end)."""

    settings_class = CountingSettings

    def open(self) -> FrameGeometry:
        self.sent = 0
        return FrameGeometry(4, 6, 1)

    @property
    def nominal_fps(self) -> float:
        return 30.0

    def grab(self, out: np.ndarray) -> FrameStamp | None:
        if self.sent == self.settings.frames:
            return None
        out[...] = self.sent
        self.sent += 1
        index = -self.sent if self.settings.backwards else self.sent
        return FrameStamp(index, math.nan, host_now_ns())

    def close(self) -> None:
        self.closed = getattr(self, "closed", 0) + 1


def test_a_camera_runs_to_its_streams_end_and_a_counter_going_back_is_named() -> None:
    run = run_camera(Counting, {"FRAMES": "2"}, frames=5)
    assert run.ended and len(run.frames) == 2 and run.frames[1].max() == 1
    assert run.geometry.shape == (4, 6) and run.nominal_fps == 30.0
    with pytest.raises(PluginCheckError, match=r"frame_index went from -1 to -2"):
        run_camera(Counting, {"BACKWARDS": "true"})


def test_keys_a_start_would_refuse_are_refused_naming_the_key() -> None:
    with pytest.raises(PluginCheckError, match=r"\[Camera top\] FRAMES = '0'"):
        run_camera(Counting, {"FRAMES": "0"}, name="top")
    with pytest.raises(PluginCheckError, match=r"SPEED: unknown key"):
        plugin_settings(CountingSettings, {"SPEED": "2"})


class Silent(StimulationDevice):
    """A board that never answers: its records are never settled (a device bug)."""

    @property
    def channel_count(self) -> int:
        return 1

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def perform(self, action: Action) -> ActionRecord:
        return ActionRecord(action.describe(), host_now_ns())  # and nobody acknowledges it


class Refusing(Silent):
    """A board that refuses every command with a reason (a legitimate failure)."""

    def perform(self, action: Action) -> ActionRecord:
        record = ActionRecord(action.describe(), host_now_ns())
        record.fail("BAD_CHANNEL")
        return record


def test_a_device_that_never_settles_its_records_is_named() -> None:
    with pytest.raises(PluginCheckError, match=r"on channel=0 was neither acknowledged nor failed"):
        run_device(Silent, settle_s=0.05)
    run = run_device(Refusing)  # failing is allowed: the records say why
    assert run.errors == ["BAD_CHANNEL"] * 5 and run.channel_count == 1


class Unserialisable(PoseSink):
    def write(self, frame) -> None:  # type: ignore[no-untyped-def]
        pass

    def close(self, last_index: int | None) -> dict:
        return {"when": object()}


class Broken(Output):
    def camera_sink(self, camera: OutputCamera) -> PoseSink:
        return Unserialisable()


def test_an_outputs_figures_session_json_cannot_hold_are_named(tmp_path: Path) -> None:
    with pytest.raises(PluginCheckError, match=r"session.json cannot hold"):
        run_output(Broken, session_dir=tmp_path)


class GreedyFormat(ModelFormat):
    """Recognises any .onnx file: it would take the built-in format's models."""

    name = "greedy"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".onnx"


def test_a_format_that_claims_a_built_in_formats_files_is_named() -> None:
    with pytest.raises(PluginCheckError, match=r"before GreedyFormat"):
        check_model_format(BUNDLED_GRAPH, model_format=GreedyFormat)
    check = check_model_format(BUNDLED_GRAPH)  # the built-in one, on one grey frame
    assert check.poses.shape == (1, 1, len(check.description.keypoints), 3)
