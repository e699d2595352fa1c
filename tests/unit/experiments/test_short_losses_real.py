"""Issue 38's 23 pulses, on a real model's clip: a region rule "on entry" through likelihood dips.

The lab's model is DeepLabCut 3.0's ``cspnext_s`` of ``../shared/data/dlc3-openfield-cspnext_s``
and its 100-frame open-field clip; the poses are DeepLabCut's own predictions of that clip (this
project's engine gives the same: within 0.0005 px and the same likelihoods to 1e-6, so the same
frames are seen). Frame times are the clip's own presentation times (PyAV), and the clip loops
as the window's ``LOOP = true`` camera did in the issue, for 24 s.

The snout dwells near (96, 76) from frame 9 to frame 45 while its likelihood dips below 0.5 at
frames 14-17 and 28: a region drawn there is the issue's case. The rule is made as the window
makes it (:mod:`experiments.config.edit` on a copy of the shipped example, its keypoints mapped
onto the model's): a 100 ms pulse "on entry" (``EDGE = rising`` on ``MODE = inside``), no
refractory period. Before holds existed (``HOLD = 0``: a keypoint not seen is at once not
inside) it fired at every dip; with the default hold it fires once per real entry, an entry
being the snout seen outside and then seen inside.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.edit import (
    ConfigText,
    RegionAction,
    RegionSpec,
    save_keypoint_mapping,
    save_regions,
)
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import ExperimentEvent
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.registry import CONFIG_FOLDER, load_experiment
from deeplabstream.experiments.triggers import Circle, Region
from tests.support.paths import shared_data

KEYPOINT = "snout"
ZONE = Circle(96, 76, 14)  # where the snout dwells from frame 9 to 45 (see the docstring)
SESSION_S = 24.0  # the session: 23 pulses in 24 s
REGION = "snout_zone"


class Clip:
    """DeepLabCut's predictions of the clip, with the clip's own frame times."""

    def __init__(self) -> None:
        data = shared_data("dlc3-openfield-cspnext_s")
        predictions = next((data / "reference" / "analyze_videos_bs1").glob("*.csv"))
        table = pd.read_csv(predictions, header=[0, 1, 2], index_col=0)
        self.names = tuple(dict.fromkeys(table.columns.get_level_values(1)))
        self.poses = table.to_numpy(dtype=float).reshape(len(table), len(self.names), 3)
        with av.open(str(data / "clip" / "m3v1mp4_first100.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.time_base is not None and stream.average_rate is not None
            times = [float(frame.pts * stream.time_base) for frame in container.decode(stream)]
            self.period_s = times[-1] + float(1 / stream.average_rate)  # one pass, looped
        self.times = np.array(times)
        assert len(self.times) == len(self.poses) == 100
        snout = self.poses[:, self.names.index(KEYPOINT)]
        self.seen = snout[:, 2] >= 0.5
        self.inside = np.array([ZONE.contains(x, y) for x, y in snout[:, :2]])

    def looped(self, seconds: float) -> list[Observation]:
        """The clip played over and over for ``seconds``, as a looping video camera gives it."""
        made = []
        for loop in range(int(seconds // self.period_s) + 1):
            for index, t in enumerate(self.times):
                time_s = loop * self.period_s + t
                if time_s < seconds:
                    made.append(Observation(time_s, "clip", index, self.poses[index], self.names))
        return made


@pytest.fixture(scope="module")
def clip() -> Clip:
    return Clip()


def test_the_snout_stays_in_the_region_while_its_likelihood_dips(clip: Clip) -> None:
    """The facts the case rests on, read from the model's own predictions."""
    dips = [index for index in range(9, 46) if not clip.seen[index]]
    assert dips == [14, 15, 16, 17, 28]  # below 0.5 for 4 frames (133 ms) and for 1 (33 ms)
    assert clip.inside[9:46].all()  # where the model puts it, even while it is not seen
    assert clip.seen[[1, 2]].all() and not clip.inside[[1, 2]].any()  # seen outside before
    assert not clip.seen[3:9].any()  # and not seen for 6 frames (200 ms) as it walks in
    assert clip.seen[46] and not clip.inside[46]  # seen leaving


