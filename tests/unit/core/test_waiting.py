"""The one wait of the project's processes: pipes, connections and sentinels, any platform."""

from __future__ import annotations

import multiprocessing
import time

from deeplabstream.core.timing import host_now_ns
from deeplabstream.core.waiting import wait_readable


def test_only_what_is_readable_is_returned() -> None:
    quiet_reader, _quiet_writer = multiprocessing.Pipe(duplex=False)
    busy_reader, busy_writer = multiprocessing.Pipe(duplex=False)
    busy_writer.send_bytes(b"frame")
    assert wait_readable([quiet_reader, busy_reader], 1.0) == [busy_reader]
    assert wait_readable([quiet_reader], 0.0) == []


def test_a_precise_wait_never_ends_before_its_timeout() -> None:
    reader, _writer = multiprocessing.Pipe(duplex=False)
    for timeout_s in (0.0004, 0.0017, 0.0031):
        start = host_now_ns()
        assert wait_readable([reader], timeout_s, precise=True) == []
        assert host_now_ns() - start >= timeout_s * 1e9


def _ends() -> None:
    time.sleep(0.2)


def test_a_process_sentinel_is_readable_once_the_process_ended() -> None:
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_ends)
    process.start()
    assert wait_readable([process.sentinel], 60.0) == [process.sentinel]
    process.join()
