"""A light in the image: true while a region is lit (an LED, a sync light, a lamp).

Its design: docs/experiments-internals.md (`experiments.triggers.light`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from deeplabstream.core.errors import ExperimentError
from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.base import Trigger, check_number
from deeplabstream.experiments.triggers.features import as_gray, roi_slices
from deeplabstream.experiments.triggers.geometry import Rectangle, Shape
from deeplabstream.experiments.triggers.kinds import (
    SECONDS,
    TriggerKind,
    identifier,
    number,
    roi,
)

BLOCK_PX = 8
#: The least difference of the off and on levels (grey levels) that counts as a light.
MIN_CONTRAST = 20.0
#: A block is "steady" in a frame whose level is within this fraction of its range of its
#: lowest or highest level; a light is steady in most frames (all but those a flash began or
#: ended in), a passing animal is not.
STEADY_BAND = 0.15
MIN_STEADY = 0.85
#: A light flashes again and again: at least this many switch-ons in the search (a passing
#: animal darkens a block once or twice).
MIN_SWITCH_ONS = 2
#: Neighbouring blocks join the region when their levels follow the best block's this closely.
MIN_CORRELATION = 0.9
#: Frames kept for the search (bounded memory for any frame rate).
MAX_SEARCH_FRAMES = 900
#: No light found after this many search periods: an error.
SEARCH_ROUNDS = 5
#: How fast the off and on levels follow the frames that are clearly off or on.
LEVEL_FOLLOW = 0.05


class LightNotFoundError(ExperimentError, ValueError):
    """No region of the image switched like a light; set the region by hand."""


class LightOn(Trigger):
    """True while ``roi`` (or the region found) is lit for at least ``threshold`` of a frame.

    Parameters
    ----------
    roi
        The light's region in frame pixels, or None to find it (docs/experiments-internals.md).
    threshold
        The lit fraction of a frame's exposure at which the light counts as on (0 < t <= 1).
        Low values see a flash in the first frame it touches.
    search_s
        Seconds of frame time spent learning the off and on levels (and finding the region).
    camera
        The camera to watch (needed with several cameras).
    """

    reads: ClassVar[tuple[str, ...]] = ("frame",)  # besides keypoints

    kind = "light"

    def __init__(
        self,
        roi: Rectangle | tuple[float, ...] | None = None,
        threshold: float = 0.1,
        search_s: float = 3.0,
        camera: str | None = None,
    ) -> None:
        super().__init__(camera)
        self.given_roi = None if roi is None else _as_rectangle(roi)
        self.threshold = check_number("threshold", threshold, 0.0, strict=True)
        if self.threshold > 1.0:
            raise ValueError(
                f"threshold is a fraction of the on level, 0 < t <= 1, not {threshold}"
            )
        self.search_s = check_number("search_s", search_s, 0.0, strict=True)
        self.forget()

    def forget(self) -> None:
        self.roi: Rectangle | None = self.given_roi
        self.off_level: float | None = None
        self.on_level: float | None = None
        self.level: float | None = None
        self.previous_level: float | None = None
        self.frame_gap = 1  # frames since the previous one this trigger saw (skipped: > 1)
        self._last_frame: int | None = None
        self._started_s: float | None = None
        self._blocks: list[np.ndarray] = []
        self._levels: list[float] = []  # the given region's levels during the search

    @property
    def searching(self) -> bool:
        """True until the region and its off and on levels are known."""
        return self.roi is None or self.off_level is None or self.on_level is None

    def lit_fraction(self, level: float | None) -> float | None:
        """Return the fraction of an exposure the light was on, from a region level (0 .. 1)."""
        if level is None or self.off_level is None or self.on_level is None:
            return None
        span = self.on_level - self.off_level
        return min(1.0, max(0.0, (level - self.off_level) / span))

    def step(self, obs: Observation) -> bool:
        if obs.frame is None:
            return False
        if self._started_s is None:
            self._started_s = obs.time_s
        if self.searching:
            self._search(obs)
            return False
        assert self.roi is not None
        rows, cols = roi_slices(self.roi, obs.frame.shape)
        self.previous_level = self.level
        self.frame_gap = obs.frame_index - self._last_frame if self._last_frame is not None else 1
        self._last_frame = obs.frame_index
        self.level = float(as_gray(np.ascontiguousarray(obs.frame[rows, cols])).mean())
        fraction = self.lit_fraction(self.level)
        assert fraction is not None
        self._follow_levels(fraction)
        return fraction >= self.threshold

    def _follow_levels(self, fraction: float) -> None:
        """Let the off and on levels follow slow changes of light (clearly off or on frames)."""
        assert self.level is not None and self.off_level is not None and self.on_level is not None
        if fraction <= 0.02:
            self.off_level += LEVEL_FOLLOW * (self.level - self.off_level)
        elif fraction >= 0.98:
            self.on_level += LEVEL_FOLLOW * (self.level - self.on_level)

    def _search(self, obs: Observation) -> None:
        assert obs.frame is not None and self._started_s is not None
        if self.given_roi is not None:
            rows, cols = roi_slices(self.given_roi, obs.frame.shape)
            self._levels.append(float(as_gray(np.ascontiguousarray(obs.frame[rows, cols])).mean()))
            del self._levels[:-MAX_SEARCH_FRAMES]
        else:
            self._blocks.append(block_means(as_gray(obs.frame)))
            del self._blocks[:-MAX_SEARCH_FRAMES]
        elapsed = obs.time_s - self._started_s
        if elapsed < self.search_s:
            return
        if self.given_roi is not None:
            self._learn_levels(np.asarray(self._levels))
        else:
            found = find_light(np.stack(self._blocks))
            if found is not None:
                self.roi, levels = found
                self._learn_levels(levels)
        if self.searching and elapsed >= self.search_s * SEARCH_ROUNDS:
            where = (
                f"in {self.given_roi}" if self.given_roi is not None else "anywhere in the image"
            )
            raise LightNotFoundError(
                f"light trigger: nothing switched on and off {where} in {elapsed:.1f} s of "
                f"frames (at least {MIN_CONTRAST:g} grey levels apart): check that the light "
                "is in the camera's view and flashing, or give its region (ROI)"
            )

    def _learn_levels(self, levels: np.ndarray) -> None:
        low, high = float(levels.min()), float(levels.max())
        if high - low < MIN_CONTRAST:
            return  # no flash seen yet: go on searching
        band = STEADY_BAND * (high - low)
        self.off_level = float(levels[levels <= low + band].mean())
        self.on_level = float(levels[levels >= high - band].mean())
        self._blocks, self._levels = [], []

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"threshold": self.threshold, "search_s": self.search_s}
        if self.given_roi is not None:
            params["roi"] = str(self.given_roi)
        return params

    def measurement(self) -> str:
        """Levels: now, in the frame seen before (``gap`` frames earlier), off and on."""
        if self.searching or self.level is None:
            return ""
        previous = self.previous_level if self.previous_level is not None else math.nan
        return (
            f"level={self.level:.3f} previous={previous:.3f} off={self.off_level:.3f} "
            f"on={self.on_level:.3f} gap={self.frame_gap}"
        )

    def shapes(self) -> list[Shape]:
        """Return the light's region, once known."""
        return [] if self.roi is None else [self.roi]


