"""Issue 38 #9: a removed section leaves no extra blank line; a new camera goes after the
others, the comments that introduce the next section staying in front of it."""

from __future__ import annotations

from deeplabstream.core.ini_text import IniText

RIG = """; my rig
[Camera top]
SOURCE = synthetic

[Camera side]
SOURCE = video
PATH = side.mp4

; the model of the lab
[Pose]
MODEL_PATH = model.pt

[Session]
ANIMAL = m1
"""


def test_removing_a_camera_leaves_one_blank_line() -> None:
    text = IniText(RIG)
    text.remove_section("Camera side")
    assert text.text() == RIG.replace("[Camera side]\nSOURCE = video\nPATH = side.mp4\n\n", "")
    assert "\n\n\n" not in text.text()


def test_a_new_camera_goes_after_the_last_camera() -> None:
    text = IniText(RIG)
    text.add_section("Camera back", {"SOURCE": "opencv", "DEVICE": "0"}, after="Camera side")
    expected = RIG.replace(
        "PATH = side.mp4\n\n",
        "PATH = side.mp4\n\n[Camera back]\nSOURCE = opencv\nDEVICE = 0\n\n",
    )
    assert text.text() == expected
    text.add_section("Device box", {"TYPE": "log"})  # without after: at the end, as before
    assert text.text().endswith("ANIMAL = m1\n\n[Device box]\nTYPE = log\n")
