"""A camera's own clock and counters, related to the host: unwrapping and the time mapping.

docs/outputs.md, "Camera clocks".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Fewer frames than this, or a shorter span, give no fit (the drift would be noise).
MIN_FIT_FRAMES = 10
MIN_FIT_SPAN_S = 0.5


class CounterUnwrapper:
    """Makes a counter that wraps at ``modulus`` count on for ever (None: it never wraps).

    ``modulus``: 2**32 for a 32-bit counter, 65535 for GigE block IDs (1..65535).
    """

    def __init__(self, modulus: int | None) -> None:
        self.modulus = modulus
        self._last_raw: int | None = None
        self._value = 0
        self.resets = 0  # times the counter went backwards by more than half its range

    def __call__(self, raw: int) -> int:
        """Return the unwrapped value of the counter reading ``raw``."""
        if self._last_raw is None:
            self._value = raw
        elif self.modulus is None:
            self._value += raw - self._last_raw
        else:
            step = (raw - self._last_raw) % self.modulus
            if step > self.modulus // 2:  # went backwards: the camera restarted its counter
                self.resets += 1
                step = 0
            self._value += step
        self._last_raw = raw
        return self._value


class ClockFit:
    """Fits host time to a camera's clock over a session; bounded memory for any length.

    Past ``capacity`` pairs, every second pair is dropped, so the pairs kept stay evenly spread.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._camera = np.empty(capacity, np.float64)
        self._host = np.empty(capacity, np.float64)
        self._count = 0  # pairs held
        self._stride = 1  # keep every stride-th pair offered
        self._offered = 0
        self.frames = 0  # pairs offered in all
        self._origin: tuple[float, float] | None = None  # first camera and host time

    def add(self, camera_s: float, host_ns: int) -> None:
        """Offer one frame's camera time (seconds) and host arrival time (nanoseconds)."""
        if not math.isfinite(camera_s):
            return
        self.frames += 1
        host_s = host_ns / 1e9
        if self._origin is None:
            self._origin = (camera_s, host_s)
        self._offered += 1
        if (self._offered - 1) % self._stride:
            return
        if self._count == len(self._camera):
            half = self._count // 2
            self._camera[:half] = self._camera[: 2 * half : 2]
            self._host[:half] = self._host[: 2 * half : 2]
            self._count = half
            self._stride *= 2
        camera0, host0 = self._origin
        self._camera[self._count] = camera_s - camera0
        self._host[self._count] = host_s - host0
        self._count += 1

    def summary(self) -> dict[str, Any]:
        """Return the fit for ``session.json`` (``fitted`` is False: too little to fit)."""
        info: dict[str, Any] = {
            "model": "host_timestamp = offset_s + rate * camera_timestamp (both in seconds)",
            "frames": self.frames,
        }
        camera = self._camera[: self._count]
        host = self._host[: self._count]
        span = float(camera.max() - camera.min()) if self._count else 0.0
        info["span_s"] = round(span, 3)
        if self._count < MIN_FIT_FRAMES or span < MIN_FIT_SPAN_S or self._origin is None:
            info["fitted"] = False
            return info
        rate, intercept = _envelope_fit(camera, host)
        residual_ms = (host - (intercept + rate * camera)) * 1e3
        camera0, host0 = self._origin
        info.update(
            {
                "fitted": True,
                "offset_s": host0 + intercept - rate * camera0,
                "rate": rate,
                "drift_ppm": round((rate - 1.0) * 1e6, 3),
                # Host arrival minus the fitted line: the transfer delay beyond the quickest one.
                "residual_ms": {
                    "p50": round(float(np.percentile(residual_ms, 50)), 4),
                    "p99": round(float(np.percentile(residual_ms, 99)), 4),
                    "max": round(float(residual_ms.max()), 4),
                    "min": round(float(residual_ms.min()), 4),
                },
            }
        )
        return info


def _envelope_fit(camera: np.ndarray, host: np.ndarray) -> tuple[float, float]:
    """Return rate and intercept of the line under every frame with the least mean delay."""
    # Frames arrive after the line, never before: it is the lower convex hull's edge above the
    # mean camera time, so late frames (a stalled stretch) cannot bend it.
    order = np.argsort(camera, kind="stable")
    x, y = camera[order], host[order]
    hull: list[int] = []
    for index in range(len(x)):
        while len(hull) >= 2 and _turns_clockwise(x, y, hull[-2], hull[-1], index):
            hull.pop()
        if hull and x[hull[-1]] == x[index]:
            if y[index] < y[hull[-1]]:
                hull[-1] = index  # the same camera time: the quicker arrival is the bound
            continue
        hull.append(index)
    if len(hull) < 2:
        return 1.0, float(np.min(host - camera))
    mean_x = float(np.mean(x))
    edge = next(i for i in range(len(hull) - 1) if x[hull[i + 1]] >= mean_x)
    left, right = hull[edge], hull[edge + 1]
    rate = float((y[right] - y[left]) / (x[right] - x[left]))
    return rate, float(y[left] - rate * x[left])


def _turns_clockwise(x: np.ndarray, y: np.ndarray, a: int, b: int, c: int) -> bool:
    """Return True when a -> b -> c does not turn left: b is not on the lower hull."""
    cross = (x[b] - x[a]) * (y[c] - y[a]) - (y[b] - y[a]) * (x[c] - x[a])
    return bool(cross <= 0)
