"""The portable transport on Linux: the doorbell Windows and macOS rely on.

Real spawned processes, real shared memory. The portable doorbell is forced the way a user or CI
forces it (``DEEPLABSTREAM_DOORBELL``, inherited by spawned processes), so the children choose it
exactly as a session's processes do.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from deeplabstream.core.frames import FrameGeometry
from deeplabstream.transport import ring as ring_module
from deeplabstream.transport.channel import (
    DOORBELL_ENV,
    ChannelReader,
    ChannelWriter,
    Doorbell,
    EndOfStream,
    EndReason,
    FrameRecord,
    PortableChannelReader,
    PortableChannelWriter,
    doorbell_kind,
    encode_frame,
)
from deeplabstream.transport.ring import (
    Channel,
    FrameRing,
    RingSpec,
    find_stale_rings,
    new_ring_name,
)

SPAWN = multiprocessing.get_context("spawn")
GEOMETRY = FrameGeometry(height=120, width=160, channels=3)


@pytest.fixture
def portable(monkeypatch) -> None:
    """Force the portable doorbell here and in every process spawned by the test."""
    monkeypatch.setenv(DOORBELL_ENV, "portable")


# -- processes ---------------------------------------------------------------------------------


def frame_writer(spec: RingSpec, connection, frames: int) -> None:
    """A capture process in miniature: fill a slot, publish it, ring the doorbell."""
    ring = FrameRing.attach(spec)
    writer = ChannelWriter(connection)  # the doorbell comes from the environment
    assert isinstance(writer, PortableChannelWriter)
    for seq in range(frames):
        ring.begin_write(seq)[...] = seq % 251
        ring.end_write(seq)
        writer.send(encode_frame(FrameRecord(0, ring.slot_for(seq), seq, seq, seq / 30, seq)))
        time.sleep(0.0005)
    assert writer.send_end(0, EndReason.END_OF_SOURCE, frames)
    writer.close()
    ring.close()


def flooding_writer(connection, report, go) -> None:
    """Send far more records than the channel holds while nobody reads; report, then close."""
    writer = ChannelWriter(connection)
    accepted = refused = 0
    slowest = 0.0
    for seq in range(50_000):
        payload = encode_frame(FrameRecord(0, 0, seq, seq, 0.0, 0))
        began = time.perf_counter()
        sent = writer.send(payload)
        slowest = max(slowest, time.perf_counter() - began)
        accepted += sent
        refused += not sent
    ended = writer.send_end(0, EndReason.STOPPED, 50_000, timeout=0.3)
    report.send({"accepted": accepted, "refused": refused, "slowest_s": slowest, "ended": ended})
    go.wait(30)  # the reader reads again: what was queued still arrives
    writer.close()


def pickled_reader(reader: ChannelReader, report) -> None:
    """Read a channel whose reader object was pickled to this process."""
    assert reader.wait(10)
    report.send([type(reader).__name__, *reader.read_available()])


# -- the doorbell ------------------------------------------------------------------------------


def test_frames_and_end_of_stream_cross_processes(portable, no_leftovers) -> None:
    frames = 300
    ring = FrameRing.create(RingSpec(new_ring_name("portable"), GEOMETRY, 64))
    ring.set_subscribed(Channel.RECORD, True)
    read_end, write_end = SPAWN.Pipe(duplex=False)
    writer = SPAWN.Process(target=frame_writer, args=(ring.spec, write_end, frames))
    writer.start()
    write_end.close()
    reader = ChannelReader(read_end, 0)
    assert isinstance(reader, PortableChannelReader)
    out = np.empty(GEOMETRY.shape, GEOMETRY.dtype)
    seqs, whole, ends = [], 0, []
    while not ends and reader.wait(10):
        for record in reader.read_available():
            if isinstance(record, EndOfStream):
                ends.append(record)
                break
            seqs.append(record.seq)
            if ring.copy_frame(record.slot, record.seq, out):
                whole += bool(np.all(out == record.seq % 251))
    writer.join(30)
    assert writer.exitcode == 0
    assert seqs == list(range(frames))  # every record, in order, none torn apart
    assert whole > 0  # frames copied out of shared memory whole (a slow reader may lose some)
    assert ends == [EndOfStream(0, EndReason.END_OF_SOURCE, frames)]
    assert reader.wait(5) and reader.read_available()[-1].reason == EndReason.WRITER_GONE
    reader.close()
    ring.close()
    ring.unlink()


def test_a_stalled_reader_makes_the_writer_drop_and_count_never_block(
    portable, no_leftovers
) -> None:
    read_end, write_end = SPAWN.Pipe(duplex=False)
    report_end, report_send = SPAWN.Pipe(duplex=False)
    go = SPAWN.Event()
    writer = SPAWN.Process(target=flooding_writer, args=(write_end, report_send, go))
    writer.start()
    write_end.close()
    report_send.close()
    # A send that waited for the reader would wait for ever: the reader never reads here. (Not
    # a bound on how long a send takes: on a loaded machine one may be descheduled for longer.)
    assert report_end.poll(60), "the writer blocked on a reader that does not read"
    report = report_end.recv()
    assert report["refused"] > 0 and report["accepted"] + report["refused"] == 50_000
    assert report["ended"] is False  # no room for the end record either: refused after 0.3 s
    reader = ChannelReader(read_end, 0)
    seqs: list[int] = []
    end = None
    while end is None and reader.wait(10):
        go.set()  # reading now: the writer may close (it waits while its queue drains)
        for record in reader.read_available():
            if isinstance(record, EndOfStream):
                end = record
            else:
                seqs.append(record.seq)
    writer.join(30)
    assert writer.exitcode == 0
    assert len(seqs) == report["accepted"]  # every accepted record arrives; refused ones counted
    assert seqs == sorted(seqs)
    assert seqs[-1] < 49_999  # the gap the reader sees in the sequence numbers
    assert end is not None and end.reason == EndReason.WRITER_GONE
    reader.close()


def test_a_reader_object_pickles_to_a_spawned_process(portable, no_leftovers) -> None:
    read_end, write_end = SPAWN.Pipe(duplex=False)
    report_end, report_send = SPAWN.Pipe(duplex=False)
    reader = ChannelReader(read_end, 2)
    child = SPAWN.Process(target=pickled_reader, args=(reader, report_send))
    child.start()
    reader.close()
    report_send.close()
    writer = ChannelWriter(write_end)
    record = FrameRecord(2, 1, 9, 9, 0.25, 7)
    assert writer.send(encode_frame(record))
    assert report_end.poll(30)
    assert report_end.recv() == ["PortableChannelReader", record]
    child.join(30)
    assert child.exitcode == 0
    writer.close()


@pytest.mark.parametrize("kind", list(Doorbell), ids=str)
def test_other_fixed_size_records_cross_either_doorbell(kind: Doorbell) -> None:
    # The inference worker sends pose records (any fixed size) with a ChannelWriter too.
    size = 1000  # larger than a frame record: several per message, some alone
    records = [bytes([n]) * size for n in range(40)]
    read_end, write_end = SPAWN.Pipe(duplex=False)
    writer = ChannelWriter(write_end, kind=kind)
    reader = ChannelReader(read_end, 0, kind=kind)
    assert all(writer.send(record) for record in records)
    writer.close()
    data = b""
    while not reader.at_eof and reader.wait(5):
        data += reader.read_bytes(size)
    assert data == b"".join(records)
    reader.close()


def test_a_closed_reader_breaks_the_writer_without_blocking(portable) -> None:
    read_end, write_end = SPAWN.Pipe(duplex=False)
    writer = ChannelWriter(write_end)
    read_end.close()
    payload = encode_frame(FrameRecord(0, 0, 0, 0, 0.0, 0))
    deadline = time.monotonic() + 10
    while not writer.broken and time.monotonic() < deadline:
        writer.send(payload)
        time.sleep(0.001)
    assert writer.broken and not writer.send(payload)
    assert not writer.send_end(0, EndReason.STOPPED, 1)
    writer.close()


def test_the_doorbell_is_chosen_by_platform_setting_and_environment(monkeypatch) -> None:
    monkeypatch.delenv(DOORBELL_ENV, raising=False)
    assert doorbell_kind() is Doorbell.PIPE  # Linux: the faster one
    assert doorbell_kind("portable") is Doorbell.PORTABLE
    monkeypatch.setenv(DOORBELL_ENV, "portable")
    assert doorbell_kind("pipe") is Doorbell.PORTABLE  # the environment wins
    monkeypatch.setenv(DOORBELL_ENV, "carrier-pigeon")
    with pytest.raises(ValueError, match="DEEPLABSTREAM_DOORBELL: expected one of auto"):
        doorbell_kind()


# -- shared memory ---------------------------------------------------------------------------


def test_shared_memory_checks_skip_where_there_is_no_dev_shm(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "no-shm"  # as on macOS and Windows
    monkeypatch.setattr(ring_module, "SHM_FOLDER", missing)
    assert find_stale_rings(missing) == []
    huge = FrameGeometry(height=8192, width=8192, channels=3)
    ring_module._check_shared_memory_room(huge.nbytes * 10**6)  # nothing to check: no error
