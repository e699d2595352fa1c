"""Live triangulation in the inference worker: pair the newest poses, triangulate, write.

docs/3d.md, "Pairing".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplabstream.core.pinhole import CalibrationError, PinholeCamera, read_calibration
from deeplabstream.core.timing import percentiles
from deeplabstream.spatial.triangulation.dlt import Triangulator
from deeplabstream.spatial.triangulation.files import POINTS3D_FILE, Points3dCsvWriter
from deeplabstream.spatial.triangulation.points import Points3D
from deeplabstream.spatial.triangulation.usable import check_calibration


@dataclass(frozen=True)
class TriangulationSpec:
    """What the worker needs to triangulate (picklable: paths and numbers only)."""

    calibration: Path
    cameras: tuple[str, ...]
    min_likelihood: float = 0.5
    max_pairing_ms: float = 20.0

    def load_cameras(self) -> list[PinholeCamera]:
        """Read the calibration and check its cameras can triangulate; CalibrationError if not."""
        calibrated = read_calibration(self.calibration)
        missing = [name for name in self.cameras if name not in calibrated]
        if missing:
            raise CalibrationError(
                f"{self.calibration}: no camera {', '.join(map(repr, missing))} (it has "
                f"{', '.join(calibrated)}): fix [Triangulation] CAMERAS or recalibrate"
            )
        cameras = [calibrated[name] for name in self.cameras]
        check_calibration(self.calibration, cameras)
        return cameras


@dataclass
class _Newest:
    time_s: float
    frame_index: int
    keypoints: np.ndarray  # (K, 3)
    fresh: bool = True  # not yet part of a triangulated (or skipped) set


@dataclass
class _Counts:
    sets_triangulated: int = 0
    sets_skipped_pairing: int = 0
    poses_unpaired: int = 0
    errors_px: list[float] = field(default_factory=list)  # median per set
    pairing_ms: list[float] = field(default_factory=list)


class LiveTriangulator:
    """The newest pose of each calibrated camera, triangulated into sets and ``points3d.csv``.

    ``file_label``: "" for a session's first analysis, ".run2" etc. for later ones.
    """

    def __init__(
        self,
        spec: TriangulationSpec,
        keypoints: tuple[str, ...],
        session_dir: Path,
        file_label: str = "",
    ) -> None:
        self.spec = spec
        self.keypoints = tuple(keypoints)
        self.triangulator = Triangulator(spec.load_cameras(), spec.min_likelihood)
        stem = Path(POINTS3D_FILE)
        self.path = Path(session_dir) / f"{stem.stem}{file_label}{stem.suffix}"
        self.writer = Points3dCsvWriter(self.path, self.keypoints, spec.cameras)
        self._newest: dict[str, _Newest] = {}
        self._counts = _Counts()

    @property
    def cameras(self) -> tuple[str, ...]:
        """The calibrated cameras, in the calibration's order of use."""
        return self.spec.cameras

    def add(self, camera: str, time_s: float, frame_index: int, keypoints: np.ndarray) -> None:
        """Keep the newest pose (K, 3) of ``camera`` (other cameras are ignored)."""
        if camera not in self.spec.cameras:
            return
        previous = self._newest.get(camera)
        if previous is not None and previous.fresh:
            self._counts.poses_unpaired += 1
        pose = np.asarray(keypoints, dtype=np.float64)[: len(self.keypoints)]
        self._newest[camera] = _Newest(float(time_s), int(frame_index), pose)

    def triangulate(self) -> Points3D | None:
        """Triangulate the newest set if it holds a pose not used yet; None when not done."""
        views = [self._newest.get(camera) for camera in self.spec.cameras]
        if any(view is None for view in views):
            return None
        present = [view for view in views if view is not None]
        if not any(view.fresh for view in present):
            return None
        times = [view.time_s for view in present]
        pairing_ms = (max(times) - min(times)) * 1e3
        if pairing_ms > self.spec.max_pairing_ms:
            if all(view.fresh for view in present):
                self._counts.sets_skipped_pairing += 1
                for view in present:
                    view.fresh = False
            return None
        for view in present:
            view.fresh = False
        result = self.triangulator.triangulate(np.stack([view.keypoints for view in present]))
        self.writer.write(result, [view.frame_index for view in present], max(times), pairing_ms)
        counts = self._counts
        counts.sets_triangulated += 1
        counts.pairing_ms.append(pairing_ms)
        if np.isfinite(result.error_px).any():
            counts.errors_px.append(float(np.nanmedian(result.error_px)))
        return Points3D(
            self.keypoints, result.xyz, result.error_px, result.ncams, max(times), pairing_ms / 1e3
        )

    def close(self) -> None:
        """Write and close ``points3d.csv``."""
        self.writer.close()

    def figures(self) -> dict[str, Any]:
        """For ``session.json``: what was triangulated, skipped, and how well."""
        counts = self._counts
        return {
            "points3d_file": self.path.name,
            "cameras": list(self.spec.cameras),
            "sets_triangulated": counts.sets_triangulated,
            "sets_skipped_pairing": counts.sets_skipped_pairing,
            "poses_unpaired": counts.poses_unpaired,
            "max_pairing_ms": self.spec.max_pairing_ms,
            "median_reprojection_error_px": _median(counts.errors_px),
            "median_pairing_ms": _median(counts.pairing_ms),
            "pairing_ms": percentiles(counts.pairing_ms),
            "file_error": self.writer.error,
        }


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None
