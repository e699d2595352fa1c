"""docs/plugins.md's examples as a lab folder: each fenced block whose first line names a file.

A block starting with ``# devices/lab_led.py`` (or ``# settings.ini``, ``# models/x.json``) is
that file of the lab folder. Python files are written as they are (the first line is a comment);
the ``settings.ini`` blocks are merged into one settings file (each block adds its sections and
keys); other files lose their first line (JSON has no comments). The lab folder is the page's
own example, so a test that runs it runs what the page shows.
"""

from __future__ import annotations

import configparser
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

PAGE = PROJECT_ROOT / "docs" / "plugins.md"
BUNDLED_GRAPH = PROJECT_ROOT / "src" / "deeplabstream" / "pose" / "bundled" / "arena" / "model.onnx"
SETTINGS = "settings.ini"
KIND_FOLDERS = ("cameras", "devices", "triggers", "experiments", "outputs", "backends", "formats")

_BLOCK = re.compile(r"^```(?P<lang>[a-z]+)\n# (?P<name>[\w./-]+)\n(?P<body>.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class PageBlock:
    """One fenced block of the page that names its file."""

    language: str
    name: str  # the file, relative to the lab folder
    text: str  # the block as a file: with its first line for Python and ini


def page_blocks(page: Path = PAGE) -> list[PageBlock]:
    """Return the page's blocks that name a file, in the page's order."""
    blocks = []
    for match in _BLOCK.finditer(page.read_text(encoding="utf-8")):
        first = f"# {match['name']}\n"
        keeps_first = match["lang"] in ("python", "ini")
        blocks.append(
            PageBlock(match["lang"], match["name"], (first if keeps_first else "") + match["body"])
        )
    return blocks


def write_lab(folder: Path, page: Path = PAGE, settings_extra: str = "") -> Path:
    """Write the page's files into ``folder`` (its settings file last, ``settings_extra`` added).

    The bundled arena model's graph is copied beside the page's model description as the file it
    names. Returns the settings file.
    """
    settings = configparser.ConfigParser(interpolation=None, strict=True)
    settings.optionxform = str  # type: ignore[assignment, method-assign]
    for block in page_blocks(page):
        if block.name == SETTINGS:
            settings.read_string(block.text)  # one more block: its sections join the others
            continue
        path = folder / block.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
    if settings_extra:
        settings.read_string(settings_extra)
    for description in folder.glob("models/*.labmodel.json"):
        shutil.copyfile(BUNDLED_GRAPH, description.parent / "arena.onnx")
    text = io.StringIO()
    settings.write(text)
    path = folder / SETTINGS
    path.write_text(text.getvalue(), encoding="utf-8")
    return path
