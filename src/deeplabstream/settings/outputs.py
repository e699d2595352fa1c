"""Which outputs a session writes: the ``[Output]`` keys of the built-ins and ``[Output NAME]``.

Design: docs/architecture.md, "settings.outputs".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deeplabstream.core.plugins import PluginError
from deeplabstream.core.schema import Where, parse_section
from deeplabstream.outputs.interface import OUTPUTS, ChosenOutput, with_required

if TYPE_CHECKING:
    from deeplabstream.settings.sections import Settings

OUTPUT_PREFIX = "Output "


def parse_output_section(
    file: Path, section: str, items: dict[str, str], problems: list[str]
) -> ChosenOutput | None:
    """Parse ``[Output NAME]``: the output plugin ``NAME`` and its own keys (problems kept)."""
    name = section[len(OUTPUT_PREFIX) :].strip()
    name = OUTPUTS.settings_name(name)  # a lab's: as written
    try:
        settings_class = OUTPUTS.get(name, file.parent).settings_class
    except PluginError as error:
        problems.append(f"{file}: [{section}]: {error}")
        return None
    settings = parse_section(settings_class, items, Where(file, section), problems)
    return None if settings is None else ChosenOutput(name, settings, file.parent)


def chosen_outputs(settings: Settings) -> tuple[ChosenOutput, ...]:
    """Return the outputs of a session, in order: ``pose``, the built-ins' keys, the sections."""
    from deeplabstream.outputs.lsl_output import LslOutputSettings

    sections = {chosen.name: chosen for chosen in settings.outputs}
    output = settings.output
    by_keys = {
        "ibl": output.naming == "ibl",
        "lsl": output.lsl == "on",
        "nwb": output.nwb == "on",
        "slp": output.slp == "on",
    }
    chosen: list[ChosenOutput] = []
    if "pose" in sections:
        chosen.append(sections.pop("pose"))
    for name, on in by_keys.items():
        if name in sections:  # its section's keys win over [Output]'s
            chosen.append(sections.pop(name))
        elif on:
            keys = LslOutputSettings(wait=output.lsl_wait) if name == "lsl" else None
            chosen.append(ChosenOutput(name, keys))
    chosen += sections.values()  # a lab's own, in the file's order
    return with_required(chosen)