def block_means(gray: np.ndarray, block: int = BLOCK_PX) -> np.ndarray:
    """Mean grey level of each whole ``block`` x ``block`` tile of the image (float32)."""
    rows, cols = gray.shape[0] // block, gray.shape[1] // block
    tiles = gray[: rows * block, : cols * block].reshape(rows, block, cols, block)
    return tiles.mean(axis=(1, 3), dtype=np.float32)


def find_light(blocks: np.ndarray, block: int = BLOCK_PX) -> tuple[Rectangle, np.ndarray] | None:
    """Return the region of a light in frames of block means (T, rows, cols), with its levels.

    The best block switches with the largest contrast between two steady levels, lit in some
    frames and dark in others; its neighbours that follow it join. None: nothing qualifies.
    """
    low, high = blocks.min(axis=0), blocks.max(axis=0)
    contrast = high - low
    band = STEADY_BAND * np.maximum(contrast, 1e-6)
    near_low = blocks <= low + band
    near_high = blocks >= high - band
    steady = (near_low | near_high).mean(axis=0)
    lit = near_high.mean(axis=0)
    above = blocks > (low + high) / 2
    switch_ons = (above[1:] & ~above[:-1]).sum(axis=0)
    candidate = (
        (contrast >= MIN_CONTRAST)
        & (steady >= MIN_STEADY)
        & (lit > 0)
        & (lit < 0.9)
        & (switch_ons >= MIN_SWITCH_ONS)
    )
    if not candidate.any():
        return None
    score = np.where(candidate, contrast * steady, -1.0)
    best_row, best_col = (int(i) for i in np.unravel_index(int(np.argmax(score)), score.shape))
    best = blocks[:, best_row, best_col]
    chosen = [(best_row, best_col)]
    for row in range(max(0, best_row - 1), min(blocks.shape[1], best_row + 2)):
        for col in range(max(0, best_col - 1), min(blocks.shape[2], best_col + 2)):
            if (row, col) == (best_row, best_col) or not candidate[row, col]:
                continue
            if np.corrcoef(best, blocks[:, row, col])[0, 1] >= MIN_CORRELATION:
                chosen.append((row, col))
    rows = [row for row, _ in chosen]
    cols = [col for _, col in chosen]
    region = Rectangle(
        min(cols) * block,
        min(rows) * block,
        (max(cols) + 1) * block - 1,
        (max(rows) + 1) * block - 1,
    )
    # The region's level in each frame: the pixel-weighted mean of its blocks.
    levels = np.mean(
        [
            blocks[:, row, col]
            for row in range(min(rows), max(rows) + 1)
            for col in range(min(cols), max(cols) + 1)
        ],
        axis=0,
    )
    return region, levels


def _as_rectangle(roi: Rectangle | tuple[float, ...]) -> Rectangle:
    return roi if isinstance(roi, Rectangle) else Rectangle(*roi)


#: The trigger kinds of this module, by the names a config's KIND gives (registered by name
#: in :data:`~experiments.triggers.kinds.TRIGGERS`).
KINDS: tuple[TriggerKind, ...] = (
    TriggerKind(
        "light",
        LightOn,
        "A light in the image (an LED, a sync light) is on: the mean grey level of `ROI` is at "
        "least `THRESHOLD` (default 0.1) of the way from the region's off level to its on "
        "level, i.e. the light was on for that fraction of the frame's exposure. The levels are "
        "learnt in the first `SEARCH_S` seconds (default 3; false until then); without `ROI` "
        "the region is found then too: the 8 x 8 px blocks that switch between two steady "
        "levels again and again. The event log's detail gives the level, the previous frame's "
        "level and the off and on levels. Needs the frame image. Used by the latency self-test.",
        {
            "roi": roi(),
            "threshold": number(strict=True, maximum=1.0, unit="fraction of the on level"),
            "search_s": number(strict=True, unit=SECONDS),
            "camera": identifier(),
        },
    ),
)
