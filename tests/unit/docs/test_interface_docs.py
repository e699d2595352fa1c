"""The interface examples of the pages beside docs/plugins.md, run (issue 53).

The devices of docs/stimulation-protocol.md and docs/visual-stimulus.md, each block run as it
is, with only what names the reader's machine given for this one: the board's port (here the
firmware on the simulated board, simavr) and the screen (here the offscreen platform's only
one); both blocks imported ``from stimulation``, a path that does not exist. The output of
docs/outputs.md, run by the plugin harness (deeplabstream.testing); the camera excerpt of
docs/cameras.md, checked against the example it is taken from, and its video camera's settings
(a looped file) loaded and played.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.experiments.examples import AlternatingReward
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region
from deeplabstream.experiments.triggers.timing import After
from deeplabstream.hardware import stimulation
from deeplabstream.hardware.cameras import camera_class
from deeplabstream.settings import load_settings
from deeplabstream.testing import run_experiment, run_output, run_trigger
from tests.fixtures.firmware import pin_of
from tests.support.files import make_ffv1_video
from tests.support.paths import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def python_blocks(page: str) -> list[str]:
    """Return the Python blocks of ``docs/<page>``, in the page's order."""
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text("utf-8"), re.M | re.S)


def python_block(page: str, first_line: str = "") -> str:
    """Return the Python block of ``docs/<page>`` (the one starting with ``first_line``)."""
    (block,) = [b for b in python_blocks(page) if b.startswith(first_line)]
    return block


def test_the_serial_example_drives_the_simulated_board(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = python_block("stimulation-protocol.md")
    assert "/dev/ttyACM0" in code
    real = stimulation.create_device

    def on_the_simulator(name: str, **options: Any) -> Any:
        # The simulated board starts slower than a real one on a loaded machine.
        return real(name, **options, hello_timeout_s=10.0, hello_query_after_s=5.0)

    monkeypatch.setattr(stimulation, "create_device", on_the_simulator)
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("/dev/ttyACM0", sim.port), "stimulation-protocol.md", "exec"),
         namespace)  # fmt: skip
    record = namespace["record"]
    assert record.ok and record.board_time_us is not None
    assert record.command.endswith("PULSE 2 500")
    assert any(change.level == 1 for change in sim.changes(pin_of(2)))  # the LED came on


def test_the_visual_example_paints_its_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PyQt5.QtGui import QColor, QImage

    grating = QImage(8, 8, QImage.Format_RGB32)
    grating.fill(QColor("gray"))
    assert grating.save(str(tmp_path / "grating.png"))
    monkeypatch.chdir(tmp_path)  # the block names grating.png beside the script
    code = python_block("visual-stimulus.md")
    assert "screen=1," in code
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("screen=1,", "screen=0,"), "visual-stimulus.md", "exec"), namespace)
    record = namespace["record"]
    assert record.ok and record.acked_ns >= record.written_ns


def test_the_outputs_page_example_writes_every_nth_frame(tmp_path: Path) -> None:
    """docs/outputs.md's whole live half (``open_live``), run as the worker runs it.

    Its module goes into a lab's ``outputs/`` folder as ``nose.py`` (``[Output nose]``).
    """
    (tmp_path / "outputs").mkdir()
    code = python_block("outputs.md", first_line="# my_lab/outputs.py")
    (tmp_path / "outputs" / "nose.py").write_text(code, encoding="utf-8")
    session = tmp_path / "session"
    run = run_output("nose", {"EVERY": "2"}, session_dir=session, settings_folder=tmp_path)
    rows = (session / "arena.nose.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows] == ["1", "3", "5", "7", "9"]  # every 2nd frame
    assert run.figures == {} and run.error is None


def test_the_cameras_page_excerpt_is_the_example_cameras() -> None:
    """docs/cameras.md shows an excerpt of cameras/moving_dot.py (which a test runs whole)."""
    code = python_block("cameras.md", first_line="@dataclass(frozen=True)")
    camera = camera_class("moving_dot", PROJECT_ROOT)  # the repository's cameras/ folder
    settings = camera.settings_class
    assert camera.__name__ == "MovingDotCamera" and settings.__name__ == "MovingDotSettings"
    for method in re.findall(r"def (\w+)\(", code):
        assert method in vars(camera), method
    fields = {f.name for f in dataclasses.fields(settings)}
    assert set(re.findall(r"^    (\w+): \w+ = setting\(", code, re.M)) <= fields


def test_the_cameras_page_video_camera_loops_its_file(tmp_path: Path) -> None:
    """docs/cameras.md, "A video file as a camera": its settings, a 3-frame file played 2.5 times.

    The page's file is a lab's; a lossless one of the same name stands in (FFmpeg reads the
    container, whatever the name says).
    """
    text = re.findall(r"^```ini\n(.*?)^```", (DOCS / "cameras.md").read_text("utf-8"), re.M | re.S)
    (block,) = [b for b in text if "SOURCE = video" in b]
    video = tmp_path / re.findall(r"^PATH = (.+)$", block, re.M)[0]
    video.parent.mkdir(parents=True)
    written = make_ffv1_video(video.with_suffix(".mkv"), frames=3, width=64, height=48)
    video.with_suffix(".mkv").rename(video)
    (tmp_path / "settings.ini").write_text(block, encoding="utf-8")
    (section,) = load_settings(tmp_path / "settings.ini").cameras
    assert section.source == "video" and section.options.loop and section.options.pacing == "native"
    camera = camera_class(section.source, tmp_path)(section.name, section.options)
    frames = np.zeros((7, *camera.open().shape), np.uint8)
    try:
        stamps = [camera.grab(frame) for frame in frames]
    finally:
        camera.close()
    assert [stamp.frame_index for stamp in stamps if stamp] == list(range(7))  # counts on
    times = [stamp.camera_timestamp for stamp in stamps if stamp]
    # one stream, no gap at the seam (Matroska keeps times to the millisecond)
    assert times == pytest.approx([i / 30 for i in range(7)], abs=1e-3)
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, written[index % 3])  # pass after pass


