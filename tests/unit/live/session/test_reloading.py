"""A settings file re-read while streaming: the model's keys are taken, the cameras' wait."""

from __future__ import annotations

from pathlib import Path

from deeplabstream.live.session.reloading import reload
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

CAMERA = "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = {rate}\n"


def test_a_reread_takes_the_pose_keys_and_says_the_cameras_wait(tmp_path: Path) -> None:
    streaming = load_settings(write_settings(tmp_path, CAMERA.format(rate=30)))
    edited = load_settings(
        write_settings(
            tmp_path, CAMERA.format(rate=60) + "[Pose]\nTHREADS = 1\n", name="edited.ini"
        )
    )
    taken = reload(streaming, edited)
    assert taken.changed == ("pose",)
    assert taken.notes == ("cameras changes apply at the next Start Stream",)
    assert taken.settings.pose == edited.pose
    assert taken.settings.cameras == streaming.cameras  # fixed until the next Start Stream
    assert taken.settings.source_file == streaming.source_file


def test_a_reread_of_the_same_keys_changes_nothing(tmp_path: Path) -> None:
    streaming = load_settings(write_settings(tmp_path, CAMERA.format(rate=30)))
    same = load_settings(write_settings(tmp_path, CAMERA.format(rate=30), name="copy.ini"))
    taken = reload(streaming, same)
    assert taken.changed == () and taken.notes == ()
    assert taken.settings.pose == streaming.pose
