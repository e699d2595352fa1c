"""Marked mice in the simulated arena: tail bands, a bleached patch, a smaller body; unmarked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplabstream.hardware.cameras.synthetic import SyntheticCamera, SyntheticSettings
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES, ArenaParams
from deeplabstream.hardware.simulator.herd import HerdParams, SimulatedHerd, simulate_herd_truth
from deeplabstream.hardware.simulator.marks import MARKED, UNMARKED, Marks, marks_of

NOSE, TAIL_BASE = KEYPOINT_NAMES.index("nose"), KEYPOINT_NAMES.index("tail_base")


def _frame(marked: bool) -> tuple[np.ndarray, np.ndarray]:
    herd = SimulatedHerd(HerdParams(ArenaParams(seed=3), 2, "free", marked))
    frame = np.empty(herd.frame_shape, np.uint8)
    _, truth = herd.render_next(frame)
    return frame, truth


def test_marked_mice_differ_on_their_bodies_and_nowhere_else() -> None:
    marked, truth = _frame(True)
    plain, plain_truth = _frame(False)
    differs = np.abs(marked.astype(int) - plain.astype(int)).max(axis=-1) > 10
    assert differs.any()
    # Every changed pixel is on a mouse or its tail (within 1.3 body lengths of its centre).
    rows, cols = np.nonzero(differs)
    length = ArenaParams().body_length_px
    centres = truth[:, KEYPOINT_NAMES.index("body_center"), :2]
    near = np.hypot(cols[:, None] - centres[None, :, 0], rows[:, None] - centres[None, :, 1])
    assert (near.min(axis=1) <= 1.3 * length).all()
    # Animal 1 keeps its size (it walks exactly as a lone mouse would); animal 2 is smaller.
    np.testing.assert_allclose(truth[0], plain_truth[0])
    body = np.hypot(*(truth[:, NOSE, :2] - truth[:, TAIL_BASE, :2]).T)
    np.testing.assert_allclose(body / length, [1.0, 0.9], atol=1e-6)


def test_marks_are_per_animal_and_never_on_a_lone_mouse() -> None:
    assert marks_of(3, True) == MARKED[:3]
    assert marks_of(2, False) == (UNMARKED, UNMARKED)
    assert marks_of(1, True) == (UNMARKED,)
    assert all(marks.marked for marks in MARKED) and not UNMARKED.marked
    with pytest.raises(ValueError, match="scale"):
        Marks(scale=1.2)
    with pytest.raises(ValueError, match="tail bands"):
        Marks(tail_bands=(1.5,))


def test_scripted_meetings_still_meet_with_a_smaller_mouse() -> None:
    truth = simulate_herd_truth(HerdParams(ArenaParams(), 2, "touch"), 330)
    noses = np.hypot(*(truth[:, 0, NOSE, :2] - truth[:, 1, NOSE, :2]).T)
    assert noses.min() < 0.1 * ArenaParams().body_length_px


def test_the_cameras_marks_key_turns_the_marks_off_and_describes_them(tmp_path: Path) -> None:
    settings = SyntheticSettings(width=320, height=240, animals=2, pacing="free")
    assert settings.herd_params().marked
    plain = SyntheticSettings(width=320, height=240, animals=2, pacing="free", marks=False)
    assert not plain.herd_params().marked
    camera = SyntheticCamera("arena", settings)
    camera.open()
    described = camera.describe()
    camera.close()
    assert described["marks"][1]["patch"] == "rump" and described["marks"][1]["scale"] == 0.9
