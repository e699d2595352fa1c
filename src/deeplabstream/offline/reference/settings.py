"""Write docs/settings.md from the settings classes, so the reference cannot drift from code.

``python -m deeplabstream.offline.reference.settings [--check]``: ``--check`` exits 1 when
docs/settings.md is out of date.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from deeplabstream.core.schema import describe_allowed, key_of, settings_fields, spec_of
from deeplabstream.hardware.cameras import CAMERAS, camera_class
from deeplabstream.hardware.stimulation import DEVICES, device_class
from deeplabstream.outputs.interface import OUTPUTS
from deeplabstream.settings.loader import SECTION_CLASSES
from deeplabstream.settings.sections import CameraCommonSettings

REFERENCE_FILE = Path(__file__).resolve().parents[4] / "docs" / "settings.md"

_INTRO = """\
# Settings reference

`settings.ini` is read once at start into typed, validated values (`settings/`). A different file:
`python DeepLabStream.py --settings PATH` (and `python app.py --settings PATH`).

- Keys are written in upper case; section names exactly as below. A key is read whatever its case,
  so one key written twice in one section in two cases (`FRAMERATE = 60` and `framerate = 15`)
  is refused, naming both, rather than one silently taken.
- Relative paths are relative to the settings file, not to the current folder.
- Values are data: nothing is evaluated, and `%` has no special meaning.
- An unknown section or key, a value of the wrong type or out of range, or a missing file stops
  the program before anything starts, with one message per problem naming the file, section, key,
  the bad value and what is allowed. For example:

```
Invalid setting:
  - /lab/rig1.ini: [Camera left] FRAMERATE = 'fast': expected a number from 0.1 to 1000 Hz
```

Sections: {sections}, one `[Camera NAME]` per camera, one `[Device NAME]`
per device and one `[Output NAME]` per output chosen by its own section.

This page is generated from the code by `python -m deeplabstream.offline.reference.settings`; a test
checks it is current.
"""


def default_text(field: dataclasses.Field) -> str:
    """Return a key's default as the reference tables show it."""
    default = field.default
    if default is dataclasses.MISSING:
        return "required"
    if default is None or default == "" or default == ():
        return "(empty)"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, tuple):
        return ", ".join(str(item) for item in default)
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def _table(cls: type, skip: tuple[str, ...] = ()) -> list[str]:
    hints = typing.get_type_hints(cls)
    lines = ["| Key | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for field in settings_fields(cls):
        if field.name in skip:
            continue
        spec = spec_of(field)
        allowed = describe_allowed(hints[field.name], spec).replace("|", "\\|")
        doc = " ".join(spec.doc.split()).replace("|", "\\|")
        lines.append(f"| `{key_of(field)}` | {default_text(field)} | {allowed} | {doc} |")
    return lines


def _docstring(cls: Any) -> str:
    return inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def render_reference() -> str:
    """Return the full text of docs/settings.md."""
    parts = [_INTRO.format(sections=", ".join(f"`[{name}]`" for name in SECTION_CLASSES))]
    for name, cls in SECTION_CLASSES.items():
        parts += [f"## [{name}]", "", _docstring(cls), "", *_table(cls), ""]
    parts += [
        "## [Camera NAME]",
        "",
        "One section per camera; `NAME` (letters, digits, `_`, `-`) names its files in the "
        "session folder (`NAME.mp4`, `NAME.frames.csv`, ...). `SOURCE` chooses the kind of "
        "camera; the other keys depend on it.",
        "",
        "| Key | Default | Allowed | Meaning |",
        "|---|---|---|---|",
        f"| `SOURCE` | required | one of {', '.join(sorted(CAMERAS.builtin_names()))}, or a "
        "lab's camera (docs/cameras.md) | Kind of camera. |",
        *_table(CameraCommonSettings)[2:],
        "",
    ]
    for source in sorted(CAMERAS.builtin_names()):
        camera = camera_class(source)
        parts += [
            f"### SOURCE = {source}",
            "",
            _docstring(camera),
            "",
            *_table(camera.settings_class),
            "",
        ]
    parts += _device_sections()
    parts += _output_sections()
    return "\n".join(parts).rstrip() + "\n"


def _device_sections() -> list[str]:
    """Return the ``[Device NAME]`` part: the TYPE key, then each device type's own keys."""
    parts = [
        "## [Device NAME]",
        "",
        "One section per stimulation device (an LED, a laser, a valve...); the experiment's "
        "`[Stimulation ...]` sections name it with `DEVICE = NAME`. `TYPE` chooses the kind of "
        "device; the other keys depend on it.",
        "",
        "| Key | Default | Allowed | Meaning |",
        "|---|---|---|---|",
        f"| `TYPE` | log | one of {', '.join(sorted(DEVICES.builtin_names()))}, a module of the "
        "`devices/` folder beside this file, or an installed package's device (docs/plugins.md) "
        "| Kind of device. |",
        "",
    ]
    for kind in sorted(DEVICES.builtin_names()):
        settings_class = device_class(kind).settings_class
        parts += [
            f"### TYPE = {kind}",
            "",
            _docstring(settings_class),
            "",
            *_table(settings_class),
            "",
        ]
    return parts


def _output_sections() -> list[str]:
    """Return the ``[Output NAME]`` part: each built-in output and its own keys."""
    parts = [
        "## [Output NAME]",
        "",
        "Chooses the output `NAME` (a built-in below, a module of the `outputs/` folder beside "
        "this file, or an installed package's: docs/plugins.md) with its own keys. The "
        "built-ins are also chosen by their `[Output]` keys (`NAMING = ibl`, `LSL = on` with "
        "`LSL_WAIT`, `NWB = on`, `SLP = on`); a built-in's section wins over those keys. `pose` "
        "is always written.",
        "",
    ]
    for name in OUTPUTS.builtin_names():
        output = OUTPUTS.get(name)
        table = _table(output.settings_class)
        parts += [f"### [Output {name}]", "", _docstring(output), ""]
        parts += [*table, ""] if len(table) > 2 else ["No keys.", ""]
    return parts


def main(argv: list[str]) -> int:
    """Write (or with ``--check``, verify) the reference; return the exit code."""
    return write_generated(
        REFERENCE_FILE, render_reference(), argv, "deeplabstream.offline.reference.settings"
    )


def write_generated(path: Path, text: str, argv: list[str], module: str) -> int:
    """Write a generated document, or with ``--check`` only say whether it is current."""
    if "--check" in argv:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m {module}")
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
