"""A plugin's settings from its section's keys, the error a broken rule raises, a double close."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from deeplabstream.core.call_watchdog import CallStalled, time_limit
from deeplabstream.core.errors import DeepLabStreamError
from deeplabstream.core.schema import Where, parse_section

T = TypeVar("T")

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

    Relative paths are relative to ``settings_folder``; :class:`PluginCheckError` lists the problems
    a start would refuse.
    """
    problems: list[str] = []
    folder = Path(settings_folder) if settings_folder is not None else Path.cwd()
    where = Where(folder / NO_FILE.name, section)
    settings = parse_section(settings_class, dict(keys or {}), where, problems)
    if settings is None:
        raise PluginCheckError("the keys would be refused before a start:\n" + "\n".join(problems))
    return settings


def close_twice(plugin: Any, label: str, limit_s: float | None = None) -> None:
    """Close ``plugin`` as a session does, then again: the second ``close`` must not raise."""

    def close(which: str) -> None:
        if limit_s is None:
            plugin.close()
        else:
            returns_within(label, which, limit_s, plugin.close, CLOSE_RULE)

    close("close()")
    try:
        close("second close()")
    except PluginCheckError:
        raise
    except Exception as error:
        raise PluginCheckError(
            f"{label}: close() raised the second time ({type(error).__name__}: {error}); it "
            "must be safe to call more than once"
        ) from error


CLOSE_RULE = "close releases the hardware at once; the worker interrupts one that does not"


def returns_within(label: str, what: str, limit_s: float, call: Callable[[], T], rule: str) -> T:
    """Return ``call()``; :class:`PluginCheckError` when it took longer than ``limit_s`` seconds.

    In the main thread the call is interrupted at its limit; elsewhere judged once it returns.
    """
    started = time.perf_counter()
    try:
        with time_limit(f"{label}: its {what}", limit_s):
            result = call()
    except CallStalled:
        took = time.perf_counter() - started
        raise PluginCheckError(
            f"{label}: its {what} had not returned after {limit_s:g} s (interrupted after "
            f"{took:.1f} s). {rule}"
        ) from None
    took = time.perf_counter() - started
    if took > limit_s:
        raise PluginCheckError(f"{label}: its {what} took {took:.1f} s. {rule}")
    return result
