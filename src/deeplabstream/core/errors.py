"""The project's exceptions: one base, :class:`DeepLabStreamError`, and a few kinds under it.

Each kind stays the built-in it was (``SettingsError`` is a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import ClassVar


class DeepLabStreamError(Exception):
    """An error of DeepLabStream whose message says what is wrong, where, and what to do."""


class SettingsError(DeepLabStreamError, ValueError):
    """One or more problems in a settings file; each line names file, section, key and value.

    ``problems``: one line each (a string is one problem). A subclass whose message is one
    sentence of its own sets ``lists_problems = False``.
    """

    lists_problems: ClassVar[bool] = True

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if not self.lists_problems:
            super().__init__("\n".join(self.problems))
            return
        header = "Invalid settings:" if len(self.problems) > 1 else "Invalid setting:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class ModelError(DeepLabStreamError, ValueError):
    """A model file or folder is missing, unreadable or inconsistent; the message says which."""


class CameraError(DeepLabStreamError, RuntimeError):
    """A camera could not be opened or stopped delivering; the message says what to do."""


class DeviceError(DeepLabStreamError, RuntimeError):
    """A stimulation device failed, is absent or is held elsewhere; the message names it."""


class OutputError(DeepLabStreamError):
    """A file the session writes or exports cannot be made; the message names it."""


class CalibrationError(DeepLabStreamError, ValueError):
    """A calibration that cannot be read, does not fit the cameras, or cannot be solved."""


class ExperimentError(DeepLabStreamError):
    """An experiment that cannot start or run as configured; the message says what to change."""


class LabelsError(DeepLabStreamError, ValueError):
    """A labels file that cannot be read or used; the message names the file and what to do."""


@contextmanager
def raised_as(kind: type[DeepLabStreamError], *errors: type[Exception]) -> Iterator[None]:
    """Raise ``errors`` met inside the block as ``kind``, same message, the original as cause.

    A DeepLabStream error passes unchanged.
    """
    try:
        yield
    except DeepLabStreamError:
        raise
    except errors as error:
        raise kind(str(error)) from error
