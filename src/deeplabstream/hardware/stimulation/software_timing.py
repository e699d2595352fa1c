"""Pulses and patterns timed by host threads, for outputs without a clock of their own.

Within the OS timer's jitter: well under 1 ms idle, several ms loaded; no drift.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from deeplabstream.core.timing import host_now_ns
from deeplabstream.hardware.stimulation.base import (
    Action,
    ActionRecord,
    StimulationDevice,
    StimulationError,
)

log = logging.getLogger(__name__)

SetLevel = Callable[[int, bool], None]


@dataclass
class _Sequence:
    """A pulse or pattern running on one channel."""

    record: ActionRecord
    cancelled: threading.Event = field(default_factory=threading.Event)


class SoftwareTimedOutputs:
    """Channels switched by ``set_level(channel, high)``, with host-timed pulses and patterns.

    ``set_level`` is called with the channel's lock held, from the caller's thread or a worker's.
    """

    def __init__(self, channel_count: int, set_level: SetLevel, name: str) -> None:
        self._set_level = set_level
        self._name = name
        self._locks = [threading.Lock() for _ in range(channel_count)]
        self._running: list[_Sequence | None] = [None] * channel_count
        self.error: StimulationError | None = None  # a failure in a worker thread

    def perform(self, action: Action) -> ActionRecord:
        """Start ``action`` and return its record, acknowledged once the first edge is made."""
        record = ActionRecord(action.describe(), host_now_ns())
        self.start(action, record)
        record.acknowledge(host_now_ns())
        return record

    def start(self, action: Action, record: ActionRecord) -> None:
        """Make the first edge of ``action`` (and start its timer thread) for ``record``."""
        if self.error is not None:
            raise self.error
        if action.command == "reset":
            for channel in range(len(self._locks)):
                self._switch(channel, False)
        elif action.command in ("on", "off"):
            self._switch(action.channel, action.command == "on")
        else:
            self._start(action, record)

    def stop(self) -> None:
        """End every sequence and drive every channel low (errors are logged, not raised)."""
        for channel in range(len(self._locks)):
            try:
                self._switch(channel, False)
            except Exception as error:  # closing: switch off as much as possible
                log.warning("%s: cannot switch channel %d off: %s", self._name, channel, error)

    def _switch(self, channel: int, high: bool) -> None:
        with self._locks[channel]:
            self._cancel(channel)
            self._drive(channel, high)

    def _start(self, action: Action, record: ActionRecord) -> None:
        channel = action.channel
        sequence = _Sequence(record)
        with self._locks[channel]:
            self._cancel(channel)
            self._drive(channel, True)
            start_ns = host_now_ns()
            self._running[channel] = sequence
        worker = threading.Thread(
            target=self._run,
            args=(channel, sequence, start_ns, action),
            name=f"{self._name} channel {channel}",
            daemon=True,
        )
        worker.start()

    def _cancel(self, channel: int) -> None:
        """Lock held. The running sequence on ``channel`` ends here (CANCEL)."""
        sequence = self._running[channel]
        if sequence is not None:
            self._running[channel] = None
            sequence.cancelled.set()
            sequence.record.finish("CANCEL", host_now_ns())

    def _drive(self, channel: int, high: bool) -> None:
        try:
            self._set_level(channel, high)
        except Exception as error:
            level = "high" if high else "low"
            raise StimulationError(
                f"{self._name}: cannot drive channel {channel} {level}: {error}"
            ) from error

    def _run(self, channel: int, sequence: _Sequence, start_ns: int, action: Action) -> None:
        """Worker: make the edges after the first one, at planned times, until done or cut."""
        count: int | None = 1
        if action.command == "pulse":  # one on-phase
            on_ns, off_ns = round(action.duration_s * 1e9), 0  # type: ignore[operator]
        else:
            on_ns, off_ns = round(action.on_s * 1e9), round(action.off_s * 1e9)  # type: ignore[operator]
            count = action.count
        forever = count is None
        on_left = 0 if count is None else count - 1
        edge_ns, high = start_ns, True
        while True:
            edge_ns += on_ns if high else off_ns
            # Event.wait returns early only when cancelled; otherwise it may wake a little
            # early on some systems, so wait again for what is left.
            while (left_ns := edge_ns - host_now_ns()) > 0:
                if sequence.cancelled.wait(left_ns / 1e9):
                    return
            with self._locks[channel]:
                if self._running[channel] is not sequence:
                    return  # cut short between the wait and the lock
                high = not high
                try:
                    self._drive(channel, high)
                except StimulationError as error:
                    self._running[channel] = None
                    self.error = error
                    log.error("%s", error)
                    sequence.record.fail(str(error))
                    return
                if not high and not forever and on_left == 0:
                    self._running[channel] = None
                    sequence.record.finish("DONE", host_now_ns())
                    return
                if high and not forever:
                    on_left -= 1


class SoftwareTimedDevice(StimulationDevice):
    """A device whose outputs a host sets directly and whose pulses host timers keep.

    Subclasses create :attr:`_timing` in ``open()`` and release their outputs in :meth:`_release`.
    """

    _timing: SoftwareTimedOutputs | None = None

    def perform(self, action: Action) -> ActionRecord:
        """Start ``action`` on the outputs; acknowledged once its first edge is made."""
        if self._timing is None:
            raise StimulationError(f"the {self.name} device is not open: call open() first")
        return self._timing.perform(action)

    def close(self) -> None:
        """Every output off (the timers stop), then the outputs released."""
        if self._timing is not None:
            self._timing.stop()
            self._timing = None
        self._release()

    @abstractmethod
    def _release(self) -> None:
        """Release the outputs (pins, tasks); safe to call when they are already released."""
