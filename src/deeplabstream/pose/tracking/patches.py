"""What an animal looks like: a small grey patch of the frame cut along its body by its keypoints.

Any model's keypoints, 2D image geometry only. Design: docs/pose-internals.md,
"pose.tracking.patches".
"""

from __future__ import annotations

import math

import numpy as np

PATCH_SIZE = (24, 8)
"""(width along the body, height across) of a patch, in patch pixels."""
ALONG_MARGIN = 0.45
"""Margin of the patch beyond the template's ends, as a fraction of the template's length."""
ACROSS_MARGIN = 0.12
"""Margin of the patch beyond the template's sides, as a fraction of the template's length."""
MIN_KEYPOINTS = 2
"""Seen keypoints below which a track counts as not seen (two fix a rotation and a shift)."""
MIN_SHARE_SEEN = 0.9
"""Share of the keypoints (and at least 3) a patch needs: a fragment of an animal (a merged
detection split in two) is placed badly by its few keypoints."""
MAX_MISFIT = 0.12
"""Largest root-mean-square distance of the keypoints from the fitted template, as a share of
its length: more is a chimera or a badly bent body, whose patch would be misplaced."""
_SUPERSAMPLE = 2
FLOOR_PERCENTILE = 75
"""The percentile of a patch's pixels taken as the background's level."""
FLOOR_SHARE = 0.8
"""Pixels brighter than this share of the background's level are background (set to 1)."""


def feature_count(patch_size: tuple[int, int] = PATCH_SIZE) -> int:
    """Return the length of a patch's feature vector: its pixels and the size."""
    return patch_size[0] * patch_size[1] + 1


