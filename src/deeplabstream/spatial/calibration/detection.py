"""Finding the ChArUco board in one frame: its inner corners' pixels and their ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplabstream.hardware.simulator.board import BOARD, BoardSpec, opencv_board

MIN_CORNERS = 6
"""Fewer corners than this are not used: a pose from them is too poorly determined."""


@dataclass(frozen=True)
class BoardDetection:
    """The board's corners found in one frame: ``ids`` (n,) and sub-pixel ``pixels`` (n, 2)."""

    ids: np.ndarray
    pixels: np.ndarray

    def board_points(self, spec: BoardSpec = BOARD) -> np.ndarray:
        """Return the detected corners in the board's frame, (n, 3) mm."""
        return spec.corner_points()[self.ids]


class BoardDetector:
    """Detect the board in frames; under ``min_corners`` corners, or all on one line: not found."""

    def __init__(self, spec: BoardSpec = BOARD, min_corners: int = MIN_CORNERS) -> None:
        import cv2

        self.spec = spec
        self.min_corners = min_corners
        self._board = opencv_board(spec)
        self._detector: Any = cv2.aruco.CharucoDetector(self._board)

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        """Return the board's corners in ``image`` (grey or BGR uint8), or None if not found."""
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        corners, ids, _, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) < self.min_corners:
            return None
        if self._board.checkCharucoCornersCollinear(ids):
            return None
        return BoardDetection(
            np.asarray(ids, dtype=np.int64).reshape(-1),
            np.asarray(corners, dtype=np.float64).reshape(-1, 2),
        )
