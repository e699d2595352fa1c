"""Python's garbage collector off the loop's critical path.

CPython's cyclic collector runs when allocations pass a threshold, in whatever code happens to
allocate: in the middle of a pose estimate or a command. Its young generations are cheap (tens
of microseconds), but a full collection walks every tracked object, and a process that imported
NumPy, ONNX Runtime and the project tracks about 100,000 of them: measured on the 2-core machine
of docs/benchmarks.md, one full collection took 260-350 ms under load. Such a pause lands on a
random frame, late in a session, as a lone tail of tens of milliseconds.

:func:`settle_after_start_up` collects once, then freezes what survived (``gc.freeze``): the
modules, the model and the session's long-lived objects move to a permanent generation that no
later collection walks. Collections after it only look at objects made since, so they stay short;
cycles made later are still found and freed. Each loop process calls it once its start-up work
is done and before its first frame.
"""

from __future__ import annotations

import gc
import time


def settle_after_start_up() -> float:
    """Collect once and freeze the survivors; return how long it took (ms)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    return (time.perf_counter() - started) * 1e3
