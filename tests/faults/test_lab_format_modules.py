"""Issue 71 (partly): the lab formats ``[Pose] MODEL_FORMATS`` names are checked before the start.

Before: a ``formats/`` module that defines no format class was accepted silently (only a log
line when the models loaded), and one every user may write to only warned in the log while the
session's verdict stayed "ok". Now the formats named are loaded by the start's checks: a module
with no format class is refused naming it; one others may write to is treated as every other
lab plugin is (core/plugins/permissions.py): refused in a process running as root, otherwise
said in the console and in ``session.json`` -> ``warnings`` (the verdict "warning").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deeplabstream.core.plugins import plugin_notices
from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"
    "[Pose]\nMODEL_FORMATS = {name}\n"
)
QUIET_FORMAT = """\
from pathlib import Path

from deeplabstream.pose.model_format import ModelFormat


class QuietFormat(ModelFormat):
    name = "quietformat"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".quietmodel"
"""


def _check(tmp_path: Path, name: str, code: str) -> tuple[Path, list[str]]:
    module = tmp_path / "formats" / f"{name}.py"
    module.parent.mkdir()
    module.write_text(code, encoding="utf-8")
    settings = load_settings(write_settings(tmp_path, SETTINGS.format(name=name)))
    return module, check_before_start(settings, pose=True, experiment=False)


def test_a_format_module_with_no_format_class_is_refused_naming_it(tmp_path: Path) -> None:
    module, problems = _check(tmp_path, "nofmt", "X = 1\n")
    (problem,) = problems
    assert problem.startswith(f"[Pose] MODEL_FORMATS in {tmp_path / 'settings.ini'}: ")
    assert f"model format 'nofmt' ({module}) defines no model format class" in problem


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_format_module_others_may_write_is_refused_to_root_or_said(tmp_path: Path) -> None:
    module = tmp_path / "formats" / "openfmt.py"
    module.parent.mkdir()
    module.write_text(QUIET_FORMAT, encoding="utf-8")
    module.chmod(0o666)
    settings = load_settings(write_settings(tmp_path, SETTINGS.format(name="openfmt")))
    problems = check_before_start(settings, pose=True, experiment=False)
    if os.geteuid() == 0:  # as a root process does any lab plugin others may write to
        (problem,) = problems
        assert f"refused: {module} may be written by every user of this machine" in problem
    else:  # said, as the start's warnings are (console, session.json)
        assert problems == []
        said = f"{module}: {module} may be written by every user"
        assert any(said in text for text in plugin_notices())
