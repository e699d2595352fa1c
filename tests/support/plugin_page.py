"""docs/plugins.md's examples as a lab folder: each fenced block that names a file.

A block starting with ``# devices/lab_led.py`` (or ``# settings.ini``) is that file of the lab
folder, written as it is (the first line is a comment). A file whose format has no comments
(JSON) is named after the block's language instead: ```` ```json models/x.json ````, and its
block is the whole file (a page of release 0.5.0 named it in a first line, ``# models/x.json``,
which is not part of the file). The ``settings.ini`` blocks are one settings file, in the page's
order, as a reader who copies them all gets it: a section or key given twice is an error (a page
of release 0.5.0 gave ``[Pose]`` twice; its reader merged them: ``strict=False``). The lab
folder is the page's own example, so a test that runs it runs what the page shows.
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

_BLOCK = re.compile(
    r"^```(?P<lang>[a-z]+)(?: (?P<named>[\w./-]+))?\n(?:# (?P<name>[\w./-]+)\n)?(?P<body>.*?)^```",
    re.M | re.S,
)


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
        if match["named"]:  # ```json models/x.json: the block is the whole file
            blocks.append(PageBlock(match["lang"], match["named"], match["body"]))
        elif match["name"]:
            comment = f"# {match['name']}\n" if match["lang"] != "json" else ""  # JSON has none
            blocks.append(PageBlock(match["lang"], match["name"], comment + match["body"]))
    return blocks


def settings_text(page: Path = PAGE) -> str:
    """Return the page's ``settings.ini`` blocks as one file, in the page's order."""
    return "\n".join(b.text for b in page_blocks(page) if b.name == SETTINGS)


def write_lab(
    folder: Path, page: Path = PAGE, settings_extra: str = "", *, strict: bool = True
) -> Path:
    """Write the page's files into ``folder`` (its settings file last, ``settings_extra`` added).

    The bundled arena model's graph is copied beside the page's model description as the file it
    names. ``strict=False`` merges a section the page gives twice. Returns the settings file.
    """
    settings = configparser.ConfigParser(interpolation=None, strict=strict)
    settings.optionxform = str  # type: ignore[assignment, method-assign]
    settings.read_string(settings_text(page))  # one file: a section given twice is an error
    for block in page_blocks(page):
        if block.name == SETTINGS:
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
