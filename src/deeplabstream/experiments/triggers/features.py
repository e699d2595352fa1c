"""IBL-style features: motion energy in a region of the image, and pupil diameter.

Its design: docs/experiments-internals.md (`experiments.triggers.features`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, Unpack

import numpy as np

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import HoldOptions, LossHold, Trigger, check_number
from deeplabstream.experiments.triggers.geometry import Rectangle, Shape
from deeplabstream.experiments.triggers.kinds import (
    HOLD,
    TriggerKind,
    identifier,
    keypoint_names,
    number,
    roi,
)

PUPIL_KEYPOINTS: tuple[str, str, str, str] = (
    "pupil_top_r",
    "pupil_right_r",
    "pupil_bottom_r",
    "pupil_left_r",
)
"""IBL's pupil keypoints, in the order :func:`pupil_diameter` takes: top, right, bottom, left."""

IBL_PUPIL_MIN_LIKELIHOOD = 0.9
_SQRT2 = math.sqrt(2.0)


def as_gray(frame: np.ndarray) -> np.ndarray:
    """Return a uint8 grayscale image: (H, W) as is, (H, W, 3) BGR converted, (H, W, 1) squeezed."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        import cv2

        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim != 2:
        raise ValueError(f"expected a grayscale (H, W) or BGR (H, W, 3) frame, not {frame.shape}")
    return frame


def roi_slices(roi: Rectangle | tuple[float, ...], shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Row and column slices of the pixels whose centres lie in ``roi``, clipped to the frame."""
    rect = roi if isinstance(roi, Rectangle) else Rectangle(*roi)
    height, width = shape[:2]
    x0, x1 = max(0, math.ceil(rect.x_min)), min(width, math.floor(rect.x_max) + 1)
    y0, y1 = max(0, math.ceil(rect.y_min)), min(height, math.floor(rect.y_max) + 1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"ROI {rect} holds no pixel of a {width}x{height} frame")
    return slice(y0, y1), slice(x0, x1)


def motion_energy(
    previous: np.ndarray, current: np.ndarray, roi: Rectangle | tuple[float, ...]
) -> float:
    """Mean absolute difference of two grayscale frames inside ``roi`` (grey levels).

    Parameters
    ----------
    previous, current
        Consecutive frames of one camera, uint8, (H, W) (BGR frames are converted to gray).
    roi
        A :class:`~experiments.triggers.geometry.Rectangle` or ``(x_min, y_min, x_max, y_max)``
        in frame pixels.
    """
    previous, current = as_gray(previous), as_gray(current)
    if previous.shape != current.shape:
        raise ValueError(f"frames differ in size: {previous.shape} and {current.shape}")
    rows, cols = roi_slices(roi, current.shape)
    before = previous[rows, cols].astype(np.int16)
    return float(np.abs(current[rows, cols].astype(np.int16) - before).mean())


