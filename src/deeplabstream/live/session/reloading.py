"""The settings file re-read while a session streams: what is taken now, what waits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from deeplabstream.settings.sections import Settings

#: Sections a streaming session takes from a re-read settings file.
TAKEN = ("pose", "experiment", "devices", "latency_test", "recording")
#: Sections fixed at the Start Stream: a change waits for the next one.
FIXED = ("cameras", "streaming", "output", "session")


@dataclass(frozen=True)
class Reload:
    """The settings a streaming session goes on with, and what the re-read changed."""

    settings: Settings
    changed: tuple[str, ...]  # the sections taken that differ
    notes: tuple[str, ...]  # one line per fixed section that differs: when it applies


def reload(current: Settings, read: Settings) -> Reload:
    """Return ``current`` with the sections of ``read`` a streaming session takes."""
    notes = tuple(
        f"{name} changes apply at the next Start Stream"
        for name in FIXED
        if getattr(read, name) != getattr(current, name)
    )
    changed = tuple(name for name in TAKEN if getattr(read, name) != getattr(current, name))
    settings = dataclasses.replace(current, **{name: getattr(read, name) for name in TAKEN})
    return Reload(settings, changed, notes)
