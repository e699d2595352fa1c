"""A device that only records what it is told: for dry runs without stimulation hardware.

Pulses and patterns are not timed and never end.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from deeplabstream.core.schema import setting
from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    StimulationDevice,
    StimulationError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogSettings:
    """``TYPE = log``: records every action and drives nothing (a dry run)."""

    channels: int = setting(12, doc="Number of channels.", minimum=1, maximum=64)


class LogStimulator(StimulationDevice):
    """Records actions only, in ``records`` and, with a ``path``, in a text file."""

    name = "log"
    settings_class = LogSettings
    min_duration_s = 1e-6

    @classmethod
    def lock_keys(cls, settings: LogSettings) -> tuple[str, ...]:
        """Lock nothing: it drives no hardware."""
        return ()

    def __init__(self, channels: int = 12, path: str | Path | None = None) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError("LogStimulator needs at least one channel")
        self._channels = channels
        self.path = None if path is None else Path(path)
        self._file: TextIO | None = None
        self._open = False
        self._lock = threading.Lock()

    @property
    def channel_count(self) -> int:
        """The channel count given at construction."""
        return self._channels

    def open(self) -> None:
        """Open the log file, if any (appending)."""
        if self._open:
            return
        if self.path is not None:
            self._file = self.path.open("a", encoding="utf-8")
        self._open = True

    def perform(self, action: Action) -> ActionRecord:
        """Write the action to the log file (if any), stamped with its record's ``written_ns``."""
        if not self._open:
            raise StimulationError("the log device is not open: call open() first")
        record = ActionRecord(action.describe(), host_now_ns())
        with self._lock:
            if self._file is not None:
                self._file.write(f"{record.written_ns}\t{record.command}\n")
                self._file.flush()
        log.debug("stimulation (dry run): %s", record.command)
        record.acknowledge(record.written_ns)
        return record

    def close(self) -> None:
        """Close the log file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        self._open = False
