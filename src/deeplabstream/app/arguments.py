"""What the command lines share: value types, and the settings file read without ``--settings``."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from deeplabstream.core.errors import SettingsError
from deeplabstream.settings.loader import (
    PACKAGED_SETTINGS_FILE,
    SETTINGS_FILE_NAME,
    default_settings_file,
)


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1 (an ``argparse`` type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """Parse a number above 0 (an ``argparse`` type)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def absolute(path: Path) -> Path:
    """Return a command line's ``path`` absolute, for other processes; its links kept."""
    return Path(os.path.abspath(path.expanduser()))


def default_settings_text(script: str) -> str:
    """Say which settings file a command started as ``script`` reads without ``--settings``."""
    launcher = _launcher(script)
    if launcher is not None:
        return (
            f"the settings.ini beside {launcher.name} ({launcher.parent}), else the one in the "
            "current folder"
        )
    return (
        "the settings.ini in the current folder (the embedded default is written there when "
        "there is none)"
    )


def default_settings(script: str, announce: Callable[[str], None] = print) -> Path:
    """Return the settings file a command started as ``script`` reads without ``--settings``.

    A launcher run by its path reads the ``settings.ini`` beside it, else the current folder's;
    an installed command what :func:`settings.loader.default_settings_file` says.
    """
    launcher = _launcher(script)
    if launcher is None:
        return default_settings_file(announce)
    beside = launcher.parent / SETTINGS_FILE_NAME
    if beside.is_file():
        return beside
    here = Path.cwd() / SETTINGS_FILE_NAME
    if not here.is_file():
        announce(
            f"No {SETTINGS_FILE_NAME} beside {launcher} nor in {here.parent}: using "
            f"{here} (the embedded default is written there)."
        )
        try:
            shutil.copyfile(PACKAGED_SETTINGS_FILE, here)
        except OSError as error:
            raise SettingsError(
                [
                    f"{here.parent}: no {SETTINGS_FILE_NAME} here nor beside {launcher}, and "
                    f"the default one cannot be written ({error.strerror or error}). Name a "
                    "settings file (--settings PATH)."
                ]
            ) from None
    return here


def _launcher(script: str) -> Path | None:
    """Return the launcher ``script`` (``app.py``, ``DeepLabStream.py``), None for a command."""
    path = Path(script)
    if path.suffix != ".py" or not path.is_file():
        return None
    return path.resolve()