class BodyPatches:
    """Cut patches of animals aligned to their bodies, from their keypoints.

    ``patch_size`` is (width, height) in pixels.
    """

    def __init__(
        self, keypoints: int, min_likelihood: float = 0.1, patch_size: tuple[int, int] = PATCH_SIZE
    ) -> None:
        import cv2  # only where patches are cut: the settings loader never needs it

        self._cv2 = cv2
        self.keypoints = keypoints
        self.min_likelihood = float(min_likelihood)
        self.patch_size = patch_size
        self.min_keypoints = max(3, math.ceil(MIN_SHARE_SEEN * keypoints))
        self.template: np.ndarray | None = None  # (K, 2), centred, long axis along x
        self._template_points: list[tuple[float, float]] = []  # the same, as plain floats
        self._length = 0.0
        self._floor_rank = patch_size[0] * patch_size[1] * FLOOR_PERCENTILE // 100
        self._origin = (0.0, 0.0)  # template coordinates of the patch's corner
        self._step = (1.0, 1.0)  # template pixels per supersampled patch pixel (x, y)

    @property
    def features(self) -> int:
        """The length of a feature vector."""
        return feature_count(self.patch_size)

    def set_template(self, instance: np.ndarray) -> bool:
        """Take ``instance`` (K, 3) as the template if every keypoint is seen; say whether."""
        if self.template is not None:
            return True
        if not self._seen(instance).all():
            return False
        points = np.asarray(instance[:, :2], np.float64)
        points = points - points.mean(axis=0)
        _, _, rows = np.linalg.svd(points, full_matrices=False)
        axis = rows[0]
        if points[0] @ axis < 0:  # keypoint 0 (usually the nose) on the +x side
            axis = -axis
        turn = np.array([[axis[0], axis[1]], [-axis[1], axis[0]]])
        template = points @ turn.T
        length = float(np.ptp(template[:, 0]))
        half_width = float(np.abs(template[:, 1]).max()) + ACROSS_MARGIN * length
        if not length > 0:
            return False
        x0 = float(template[:, 0].min()) - ALONG_MARGIN * length
        x1 = float(template[:, 0].max()) + ALONG_MARGIN * length
        width, height = self.patch_size
        self._origin = (x0, -half_width)
        self._step = (
            (x1 - x0) / (width * _SUPERSAMPLE),
            2.0 * half_width / (height * _SUPERSAMPLE),
        )
        self.template = template
        self._template_points = [(float(u), float(v)) for u, v in template]
        self._length = length
        return True

    def _seen(self, instance: np.ndarray) -> np.ndarray:
        """(K,) which keypoints of ``instance`` are seen."""
        xy = instance[:, :2]
        return np.isfinite(xy).all(axis=1) & (instance[:, 2] >= self.min_likelihood)

    def cut(self, frame: np.ndarray, instance: np.ndarray) -> np.ndarray | None:
        """Return the feature vector of the animal ``instance`` (K, 3) in ``frame``, or None.

        None before a template is set, with too few keypoints seen (:attr:`min_keypoints`) or a bad
        fit (:data:`MAX_MISFIT`). ``frame`` is (H, W, 3) BGR or (H, W) uint8. Returns
        (:attr:`features`,) float32: the normalised patch row by row, then the size.
        """
        template = self.template
        if template is None:
            return None
        fit = self._fit(instance.tolist(), self._template_points)
        if fit is None:
            return None
        centre, reference_centre, cos, sin, scale = fit
        return self._sample(frame, centre, reference_centre, cos, sin, scale)

    def _fit(
        self, keypoints: list[list[float]], template: list[tuple[float, float]]
    ) -> tuple[tuple[float, float], tuple[float, float], float, float, float] | None:
        """Fit the template onto the seen ``keypoints`` (K rows of x, y, likelihood).

        Returns the keypoints' centre, the template's (over the same keypoints), the rotation's
        cos and sin and the scale; None with too few keypoints seen or a bad fit.
        """
        # A few numbers per keypoint: plain floats cost a third of numpy calls here (twice a frame
        # per animal, on the loop).
        pairs = [
            (x, y, u, v)
            for (x, y, likelihood), (u, v) in zip(keypoints, template, strict=True)
            if likelihood >= self.min_likelihood and math.isfinite(x) and math.isfinite(y)
        ]
        count = len(pairs)
        if count < self.min_keypoints:
            return None
        cx, cy = sum(p[0] for p in pairs) / count, sum(p[1] for p in pairs) / count
        ru, rv = sum(p[2] for p in pairs) / count, sum(p[3] for p in pairs) / count
        # The least-squares rotation of the template onto the points: the angle of
        # sum(conj(t) * p) as complex numbers, t and p about their centres.
        dot = cross = spread = power = 0.0
        for x, y, u, v in pairs:
            px, py, tx, ty = x - cx, y - cy, u - ru, v - rv
            dot += tx * px + ty * py
            cross += tx * py - ty * px
            spread += tx * tx + ty * ty
            power += px * px + py * py
        norm = math.hypot(dot, cross)
        if not (norm > 0 and spread > 0):
            return None
        scale = norm / spread
        # What the fit leaves unexplained: sum |p|^2 - scale * norm (least squares).
        misfit = (power - scale * norm) / count
        if misfit > (MAX_MISFIT * self._length) ** 2:
            return None
        return (cx, cy), (ru, rv), dot / norm, cross / norm, scale

    def _sample(
        self,
        frame: np.ndarray,
        centre: tuple[float, float],
        reference_centre: tuple[float, float],
        cos: float,
        sin: float,
        scale: float,
    ) -> np.ndarray:
        """Warp the patch out of ``frame`` and return its features (see :meth:`cut`)."""
        cv2 = self._cv2
        width, height = self.patch_size
        step_x, step_y = self._step
        # Patch pixel (j, i) (supersampled, pixel centres) is template point origin + step *
        # (j + 0.5, i + 0.5); a template point u lies at centre + R (u - reference_centre).
        u0 = self._origin[0] + 0.5 * step_x - reference_centre[0]
        v0 = self._origin[1] + 0.5 * step_y - reference_centre[1]
        matrix = np.array(
            [
                [cos * step_x, -sin * step_y, centre[0] + cos * u0 - sin * v0],
                [sin * step_x, cos * step_y, centre[1] + sin * u0 + cos * v0],
            ]
        )
        size = (width * _SUPERSAMPLE, height * _SUPERSAMPLE)
        fine = cv2.warpAffine(
            frame,
            matrix,
            size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if fine.ndim == 3:
            fine = cv2.cvtColor(fine, cv2.COLOR_BGR2GRAY)
        patch = cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)
        out = np.empty(width * height + 1, np.float32)
        pixels = out[:-1]
        pixels[:] = patch.ravel()
        # The background's level: most of a patch is the floor around the animal. Relative to
        # it, brightness does not drift with the lighting; and the floor itself is flattened
        # to 1, so that no identity is learned from where an animal happened to stand.
        rank = self._floor_rank
        level = max(float(np.partition(pixels, rank)[rank]), 1.0)
        pixels /= level
        pixels[pixels > FLOOR_SHARE] = 1.0
        out[-1] = math.log(scale)
        return out
