"""Identities that hold while animals walk freely: motion tracks named by their appearance.

What a user sees: docs/sleap-models.md, "Identities"; design: docs/pose-internals.md,
"pose.tracking.identities".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.tracking.appearance import (
    MIN_ACCURACY,
    AppearanceLearner,
    AppearanceModel,
)
from deeplabstream.pose.tracking.patches import MIN_KEYPOINTS, BodyPatches
from deeplabstream.pose.tracking.proximity import AnimalProximity
from deeplabstream.pose.tracking.tracker import IdentityTracker

# On the loop (every frame): np.count_nonzero(mask) and mask.nonzero()[0] cost a third of
# mask.any() and np.flatnonzero(mask) on arrays this small, hence their use here.

LEARN_CONFIDENCE = 0.99
"""Confidence an identity needs before its patches are learned as that identity."""
EVIDENCE_CLIP = 0.02
"""A model's probability is clipped to [this, 1 - this] before it counts as evidence."""
BELIEF_FLOOR = 1e-4
"""No belief goes below this, so that evidence can always turn it round."""
CONTACT_EVIDENCE_CLIP = 0.2
"""In contact, a model's probability is clipped to [this, 1 - this]: one frame's looks of two
touching animals move an even belief to 0.8 at most (below :data:`MERGED_MIN_CONFIDENCE`), two
that agree to 0.94: it takes two frames to name them, and one wrong frame (a rare pair of
patches both misled) moves a sure belief (0.99) to 0.96 only."""
DEFAULT_SWITCH_ODDS = 20.0
MERGED_MIN_CONFIDENCE = 0.9
"""A detection covering a hidden animal is shown under its identity only this sure of it."""
UNSURE_SWITCH_ODDS = 3.0
"""How much likelier another assignment must be to replace one that is unsure (after a merge)."""
_LOG_UNSURE_ODDS = math.log(UNSURE_SWITCH_ODDS)
MERGE_MEMORY_S = 1.0
"""For this long after one animal was hidden by another, the tracker weighs the animals' looks
when it matches detections to tracks. Not otherwise: where both stay detected (a crossing)
motion alone keeps them apart, and a patch in contact holds parts of both."""
DEFAULT_MERGE_MIXING_S = 0.15
DEFAULT_CONTACT_MIXING_S = 30.0
DEFAULT_SAMPLE_INTERVAL_S = 0.0
DEFAULT_REANCHOR_S = 1.0
JITTER_PX = 3.0
"""A keypoint this near where its own part was expected is its own whatever else is near."""
ONE_PLACE_PX = 7.0
"""Where two animals lie on one another and a part of each is expected this near the other's, a
keypoint found this near the other's part, which the other's row lacks, is at one place: the
model found one for the two (mice crossing on one spot: one body centre), and whichever animal's
it is, it is where this one's part is; it is not withheld as another's."""
ONE_PLACE_BODY_PX = 20.0
"""Two animals lie on one another when their expected bodies' middles (the mean of their expected
parts) are this near: a fifth of the simulated arena's 96-px mouse; side by side or nose to nose,
two mice are further apart."""
JUMP_PX = 20.0
"""An animal whose keypoints are, at the median, this far from where they were expected is
unknown for that frame: the assignment may have swapped them, or the row is not the animal."""
JUMP_HOLD_S = 0.3
"""After a jump the animal stays unknown until its keypoints come back to where it was expected
before it, for at most this long: the tracker follows the row that jumped, so the next frame's
like row is no jump from there (rows the model put between two mice lasted up to 8 frames)."""
CONTRADICTION_HOLD_S = 0.3
"""After two looks of animals in contact named one identity (patches holding parts of both), the
group's looks are set aside for this long, or until the contact is over: the next frames'
patches may mix them too, the other way round (free walking, seed 7312: three frames). To the end
of the contact instead lost 2 to 4 more entries in 10 minutes of free walking at each of three
seeds (7305, 7308, 7312)."""
REFERENCE_SAMPLES = 90
"""Patches kept per identity from before the first merge, to name the animals after it."""
REFERENCE_MODELS = 3
"""Models that may judge the reference before motion's guess is taken (none could tell, or
none was sure): the first models of marked animals tell them apart; unmarked ones' never."""


_Expected = tuple[np.ndarray, np.ndarray, np.ndarray]  # by track: keypoints, known, velocity


@dataclass(frozen=True, slots=True)
class _Look:
    """One animal's patch features and what the model makes of them (None: no model yet)."""

    features: np.ndarray
    probability: np.ndarray | None


@dataclass
class KeeperCounts:
    """What the keeper did, for ``session.json`` (fields: docs/sleap-models.md, "Identities")."""

    frames: int = 0
    frames_with_model: int = 0
    merged_unidentified: int = 0
    chimera_unidentified: int = 0
    chimera_keypoints_withheld: int = 0
    unsure_unidentified: int = 0
    ambiguous_mixed: int = 0
    contradicted_looks: int = 0
    mostly_withheld_unidentified: int = 0
    reassignments: int = 0
    keypoints_withheld: int = 0
    jumps_withheld: int = 0
    restarts: int = 0
    unresolved_unidentified: int = 0
    relabelled: int = 0
    samples: int = 0
    models: int = 0
    model_accuracy: float = math.nan

    def as_dict(self) -> dict[str, float | None]:
        """Return the counts by name (NaN as None: ``session.json`` is strict JSON)."""
        return {
            name: None if isinstance(value, float) and math.isnan(value) else value
            for name, value in asdict(self).items()
        }


