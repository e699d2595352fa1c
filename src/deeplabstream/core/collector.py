"""Python's garbage collector off the loop's critical path: collect once and freeze at start-up.

Why (260-350 ms full collections): docs/performance.md.
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