def _on_entry_experiment(folder: Path, hold: str | None) -> Experiment:
    """The shipped example with the window's edits: keypoints mapped, the region and its pulse."""
    config = folder / "ExampleExperiment.ini"
    shutil.copyfile(CONFIG_FOLDER / "ExampleExperiment.ini", config)
    save_keypoint_mapping(config, {"nose": KEYPOINT})
    pulse = RegionAction("stimulus_box", "pulse", channel=0, duration_s=0.1, edge="rising")
    regions = [*ConfigText(config.read_text()).regions()]
    regions.append(RegionSpec(REGION, None, ZONE, KEYPOINT, action=pulse))
    save_regions(config, regions)
    if hold is not None:
        text = ConfigText(config.read_text())
        text.set_section_key("Experiment", "HOLD", hold)
        config.write_text(text.text)
    return load_experiment(config)


def _pulses(experiment: Experiment, stream: list[Observation]) -> list[ExperimentEvent]:
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    for obs in stream:
        runtime.update(obs)
    return [
        event
        for event in runtime.events.of_kind("action")
        if event.detail.startswith("pulse channel=0") and f"reason={REGION}_action" in event.detail
    ]


def _real_entries(clip: Clip, count: int) -> int:
    """Entries counted from the data alone: the snout seen outside, then next seen inside."""
    sides = [bool(clip.inside[i % 100]) for i in range(count) if clip.seen[i % 100]]
    return sum(1 for before, now in itertools.pairwise(sides) if now and not before)


def _rising_edges_frame_by_frame(clip: Clip, count: int) -> int:
    """The old rule, from the data alone: seen inside now, and not (seen inside) a frame before."""
    flags = [bool(clip.seen[i % 100] and clip.inside[i % 100]) for i in range(count)]
    return sum(1 for before, now in zip([False, *flags], flags, strict=False) if now and not before)


def test_the_23_pulses_case_fires_once_per_real_entry(clip: Clip, tmp_path: Path) -> None:
    stream = clip.looped(SESSION_S)
    loops = len(stream) / 100
    assert 7 < loops < 7.3  # the clip, 3.33 s, looped for 24 s

    before = _pulses(_on_entry_experiment(tmp_path, hold="0"), stream)
    after = _pulses(_on_entry_experiment(tmp_path, hold=None), stream)  # the default, 0.5 s
    entries = _real_entries(clip, len(stream))

    assert entries == 8  # one per pass (frame 9), and the 8th pass reaches frame 20 in 24 s
    assert len(after) == entries
    # Before: 3 a pass (frames 9, 18, 29), 2 in the last: the 23 pulses in 24 s.
    assert len(before) == _rising_edges_frame_by_frame(clip, len(stream)) == 23
    # The pulses after are the real entries: the frame the snout is seen inside after outside.
    assert {event.frame_index for event in after} == {9}
    assert sorted({event.frame_index for event in before}) == [9, 18, 29]  # after each dip


def test_the_old_false_rows_had_coordinates_inside_and_now_the_likelihood_says_why(
    clip: Clip,
) -> None:
    stream = clip.looped(clip.period_s)  # one pass
    every_frame = Region(ZONE, keypoint=KEYPOINT, hold_s=0)
    held = Region(ZONE, keypoint=KEYPOINT)
    old = [every_frame.update(obs) for obs in stream]
    new = [held.update(obs) for obs in stream]
    old_false_inside = [i for i in range(1, 100) if old[i - 1] and not old[i] and clip.inside[i]]
    assert old_false_inside == [14, 28]  # "false" while the coordinates were inside
    assert all(clip.poses[i, clip.names.index(KEYPOINT), 2] < 0.5 for i in old_false_inside)
    assert all(new[9:46]) and not any(new[46:])  # one visit, from entry to exit
