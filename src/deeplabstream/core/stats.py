"""The one statistics helper: percentiles of timings, as reports and session.json give them."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def percentiles(
    values: Iterable[float | None], *, digits: int = 3, with_count: bool = False
) -> dict[str, float] | None:
    """Return p50 / p95 / p99 / max (and ``count`` with ``with_count``) of the finite ``values``.

    None and NaN are left out; None when nothing is left.
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


class DurationHistogram:
    """Durations counted in fixed log-spaced bins: percentiles in constant memory.

    From 1 us to 1000 s; percentiles within 0.6 % (half a bin), ``max`` exact.
    """

    BINS_PER_DECADE = 200
    SMALLEST_NS = 1_000  # 1 us: anything shorter counts in the first bin
    DECADES = 9  # 1 us .. 1000 s

    def __init__(self) -> None:
        self.counts = [0] * (self.BINS_PER_DECADE * self.DECADES + 1)
        self.count = 0
        self.max_ns = 0
        self._scale = self.BINS_PER_DECADE / math.log(10.0)

    def add(self, duration_ns: int) -> None:
        """Count one duration (nanoseconds; negative ones count as 0)."""
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns
        self.count += 1
        if duration_ns <= self.SMALLEST_NS:
            self.counts[0] += 1
            return
        index = int(math.log(duration_ns / self.SMALLEST_NS) * self._scale) + 1
        self.counts[min(index, len(self.counts) - 1)] += 1

    def merge(self, other: DurationHistogram) -> None:
        """Add ``other``'s counts to these."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ms(self, q: float) -> float:
        """Return the ``q``-th percentile (0-100) in ms: the middle of its bin, at most the max."""
        if not self.count:
            return math.nan
        rank = q / 100.0 * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if count and seen >= rank:
                return min(self._middle_ns(index), self.max_ns) / 1e6
        return self.max_ns / 1e6

    def _middle_ns(self, index: int) -> float:
        if index == 0:
            return float(self.SMALLEST_NS)
        return self.SMALLEST_NS * 10.0 ** ((index - 0.5) / self.BINS_PER_DECADE)

    def figures(self, digits: int = 3) -> dict[str, float] | None:
        """Return p50 / p95 / p99 / max (ms) and the count, as :func:`percentiles` does."""
        if not self.count:
            return None
        return {
            "p50": round(self.percentile_ms(50), digits),
            "p95": round(self.percentile_ms(95), digits),
            "p99": round(self.percentile_ms(99), digits),
            "max": round(self.max_ns / 1e6, digits),
            "count": self.count,
        }
