"""What a trigger sees at each pose update: one camera's keypoints for one analysed frame.

Time comes from the frames, coordinates are the camera's pixels; depth, prediction, ensembles
and paired cameras: docs/experiments-internals.md (`experiments.observation`).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

import numpy as np

from deeplabstream.core.errors import ExperimentError

# Re-exported: triggers read obs.points3d without knowing the triangulation package.
from deeplabstream.spatial.triangulation.points import Points3D as Points3D

Policy = Literal["missing", "hold"]
POLICIES: tuple[str, ...] = ("missing", "hold")
DEFAULT_MIN_LIKELIHOOD = 0.5
"""Likelihood below which a keypoint counts as not seen, unless a trigger says otherwise."""
DEFAULT_HOLD_S = 0.5
"""How long a keypoint trigger keeps its state while what it reads is not seen (seconds).

A pose model's likelihood dips below the threshold for a frame or a few while the animal is
where it was (motion blur, a paw over the snout): on the real clips of docs/experiments.md
("Short losses") the dips of a keypoint that stays put last 1 to 6 frames, 33 to 200 ms at
30 fps (DeepLabCut's open-field snout) and 4 to 32 ms at 250 fps (Lightning Pose's mirror
mouse), while a keypoint really out of sight (the head turned away) stays lost for about a
second. Half a second bridges every such dip with room to spare, and is still short beside
the seconds an animal spends in or out of a region, so a real exit is decided at most 0.5 s
late (and only when the keypoint is not seen: a keypoint seen leaving is decided at once).
"""
DEPTH_RADIUS_PX = 2
"""Default half-width of the window :meth:`Observation.depth_m` takes the median of (5 x 5 px)."""

DepthLookup = Callable[[float, float, int], float | None]
"""``lookup(x, y, radius) -> metres | None``: the depth under pixel (x, y) of one frame.

