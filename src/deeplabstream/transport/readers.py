"""Readers that want only the newest frame (analysis, display): older announcements are skipped.

docs/architecture.md, "One frame's life".
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from deeplabstream.transport.channel import ChannelReader, EndOfStream, FrameRecord
from deeplabstream.transport.ring import Channel, FrameRing


class NewestFrameReader:
    """Take the newest frame of one camera into a preallocated buffer."""

    def __init__(self, ring: FrameRing, reader: ChannelReader, channel: Channel) -> None:
        self.ring = ring
        self.reader = reader
        self.channel = channel
        self.frame = np.empty(ring.spec.geometry.shape, dtype=ring.spec.geometry.dtype)
        self.record: FrameRecord | None = None
        self.ended: EndOfStream | None = None
        # The frames the last poll() did not take (passed over, or overwritten before the copy),
        # oldest first: a writer that keeps one row per captured frame writes them as empty.
        self.passed_over: list[FrameRecord] = []
        self.last_seen: FrameRecord | None = None  # the newest announcement read, taken or not
        self._consumed = self._skipped = self._lost = 0
        # Every announcement seen, newest last, at most a ring's worth: a frame still in the
        # ring can be taken again by its index (the display draws a pose on its own frame).
        self._recent: OrderedDict[int, FrameRecord] = OrderedDict()
        reader.discard_pending()
        self._first_seq = int(ring.header["write_seq"])
        ring.set_subscribed(channel, True)

    @property
    def first_seq(self) -> int:
        """Return the sequence number of the first frame this reader may take."""
        return self._first_seq

    def fileno(self) -> int:
        """Return what to wait on for new frames (see :meth:`ChannelReader.fileno`)."""
        return self.reader.fileno()

    def poll(self) -> bool:
        """Copy the newest announced frame into :attr:`frame`; True when a new one was taken.

        Sets :attr:`ended` at the stream's end and :attr:`passed_over` to the frames skipped.
        """
        newest: FrameRecord | None = None
        passed_over = 0
        missed: list[FrameRecord] = []
        self.passed_over = missed
        for record in self.reader.read_available():
            if isinstance(record, EndOfStream):
                self.ended = record
                break
            if record.seq < self._first_seq:
                continue
            if newest is not None:
                passed_over += 1
                missed.append(newest)
            newest = self.last_seen = record
            self._remember(record)
        while newest is not None:
            if self.ring.copy_frame(newest.slot, newest.seq, self.frame):
                break
            # Overwritten while we looked: the ring has wrapped past it; count it and give up
            # on this round rather than spin (a newer announcement is already on its way).
            self._lost += 1
            missed.append(newest)
            newest = None
        self._skipped += passed_over
        header = self.ring.header
        header["skipped"][self.channel] = self._skipped
        header["lost"][self.channel] = self._lost
        if newest is None:
            return False
        self.record = newest
        self._consumed += 1
        header["consumed"][self.channel] = self._consumed
        return True

    def copy_frame_index(self, frame_index: int, out: np.ndarray) -> FrameRecord | None:
        """Copy frame ``frame_index`` into ``out`` if the ring still holds it; return its record.

        None when never announced here or overwritten since; it does not consume a frame.
        """
        record = self._recent.get(frame_index)
        if record is None or not self.ring.copy_frame(record.slot, record.seq, out):
            return None
        return record

    def _remember(self, record: FrameRecord) -> None:
        self._recent[record.frame_index] = record
        while len(self._recent) > self.ring.spec.slots:
            self._recent.popitem(last=False)

    def close(self) -> None:
        """Stop receiving announcements."""
        if self.ring.header is not None:
            self.ring.set_subscribed(self.channel, False)