class IdentityKeeper:
    """Keep identities through merges with appearance evidence.

    ``learner`` None: motion only (every track keeps the tracker's identity; the confidence still
    drops through merges). ``reanchor_s``: before the first model, how long animals must be apart
    after a merge before learning starts over.
    """

    def __init__(
        self,
        tracker: IdentityTracker,
        learner: AppearanceLearner | None,
        *,
        min_likelihood: float = 0.1,
        switch_odds: float = DEFAULT_SWITCH_ODDS,
        merge_mixing_s: float = DEFAULT_MERGE_MIXING_S,
        contact_mixing_s: float = DEFAULT_CONTACT_MIXING_S,
        sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
        reanchor_s: float = DEFAULT_REANCHOR_S,
    ) -> None:
        if not switch_odds > 1:
            raise ValueError(f"Expected switch_odds > 1, but got {switch_odds!r}")
        self.tracker = tracker
        self.learner = learner
        self.animals = tracker.max_animals
        self.patches = BodyPatches(tracker.keypoints, min_likelihood) if learner else None
        self.min_likelihood = float(min_likelihood)
        self.log_switch_odds = math.log(switch_odds)
        self.merge_mixing_s = merge_mixing_s
        self.contact_mixing_s = contact_mixing_s
        self.sample_interval_s = sample_interval_s
        self.reanchor_s = reanchor_s
        self.counts = KeeperCounts()
        animals = self.animals
        self._belief = _sure(np.arange(animals))  # track x identity
        self._identity_of = np.arange(animals)  # the identity each track is shown as
        self._ever_tracked = False
        self._last_sample = np.full(animals, -math.inf)
        self._time: float | None = None
        self._merged_until = -math.inf  # the tracker weighs looks until then (after a merge)
        self._apart_since: float | None = None  # all tracks apart since (before the first model)
        self._model: AppearanceModel | None = None
        self.confidence = np.full(animals, np.nan)  # the last frame's, per identity (row)
        self.proximity = AnimalProximity(tracker, self.patches, self.min_likelihood)
        # Made unsure by a merge or a restart, and not named since (see _withhold_unsure).
        self._shaken = np.zeros(animals, bool)
        # The identities (rows) of the last frame that the rules must not name.
        self.unnamed = np.zeros(animals, bool)
        # (A, K) the keypoints the rules do not see in the last frame (unnamed rows included).
        self.withheld = np.zeros((animals, tracker.keypoints), bool)
        self._foreign = np.zeros((animals, tracker.keypoints), bool)  # by identity (chimeras)
        self._jump = _JumpHold(animals, tracker.keypoints)  # tracks unknown since a jump
        # When the looks of a track's contact last contradicted each other (NaN: not in such a
        # contact, or over CONTRADICTION_HOLD_S ago): its looks wait.
        self._misled_at = np.full(animals, np.nan)
        # Everything above is by label (the learner's); the rules and files see identities.
        self.early_names = EarlyNames(animals, self.log_switch_odds, self.counts)

    @property
    def model(self) -> AppearanceModel | None:
        """The appearance model in use (None before the first)."""
        return self._model

    def update(self, time_s: float, instances: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        """Assign this frame's (D, K, 3) instances to identities; set :attr:`confidence`.

        ``frame`` None gives no appearance evidence and no samples this frame. Returns (A, K, 3):
        row i is identity i's animal, all-NaN when unseen (the pose files' rows); what the rules
        must not see is in :attr:`unnamed` and :attr:`withheld` (:meth:`named`).
        """
        instances = np.asarray(instances)
        expected = self._expected(time_s)
        detections, probabilities = self._look(instances, frame)
        if self._model is not None:
            self.early_names.on_model(self._model, self._looks_can_tell())
        # The tracker weighs each detection's looks against what each track is believed to be:
        # P(detection d is the animal of track t) = sum_i P(d looks like i) P(t is i).
        scores = None
        merged = self._time is not None and self._time <= self._merged_until
        if probabilities is not None and merged and self.proximity.all_apart(instances, detections):
            scores = probabilities @ self._belief.T
        rows = self.tracker.update(time_s, instances, scores)
        # The keeper follows each track on what the tracker followed (keypoint by keypoint where
        # animals touch); the rows returned are the framework's animals whole (the files).
        tracks = self.tracker.followed(rows)
        dt = 0.0 if self._time is None or time_s < self._time else time_s - self._time
        self._time = time_s
        self.counts.frames += 1
        seen = self._seen(tracks)
        active = self.tracker.active
        self._restart_tracks(active, seen)
        proximity = self.proximity
        present = proximity.presume_under(active)
        gaps = proximity.gaps(tracks, seen, present)
        self._mix(gaps, seen, present, dt)
        # Only where the looks can tell: before the first model an even belief would start the
        # learning over and leave every animal unnamed until a model judged the reference.
        if self.tracker.last_ambiguous and self._looks_can_tell():
            self._doubt_ambiguous(gaps, present)
        # covering[t]: track t is seen next to an animal hidden under it (a merged detection).
        apart_px = proximity.apart_px()
        under = (gaps <= apart_px) & (present & ~seen)[None, :]  # [coverer, hidden]
        covering = seen & under.any(axis=1)
        proximity.carry_hidden(tracks, under & seen[:, None], gaps)
        proximity.near_last = gaps.min(axis=1) <= apart_px
        if np.count_nonzero(covering):
            # One animal hidden by another: when they part, motion cannot say which is which.
            self._merged_until = time_s + MERGE_MEMORY_S
        reach, clear = proximity.reach(tracks, instances, seen, present)
        settled = proximity.settled(time_s, clear)
        looks = self._track_looks(tracks, instances, frame, seen, detections)
        self._weigh_evidence(time_s, looks, seen, settled, reach <= apart_px)
        self._assign(active)
        self._set_confidence(active, seen)
        self._learn(time_s, seen, settled, looks)
        proximity.last_xy[seen] = np.where(
            np.isfinite(tracks[seen, :, :2]), tracks[seen, :, :2], proximity.last_xy[seen]
        )
        proximity.was_active = active.copy()
        out = np.empty_like(rows)
        out[self._identity_of] = rows
        # A merged detection, and a fragment of a hidden animal next to another (fewer
        # keypoints than a track needs to be seen: it has no confidence at all).
        touching = covering | (active & ~seen & proximity.near_last)
        self.unnamed = np.zeros(self.animals, bool)
        self._hide_unsure_merges(touching)
        self._hide_chimeras(self.tracker.last_chimeras, self.tracker.last_foreign, rows)
        self._withhold_unsure(seen, seen & ~touching)
        self._withhold(time_s, out, present & ~seen & proximity.near_last, expected)
        out, self.confidence, self.unnamed, self.withheld = self.early_names.shown(
            out, self.confidence, self.unnamed, self.withheld
        )
        return out

    def named(self, animals: np.ndarray) -> np.ndarray:
        """Return the last frame's ``animals`` (A, K, 3) with :attr:`withheld` keypoints set to NaN.

        ``animals`` itself is returned when none is withheld.
        """
        if not np.count_nonzero(self.withheld):
            return animals
        shown = animals.copy()
        shown[self.withheld] = np.nan
        return shown

    def _expected(self, time_s: float) -> _Expected | None:
        """Return where motion puts each track now, before this frame (see :data:`_Expected`)."""
        if self._time is None or time_s < self._time:
            return None
        motion = self.tracker.motion
        predicted, known = motion.predict(time_s)
        return predicted, known & self.tracker.active[:, None], motion.vel.copy()

    def _withhold(
        self, time_s: float, rows: np.ndarray, hidden: np.ndarray, expected: _Expected | None
    ) -> None:
        """Set :attr:`withheld`: unnamed rows, hidden animals, borrowed keypoints, jumped rows.

        Judged by track (``rows`` are by identity): the looks exchanging identities is no jump.
        """
        withheld = self._foreign | self.unnamed[:, None]
        withheld[self._identity_of[hidden]] = True
        one_place = None
        if expected is not None and self.animals > 1:
            borrowed, jumped, one_place = self._jump.judge(
                time_s, rows[self._identity_of], expected
            )
            borrowed[self._identity_of], jumped[self._identity_of] = borrowed.copy(), jumped.copy()
            one_place[self._identity_of] = one_place.copy()
            if np.count_nonzero(jumped):
                withheld[jumped] = True
                self.counts.jumps_withheld += int(np.count_nonzero(jumped))
            borrowed &= ~withheld
            if np.count_nonzero(borrowed):
                withheld |= borrowed
                self.counts.keypoints_withheld += int(np.count_nonzero(borrowed))
        self._unname_mostly_withheld(rows, withheld, one_place)
        self.withheld = withheld

    def _unname_mostly_withheld(
        self, rows: np.ndarray, withheld: np.ndarray, one_place: np.ndarray | None = None
    ) -> None:
        """Leave unnamed a row with as many of its seen keypoints withheld as left (in place).

        Keypoints shown at one place with another animal's (:func:`_one_place`) count as
        withheld here: they too lie among the other's parts.
        """
        # What is left of such a row sits among the other animal's parts: in 10-minute runs of
        # free walking its last two keypoints were the other animal's for a frame (a switch).
        if not np.count_nonzero(withheld):  # the usual frame
            return
        seen = np.isfinite(rows[..., 0]) & (rows[..., 2] >= self.min_likelihood)
        doubtful = withheld if one_place is None else withheld | one_place
        suspect = (doubtful & seen).sum(axis=1)
        left = (seen & ~doubtful).sum(axis=1)
        mostly = (suspect > 0) & (suspect >= left) & ~self.unnamed
        if np.count_nonzero(mostly):
            self.unnamed |= mostly
            withheld[mostly] = True
            self.counts.mostly_withheld_unidentified += 1

    def _looks_can_tell(self) -> bool:
        """Whether the model in use tells the animals apart (passed its held-out check)."""
        return self._model is not None and self._model.accuracy >= MIN_ACCURACY

    def _withhold_unsure(self, seen: np.ndarray, shown: np.ndarray) -> None:
        """Leave animals a merge left unsure unnamed, while their looks can settle it."""
        # Only after a merge: an animal whose confidence dips because its looks disagree with
        # motion stays shown (a model can pass its check on cues that do not last).
        tracks = seen.nonzero()[0]
        sure = self.confidence[self._identity_of[tracks]] >= MERGED_MIN_CONFIDENCE
        self._shaken[tracks[sure]] = False  # named again
        unsure = shown & self._shaken
        # Before the first model the looks may yet tell (a restart may follow): unnamed too.
        waiting = self._model is None and self.learner is not None
        if not np.count_nonzero(unsure) or not (waiting or self._looks_can_tell()):
            return
        self.unnamed[self._identity_of[unsure]] = True
        self.counts.unsure_unidentified += 1

    def _hide_unsure_merges(self, touching: np.ndarray) -> None:
        """Leave the ``touching`` tracks (over a hidden animal) unnamed where unsure."""
        if not np.count_nonzero(touching):
            return
        identities = self._identity_of[touching]
        unsure = identities[~(self.confidence[identities] >= MERGED_MIN_CONFIDENCE)]  # NaN too
        if unsure.size:
            self.unnamed[unsure] = True
            self.counts.merged_unidentified += 1

    def _hide_chimeras(self, chimeras: np.ndarray, foreign: np.ndarray, rows: np.ndarray) -> None:
        """Withhold the keypoints another track followed; a row half so, unnamed whole."""
        self._foreign[:] = False
        if not np.count_nonzero(chimeras):
            return
        seen = np.isfinite(rows[..., 0]) & (rows[..., 2] >= self.min_likelihood)
        whole = False
        for track in chimeras.nonzero()[0].tolist():
            identity = int(self._identity_of[track])
            taken = int(np.count_nonzero(foreign[track]))
            if 2 * taken >= max(int(np.count_nonzero(seen[track])), 1):
                self.unnamed[identity] = True
                whole = True
            else:
                self._foreign[identity] = foreign[track]
                self.counts.chimera_keypoints_withheld += taken
        if whole:
            self.counts.chimera_unidentified += 1

    # --- the steps of an update ---------------------------------------------------------------

    def _seen(self, tracks: np.ndarray) -> np.ndarray:
        """Return (A,) which tracks have at least two keypoints seen in this frame."""
        ok = np.isfinite(tracks[..., 0]) & (tracks[..., 2] >= self.min_likelihood)
        return ok.sum(axis=1) >= MIN_KEYPOINTS

    def _restart_tracks(self, active: np.ndarray, seen: np.ndarray) -> None:
        """Tracks the tracker started anew know nothing of who they are (but the first ones)."""
        started = active & ~self.proximity.was_active
        if not np.count_nonzero(started):
            return
        if not self._ever_tracked:  # the session's first animals: the tracker's identities hold
            self._ever_tracked = True
            return
        self._belief[started] = 1.0 / self.animals
        self._belief = _balanced(self._belief)  # they take what the others leave
        self._shaken[started] = True
        self.proximity.last_xy[started & ~seen] = np.nan

    def _mix(self, gaps: np.ndarray, seen: np.ndarray, active: np.ndarray, dt: float) -> None:
        """Mix the beliefs of tracks in contact, fast when one of the two is hidden."""
        if dt <= 0:
            return
        # Both seen: in contact. One hidden: it went out of sight not apart from the other
        # (where it was last seen lags behind where it went under the other).
        apart_px = self.proximity.apart_px()
        if not np.count_nonzero(gaps <= apart_px):  # the usual case: nothing to mix
            return
        contact_px = self.proximity.contact_px()
        for first, second in _close_pairs(gaps, apart_px):
            if not (active[first] and active[second]) or not (seen[first] or seen[second]):
                continue
            both = bool(seen[first] and seen[second])
            if both and gaps[first, second] > contact_px:
                continue
            constant = self.contact_mixing_s if both else self.merge_mixing_s
            if not both:  # one under the other: who comes out is a guess until the looks say
                self._shaken[[first, second]] = True
            self._blend(first, second, 0.5 * -math.expm1(-dt / constant))  # -> 1/2

    def _blend(self, first: int, second: int, share: float) -> None:
        """Move two tracks' beliefs ``share`` of the way to each other (1/2: their average)."""
        a, b = self._belief[first].copy(), self._belief[second].copy()
        self._belief[first] = (1.0 - share) * a + share * b
        self._belief[second] = (1.0 - share) * b + share * a

    def _doubt_ambiguous(self, gaps: np.ndarray, active: np.ndarray) -> None:
        """Make tracks near each other a coin flip: motion could not tell them apart."""
        # The best assignment cost nearly what another did: a swap kept as sure would show one
        # animal under the other's name until the looks turned the beliefs (4 to 30 frames).
        apart_px = self.proximity.apart_px()
        mixed = False
        for first, second in _close_pairs(gaps, apart_px):
            if not (active[first] and active[second]):
                continue
            self._blend(first, second, 0.5)
            self._shaken[[first, second]] = True
            mixed = True
        if mixed:
            self.counts.ambiguous_mixed += 1

    def _look(
        self, instances: np.ndarray, frame: np.ndarray | None
    ) -> tuple[dict[int, _Look], np.ndarray | None]:
        """Cut every detection's patch; return them by row and the (D, A) probabilities."""
        looks: dict[int, _Look] = {}
        if self.learner is None or self.patches is None or frame is None:
            return looks, None
        model = self.learner.latest()
        if model is not None and model is not self._model:
            self._model = model
            self.counts.models = model.version
            self.counts.model_accuracy = model.accuracy
        if self.patches.template is None:
            self._take_template(instances)
            return looks, None
        for row in range(instances.shape[0]):
            look = self._look_at(frame, instances[row])
            if look is not None:
                looks[row] = look
        if self._model is None or not looks:
            return looks, None
        self.counts.frames_with_model += 1
        probabilities = np.full((instances.shape[0], self.animals), 1.0 / self.animals)
        for row, look in looks.items():
            probabilities[row] = look.probability
        return looks, probabilities

    def _look_at(self, frame: np.ndarray, keypoints: np.ndarray) -> _Look | None:
        """Return the patch of one animal's keypoints and the model's (clipped) probabilities."""
        assert self.patches is not None
        cut = self.patches.cut(frame, keypoints)
        if cut is None:
            return None
        if self._model is None:
            return _Look(cut, None)
        probability = self._model.probabilities(cut)
        # np.clip costs twice these two on a few numbers (on the loop, once per animal).
        np.maximum(probability, EVIDENCE_CLIP, out=probability)
        np.minimum(probability, 1.0 - EVIDENCE_CLIP, out=probability)
        return _Look(cut, probability)

    def _take_template(self, instances: np.ndarray) -> None:
        """Take the first detection seen whole and apart from the others as the template."""
        assert self.patches is not None
        xy = np.asarray(instances[..., :2], np.float64)
        for row in range(instances.shape[0]):
            others = np.delete(xy, row, axis=0).reshape(-1, 2)
            gap = np.hypot(*(xy[row][:, None] - others[None]).transpose(2, 0, 1))
            apart = np.nanmin(gap, initial=np.inf) > self.proximity.contact_px()
            if apart and self.patches.set_template(instances[row]):
                return

    def _track_looks(
        self,
        tracks: np.ndarray,
        instances: np.ndarray,
        frame: np.ndarray | None,
        seen: np.ndarray,
        detections: dict[int, _Look],
    ) -> dict[int, _Look]:
        """Return the looks of each detected track (a regrouped track gets its own patch)."""
        looks: dict[int, _Look] = {}
        if self.patches is None or frame is None or self.patches.template is None:
            return looks
        detection_of = self.tracker.last_detections
        for track in seen.nonzero()[0].tolist():
            row = int(detection_of[track])
            # The same values bit for bit (NaN included) when the tracker copied the row whole.
            if (
                row >= 0
                and row in detections
                and tracks.dtype == instances.dtype
                and tracks[track].tobytes() == instances[row].tobytes()
            ):
                looks[track] = detections[row]
                continue
            look = self._look_at(frame, tracks[track])
            if look is not None:
                looks[track] = look
        return looks

    def _weigh_evidence(
        self,
        time_s: float,
        looks: dict[int, _Look],
        seen: np.ndarray,
        settled: np.ndarray,
        contact: np.ndarray,
    ) -> None:
        """Multiply the tracks' beliefs by their looks' probabilities where those are trusted."""
        # A group in contact: all its looks or none (alone, a patch in contact can be
        # confidently wrong: docs/sleap-models.md). Balanced after, so that evidence for one
        # track's identity is evidence against the others'. None for a while after two of its
        # looks named one identity: their patches hold parts of both, and the next frames' may
        # too (free walking, seed 7312: two mice parting after a merge, both patches said one
        # mouse, then three frames said the two the wrong way round and named them so at 0.98;
        # their looks said right only later).
        weighed = False
        for track, look in looks.items():
            if look.probability is not None and seen[track] and settled[track]:
                self._belief[track] *= look.probability
                weighed = True
        if np.count_nonzero(np.isfinite(self._misled_at)):  # not the usual frame
            # A contact over, or the hold (or a clock that started over): its looks count
            # again. A hair of slack: frame times are k / fps, whose differences are not exact.
            since = time_s - self._misled_at
            held = (since >= 0) & (since <= CONTRADICTION_HOLD_S + 1e-6)
            self._misled_at[~(held & contact.any(axis=1))] = np.nan
        set_aside = False
        for group in _groups(contact):
            found = [looks.get(track) for track in group.tolist()]
            probabilities = [
                look.probability
                for look in found
                if look is not None and look.probability is not None
            ]
            if len(probabilities) < group.size or not seen[group].all():
                continue  # someone hidden, or without a patch (or no model yet)
            if _contradict(probabilities):
                self._misled_at[group] = time_s
            if np.count_nonzero(np.isfinite(self._misled_at[group])):
                set_aside = True
                continue
            for track, probability in zip(group.tolist(), probabilities, strict=True):
                self._belief[track] *= np.clip(
                    probability, CONTACT_EVIDENCE_CLIP, 1.0 - CONTACT_EVIDENCE_CLIP
                )
            weighed = True
        self.counts.contradicted_looks += set_aside
        if weighed:
            self._belief = _balanced(self._belief)

    def _assign(self, active: np.ndarray) -> None:
        """Reassign identities when another assignment is enough times likelier."""
        if np.count_nonzero(active) < 2:
            return
        cost = -np.log(self._belief)
        cost[~active] = 0.0  # tracks not tracked take whatever identities are left
        rows, best = linear_sum_assignment(cost)
        if np.count_nonzero(best != self._identity_of) == 0:  # np.array_equal: 3x dearer
            return
        tracks = np.arange(self.animals)
        # The mean log-belief per track: for two animals exactly the log-odds of the two
        # assignments (their beliefs are [[a, 1 - a], [1 - a, a]]).
        gain = float(cost[tracks, self._identity_of].sum() - cost[rows, best].sum())
        shown = self._belief[tracks[active], self._identity_of[active]]
        odds = self.log_switch_odds if shown.min() >= MERGED_MIN_CONFIDENCE else _LOG_UNSURE_ODDS
        if gain / np.count_nonzero(active) > odds:
            self._identity_of = best
            self.counts.reassignments += 1

    def _set_confidence(self, active: np.ndarray, seen: np.ndarray) -> None:
        """Each identity's probability of being on the right track (NaN where not seen)."""
        confidence = np.full(self.animals, np.nan)
        tracks = seen.nonzero()[0]
        identities = self._identity_of[tracks]
        confidence[identities] = self._belief[tracks, identities]
        self.confidence = confidence

    def _learn(
        self, time_s: float, seen: np.ndarray, settled: np.ndarray, looks: dict[int, _Look]
    ) -> None:
        """Hand the patches of tracks apart (``settled``) and sure of their identity over."""
        if self.learner is None or self.patches is None:
            return
        apart = seen & settled
        if self._model is None and self._reanchor(time_s, apart, seen):
            return
        due = apart & (time_s - self._last_sample >= self.sample_interval_s)
        for track in due.nonzero()[0].tolist():
            identity = int(self._identity_of[track])
            if not self.confidence[identity] >= LEARN_CONFIDENCE:
                continue
            look = looks.get(track)
            if look is None:
                continue
            self.learner.add(look.features, identity, time_s)
            self.early_names.keep(look.features, identity, self._model)
            self._last_sample[track] = time_s
            self.counts.samples += 1

    def _reanchor(self, time_s: float, apart: np.ndarray, seen: np.ndarray) -> bool:
        """Before the first model: after a merge, take the tracker's word; whether still waiting."""
        uncertain = bool(np.nanmin(self.confidence, initial=1.0) < LEARN_CONFIDENCE)
        if not uncertain:
            self._apart_since = None
            return False
        if not (apart == seen).all() or np.count_nonzero(seen) < 2:
            self._apart_since = None  # someone hidden or in contact: wait
            return True
        if self._apart_since is None:
            self._apart_since = time_s
        if time_s - self._apart_since < self.reanchor_s:
            return True
        assert self.learner is not None
        self.learner.restart()
        self._belief = _sure(self._identity_of)
        self._apart_since = None
        self.counts.restarts += 1
        self.early_names.restarted()
        return True


class EarlyNames:
    """Keep the names the rules saw before a merge that came before the first model."""

    def __init__(self, animals: int, log_switch_odds: float, counts: KeeperCounts) -> None:
        self.animals = animals
        self.log_switch_odds = log_switch_odds
        self.counts = counts
        # Label l is shown as identity _display[l] (the identity unless relabelled).
        self._display = np.arange(animals)
        # Patches (features, label) learned before the first merge, and whether a merge
        # before the first model left the names waiting for a model to judge them.
        self._reference: list[tuple[np.ndarray, int]] = []
        self._kept = np.zeros(animals, np.intp)  # reference patches per label
        self.unresolved = False
        self._judgements = 0

    def keep(self, features: np.ndarray, label: int, model: AppearanceModel | None) -> None:
        """Keep a patch learned before the first merge (and the first model) as reference."""
        if model is not None or self.counts.restarts or self.unresolved:
            return
        if self._kept[label] < REFERENCE_SAMPLES:
            self._reference.append((features.copy(), label))
            self._kept[label] += 1

    def restarted(self) -> None:
        """Note that learning started over: every animal unnamed until :meth:`judge` settles it.

        Only when the reference holds at least two identities; else motion's guess stands.
        """
        labels = {label for _, label in self._reference}
        self.unresolved = len(labels) >= 2

    def on_model(self, model: AppearanceModel, looks_can_tell: bool) -> None:
        """Judge the reference with ``model`` while unresolved, else drop it."""
        if self.unresolved:
            self.judge(model, looks_can_tell)
        elif self._reference:
            self._reference = []  # no merge came before the first model: not needed
            self._kept[:] = 0

    def shown(
        self, rows: np.ndarray, confidence: np.ndarray, unnamed: np.ndarray, withheld: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return the last frame's rows and per-animal arrays by identity (given by label).

        While unresolved, sets ``unnamed`` and ``withheld`` all True in place first.
        """
        if self.unresolved:  # which is which is up to the first model (docs/pose-internals.md)
            withheld[:] = True
            unnamed[:] = True
            self.counts.unresolved_unidentified += 1
        if not self.counts.relabelled:
            return rows, confidence, unnamed, withheld
        label_of = np.argsort(self._display)  # identity -> its label
        return rows[label_of], confidence[label_of], unnamed[label_of], withheld[label_of]

    def judge(self, model: AppearanceModel, looks_can_tell: bool) -> None:
        """Say which label each reference identity is, when the model is sure."""
        self._judgements += 1
        # None sure by the last model that may judge (unmarked animals): motion's guess.
        self.unresolved = self._judgements < REFERENCE_MODELS
        if not looks_can_tell:  # a model that cannot tell cannot judge
            return
        features = np.stack([features for features, _ in self._reference])
        labels = np.array([label for _, label in self._reference])
        probability = np.stack([model.probabilities(patch) for patch in features])  # (N, A)
        # Clipped as evidence is: one odd patch must not outweigh the rest.
        log_p = np.log(np.clip(probability, EVIDENCE_CLIP, 1.0 - EVIDENCE_CLIP))
        totals = np.zeros((self.animals, self.animals))  # [identity, label]
        np.add.at(totals, labels, log_p)
        identities, label = linear_sum_assignment(-totals)
        best = float(totals[identities, label].sum())
        runner_up = -math.inf  # the best assignment with two of its labels exchanged
        for first in range(self.animals):
            for second in range(first + 1, self.animals):
                other = label.copy()
                other[[first, second]] = other[[second, first]]
                runner_up = max(runner_up, float(totals[identities, other].sum()))
        if best - runner_up <= self.log_switch_odds:
            return
        self.unresolved = False
        display = np.empty(self.animals, np.intp)
        display[label] = identities
        if not np.array_equal(display, self._display):
            self._display = display
            self.counts.relabelled += 1


def _borrowed(
    rows: np.ndarray, expected: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (A, K) borrowed keypoints, (A,) jumps and (A, K) keypoints at one place (by row).

    Borrowed: nearer another animal's expected parts than their own. At one place: such
    keypoints shown all the same, where another's same part is (:func:`_one_place`).
    """
    animals = known.shape[0]
    xy = np.asarray(rows[..., :2], np.float64)
    where = np.where(known[..., None], expected, np.nan)
    off = xy - where
    own_same = np.hypot(off[..., 0], off[..., 1])  # (A, K): to its own part (NaN: unknown)
    near_own = own_same <= JITTER_PX  # False where unknown
    if not np.count_nonzero(np.isfinite(xy[..., 0]) & ~near_own):  # each on its own part
        return np.zeros(known.shape, bool), np.zeros(animals, bool), np.zeros(known.shape, bool)
    # (A, K, B, L): row a's keypoint k to row b's expected part l (NaN: unknown;
    # NaN compares False below, and fmin skips it).
    diff = xy[:, :, None, None, :] - where[None, None]
    distance = np.hypot(diff[..., 0], diff[..., 1])
    body = np.fmin.reduce(distance, axis=3)  # (A, K, B): the nearest part
    own_index = np.arange(animals)
    own_body = body[own_index, :, own_index]
    own = np.where(np.isnan(own_same), own_body, own_same)
    body[own_index, :, own_index] = np.nan  # (A, K, B): another identity's only
    nearest_other = np.fmin.reduce(body, axis=2)
    # Off its own part by more than jitter, and nearer another's body than that.
    found = np.isfinite(xy[..., 0])
    borrowed = (own > JITTER_PX) & (nearest_other < own) & found
    if np.count_nonzero(borrowed):
        own = np.fmin(own, _one_place(xy, where))
        one_place = borrowed & ~((own > JITTER_PX) & (nearest_other < own))
        borrowed &= ~one_place
    else:
        one_place = borrowed.copy()
    # Jumps: most keypoints (the median, unsorted) far from their own parts, wherever they went:
    # onto another's place (a swap?) or elsewhere (in free walking, a row the model put between
    # two mice that part). Unknown for that frame costs a rule nothing it could have known.
    counted = np.isfinite(own_same)
    count = counted.sum(axis=1)
    jumped = (count >= MIN_KEYPOINTS) & (2 * (counted & (own_same > JUMP_PX)).sum(axis=1) > count)
    return borrowed, jumped, one_place


def _one_place(xy: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Return (A, K) each keypoint's distance to another animal's same part at its own place.

    Where two animals lie on one another (their expected bodies' middles within
    :data:`ONE_PLACE_BODY_PX`), a part of each is expected at one place (within
    :data:`ONE_PLACE_PX`) and the model found it in one row only (the other's row found without
    it), that keypoint (within :data:`ONE_PLACE_PX` of the other's part) is where this animal's
    part is, whichever of the two it is: mice crossing on one spot, where the model finds one
    body centre for the two. Not where the other is not found at all: hidden under this one, its
    parts in this row are its own alone. NaN where there is no such part.
    """
    animals = where.shape[0]
    out = np.full(xy.shape[:2], np.nan)
    if animals < 2:
        return out
    known = np.isfinite(where[..., 0])  # (A, K)
    count = known.sum(axis=1)
    middle = np.where(known[..., None], where, 0.0).sum(axis=1) / np.maximum(count, 1)[:, None]
    apart = middle[:, None] - middle[None]  # (A, B, 2)
    on_one_another = np.hypot(apart[..., 0], apart[..., 1]) <= ONE_PLACE_BODY_PX
    on_one_another &= (count > 0)[:, None] & (count > 0)[None, :]
    on_one_another[np.arange(animals), np.arange(animals)] = False
    if not np.count_nonzero(on_one_another):  # the usual frame
        return out
    found = np.isfinite(xy[..., 0])
    for first, second in zip(*on_one_another.nonzero(), strict=True):
        if np.count_nonzero(found[second]) < MIN_KEYPOINTS:
            continue  # the other not found (hidden under this one): not one part for two
        part_gap = where[first] - where[second]  # (K, 2)
        to_other = xy[first] - where[second]
        near = np.hypot(to_other[:, 0], to_other[:, 1])
        # The other's row found without that part: the model found one for the two.
        one_place = (
            (np.hypot(part_gap[:, 0], part_gap[:, 1]) <= ONE_PLACE_PX)
            & (near <= ONE_PLACE_PX)
            & ~found[second]
        )
        out[first] = np.where(one_place, np.fmin(out[first], near), out[first])
    return out


class _JumpHold:
    """Tracks held unknown after their rows jumped, until back (:data:`JUMP_HOLD_S`).

    A track held is expected where it was before the jump, moved on at its velocity then, not
    where the tracker's motion followed the row that jumped.
    """

    def __init__(self, animals: int, keypoints: int) -> None:
        self.xy = np.full((animals, keypoints, 2), np.nan)  # expected just before the jump
        self.velocity = np.zeros((animals, 2))
        self.time = np.full(animals, np.nan)  # of the jump; NaN: none held

    def judge(
        self, time_s: float, rows: np.ndarray, expected: _Expected
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return :func:`_borrowed`'s three, with jumped: the tracks unknown, jumped or held.

        ``rows`` and ``expected`` by track. A held track is back (released) when its row did not
        jump from where it was expected and has ``MIN_KEYPOINTS`` to tell; a new jump is held.
        """
        xy, known, _ = expected
        if not np.count_nonzero(np.isfinite(self.time)):  # the usual frame: none held
            borrowed, jumped, one_place = _borrowed(rows, xy, known)
            self._start(time_s, jumped, expected)
            return borrowed, jumped, one_place
        age = time_s - self.time  # NaN: none held; below 0: from before the clock started over
        held = (age >= 0) & (age <= JUMP_HOLD_S)
        self.time[~held] = np.nan
        if not np.count_nonzero(held):  # every hold over
            borrowed, jumped, one_place = _borrowed(rows, xy, known)
            self._start(time_s, jumped, expected)
            return borrowed, jumped, one_place
        xy, known = xy.copy(), known.copy()
        xy[held] = self.xy[held] + self.velocity[held][:, None, :] * age[held][:, None, None]
        known[held] = np.isfinite(self.xy[held, :, 0])
        borrowed, jumped, one_place = _borrowed(rows, xy, known)
        told = (known & np.isfinite(rows[..., 0])).sum(axis=1) >= MIN_KEYPOINTS
        back = held & ~jumped & told
        self.time[back] = np.nan
        self._start(time_s, jumped & ~held, expected)  # a held one keeps its first expectation
        return borrowed, jumped | (held & ~back), one_place

    def _start(self, time_s: float, start: np.ndarray, expected: _Expected) -> None:
        """Hold the tracks ``start`` from now, expected where motion puts them before this frame."""
        motion_xy, motion_known, velocity = expected
        if np.count_nonzero(start):
            self.xy[start] = np.where(motion_known[start, :, None], motion_xy[start], np.nan)
            self.velocity[start] = velocity[start]
            self.time[start] = time_s


def _close_pairs(gaps: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Return the pairs of tracks (first < second) whose ``gaps`` (A, A) are within ``limit``."""
    # Not np.triu: it costs four times this on the loop's few tracks.
    firsts, seconds = (gaps <= limit).nonzero()
    pairs = zip(firsts.tolist(), seconds.tolist(), strict=True)
    return [(first, second) for first, second in pairs if first < second]


def _contradict(probabilities: list[np.ndarray]) -> bool:
    """Whether two of a group's looks find one identity the likeliest (patches of one mouse)."""
    best = [int(np.argmax(probability)) for probability in probabilities]
    return len(set(best)) < len(best)


def _groups(contact: np.ndarray) -> list[np.ndarray]:
    """Return the groups (two or more tracks) connected by ``contact`` (A, A), in track order."""
    groups: list[np.ndarray] = []
    if not np.count_nonzero(contact):  # the usual case
        return groups
    left = set(range(contact.shape[0]))
    while left:
        group: set[int] = set()
        frontier = [min(left)]
        while frontier:
            track = frontier.pop()
            if track in group:
                continue
            group.add(track)
            frontier.extend(contact[track].nonzero()[0].tolist())
        left -= group
        if len(group) > 1:
            groups.append(np.array(sorted(group)))
    return groups


def _sure(identity_of: np.ndarray) -> np.ndarray:
    """Return (A, A) beliefs sure (to :data:`BELIEF_FLOOR`) that track t is ``identity_of[t]``."""
    animals = identity_of.size
    belief = np.full((animals, animals), BELIEF_FLOOR)
    belief[np.arange(animals), identity_of] = 1.0
    return _balanced(belief)


def _balanced(belief: np.ndarray, rounds: int = 20) -> np.ndarray:
    """Balance rows (tracks) and columns (identities) to sum to 1 (Sinkhorn), floored."""
    out = np.maximum(belief, BELIEF_FLOOR)
    for _ in range(rounds):
        out /= out.sum(axis=0, keepdims=True)
        out /= out.sum(axis=1, keepdims=True)
        if np.abs(out.sum(axis=0) - 1.0).max() < 1e-6:
            break
    return out
