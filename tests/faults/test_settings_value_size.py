"""Issue 71 (partly): an absurdly large settings value is refused before the start.

Before: a 10 MB value was accepted; session.json grew to 21 MB (it holds the settings, written
every few seconds) and the recording lost 30-44 % of its frames. Now a value over 64 KiB
(``settings.loader.MAX_VALUE_BYTES``) is refused when the file is read, naming its section and key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplabstream.core.errors import SettingsError
from deeplabstream.settings import load_settings
from deeplabstream.settings.loader import MAX_VALUE_BYTES
from tests.support.files import write_settings

CAMERA = "[Camera arena]\nSOURCE = synthetic\nWIDTH = 160\nHEIGHT = 120\nFRAMERATE = 30\n"


def test_a_10_mb_settings_value_is_refused_naming_its_section_and_key(tmp_path: Path) -> None:
    file = write_settings(tmp_path, CAMERA + "[Session]\nNOTES = " + "x" * 10_000_000 + "\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(file)
    message = str(refused.value)
    said = f"{file}: [Session] NOTES: its value is 10,000,000 bytes, more than the 64 KiB"
    assert said in message
    assert len(message) < 1000  # the value itself is not repeated


def test_a_value_at_the_limit_is_taken(tmp_path: Path) -> None:
    value = "x" * MAX_VALUE_BYTES
    file = write_settings(tmp_path, CAMERA + "[Session]\nNOTES = " + value + "\n")
    assert len(load_settings(file).session.notes) == MAX_VALUE_BYTES
