"""The interface examples of the pages beside docs/plugins.md, run (issue 53).

The devices of docs/stimulation-protocol.md and docs/visual-stimulus.md, each block run as it
is, with only what names the reader's machine given for this one: the board's port (here the
firmware on the simulated board, simavr) and the screen (here the offscreen platform's only
one); both blocks imported ``from stimulation``, a path that does not exist. The output of
docs/outputs.md, run by the plugin harness (deeplabstream.testing); the camera excerpt of
docs/cameras.md, checked against the example it is taken from.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from deeplabstream.hardware import stimulation
from deeplabstream.hardware.cameras import camera_class
from deeplabstream.testing import run_output
from tests.fixtures.firmware import pin_of
from tests.support.paths import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def python_block(page: str, first_line: str = "") -> str:
    """Return the Python block of ``docs/<page>`` (the one starting with ``first_line``)."""
    blocks = re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text("utf-8"), re.M | re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
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