def _observations(xs: list[float], fps: float = 30.0) -> list[Observation]:
    return [
        Observation(i / fps, "arena", i, np.array([[x, 240.0, 0.9]]), ("nose",))
        for i, x in enumerate(xs)
    ]


def test_the_experiments_page_alternation_is_the_shipped_one() -> None:
    """docs/experiments.md's abridged AlternatingReward, run beside the shipped class."""
    (block,) = [b for b in python_blocks("experiments.md") if "class AlternatingReward(" in b]
    namespace: dict[str, Any] = {"__name__": "experiments_page"}
    exec(compile(block, "experiments.md", "exec"), namespace)  # the page's own code
    visits = _observations([320, 160, 160, 320, 160, 320, 480, 320, 160, 480] * 4, fps=2.0)
    on_the_page = run_experiment(namespace["AlternatingReward"](), visits)
    shipped = run_experiment(AlternatingReward(), visits)
    assert on_the_page.all_actions == shipped.all_actions
    assert [a.channel for a in on_the_page.all_actions if a.command == "pulse"][:3] == [0, 1, 0]
    assert on_the_page.runtime.experiment.last_rewarded is not None  # the page's own attribute


def test_the_experiments_page_trigger_is_the_distributions() -> None:
    """docs/experiments.md's EveryNth: an excerpt of the example distribution's module.

    The page shows the class and its kind without the module's imports; run with them, it
    counts as the distribution's own (which test_plugin_distribution installs and runs).
    """
    block = python_block("experiments.md", first_line="# dls_lab_plugins/triggers.py")
    source = PROJECT_ROOT / "tests/fixtures/lab_plugins/dls_lab_plugins/triggers.py"
    imports = "".join(re.findall(r"^(?:from|import) .*\n", source.read_text("utf-8"), re.M))
    namespace: dict[str, Any] = {"__name__": "dls_lab_plugins.triggers"}
    exec(compile(imports + block, "experiments.md", "exec"), namespace)
    shipped: dict[str, Any] = {"__name__": "dls_lab_plugins.triggers"}
    exec(compile(source.read_text("utf-8"), str(source), "exec"), shipped)
    seen = _observations([100.0] * 7)
    page_kind, shipped_kind = namespace["EVERY_NTH"], shipped["EVERY_NTH"]
    assert page_kind.name == shipped_kind.name == "lab_every_nth"
    states = run_trigger(page_kind.factory(n=3), seen)
    assert (
        states == run_trigger(shipped_kind.factory(n=3), seen) == [False, False, True] * 2 + [False]
    )


def test_the_experiments_page_combinator_updates_every_child_and_resets_them() -> None:
    """docs/experiments.md's AtLeast: a lab's combinator written with step alone."""
    block = python_block("experiments.md", first_line="# triggers/at_least.py")
    namespace: dict[str, Any] = {"__name__": "at_least"}
    exec(compile(block, "experiments.md", "exec"), namespace)  # the page's own code
    entered = Region(Circle(100.0, 240.0, 30.0), "entered", "nose", hold_s=0.0)
    left_of = Region(Circle(100.0, 240.0, 60.0), "inside", "nose", hold_s=0.0)
    trigger = namespace["AtLeast"](2, entered, left_of, After(0.1))
    seen = _observations([300.0, 100.0, 300.0, 300.0, 100.0, 120.0, 300.0], fps=10.0)
    states = run_trigger(trigger, seen)
    # Every child updated on every observation: the entry at 0.4 s is one, so the region's
    # memory followed the exit at 0.2 s while the combinator was false.
    assert states == [False, True, False, False, True, True, False]
    assert entered.last_point is not None
    trigger.reset()  # its children with it
    assert entered.last_point is None and entered.state is False
    assert trigger.describe() == {"kind": "at_least", "count": 2}
