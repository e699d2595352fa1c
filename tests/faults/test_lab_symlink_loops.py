"""Issue 71 (fails 4): a symbolic link loop in a lab folder is one line naming the file, exit 2.

``formats/linked_loop.py`` pointing at itself ended in a 40-line ``RuntimeError: Symlink loop``
traceback, exit 1 (release 0.6.0: one line, exit 2). The settings' check (the same code path the
commands take, in-process here) now names the link and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX links")

CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"


def _loop(lab: Path, folder: str, stem: str) -> Path:
    link = lab / folder / f"{stem}.py"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(f"{stem}.py")  # itself
    return link


def _assert_one_line_naming(message: str, link: Path) -> None:
    (line,) = [line for line in message.splitlines() if str(link) in line]  # one line says it
    assert f"{link}: a symbolic link that leads back to itself (to {link.name})" in line
    assert "Remove the link, or point it at the module's file" in line
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("folder", "setting"),
    [
        ("formats", "[Pose]\nMODEL_FORMATS = linked_loop\n"),
        ("devices", "[Device box]\nTYPE = linked_loop\n"),
    ],
    ids=["model-format", "device"],
)
def test_a_lab_module_linked_to_itself_is_refused_naming_the_link(
    tmp_path: Path, folder: str, setting: str
) -> None:
    link = _loop(tmp_path, folder, "linked_loop")
    with pytest.raises(SettingsError) as refused:
        load_settings(write_settings(tmp_path, CAMERA + setting))
    _assert_one_line_naming(str(refused.value), link)


def test_a_lab_experiment_linked_to_itself_is_refused_before_the_start(tmp_path: Path) -> None:
    link = _loop(tmp_path, "experiments", "exp_loop")
    settings = load_settings(write_settings(tmp_path, CAMERA + "[Experiment]\nNAME = exp_loop\n"))
    problems = check_before_start(settings, pose=True, experiment=True)
    assert len(problems) == 1, problems
    _assert_one_line_naming(problems[0], link)
