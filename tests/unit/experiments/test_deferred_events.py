"""Events logged between a pose and its commands are formatted after the commands (issue 27).

The live loop sets its runtime's ``recording.defer_details``: a trigger's levels and an action's
positions are made when the loop settles the update's events, once its commands are written. The
events must be exactly those made at once, in the same order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import load_experiment

NAMES = ("nose", "left_ear", "right_ear", "neck", "body_center", "tail_base")
CONFIG = """[Experiment]
DESCRIPTION = a light answered with a pulse, and a region
[Trigger led]
KIND = light
CAMERA = arena
ROI = rect 600 20 616 36
THRESHOLD = 0.1
SEARCH_S = 0.2
[Trigger zone]
KIND = region
KEYPOINT = nose
SHAPE = circle 50 50 30
MODE = inside
[Stimulation answer]
DEVICE = box
COMMAND = pulse
DURATION = 0.005
CHANNEL = 1
[Rule answer]
WHEN = led
EDGE = rising
DO = answer
[Rule enter]
WHEN = zone
EDGE = rising
DO = answer
"""


def _observations(count: int) -> list[Observation]:
    """Frames whose LED flashes every 20 frames while the nose walks in and out of the zone."""
    observations = []
    for index in range(count):
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[20:36, 600:616] = 250 if (index // 20) % 2 else 10
        keypoints = np.full((len(NAMES), 3), 0.9, np.float32)
        keypoints[:, :2] = (50 + 40 * np.sin(index / 7), 50)
        observations.append(Observation(index / 100, "arena", index, keypoints, NAMES, frame=frame))
    return observations


def _run(tmp_path: Path, deferred: bool) -> list[tuple]:
    path = tmp_path / str(deferred) / "experiment.ini"  # one name: the start event names it
    path.parent.mkdir()
    path.write_text(CONFIG, encoding="utf-8")
    runtime = ExperimentRuntime(load_experiment(str(path)))
    runtime.recording.defer_details = deferred
    runtime.start()
    actions = 0
    for observation in _observations(200):
        actions += len(runtime.update(observation))
        if deferred:
            runtime.events.settle()  # as the loop does, once the commands are out
    assert actions > 4  # both rules fired several times
    return [
        (e.time_s, e.kind, e.name, e.detail, e.frame_index, e.keypoint, e.measured_x, e.measured_y)
        for e in runtime.events.events
    ]


def test_deferred_events_are_the_events_made_at_once(tmp_path: Path) -> None:
    at_once, deferred = _run(tmp_path, False), _run(tmp_path, True)
    assert deferred == at_once
    details = [
        detail for _, kind, name, detail, *_ in at_once if kind == "trigger" and name == "led"
    ]
    assert details and all("level=" in detail for detail in details)  # the light's levels


def test_a_deferred_event_is_made_only_when_settled(tmp_path: Path) -> None:
    path = tmp_path / "e.ini"
    path.write_text(CONFIG, encoding="utf-8")
    runtime = ExperimentRuntime(load_experiment(str(path)))
    runtime.recording.defer_details = True
    runtime.start()
    for observation in _observations(40):
        if runtime.update(observation):  # the frame whose change fired a rule
            assert runtime.events._deferred, "its events were formatted before the command"
            runtime.events.settle()
            assert not runtime.events._deferred
            assert runtime.events.pending[-1].kind == "action"
            return
        runtime.events.settle()
    raise AssertionError("no rule fired")
