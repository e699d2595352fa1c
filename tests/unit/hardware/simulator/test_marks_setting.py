"""The synthetic camera's ``MARKS`` key, read from a settings file, turns the animals' marks off.

The identity benchmark and the live tests measure marked and unmarked animals: the key must
reach the simulation from an ini file as a lab writes it, not only from code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.hardware.simulator.herd import HerdParams, SimulatedHerd
from deeplabstream.hardware.simulator.marks import MARKED, UNMARKED
from deeplabstream.settings.loader import load_settings

SECTION = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 240\nANIMALS = 2\n"


def _herd_params(tmp_path: Path, extra: str) -> HerdParams:
    path = tmp_path / "settings.ini"
    path.write_text(SECTION + extra)
    return load_settings(path).camera("arena").options.herd_params()


@pytest.mark.parametrize("value", ["false", "False", "no", "off", "0"])
def test_marks_false_in_an_ini_file_turns_the_marks_off(tmp_path: Path, value: str) -> None:
    params = _herd_params(tmp_path, f"MARKS = {value}\n")
    assert not params.marked
    assert params.marks == (UNMARKED, UNMARKED)
    # The mice look alike: the same body drawn at the same pose gives the same pixels.
    assert len({marks.scale for marks in params.marks}) == 1


def test_marks_are_on_by_default_and_with_marks_true(tmp_path: Path) -> None:
    assert _herd_params(tmp_path, "").marks == MARKED[:2]
    assert _herd_params(tmp_path, "MARKS = true\n").marks == MARKED[:2]


def test_unmarked_and_marked_arenas_render_differently(tmp_path: Path) -> None:
    frames = []
    for value in ("true", "false"):
        herd = SimulatedHerd(_herd_params(tmp_path, f"MARKS = {value}\n"))
        frame = np.empty(herd.frame_shape, np.uint8)
        herd.render_next(frame)
        frames.append(frame.copy())
    assert not np.array_equal(frames[0], frames[1])


def test_a_marks_value_that_is_not_a_yes_or_no_is_refused(tmp_path: Path) -> None:
    # A typo must not leave the marks on silently (the unmarked case would measure marked mice).
    with pytest.raises(SettingsError, match="MARKS"):
        _herd_params(tmp_path, "MARKS = unmarked\n")
