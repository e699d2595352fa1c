"""A plugin's settings from the keys of its section, the error a broken rule raises, a close."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.schema import Where, parse_section

#: The settings file the keys are said to come from when no folder is given (messages only).
NO_FILE = Path("settings.ini")


class PluginCheckError(DeepLabStreamError, AssertionError):
    """A plugin broke a rule of its interface; the message names the plugin and the rule."""


def plugin_settings(
    settings_class: type,
    keys: Mapping[str, str] | None = None,
    *,
    settings_folder: Path | None = None,
    section: str = "Plugin",
) -> Any:
    """Return ``settings_class`` made from ``keys`` as a settings file's section makes it.

    ``keys`` are the section's ``KEY = value`` texts (``{"FRAMERATE": "15"}``); a relative path
    is relative to ``settings_folder`` (the settings file's folder). PluginCheckError lists the
    problems a start would refuse, each naming the section and key.
    """
    problems: list[str] = []
    folder = Path(settings_folder) if settings_folder is not None else Path.cwd()
    where = Where(folder / NO_FILE.name, section)
    settings = parse_section(settings_class, dict(keys or {}), where, problems)
    if settings is None:
        raise PluginCheckError("the keys would be refused before a start:\n" + "\n".join(problems))
    return settings


def close_twice(plugin: Any, label: str) -> None:
    """Close ``plugin`` as a session does, then again: the second ``close`` must not raise."""
    plugin.close()
    try:
        plugin.close()
    except Exception as error:
        raise PluginCheckError(
            f"{label}: close() raised the second time ({type(error).__name__}: {error}); it "
            "must be safe to call more than once"
        ) from error