def pupil_diameter(
    points: np.ndarray, min_likelihood: float = IBL_PUPIL_MIN_LIKELIHOOD
) -> float | np.ndarray:
    """IBL's pupil diameter (docs/experiments-internals.md), in the points' units (pixels).

    Parameters
    ----------
    points
        Shape (..., 4, 3): x, y, likelihood of top, right, bottom, left (:data:`PUPIL_KEYPOINTS`
        order), or (..., 4, 2) without likelihoods (nothing dropped).
    min_likelihood
        Points with a lower likelihood are dropped (IBL: 0.9).

    Returns
    -------
    float or numpy.ndarray
        A float for one frame's (4, C) points, else an array of shape ``points.shape[:-2]``.
        NaN where no estimate is available.
    """
    values = np.asarray(points, dtype=np.float64)
    if values.ndim < 2 or values.shape[-2] != 4 or values.shape[-1] not in (2, 3):
        raise ValueError(f"points must have shape (..., 4, 3) or (..., 4, 2), not {values.shape}")
    xy = values[..., :2].copy()
    if values.shape[-1] == 3:
        xy[~(values[..., 2] >= min_likelihood)] = np.nan
    top, right, bottom, left = (xy[..., i, :] for i in range(4))

    def distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.hypot(p[..., 0] - q[..., 0], p[..., 1] - q[..., 1])

    estimates = np.stack(
        [
            distance(top, bottom),
            distance(left, right),
            _SQRT2 * distance(top, left),
            _SQRT2 * distance(top, right),
            _SQRT2 * distance(bottom, left),
            _SQRT2 * distance(bottom, right),
        ],
        axis=-1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as intended
        diameter = np.nanmedian(estimates, axis=-1)
    return float(diameter) if diameter.ndim == 0 else diameter


class MotionEnergyAbove(Trigger):
    """True while the motion energy in ``roi`` between consecutive analysed frames > threshold.

    Needs :attr:`Observation.frame`; an observation without a frame (or of another size) is
    False and restarts the difference. The first frame is False (nothing to compare).
    """

    reads: ClassVar[tuple[str, ...]] = ("frame",)  # besides keypoints

    kind = "motion_energy_above"

    def __init__(
        self, roi: Rectangle | tuple[float, ...], threshold: float, camera: str | None = None
    ) -> None:
        super().__init__(camera)
        self.roi = roi if isinstance(roi, Rectangle) else Rectangle(*roi)
        self.threshold = check_number("threshold", threshold, 0.0)
        self.forget()

    def forget(self) -> None:
        self._previous: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None
        self.last_energy: float | None = None

    def step(self, obs: Observation) -> bool:
        if obs.frame is None:
            self._previous, self.last_energy = None, None
            return False
        gray = as_gray(obs.frame)
        rows, cols = roi_slices(self.roi, gray.shape)
        crop = gray[rows, cols].astype(np.int16)  # a copy: the frame's buffer gets reused
        previous, self._previous = self._previous, crop
        same_size = self._shape == gray.shape
        self._shape = gray.shape
        if previous is None or not same_size:
            self.last_energy = None
            return False
        self.last_energy = float(np.abs(crop - previous).mean())
        return self._holds(self.last_energy)

    def _holds(self, energy: float) -> bool:
        return energy > self.threshold

    def params(self) -> dict[str, Any]:
        return {"roi": str(self.roi), "threshold": self.threshold}

    def shapes(self) -> list[Shape]:
        """Return the ROI."""
        return [self.roi]


class MotionEnergyBelow(MotionEnergyAbove):
    """True while the motion energy in ``roi`` is known and below ``threshold``."""

    kind = "motion_energy_below"

    def _holds(self, energy: float) -> bool:
        return energy < self.threshold


class PupilDiameterAbove(Trigger):
    """True while IBL's pupil diameter (:func:`pupil_diameter`) is above ``threshold``.

    Parameters
    ----------
    threshold
        Pixels, or mm with ``mm_per_px``.
    keypoints
        The top, right, bottom and left pupil keypoints (default IBL's names).
    min_likelihood
        Dropping rule (IBL: 0.9).
    mm_per_px, camera
        Calibration; the camera to read.
    hold_s
        While no diameter estimate is available, the state is kept this long after the last
        estimate (seconds of frame time); then it is false.
    """

    kind = "pupil_above"

    def __init__(
        self,
        threshold: float,
        keypoints: tuple[str, str, str, str] = PUPIL_KEYPOINTS,
        min_likelihood: float = IBL_PUPIL_MIN_LIKELIHOOD,
        mm_per_px: float | None = None,
        camera: str | None = None,
        **options: Unpack[HoldOptions],
    ) -> None:
        super().__init__(camera)
        # Not the base's loss_hold: "seen" here is "a diameter could be estimated", which
        # step finds out anyway (the base would compute the diameter twice).
        self._loss = LossHold.of(options)
        self.threshold = check_number("threshold", threshold, 0.0)
        if len(keypoints) != 4:
            raise ValueError(f"keypoints must name top, right, bottom, left, not {keypoints!r}")
        self.keypoints = tuple(keypoints)
        self.min_likelihood = check_number("min_likelihood", min_likelihood, 0.0)
        self.mm_per_px = (
            None if mm_per_px is None else check_number("mm_per_px", mm_per_px, 0.0, strict=True)
        )
        self.last_diameter: float | None = None

    def forget(self) -> None:
        self.last_diameter = None
        self._loss.reset()

    def step(self, obs: Observation) -> bool:
        rows = [obs.index(name) for name in self.keypoints]
        diameter = float(pupil_diameter(obs.keypoints[rows], self.min_likelihood))
        if self.mm_per_px is not None:
            diameter *= self.mm_per_px
        if math.isnan(diameter):
            self.holding = self._loss.bridges(obs.time_s)
            if self.holding:
                return self.state  # no estimate for a moment: the state holds
            self.last_diameter = None
            return False
        self._loss.seen(obs.time_s)
        self.holding = False
        self.last_diameter = diameter
        return self._holds(diameter)

    def end_hold(self) -> None:
        """Decide the next frame without an estimate at once."""
        self._loss.reset()

    @property
    def hold_s(self) -> float:
        """Seconds a frame without a diameter estimate keeps the state."""
        return self._loss.hold_s

    def _holds(self, diameter: float) -> bool:
        return diameter > self.threshold

    def keypoints_read(self) -> tuple[str, ...]:
        """Return the four pupil keypoints."""
        return self.keypoints

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "threshold": self.threshold,
            "keypoints": ",".join(self.keypoints),
            "min_likelihood": self.min_likelihood,
            "hold_s": self.hold_s,
        }
        if self.mm_per_px is not None:
            params["mm_per_px"] = self.mm_per_px
        return params


class PupilDiameterBelow(PupilDiameterAbove):
    """True while IBL's pupil diameter is known and below ``threshold``."""

    kind = "pupil_below"

    def _holds(self, diameter: float) -> bool:
        return diameter < self.threshold


def _four_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 4 or not all(names):
        raise ValueError
    return names


_MOTION_ENERGY_PARAMETERS = {
    "roi": roi(required=True),
    "threshold": number(required=True, unit="grey levels"),
    "camera": identifier(),
}
_PUPIL_PARAMETERS = {
    "threshold": number(required=True, unit="px, or mm with mm_per_px"),
    "keypoints": keypoint_names(_four_names, "4 keypoint names 'TOP,RIGHT,BOTTOM,LEFT'"),
    "min_likelihood": number(maximum=1.0),
    "mm_per_px": number(strict=True),
    "camera": identifier(),
    # How long a frame without a diameter estimate keeps the state (LossHold).
    "hold_s": HOLD,
}

#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "motion_energy_above",
        MotionEnergyAbove,
        "IBL motion energy (mean absolute grey-level change between frames) in `ROI` above "
        "`THRESHOLD`. Needs the frame image.",
        _MOTION_ENERGY_PARAMETERS,
    ),
    TriggerKind(
        "motion_energy_below",
        MotionEnergyBelow,
        "Motion energy in `ROI` below `THRESHOLD`.",
        _MOTION_ENERGY_PARAMETERS,
    ),
    TriggerKind(
        "pupil_above",
        PupilDiameterAbove,
        "IBL pupil diameter (median of six estimates from four keypoints) above `THRESHOLD`.",
        _PUPIL_PARAMETERS,
    ),
    TriggerKind(
        "pupil_below",
        PupilDiameterBelow,
        "Pupil diameter below `THRESHOLD`.",
        _PUPIL_PARAMETERS,
    ),
)
