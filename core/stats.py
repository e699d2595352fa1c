"""The one statistics helper: percentiles of timings, as reports and session.json give them."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def percentiles(
    values: Iterable[float | None], *, digits: int = 3, with_count: bool = False
) -> dict[str, float] | None:
    """Return p50 / p95 / p99 / max of the finite ``values``, rounded; None when there are none.

    Parameters
    ----------
    values
        Durations (any unit); None and NaN are left out.
    digits
        Decimals kept.
    with_count
        Add ``count``, the number of finite values.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    p50, p95, p99 = np.percentile(np.asarray(finite), [50, 95, 99])
    figures: dict[str, float] = {
        "p50": round(float(p50), digits),
        "p95": round(float(p95), digits),
        "p99": round(float(p99), digits),
        "max": round(max(finite), digits),
    }
    if with_count:
        figures["count"] = len(finite)
    return figures
