"""Issue 38 #10: the commands' help says what they really use, and helps without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.app.arguments import default_settings, default_settings_text
from deeplabstream.settings.loader import CHECKOUT_SETTINGS_FILE, PACKAGED_SETTINGS_FILE
from tests.support.paths import PROJECT_ROOT

HIDE_TORCH = "import sys; sys.modules['torch'] = None; "  # as a base install: no torch


def test_train_help_helps_without_torch_torch_hidden() -> None:
    """``deeplabstream-train --help`` exited 2 ("needs torch") instead of helping."""
    code = (
        HIDE_TORCH + "from deeplabstream.offline.training.command import main; "
        "sys.exit(main(['--help']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "deeplabstream-train" in result.stdout and "--synthetic" in result.stdout
    assert 'pip install "deeplabstream[torch]"' in result.stdout
    # Without --help the missing torch still stops it with the one sentence and exit code 2.
    code = HIDE_TORCH + "from deeplabstream.offline.training.command import run; run()"
    training = subprocess.run(
        [sys.executable, "-c", code, "--synthetic"], capture_output=True, text=True, timeout=120
    )
    assert training.returncode == 2 and "torch" in training.stderr


def test_a_copy_of_app_py_reads_the_settings_beside_it_not_the_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of app.py elsewhere silently opened the checkout's settings.ini."""
    rig = tmp_path / "rig1"
    rig.mkdir()
    copy = rig / "app.py"
    shutil.copy(PROJECT_ROOT / "app.py", copy)
    (rig / "settings.ini").write_text("[Camera cam]\nSOURCE = synthetic\n")
    assert default_settings(str(copy)) == rig / "settings.ini"
    assert str(rig) in default_settings_text(str(copy))
    help_text = subprocess.run(
        [sys.executable, str(copy), "--help"], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT / "src")},
    ).stdout  # fmt: skip
    assert "beside app.py" in help_text and "rig1" in " ".join(help_text.split())
    # No settings.ini beside the copy: the current folder's, written from the default.
    (rig / "settings.ini").unlink()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    said: list[str] = []
    chosen = default_settings(str(copy), said.append)
    assert chosen == work / "settings.ini" and chosen != CHECKOUT_SETTINGS_FILE
    assert chosen.read_text() == PACKAGED_SETTINGS_FILE.read_text() and said


def test_installed_commands_say_which_settings_file_they_read() -> None:
    """Their --help said "the settings.ini beside this script" while they used another."""
    text = default_settings_text("/usr/local/bin/deeplabstream")
    assert "beside this script" not in text
    assert ("current folder" in text) or (str(CHECKOUT_SETTINGS_FILE) in text)
    # The checkout's own launcher reads the checkout's file, as docs/gui.md says.
    assert default_settings(str(PROJECT_ROOT / "app.py")) == CHECKOUT_SETTINGS_FILE


def test_the_settings_written_for_a_pip_user_point_to_what_a_pip_user_has() -> None:
    """It pointed to docs/settings.md and python DeepLabStream.py, which a pip user lacks."""
    header = "".join(PACKAGED_SETTINGS_FILE.read_text().splitlines(keepends=True)[:4])
    assert "deeplabstream --settings PATH" in header and "https://" in header
    assert "Rig tab" in header


@pytest.mark.parametrize(
    "command", ["/usr/local/bin/deeplabstream-app", "/usr/local/bin/deeplabstream-replay"]
)
def test_an_installed_command_in_a_folder_without_settings_writes_the_default_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Issue 71: installed editable (the README's own set-up), deeplabstream-app took the
    checkout's settings.ini and wrote its sessions into the checkout; the README says the
    embedded default is written in the current folder."""
    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    chosen = default_settings(command, said.append)
    assert chosen == tmp_path / "settings.ini" and chosen != CHECKOUT_SETTINGS_FILE
    assert chosen.read_text() == PACKAGED_SETTINGS_FILE.read_text()
    assert said and "wrote the embedded default there" in said[0]
    assert "checkout" not in default_settings_text(command)
