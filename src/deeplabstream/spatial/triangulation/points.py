"""What a triangulated set offers an experiment: :class:`Points3D`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Points3D:
    """The 3D keypoints of one synchronised set of calibrated cameras.

    ``xyz`` (K, 3) in mm (floor z = 0, z up), NaN where not triangulated; ``error_px`` and ``ncams``
    per keypoint; ``time_s`` the newest frame time; ``pairing_s`` the views' spread in seconds.
    """

    names: tuple[str, ...]
    xyz: np.ndarray
    error_px: np.ndarray
    ncams: np.ndarray
    time_s: float
    pairing_s: float

    def __post_init__(self) -> None:
        """Check that the arrays fit the names."""
        count = len(self.names)
        xyz = np.asarray(self.xyz, dtype=np.float64)
        if xyz.shape != (count, 3):
            raise ValueError(f"xyz must have shape ({count}, 3) for {count} names, not {xyz.shape}")
        for attribute in ("error_px", "ncams"):
            value = np.asarray(getattr(self, attribute))
            if value.shape != (count,):
                raise ValueError(f"{attribute} must have shape ({count},), not {value.shape}")
            object.__setattr__(self, attribute, value)
        object.__setattr__(self, "xyz", xyz)
        object.__setattr__(self, "names", tuple(self.names))

    def index(self, name: str) -> int:
        """Return the row of keypoint ``name``; ``KeyError`` naming the keypoints there are."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"no triangulated keypoint {name!r}; the keypoints are {', '.join(self.names)}"
            ) from None

    def point(self, name: str) -> tuple[float, float, float] | None:
        """``(x, y, z)`` of keypoint ``name`` in mm, or None where it was not triangulated."""
        x, y, z = self.xyz[self.index(name)]
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            return None
        return (float(x), float(y), float(z))