The median of the measured pixels within ``radius`` of (x, y) (a square window), as the
distance from the camera in metres; None where no pixel of the window has a measurement, (x, y)
lies outside the image, or the frame's depth is no longer held (the camera's depth ring keeps
about 2 s of frames, so look it up in the update the observation came in).
"""


class MissingKeypointError(ExperimentError, KeyError):
    """An experiment asked for a keypoint the pose model does not have: a setting to fix.

    Checked before a start (``live/session/preflight.py``) for every keypoint a trigger declares;
    met at run time only by code that names keypoints the check cannot see. The message names
    the keypoint and the model's keypoints; it is a user's mistake, not a bug (no traceback).
    """

    def __str__(self) -> str:
        """Return the message itself (KeyError would quote it)."""
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Observation:
    """One analysed frame of one camera: keypoints in frame pixels and the frame's own time.

    What a trigger reads (docs/plugins.md, "Triggers"):

    * :meth:`point` ``(name, min_likelihood=0.0)``: ``(x, y)`` of a keypoint, None when it is
      not seen (below ``min_likelihood``, or not finite). A lab's trigger kind is given the
      config's ``MIN_LIKELIHOOD`` already applied (a keypoint below it reads as None), so it
      calls ``obs.point(name)``;
    * :meth:`likelihood` ``(name)``: the model's confidence in it, 0 to 1;
    * :attr:`time_s` (the frame's own time, seconds: every duration is measured on it),
      :attr:`frame_index`, :attr:`camera`, :attr:`names` (the model's keypoints);
    * several animals: :attr:`animal_count`, :meth:`for_animal` ``(number)`` (the same frame as
      that animal alone; ``ANIMAL = N | any | each`` does this for a kind), :attr:`animals`
      (A, K, 3) and :meth:`identity_confidence_of`; :meth:`is_withheld` ``(name)``: whether a
      keypoint not shown was withheld by the identity step (unknown, not absent);
      :meth:`candidates` ``(name)``: where it may be, one point per unnamed animal's row;
    * :meth:`depth_m` (a depth camera), :meth:`predicted_point` (forward prediction),
      :attr:`frame` (the grey image, for image features), :attr:`pixels_per_mm`;
    * an ensemble of models (docs/ensembles.md): :meth:`spread` ``(name)`` (how far the
      models disagree, pixels), :attr:`members` (each model's values), :meth:`smoothed_point`
      (the causal Ensemble Kalman filter's position).

    Parameters
    ----------
    time_s
        The source frame's timestamp in seconds: the camera's clock when present, else the host
        clock at arrival. Never the wall-clock time of the experiment's own processing.
    camera
        The camera's name.
    frame_index
        The camera's frame index of the analysed frame.
    keypoints
        Shape (K, 3): x, y (pixels, x right, y down) and likelihood per keypoint.
    names
        The K keypoint names, in the order of ``keypoints`` (the same for every frame of a camera).
    frame
        The grayscale uint8 image (H, W) when a trigger needs image features, else None.
    host_time_s
        Host clock when the frame arrived (for the event log), when known.
    depth
        A :data:`DepthLookup` bound to this very frame's depth image, for a camera that has one
        (see :meth:`depth_m`); None for every other camera. Not compared, not shown.
    predicted
        Shape (K, 3), with forward prediction on (:mod:`experiments.prediction`): x, y where each
        keypoint is predicted to be at :attr:`predicted_time_s` (NaN where it cannot be
        predicted), and the measured likelihood. None when the experiment predicts nothing.
    lead_s
        With ``predicted``: how far ahead of :attr:`time_s` the prediction looks, seconds.
    animals
        Shape (A, K, 3) for a multi-animal model: row ``i`` is the animal with identity ``i``
        (animal number ``i + 1`` in configs), kept across frames by the tracker; all NaN where
        that animal is not seen in this frame. :attr:`keypoints` is then ``animals[0]``. None for
        a single-animal model.
    pixels_per_mm
        The camera's calibration (its ``PIXELS_PER_MM`` setting), for triggers that work in
        physical units (behaviour classifiers); None when the camera has none.
    identity_confidence
        Shape (A,) with :attr:`animals`: the probability (0 to 1) that row ``i`` is really
        animal ``i + 1`` (:mod:`pose.tracking.identities`); NaN where that animal is not seen. None
        for a single-animal model.
    ensemble_std
        Shape (K,), for a camera that runs an ensemble: each keypoint's spread across the
        models, pixels: the mean of the x and the y standard deviation of the models' positions
        (Lightning Pose's "ensemble std dev"), NaN where fewer than two models placed it. None
        for a camera that runs one model.
    members
        Shape (M, K, 3), for an ensemble: each of its M models' x, y and likelihood of the
        keypoints (in the ensemble's keypoint order). :attr:`keypoints` is their median (x, y)
        and mean likelihood. None for one model.
    smoothed
        Shape (K, 3), with ``[Pose] ENSEMBLE_SMOOTHING = causal``: the causal Ensemble Kalman
        filter's x, y of each keypoint (its value at this frame from this frame and the ones
        before) and the ensemble's likelihood. None otherwise.
    withheld
        Shape (K,) bool, from the identity step of a multi-animal camera: the keypoints of
        :attr:`keypoints` it withheld in this frame (NaN there) because it could not be sure
        they are this animal's (the animal unnamed, presumed under another, or a keypoint
        nearer another animal's track than its own: :mod:`pose.tracking.identities`). Unknown,
        not absent: a trigger keeps its state through them however long they last
        (:meth:`~experiments.triggers.base.Trigger.update`). None: nothing withheld.
    animals_withheld
        Shape (A, K) bool with :attr:`animals`: the same for every animal (row ``i`` is
        animal ``i + 1``'s); :meth:`for_animal` gives each animal's as its :attr:`withheld`.
    unnamed_rows
        Shape (U, K, 3), U >= 2: the rows, as found, of the animals the identity step left
        unnamed whole in this frame (:func:`unnamed_rows`); each unnamed animal is one of them
        when every one was found. Kept by :meth:`for_animal`; read by :meth:`candidates`.
    """

    time_s: float
    camera: str
    frame_index: int
    keypoints: np.ndarray
    names: tuple[str, ...]
    frame: np.ndarray | None = None
    host_time_s: float | None = None  # host clock when the frame arrived (for the event log)
    depth: DepthLookup | None = field(default=None, compare=False, repr=False)
    predicted: np.ndarray | None = field(default=None, compare=False, repr=False)
    lead_s: float | None = field(default=None, compare=False)
    animals: np.ndarray | None = field(default=None, compare=False, repr=False)
    pixels_per_mm: float | None = field(default=None, compare=False)
    identity_confidence: np.ndarray | None = field(default=None, compare=False, repr=False)
    ensemble_std: np.ndarray | None = field(default=None, compare=False, repr=False)
    members: np.ndarray | None = field(default=None, compare=False, repr=False)
    smoothed: np.ndarray | None = field(default=None, compare=False, repr=False)
    withheld: np.ndarray | None = field(default=None, compare=False, repr=False)
    animals_withheld: np.ndarray | None = field(default=None, compare=False, repr=False)
    unnamed_rows: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Check that the keypoints fit the names (a wrong model or config is caught here)."""
        keypoints = np.asarray(self.keypoints, dtype=np.float64)
        if keypoints.ndim != 2 or keypoints.shape[1] != 3:
            raise ValueError(f"keypoints must have shape (K, 3), not {keypoints.shape}")
        if keypoints.shape[0] != len(self.names):
            raise ValueError(
                f"{keypoints.shape[0]} keypoints but {len(self.names)} names {self.names}"
            )
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "names", tuple(self.names))
        if self.predicted is not None:
            predicted = np.asarray(self.predicted, dtype=np.float64)
            if predicted.shape != keypoints.shape:
                raise ValueError(
                    f"predicted keypoints must have the keypoints' shape {keypoints.shape}, "
                    f"not {predicted.shape}"
                )
            object.__setattr__(self, "predicted", predicted)
        if self.animals is not None:
            animals = np.asarray(self.animals, dtype=np.float64)
            if animals.ndim != 3 or animals.shape[1:] != keypoints.shape:
                raise ValueError(
                    f"animals must have shape (A, {keypoints.shape[0]}, 3), not {animals.shape}"
                )
            object.__setattr__(self, "animals", animals)
        if self.identity_confidence is not None:
            confidence = np.asarray(self.identity_confidence, dtype=np.float64)
            if self.animals is None or confidence.shape != (len(self.animals),):
                raise ValueError(
                    "identity_confidence must have one value per animal of animals, not "
                    f"shape {confidence.shape}"
                )
            object.__setattr__(self, "identity_confidence", confidence)
        self._check_withheld(keypoints.shape)
        self._check_ensemble(keypoints.shape)

    def _check_withheld(self, shape: tuple[int, ...]) -> None:
        """Check the identity step's masks against the keypoints' shape (K, 3) and the animals'."""
        if self.withheld is not None:
            withheld = np.asarray(self.withheld, dtype=bool)
            if withheld.shape != shape[:1]:
                raise ValueError(f"withheld must have shape ({shape[0]},), not {withheld.shape}")
            object.__setattr__(self, "withheld", withheld)
        if self.animals_withheld is not None:
            animals = np.asarray(self.animals_withheld, dtype=bool)
            if self.animals is None or animals.shape != self.animals.shape[:2]:
                raise ValueError(
                    "animals_withheld must have one row per animal of animals, not shape "
                    f"{animals.shape}"
                )
            object.__setattr__(self, "animals_withheld", animals)

    def _check_ensemble(self, shape: tuple[int, ...]) -> None:
        """Check the ensemble's arrays against the keypoints' shape (K, 3)."""
        if self.ensemble_std is not None:
            spread = np.asarray(self.ensemble_std, dtype=np.float64)
            if spread.shape != shape[:1]:
                raise ValueError(f"ensemble_std must have shape ({shape[0]},), not {spread.shape}")
            object.__setattr__(self, "ensemble_std", spread)
        if self.members is not None:
            members = np.asarray(self.members, dtype=np.float64)
            if members.ndim != 3 or members.shape[1:] != shape:
                raise ValueError(f"members must have shape (M, {shape[0]}, 3), not {members.shape}")
            object.__setattr__(self, "members", members)
        if self.smoothed is not None:
            smoothed = np.asarray(self.smoothed, dtype=np.float64)
            if smoothed.shape != shape:
                raise ValueError(
                    f"smoothed keypoints must have shape {shape}, not {smoothed.shape}"
                )
            object.__setattr__(self, "smoothed", smoothed)

    @property
    def animal_count(self) -> int:
        """How many animals the model can report (1 for a single-animal model)."""
        return 1 if self.animals is None else len(self.animals)

    def identity_confidence_of(self, number: int) -> float:
        """Return animal ``number``'s identity confidence (1-based); NaN when it has none.

        A single-animal model has no identities to confuse: 1.0 for its animal.
        """
        if self.identity_confidence is None:
            return 1.0 if self.animals is None else math.nan
        if not 1 <= number <= len(self.identity_confidence):
            return math.nan
        return float(self.identity_confidence[number - 1])

    def for_animal(self, number: int, min_identity_confidence: float = 0.0) -> Observation:
        """Return the same frame seen as animal ``number`` alone (1-based, as configs name animals).

        Every single-animal trigger reads the returned observation unchanged, which is how
        "animal 2 in zone A" is built. A single-animal model has only animal 1. Forward
        prediction applies to animal 1 only: the returned observation has no prediction for
        other animals. With ``min_identity_confidence``, an animal whose identity confidence is
        lower (or unknown) is returned as not seen (every keypoint NaN, likelihood 0), so
        triggers treat it as missing rather than act on what may be another animal.
        """
        if not 1 <= number <= self.animal_count:
            raise ValueError(
                f"camera {self.camera!r}: animal {number} asked for, but the model reports "
                f"{self.animal_count} animal(s) (animals are numbered from 1; set "
                "[Pose] MAX_ANIMALS for a multi-animal model)"
            )
        if min_identity_confidence > 0 and not (
            self.identity_confidence_of(number) >= min_identity_confidence
        ):
            unseen = np.full_like(self.keypoints, np.nan)
            unseen[:, 2] = 0.0
            return dataclasses.replace(
                self, keypoints=unseen, animals=None, predicted=None, lead_s=None,
                identity_confidence=None, ensemble_std=None, members=None, smoothed=None,
                withheld=None, animals_withheld=None, unnamed_rows=None,
            )  # fmt: skip
        withheld = None if self.animals_withheld is None else self.animals_withheld[number - 1]
        if self.animals is None or number == 1:
            return dataclasses.replace(
                self,
                animals=None,
                identity_confidence=None,
                withheld=self.withheld if withheld is None else withheld,
                animals_withheld=None,
            )
        return dataclasses.replace(
            self,
            keypoints=self.animals[number - 1],
            animals=None,
            predicted=None,
            lead_s=None,
            identity_confidence=None,
            ensemble_std=None,
            members=None,
            smoothed=None,
            withheld=withheld,
            animals_withheld=None,
        )

    def is_withheld(self, name: str) -> bool:
        """Whether keypoint ``name`` was withheld by the identity step (see :attr:`withheld`)."""
        if self.withheld is None:
            return False
        return bool(self.withheld[self.index(name)])

    def candidates(self, name: str, min_likelihood: float = 0.0) -> np.ndarray | None:
        """Return where keypoint ``name`` of this unnamed animal may be: (U, 2), one per row.

        None unless this animal is unnamed whole and every unnamed row has ``name`` seen (an
        unnamed animal not found could be anywhere). A decision that holds at every candidate
        holds for this animal, whichever row it is (a region's side: docs/experiments.md).
        """
        rows = self.unnamed_rows
        if rows is None or self.withheld is None or not self.withheld.all():
            return None
        points = rows[:, self.index(name)]
        if not (np.isfinite(points).all() and (points[:, 2] >= min_likelihood).all()):
            return None
        return points[:, :2]

    @property
    def predicted_time_s(self) -> float | None:
        """The frame time the predicted keypoints are for (None without prediction)."""
        return None if self.lead_s is None else self.time_s + self.lead_s

    def index(self, name: str) -> int:
        """Return the row of keypoint ``name``; ``KeyError`` naming the keypoints there are."""
        try:
            return self.names.index(name)
        except ValueError:
            raise MissingKeypointError(
                f"camera {self.camera!r} has no keypoint {name!r}; its keypoints are "
                f"{', '.join(self.names)}"
            ) from None

    def depth_m(self, x: float, y: float, radius: int = DEPTH_RADIUS_PX) -> float | None:
        """Distance from the camera (metres) under pixel (x, y) of this observation's frame.

        The median of the measured pixels in the (2 radius + 1)-pixel square around (x, y) (a
        depth camera reports 0, "not measured", for some pixels: those are left out). None when
        the camera has no depth image (:attr:`depth` is None), nothing around (x, y) was
        measured, (x, y) is outside the image, or the frame's depth is no longer held.
        """
        if self.depth is None:
            return None
        return self.depth(x, y, radius)

    def likelihood(self, name: str) -> float:
        """Return the likelihood of keypoint ``name`` (0 to 1: the model's confidence in it).

        Raises :class:`MissingKeypointError` (a ``KeyError``) naming the model's keypoints when
        it has no ``name``.
        """
        return float(self.keypoints[self.index(name), 2])

    def spread(self, name: str) -> float:
        """Return how far the ensemble's models disagree on keypoint ``name``, in pixels.

        The mean of the x and the y standard deviation of the models' positions (Lightning
        Pose's "ensemble std dev"; docs/ensembles.md): a few pixels where the models agree, tens
        where the keypoint is ambiguous. NaN where fewer than two models placed it.

        Raises
        ------
        ValueError
            When the camera runs one model (there is no spread: name several in MODEL_PATH).
        """
        row = self.index(name)
        if self.ensemble_std is None:
            raise ValueError(
                f"camera {self.camera!r} runs one pose model: the spread of its keypoints needs "
                "an ensemble; name several models in MODEL_PATH ([Pose] or the camera's own; "
                "docs/ensembles.md)"
            )
        return float(self.ensemble_std[row])

    def point(
        self,
        name: str,
        min_likelihood: float = 0.0,
        predicted: bool = False,
        *,
        smoothed: bool = False,
        max_ensemble_std: float | None = None,
    ) -> tuple[float, float] | None:
        """``(x, y)`` of keypoint ``name``, or None when not seen (policy ``"missing"``).

        A keypoint is not seen when its likelihood is below ``min_likelihood``, any of its
        values is not finite, or (with ``max_ensemble_std``, an ensemble's cameras only) the
        models' spread of it (:meth:`spread`) is larger or unknown. For the ``"hold"`` policy,
        which needs memory across frames, use a :class:`KeypointFilter`. ``predicted=True``
        reads the predicted position instead (see :meth:`predicted_point`), ``smoothed=True``
        the causal Ensemble Kalman filter's (:meth:`smoothed_point`).
        """
        x, y, likelihood = self._rows(predicted, smoothed)[self.index(name)]
        if not (likelihood >= min_likelihood and math.isfinite(x) and math.isfinite(y)):
            return None
        if max_ensemble_std is not None and not self.spread(name) <= max_ensemble_std:
            return None  # the models disagree (or too few placed it): not seen
        return (float(x), float(y))

    def smoothed_point(self, name: str, min_likelihood: float = 0.0) -> tuple[float, float] | None:
        """Where the causal Ensemble Kalman filter puts keypoint ``name`` at this frame, or None.

        None when the keypoint is not seen in this frame (likelihood below ``min_likelihood``)
        or the filter has no estimate of it yet. ``ValueError`` when the camera's ensemble is
        not smoothed (``[Pose] ENSEMBLE_SMOOTHING = causal`` with several models).
        """
        return self.point(name, min_likelihood, smoothed=True)

    def predicted_point(self, name: str, min_likelihood: float = 0.0) -> tuple[float, float] | None:
        """Where keypoint ``name`` is predicted to be at :attr:`predicted_time_s`, or None.

        None when the keypoint is not seen in this frame (likelihood below ``min_likelihood``)
        or cannot be predicted (not seen for the predictor's maximum gap). ``ValueError`` when
        the experiment predicts nothing (``PREDICT = off``).
        """
        return self.point(name, min_likelihood, predicted=True)

    def _rows(self, predicted: bool, smoothed: bool = False) -> np.ndarray:
        """Return the measured keypoints, or the predicted or smoothed ones (which must exist)."""
        if smoothed:
            if predicted:
                raise ValueError("read predicted or smoothed positions, not both")
            if self.smoothed is None:
                raise ValueError(
                    f"camera {self.camera!r}: smoothed positions were asked for, but its "
                    "keypoints are not smoothed; name several models in MODEL_PATH and set "
                    "[Pose] ENSEMBLE_SMOOTHING = causal (docs/ensembles.md), or read measured "
                    "positions"
                )
            return self.smoothed
        if not predicted:
            return self.keypoints
        if self.predicted is None:
            raise ValueError(
                f"camera {self.camera!r}: predicted positions were asked for, but the experiment "
                "predicts none; set PREDICT = constant-velocity or kalman in [Experiment] (or "
                "prediction= in Python), or read measured positions"
            )
        return self.predicted


def unnamed_rows(animals: np.ndarray, withheld: np.ndarray) -> np.ndarray | None:
    """Return the rows of ``animals`` (A, K, 3) withheld whole, as found; None below two.

    One unnamed animal alone is not decided on: the identity step doubted that very row.
    """
    whole = withheld.all(axis=1)
    return animals[whole] if np.count_nonzero(whole) >= 2 else None  # a copy: a mask indexes


class FilteredPoint(NamedTuple):
    """A keypoint after a :class:`KeypointFilter`: where, and whether it is a held position."""

    x: float
    y: float
    held: bool
    seen_time_s: float


class FilterOptions(TypedDict, total=False):
    """The keypoint filter's keywords, as a rule passes them on (:class:`KeypointFilter`).

    Declared once, with their one default each in :class:`KeypointFilter`; every keypoint
    trigger takes them as ``**options`` and hands them to its filter, so a new one is added
    here and in the filter alone.
    """

    min_likelihood: float
    policy: Policy
    hold_s: float
    max_ensemble_std: float | None


class KeypointFilter:
    """Likelihood threshold with a policy for keypoints that are not seen, kept across frames.

    The one declaration of the keypoint filter's parameters and their defaults: every keypoint
    trigger, the experiment's own filter and a lab's kind (wrapped) take these keywords
    (:class:`FilterOptions`).

    Parameters
    ----------
    min_likelihood
        Keypoints with a lower likelihood (or non-finite values) are not seen.
    policy
        ``"missing"``: a keypoint not seen is missing (None) in that frame. ``"hold"``: it stays
        where it was last seen, for at most ``hold_s`` seconds of frame time after that sighting;
        then it is missing.
    hold_s
        How long ``"hold"`` holds a position (seconds, >= 0). With ``"missing"`` the filter
        holds nothing; the trigger that reads it keeps its state that long instead
        (:class:`~experiments.triggers.base.LossHold`).
    max_ensemble_std
        A camera that runs an ensemble: a keypoint whose spread across the models
        (:meth:`Observation.spread`, pixels) is larger, or unknown, is not seen, with the same
        policy and hold as one below ``min_likelihood``. None: the spread is not looked at.
        On a camera that runs one model, reading a keypoint raises ValueError.

    The held state is per (camera, keypoint); :meth:`reset` forgets it. Time going backwards
    (a new replay) forgets the held position of that keypoint.
    """

    def __init__(
        self,
        min_likelihood: float = DEFAULT_MIN_LIKELIHOOD,
        policy: Policy = "missing",
        hold_s: float = DEFAULT_HOLD_S,
        max_ensemble_std: float | None = None,
    ) -> None:
        if not 0.0 <= min_likelihood <= 1.0:
            raise ValueError(f"min_likelihood must be in [0, 1], not {min_likelihood!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if not (hold_s >= 0.0 and math.isfinite(hold_s)):
            raise ValueError(f"hold_s must be a number of seconds >= 0, not {hold_s!r}")
        if max_ensemble_std is not None and not (
            max_ensemble_std > 0.0 and math.isfinite(max_ensemble_std)
        ):
            raise ValueError(
                f"max_ensemble_std must be a number of pixels > 0, not {max_ensemble_std!r}"
            )
        self.min_likelihood = float(min_likelihood)
        self.policy: Policy = policy
        self.hold_s = float(hold_s)
        self.max_ensemble_std = None if max_ensemble_std is None else float(max_ensemble_std)
        self._last_seen: dict[tuple[str, str, bool, bool], FilteredPoint] = {}

    def sees(
        self, obs: Observation, name: str, predicted: bool = False, smoothed: bool = False
    ) -> tuple[float, float] | None:
        """``(x, y)`` of the keypoint in this frame alone when it passes the filter, else None.

        The likelihood and the ensemble's spread, without the policy's memory.
        """
        return obs.point(
            name,
            self.min_likelihood,
            predicted,
            smoothed=smoothed,
            max_ensemble_std=self.max_ensemble_std,
        )

    def lookup(
        self, obs: Observation, name: str, predicted: bool = False, smoothed: bool = False
    ) -> FilteredPoint | None:
        """Return the keypoint after the policy, with whether it is held; None when missing.

        ``predicted=True``: its predicted position (:attr:`Observation.predicted`),
        ``smoothed=True``: the causal Ensemble Kalman filter's (:attr:`Observation.smoothed`),
        each held apart from the measured one.
        """
        seen = self.sees(obs, name, predicted, smoothed)
        if self.policy == "missing":
            return None if seen is None else FilteredPoint(*seen, False, obs.time_s)
        key = (obs.camera, name, predicted, smoothed)
        if seen is not None:
            point = FilteredPoint(*seen, False, obs.time_s)
            self._last_seen[key] = point
            return point
        last = self._last_seen.get(key)
        if last is None:
            return None
        age = obs.time_s - last.seen_time_s
        if age < 0.0:  # time went backwards: a new replay
            del self._last_seen[key]
            return None
        return last._replace(held=True) if age <= self.hold_s else None

    def point(
        self, obs: Observation, name: str, predicted: bool = False, smoothed: bool = False
    ) -> tuple[float, float] | None:
        """``(x, y)`` of the keypoint (measured, predicted, smoothed) after the policy, or None."""
        found = self.lookup(obs, name, predicted, smoothed)
        return None if found is None else (found.x, found.y)

    def reset(self) -> None:
        """Forget every held position."""
        self._last_seen.clear()

    def options(self) -> FilterOptions:
        """Return the filter's parameters as the keywords that rebuild it."""
        return {
            "min_likelihood": self.min_likelihood,
            "policy": self.policy,
            "hold_s": self.hold_s,
            "max_ensemble_std": self.max_ensemble_std,
        }

    def describe(self) -> dict[str, Any]:
        """Return the filter's parameters, for the event log (``max_ensemble_std`` when set)."""
        described: dict[str, Any] = dict(self.options())
        if self.max_ensemble_std is None:
            del described["max_ensemble_std"]
        return described


@dataclass(frozen=True)
class Observations(Mapping[str, Observation]):
    """The observations of several cameras paired at one reference time.

    Parameters
    ----------
    time_s
        The reference time the cameras were paired at (for example the time of the observation
        that prompted the update).
    by_camera
        Camera name -> its observation nearest to ``time_s``.

    points3d
        With a calibration ([Triangulation] in the settings): the keypoints of the calibrated
        cameras' newest synchronised set, triangulated (mm, the floor is z = 0, z up); None when
        the settings name no calibration or this update brought no new set (a camera missing,
        or the set's pairing error above [Triangulation] MAX_PAIRING_MS).

    :attr:`errors_s` gives each camera's pairing error, ``obs.time_s - time_s`` (signed).
    """

    time_s: float
    by_camera: Mapping[str, Observation] = field(default_factory=dict)
    points3d: Points3D | None = field(default=None, compare=False)

    def __getitem__(self, camera: str) -> Observation:
        """Return the observation of ``camera``; ``KeyError`` naming the cameras there are."""
        try:
            return self.by_camera[camera]
        except KeyError:
            raise KeyError(
                f"no observation of camera {camera!r} (cameras: {', '.join(self.by_camera)})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        """Return the camera names."""
        return iter(self.by_camera)

    def __len__(self) -> int:
        """How many cameras are paired."""
        return len(self.by_camera)

    @property
    def errors_s(self) -> dict[str, float]:
        """Each camera's pairing error in seconds: its frame's time minus :attr:`time_s`."""
        return {camera: obs.time_s - self.time_s for camera, obs in self.by_camera.items()}

    @property
    def max_error_s(self) -> float:
        """The largest absolute pairing error (0 with no cameras)."""
        return max((abs(e) for e in self.errors_s.values()), default=0.0)

    @classmethod
    def single(cls, obs: Observation) -> Observations:
        """One camera's observation as a mapping, paired at its own time."""
        return cls(obs.time_s, {obs.camera: obs})


def _time_of(obs: Observation) -> float:
    return obs.time_s


def nearest(stream: Sequence[Observation], t: float) -> Observation | None:
    """Return the observation of a time-sorted stream nearest to ``t`` (the earlier on a tie)."""
    if not stream:
        return None
    after = bisect.bisect_left(stream, t, key=_time_of)
    if after == 0:
        return stream[0]
    if after == len(stream):
        return stream[-1]
    before, later = stream[after - 1], stream[after]
    return later if later.time_s - t < t - before.time_s else before


def pair_nearest(
    streams: Mapping[str, Sequence[Observation]], t: float, max_error_s: float | None = None
) -> Observations:
    """For each camera, its observation nearest in time to ``t``, with the pairing error kept.

    Parameters
    ----------
    streams
        Camera name -> that camera's observations sorted by ``time_s`` (a list, or a deque of the
        recent ones). Binary search: O(log n) per camera for a list.
    t
        The reference time, seconds on the same clock as the observations.
    max_error_s
        A camera whose nearest observation is further than this from ``t`` is left out (None:
        never left out). Cameras with no observations are always left out.

    Returns
    -------
    Observations
        Paired at ``t``; :attr:`Observations.errors_s` holds each camera's error.
    """
    paired: dict[str, Observation] = {}
    for camera, stream in streams.items():
        found = nearest(stream, t)
        if found is None:
            continue
        if max_error_s is not None and abs(found.time_s - t) > max_error_s:
            continue
        paired[camera] = found
    return Observations(float(t), paired)


#: A camera without a pose for this long is not paired with the others (it ended or stalled).
STALE_PAIRING_S = 0.5


def paired_update(
    latest: dict[str, Observation], batch: list[Observation], points3d: Points3D | None = None
) -> tuple[Observation | Observations, Observation]:
    """Return what an experiment is given for one batch of poses, and the batch's newest pose.

    ``latest`` (each camera's newest pose so far) is updated with ``batch``. One camera: its
    observation (with a 3D set, in the paired form). Several: each other camera's newest pose,
    the nearest in time that exists yet (the loop never waits for a future frame), paired at the
    newest one's time; a camera whose newest pose is older than :data:`STALE_PAIRING_S` is left
    out. The live loop and ``deeplabstream-verify``'s re-derivation pair the same way.
    """
    for observation in batch:
        latest[observation.camera] = observation
    newest = max(batch, key=lambda o: o.time_s)
    if len(latest) > 1:
        fresh = {
            camera: obs
            for camera, obs in latest.items()
            if newest.time_s - obs.time_s <= STALE_PAIRING_S
        }
        return Observations(newest.time_s, fresh, points3d), newest
    if points3d is not None:  # the 3D set rides on the paired form, even with one camera
        return Observations(newest.time_s, {newest.camera: newest}, points3d), newest
    return newest, newest
