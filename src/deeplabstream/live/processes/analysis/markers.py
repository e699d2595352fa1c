"""An experiment's events as Lab Streaming Layer markers too (``[Output] LSL = on``)."""

from __future__ import annotations

from collections.abc import Sequence

from deeplabstream.experiments.events import EventCsvWriter, ExperimentEvent
from deeplabstream.outputs.interface import EventMarkers
from deeplabstream.outputs.lsl import marker_text


class MarkedWriter:
    """``events.csv`` that also sends each event it writes as an LSL marker.

    A marker leaves when its event is committed (the next update), stamped with the event's time.
    """

    def __init__(self, file: EventCsvWriter, markers: EventMarkers) -> None:
        self.file = file
        self.markers = markers

    @property
    def error(self) -> str | None:
        """Why the file stopped early (a disk error), or None."""
        return self.file.error

    def write(self, events: Sequence[ExperimentEvent]) -> None:
        """Append ``events`` to the file and send each as a marker (never blocks)."""
        self.file.write(events)
        for event in events:
            text = marker_text(
                event.kind, event.name, event.detail, event.trial, event.camera, event.frame_index
            )
            self.markers.push(text, marker_time_s(event))

    def flush(self) -> None:
        """Push the rows written so far to the file."""
        self.file.flush()

    def close(self) -> None:
        """Close the file (the outlet belongs to the worker)."""
        self.file.close()


def marker_time_s(event: ExperimentEvent) -> float | None:
    """Return the host time of an event's marker (an action: its command written; None: now)."""
    if event.kind == "action" and event.written is not None:
        return event.written
    return event.host_timestamp
