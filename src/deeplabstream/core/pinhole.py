"""Calibrated cameras: the pinhole model and Anipose's ``calibration.toml``. docs/3d.md."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from deeplabstream.core.errors import CalibrationError


def rodrigues_to_matrix(rotation: np.ndarray) -> np.ndarray:
    """Return the 3 x 3 rotation matrix of a Rodrigues vector (axis times angle, radians)."""
    vector = np.asarray(rotation, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    k = vector / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def matrix_to_rodrigues(matrix: np.ndarray) -> np.ndarray:
    """Return the Rodrigues vector of a 3 x 3 rotation matrix."""
    r = np.asarray(matrix, dtype=np.float64)
    cos_angle = np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)
    angle = math.acos(cos_angle)
    if angle < 1e-12:
        return np.zeros(3)
    if math.pi - angle < 1e-6:  # 180 degrees: the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(r) + 1) / 2, 0.0))
        signs = np.sign([r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]])
        if axis[0] > 0:
            axis[1] *= signs[0] or 1
            axis[2] *= signs[1] or 1
        else:
            axis[2] *= signs[2] or 1
        return axis / np.linalg.norm(axis) * angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return axis / (2 * math.sin(angle)) * angle


@dataclass(frozen=True)
class PinholeCamera:
    """One calibrated view (millimetres).

    ``size`` is (width, height) in pixels; ``distortions`` OpenCV's ``k1 k2 p1 p2 k3``;
    ``x_cam = R(rotation) @ X + translation``.
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    distortions: np.ndarray = field(default_factory=lambda: np.zeros(5))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        """Store the arrays as float64 of the right shapes."""
        shapes = {"matrix": (3, 3), "rotation": (3,), "translation": (3,)}
        for attribute, shape in shapes.items():
            value = np.asarray(getattr(self, attribute), dtype=np.float64).reshape(shape)
            object.__setattr__(self, attribute, value)
        distortions = np.zeros(5)
        given = np.asarray(self.distortions, dtype=np.float64).ravel()[:5]
        distortions[: len(given)] = given
        object.__setattr__(self, "distortions", distortions)
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    @classmethod
    def looking_at(
        cls,
        name: str,
        size: tuple[int, int],
        focal_px: float,
        position: Sequence[float],
        target: Sequence[float],
        up: Sequence[float] = (0.0, -1.0, 0.0),
    ) -> PinholeCamera:
        """Return a camera at ``position`` looking at ``target`` (world units), centred.

        ``up``: the world direction that should point up in the image.
        """
        eye, goal = np.asarray(position, float), np.asarray(target, float)
        forward = goal - eye
        forward /= np.linalg.norm(forward)
        down = -np.asarray(up, float)
        right = np.cross(down, forward)
        if np.linalg.norm(right) < 1e-9:
            raise ValueError(f"camera {name!r}: 'up' is parallel to the viewing direction")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])  # rows: the camera's axes in the world
        matrix = np.array([[focal_px, 0, (size[0] - 1) / 2], [0, focal_px, (size[1] - 1) / 2],
                           [0, 0, 1]])  # fmt: skip
        return cls(name, size, matrix, np.zeros(5), matrix_to_rodrigues(rotation),
                   -rotation @ eye)  # fmt: skip

    @property
    def rotation_matrix(self) -> np.ndarray:
        """R, world -> camera."""
        return rodrigues_to_matrix(self.rotation)

    @property
    def center(self) -> np.ndarray:
        """The camera's optical centre in world coordinates: ``-R.T @ t``."""
        return -self.rotation_matrix.T @ self.translation

    @property
    def projection(self) -> np.ndarray:
        """The 3 x 4 projection matrix ``K [R | t]`` (for undistorted pixels)."""
        return self.matrix @ np.hstack([self.rotation_matrix, self.translation[:, None]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) in the camera's frame (z: depth along the optical axis)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.rotation_matrix.T + self.translation

    def project(self, points: np.ndarray) -> np.ndarray:
        """Return pixel positions (..., 2) of world points (..., 3); NaN behind the camera."""
        camera = self.to_camera(points)
        z = camera[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = camera[..., 0] / z, camera[..., 1] / z
        k1, k2, p1, p2, k3 = self.distortions
        if np.any(self.distortions):
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
            x, y = (
                x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
            )
        fx, fy, cx, cy = self.matrix[0, 0], self.matrix[1, 1], self.matrix[0, 2], self.matrix[1, 2]
        pixels = np.stack([fx * x + cx, fy * y + cy], axis=-1)
        pixels[z <= 0] = np.nan
        return pixels

    def to_toml_table(self) -> dict[str, Any]:
        """Return this camera as Anipose writes it (a ``[cam_N]`` table)."""
        return {
            "name": self.name,
            "size": list(self.size),
            "matrix": self.matrix.tolist(),
            "distortions": self.distortions.tolist(),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }


def camera_problems(camera: PinholeCamera) -> list[str]:
    """Return what makes one calibrated camera unusable, in words (empty: nothing found)."""
    problems = []
    if min(camera.size) <= 0:
        problems.append(f"size {list(camera.size)}: a frame size must be positive")
    arrays = {
        "matrix": camera.matrix,
        "distortions": camera.distortions,
        "rotation": camera.rotation,
        "translation": camera.translation,
    }
    not_finite = [name for name, values in arrays.items() if not np.all(np.isfinite(values))]
    if not_finite:
        return [*problems, f"non-finite numbers (nan or inf) in {', '.join(not_finite)}"]
    fx, fy = camera.matrix[0, 0], camera.matrix[1, 1]
    if fx <= 0 or fy <= 0:
        problems.append(f"focal lengths fx = {fx:g} px, fy = {fy:g} px: both must be positive")
    if not np.allclose(camera.matrix[2], (0.0, 0.0, 1.0)):
        problems.append(f"matrix row 3 is {camera.matrix[2].tolist()}, expected [0, 0, 1]")
    rotation_problem = _rotation_problem(camera.rotation_matrix)
    if rotation_problem is not None:
        problems.append(rotation_problem)
    return problems


def _rotation_problem(matrix: np.ndarray) -> str | None:
    """Return why a 3 x 3 matrix is not a rotation (singular, not orthonormal, a mirror)."""
    deviation = float(np.abs(matrix @ matrix.T - np.eye(3)).max())
    determinant = float(np.linalg.det(matrix))
    if deviation > ROTATION_TOLERANCE or abs(determinant - 1.0) > ROTATION_TOLERANCE:
        return (
            f"rotation is not a rotation matrix (R R^T differs from I by {deviation:.3g}, "
            f"det R = {determinant:.3g}; a rotation has 0 and 1)"
        )
    return None


#: How far ``R R^T`` and ``det R`` of a rotation written as a matrix may be from I and 1
#: (a file written with 6 to 9 significant digits is well within it).
ROTATION_TOLERANCE = 1e-4


def _rotation_vector(values: Any, where: str) -> np.ndarray:
    """Return the Rodrigues vector of a file's ``rotation`` (a vector or a rotation matrix)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size != 9:
        return array
    matrix = array.reshape(3, 3)
    problem = _rotation_problem(matrix) if np.all(np.isfinite(matrix)) else "non-finite rotation"
    if problem is not None:
        raise CalibrationError(
            f"{where}: {problem}; calibrate again with 'deeplabstream-calibrate'"
        )
    return matrix_to_rodrigues(matrix)


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as TOML writes it; refuse nan and inf (a broken calibration) here."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} to a calibration file ({where})")
    if not isinstance(value, bool | int | float | str | list):
        raise TypeError(f"cannot write {type(value).__name__} to a calibration file ({where})")
    return value


def write_calibration(
    path: Path, cameras: Sequence[PinholeCamera], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write Anipose's ``calibration.toml`` atomically."""
    document: dict[str, Any] = {}
    for index, camera in enumerate(cameras):
        table = f"cam_{index}"
        document[table] = {
            key: _plain(value, f"[{table}] {key}") for key, value in camera.to_toml_table().items()
        }
    if metadata:
        document["metadata"] = {
            key: _plain(value, f"[metadata] {key}") for key, value in metadata.items()
        }
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(tomli_w.dumps(document), encoding="utf-8")
    temporary.replace(path)


def read_calibration(path: Path) -> dict[str, PinholeCamera]:
    """Read an Anipose ``calibration.toml``: camera name -> :class:`PinholeCamera`.

    Raises :class:`CalibrationError` naming the file, table and key.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(
            f"{path}: calibration file not found (make one with 'deeplabstream-calibrate')"
        ) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CalibrationError(f"{path}: not a calibration.toml ({error})") from None
    cameras: dict[str, PinholeCamera] = {}
    for table_name, table in document.items():
        if table_name == "metadata" or not isinstance(table, dict):
            continue
        try:
            camera = PinholeCamera(
                str(table.get("name", table_name)),
                tuple(table["size"]),
                np.asarray(table["matrix"], dtype=np.float64),
                np.asarray(table.get("distortions", [0.0] * 5), dtype=np.float64),
                _rotation_vector(table["rotation"], f"{path}: [{table_name}]"),
                np.asarray(table["translation"], dtype=np.float64),
            )
        except KeyError as missing:
            raise CalibrationError(f"{path}: [{table_name}] has no {missing.args[0]}") from None
        except (TypeError, ValueError) as error:
            raise CalibrationError(f"{path}: [{table_name}] is malformed ({error})") from None
        if camera.name in cameras:
            raise CalibrationError(f"{path}: camera name {camera.name!r} appears twice")
        cameras[camera.name] = camera
    if len(cameras) < 1:
        raise CalibrationError(f"{path}: no [cam_N] table: not a calibration.toml")
    return cameras


def read_calibration_metadata(path: Path) -> dict[str, Any]:
    """Return the ``[metadata]`` table of a calibration file (empty when it has none)."""
    document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    metadata = document.get("metadata", {})
    return dict(metadata) if isinstance(metadata, dict) else {}
