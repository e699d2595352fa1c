"""When the identity keeper lets animals' looks count, and what it shows while it is unsure.

Cases made on purpose, on a blank floor: two animals of ten keypoints (a body of nine in a line
and a nose ahead of it), animal A and animal B 20 % smaller, and a model of their looks that is
given, not learned (:class:`_GivenLearner`): it reads only the size and says, sharply, that A is
identity 1 and B identity 0 — the opposite of what motion gave them (left to right: A 0, B 1).
So wherever the keeper lets the looks count, identities move; where it must not, they stay.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from deeplabstream.experiments.observation import Observation
from deeplabstream.experiments.triggers.animals import EachAnimal
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region
from deeplabstream.live.processes.analysis.identities import rules_view
from deeplabstream.pose.tracking.appearance import MIN_ACCURACY, AppearanceModel
from deeplabstream.pose.tracking.identities import (
    CONTRADICTION_HOLD_S,
    MERGED_MIN_CONFIDENCE,
    IdentityKeeper,
)
from deeplabstream.pose.tracking.patches import feature_count
from deeplabstream.pose.tracking.proximity import APART_HOLD_S
from deeplabstream.pose.tracking.tracker import IdentityTracker

FPS = 30.0
K = 10
NAMES = tuple(f"k{i}" for i in range(K))
# Facing +x: the nose 30 px ahead of a body of nine keypoints 10 px apart (110 px long, so
# animals are apart beyond 55 px: half a template length).
BODY = np.array([[110.0, 0.0]] + [[80.0 - 10.0 * i, 0.0] for i in range(9)]) - [55.0, 0.0]
SMALL = 0.8
FLOOR = np.full((480, 640, 3), 100, np.uint8)  # nothing but the size tells them apart


def _animal(x: float, y: float, facing: int = 1, scale: float = 1.0, drop: int = 0) -> np.ndarray:
    """Return (K, 3): the body centred at (x, y) facing +x (``facing`` 1) or -x (-1).

    ``drop`` keypoints are unseen, from the nose back (a pose model that misses the parts
    where another animal covers them). A patch needs nine of the ten.
    """
    xy = BODY * scale * [facing, 1] + [x, y]
    out = np.column_stack([xy, np.full(K, 0.9)])
    out[:drop] = np.nan
    return out


def _frame(*animals: np.ndarray) -> np.ndarray:
    return np.stack(animals)


def _model(sharp: bool = True) -> AppearanceModel:
    """Log-odds linear in the log size, 0 at 0.9: larger animals identity 1, smaller 0."""
    features = feature_count()
    weights, bias = np.zeros((2, features)), np.zeros(2)
    if sharp:
        weights[0, -1], weights[1, -1] = -100.0, 100.0
        bias[:] = 100.0 * np.log(0.9), -100.0 * np.log(0.9)
        return AppearanceModel(weights, bias, accuracy=1.0, samples=200)
    return AppearanceModel(weights, bias, accuracy=MIN_ACCURACY - 0.3, samples=200)


class _GivenLearner:
    """A learner whose model is set by the test (None until then); samples are dropped."""

    def __init__(self) -> None:
        self.model: AppearanceModel | None = None

    def add(self, features: np.ndarray, identity: int, time_s: float) -> None:
        pass

    def restart(self) -> None:
        pass

    def latest(self) -> AppearanceModel | None:
        return self.model


def _keeper(max_gap_s: float = 1.0) -> tuple[IdentityKeeper, _GivenLearner]:
    learner = _GivenLearner()
    return IdentityKeeper(IdentityTracker(2, K, max_gap_s=max_gap_s), learner), learner


def _identity_of_a(out: np.ndarray, a: np.ndarray) -> int | None:
    """The row holding animal A's body keypoints (None: A not shown)."""
    for row in range(out.shape[0]):
        if np.isfinite(out[row, 1:, 0]).any() and np.allclose(out[row, 5, :2], a[5, :2]):
            return row
    return None


def test_the_model_given_swaps_identities_once_the_animals_are_apart() -> None:
    # The control of the tests below: apart (A at 200, B at 450), the looks move identities.
    keeper, learner = _keeper()
    a, b = _animal(200, 240), _animal(450, 240, -1, SMALL)
    for step in range(30):
        if step == 10:
            learner.model = _model()
        out = keeper.update(step / FPS, _frame(a, b), FLOOR)
        if step < 10:
            assert _identity_of_a(out, a) == 0
        # No merge made them unsure: while the looks turn the beliefs round, both animals are
        # shown (with their confidence), not withheld. Nor where the identities change tracks:
        # judged by track, that moves no animal, so it is no jump.
        assert np.isfinite(out[..., 0]).any(axis=1).all()
        assert not keeper.withheld.any(), step
    assert keeper.counts.reassignments == 1 and keeper.counts.unsure_unidentified == 0
    assert keeper.counts.jumps_withheld == 0
    assert _identity_of_a(out, a) == 1 and np.nanmin(keeper.confidence) > 0.99


@pytest.mark.parametrize("truly_apart", [False, True])
def test_apart_is_judged_on_whole_bodies_not_on_the_keypoints_a_detection_kept(
    truly_apart: bool,
) -> None:
    # B walks up to A until their noses are 31 px apart: in contact. Then the pose model drops
    # the noses (and one more of B's keypoints: B has no patch). Judged on the detections, the
    # animals are 93 px apart and A's patch would count alone; but it holds parts of B, and
    # here the model says A is identity 1. The bodies the tracker remembers keep the noses
    # where they were: in contact, A's looks count for nothing, and identities stay.
    keeper, learner = _keeper()
    stop = 550.0 if truly_apart else 250.0
    a = _animal(120, 240)
    for step in range(10):
        b = _animal(max(stop, 320.0 - 14.0 * step), 240, -1, SMALL)
        keeper.update(step / FPS, _frame(a, b), FLOOR)
    learner.model = _model()
    a_cut, b_cut = _animal(120, 240, drop=1), _animal(stop, 240, -1, SMALL, drop=2)
    gap = np.hypot(*(a_cut[:, None, :2] - b_cut[None, :, :2]).transpose(2, 0, 1))
    assert np.nanmin(gap) > 90
    shown = []
    for step in range(10, 25):
        out = keeper.update(step / FPS, _frame(a_cut, b_cut), FLOOR)
        shown.append(_identity_of_a(out, a_cut))
    if truly_apart:
        assert keeper.counts.reassignments == 1 and shown[-1] == 1
    else:
        assert keeper.counts.reassignments == 0 and shown == [0] * len(shown)
        assert np.nanmin(keeper.confidence) > 0.99


def test_looks_count_only_once_the_animals_have_been_apart_for_a_while() -> None:
    # Apart, then nose to nose (B without a patch: nothing to weigh), then apart again at once:
    # a pose model that drops the keypoints between two touching animals makes them look
    # apart for a frame or two, so the looks of a track count only after APART_HOLD_S apart.
    keeper, learner = _keeper()
    a = _animal(200, 240)
    far, near = _animal(400, 240, -1, SMALL), _animal(330, 240, -1, SMALL, drop=2)
    confidence = []
    walking_up = [_animal(400 - 14 * step, 240, -1, SMALL) for step in range(5)]
    for step in range(40):
        b = walking_up[step] if step < 5 else near if step < 15 else far
        if step == 5:
            learner.model = _model()
        keeper.update(step / FPS, _frame(a, b), FLOOR)
        confidence.append(keeper.confidence[0])
    held = round(APART_HOLD_S * FPS)  # frames apart before the looks count
    assert held >= 2
    # Apart from frame 15: the beliefs do not move until frame 15 + held, then they do.
    assert len(set(confidence[14 : 15 + held])) == 1 and confidence[14] > 0.99
    assert confidence[15 + held] < confidence[14]
    assert keeper.counts.reassignments == 1


def _after_a_blackout(
    keeper: IdentityKeeper, learner: _GivenLearner, model: AppearanceModel, b_drop: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Apart for 10 frames, unseen for a second (the tracks are lost), then back in contact.

    Returns each frame's animals as the rules see them (:meth:`IdentityKeeper.named`) and
    confidence after the blackout. The tracks start anew, knowing nothing of who they are
    (confidence 1/2): only the looks can tell.
    """
    a, b = _animal(200, 240), _animal(450, 240, -1, SMALL)
    for step in range(10):
        keeper.update(step / FPS, _frame(a, b), FLOOR)
    learner.model = model
    for step in range(10, 40):
        keeper.update(step / FPS, np.full((2, K, 3), np.nan), FLOOR)
    # Back, side by side and touching (30 px apart), both seen whole (B maybe not).
    a, b = _animal(200, 240), _animal(200, 270, -1, SMALL, drop=b_drop)
    after = []
    for step in range(40, 50):
        out = keeper.update(step / FPS, _frame(a, b), FLOOR)
        # The pose files get every animal whole, named or not; the rules, the named ones.
        assert _same_animals(out, _frame(a, b))
        after.append((keeper.named(out), keeper.confidence.copy()))
    return after


def _same_animals(out: np.ndarray, given: np.ndarray) -> bool:
    """Whether ``out`` holds the non-empty rows of ``given`` whole, in some order."""
    rows = [row for row in given if np.isfinite(row[:, 0]).any()]
    kept = [row for row in out if np.isfinite(row[:, 0]).any()]
    return len(rows) == len(kept) and all(
        any(np.array_equal(row, other, equal_nan=True) for other in kept) for row in rows
    )


def test_animals_in_contact_are_named_by_the_looks_of_both_in_two_frames() -> None:
    # Both patches seen: together they say which assignment is likelier, and a part of one
    # animal in the other's patch would pull both the same way (no assignment favoured).
    # One frame moves an even belief to 0.8; the second, agreeing, to 0.94: named.
    keeper, learner = _keeper(max_gap_s=0.5)
    after = _after_a_blackout(keeper, learner, _model(), b_drop=0)
    first, second = after[0], after[1]
    assert 0.5 < np.nanmin(first[1]) < MERGED_MIN_CONFIDENCE
    # Unsure while the looks can still tell: neither row is shown (not guessed).
    assert np.isnan(first[0]).all()
    assert np.nanmin(second[1]) >= MERGED_MIN_CONFIDENCE
    a = _animal(200, 240)
    assert _identity_of_a(second[0], a) == 1  # named by the looks, not by motion
    assert all(_identity_of_a(out, a) == 1 for out, _ in after[1:])
    assert keeper.counts.unsure_unidentified == 1


def test_looks_in_contact_that_contradicted_each_other_name_no_one_for_a_while() -> None:
    # Back in contact after a blackout, the first frame's two patches both look like A (B drawn
    # A's size: each patch holds parts of both). The next frames' looks agree (B small again),
    # but patches that mixed the two once may mix them the wrong way round next (free walking,
    # seed 7312: named so at 0.98): no one is named by the looks for CONTRADICTION_HOLD_S; then
    # two agreeing frames name them, still in contact (A identity 1, as the model says).
    keeper, learner = _keeper(max_gap_s=0.5)
    a, b = _animal(200, 240), _animal(450, 240, -1, SMALL)
    for step in range(10):
        keeper.update(step / FPS, _frame(a, b), FLOOR)
    learner.model = _model()
    for step in range(10, 40):
        keeper.update(step / FPS, np.full((2, K, 3), np.nan), FLOOR)
    held = int(CONTRADICTION_HOLD_S * FPS + 1e-6)  # frames after the contradiction set aside
    assert held >= 3
    touching = [_animal(200, 270, -1)] + [_animal(200, 270, -1, SMALL)] * (held + 2)
    named = []
    for step, b in enumerate(touching, start=40):
        out = keeper.update(step / FPS, _frame(a, b), FLOOR)
        named.append(_identity_of_a(keeper.named(out), a))
        if step <= 40 + held:
            assert np.nanmax(keeper.confidence) == pytest.approx(0.5), step
    assert named[: held + 2] == [None] * (held + 2)  # 0.8 after the first frame counted: unsure
    assert named[-1] == 1 and np.nanmin(keeper.confidence) >= MERGED_MIN_CONFIDENCE
    assert keeper.counts.contradicted_looks == held + 1


def test_one_animal_of_two_in_contact_is_not_named_by_its_looks_alone() -> None:
    # B has no patch: A's alone, in contact, holds parts of B (on the simulated arena such a
    # patch named the wrong mouse in 2 to 10 % of frames). Nothing is weighed; unsure, the
    # rows stay empty.
    keeper, learner = _keeper(max_gap_s=0.5)
    after = _after_a_blackout(keeper, learner, _model(), b_drop=2)
    for out, confidence in after:
        assert np.nanmax(confidence) == pytest.approx(0.5)
        assert np.isnan(out).all()
    assert keeper.counts.unsure_unidentified == len(after)


def test_where_the_looks_cannot_tell_motions_guess_is_shown_with_its_confidence() -> None:
    # A model that failed its held-out check (unmarked animals): waiting for the looks would
    # hide the animals for good, so motion's guess is shown, at confidence 1/2.
    keeper, learner = _keeper(max_gap_s=0.5)
    after = _after_a_blackout(keeper, learner, _model(sharp=False), b_drop=0)
    for out, confidence in after:
        assert np.nanmax(confidence) == pytest.approx(0.5)
        assert np.isfinite(out[..., 0]).any(axis=1).all()
    assert keeper.counts.unsure_unidentified == 0


def test_after_a_merge_the_tracker_weighs_looks_only_for_bodies_apart() -> None:
    # For a second after a merge the tracker may match detections by their looks too, but only
    # where every animal's patch shows that animal alone. Detections that left out the
    # keypoints between two touching animals (noses 31 px apart, dropped) look 93 px apart;
    # the bodies the tracker remembers say they touch: no looks in the matching.
    keeper, learner = _keeper()
    a = _animal(120, 240)
    for step in range(10):
        b = _animal(max(250.0, 320.0 - 14.0 * step), 240, -1, SMALL)
        keeper.update(step / FPS, _frame(a, b), FLOOR)
    learner.model = _model()
    cut = _frame(_animal(120, 240, drop=1), _animal(250, 240, -1, SMALL, drop=1))
    detections, probabilities = keeper._look(cut, FLOOR)
    assert len(detections) == 2 and probabilities is not None  # both patches cut
    assert not keeper.proximity.all_apart(cut, detections)
    # Truly apart, with the same keypoints dropped: the looks may weigh in.
    far_keeper, far_learner = _keeper()
    for step in range(10):
        far_keeper.update(step / FPS, _frame(a, _animal(550, 240, -1, SMALL)), FLOOR)
    far_learner.model = _model()
    far = _frame(_animal(120, 240, drop=1), _animal(550, 240, -1, SMALL, drop=1))
    far_detections, _ = far_keeper._look(far, FLOOR)
    assert far_keeper.proximity.all_apart(far, far_detections)


def _row_at(rows: np.ndarray, y: float) -> int | None:
    """The identity whose row the rules see lies at height ``y`` (within 3 px); None: none."""
    for identity, row in enumerate(rows):
        seen = np.isfinite(row[:, 1])
        if seen.any() and abs(float(np.mean(row[seen, 1])) - y) <= 3.0:
            return identity
    return None


def _side_by_side(ambiguous_frame: bool) -> Iterator[tuple[int, float, float, np.ndarray]]:
    """A and B apart, side by side (20 px apart, touching), one frame that motion cannot tell.

    That frame's two detections are the same body (the two animals' average) 0.8 px apart,
    midway between the animals: the best assignment and the swapped one cost nearly alike,
    and the best one is the swap. Yields each step, A's and B's heights and the instances.
    """

    def heights(step: int) -> tuple[float, float]:
        if step < 20 or step > 80:
            return 100.0, 380.0
        if step < 40:
            return 100.0 + 6.5 * (step - 20), 380.0 - 6.5 * (step - 20)
        if step <= 60:
            return 230.0, 250.0
        return 230.0 - 6.5 * (step - 60), 250.0 + 6.5 * (step - 60)

    for step in range(100):
        ya, yb = heights(step)
        a, b = _animal(200, ya), _animal(200, yb, scale=SMALL)
        if step == 50 and ambiguous_frame:
            middle = _animal(200, 240.4, scale=0.5 * (1 + SMALL))
            a, b = middle, middle.copy()
            b[:, 1] -= 0.8
        yield step, ya, yb, _frame(a, b)


def _side_by_side_run(ambiguous_frame: bool) -> tuple[IdentityKeeper, list[tuple[int, dict]]]:
    """The keeper through :func:`_side_by_side`; per frame where the rules see A and B (their
    identities) and how many identities are shown."""
    keeper, learner = _keeper()
    learner.model = _model()  # A is identity 1 by its looks; motion says 0 (left first)
    seen = []
    for step, ya, yb, instances in _side_by_side(ambiguous_frame):
        out = keeper.named(keeper.update(step / FPS, instances, FLOOR))
        shown = int(np.isfinite(out[..., 0]).any(axis=1).sum())
        seen.append((step, {"a": _row_at(out, ya), "b": _row_at(out, yb), "shown": shown}))
    return keeper, seen


def test_a_region_both_unnamed_animals_are_in_is_entered_by_each_of_them() -> None:
    # The same run, the frames as the live worker gives them to the rules (rules_view). In
    # the ambiguous frame both detections lie in a small circle between the animals, both
    # unnamed from it: whichever row each animal is, it is inside. Each has entered, then,
    # under its own identity; neither row's point is the event's (unknown which is whose).
    keeper, learner = _keeper()
    learner.model = _model()
    each = EachAnimal(Region(Circle(195.5, 240.0, 3), mode="entered", keypoint="k4"))
    entered: dict[int, tuple[int, str]] = {}
    for step, _, _, instances in _side_by_side(ambiguous_frame=True):
        found = keeper.update(step / FPS, instances, FLOOR)
        shown, withheld, unnamed = rules_view(keeper, found)
        observation = Observation(
            time_s=step / FPS, camera="top", frame_index=step, keypoints=shown[0],
            names=NAMES, animals=shown, withheld=withheld[0], animals_withheld=withheld,
            unnamed_rows=unnamed,
        )  # fmt: skip
        if each.update(observation):
            for animal in each.rose_animals():
                entered.setdefault(animal, (step, each.measurement_of(animal)))
    assert entered == {animal: (50, entered[animal][1]) for animal in (1, 2)}
    assert all("decided while unnamed" in detail for _, detail in entered.values())


def test_a_frame_motion_cannot_tell_leaves_the_animals_unnamed_until_their_looks_say() -> None:
    # Touching side by side, the tracker's best assignment of one frame is a swap that costs
    # nearly what keeping them does (an ambiguous frame): which is which is a guess. The
    # rules must not see A under B's identity while the looks turn the beliefs round: the
    # two are left unnamed until their looks (both patches seen) name them again.
    keeper, seen = _side_by_side_run(ambiguous_frame=True)
    assert keeper.tracker.counts.ambiguous_assignments >= 1
    assert keeper.counts.ambiguous_mixed >= 1
    after_looks = [where for step, where in seen if step >= 10]
    assert all(where["a"] in (None, 1) and where["b"] in (None, 0) for where in after_looks)
    unnamed = [step for step, where in seen if 50 <= step <= 60 and where["shown"] == 0]
    assert unnamed and unnamed[0] in (50, 51)  # from the ambiguous frame on
    last = seen[-1][1]
    assert (last["a"], last["b"]) == (1, 0) and np.nanmin(keeper.confidence) > 0.99


def test_touching_side_by_side_without_an_ambiguous_frame_stays_named() -> None:
    # The control: the same run where motion can tell every frame: both named all along.
    keeper, seen = _side_by_side_run(ambiguous_frame=False)
    assert keeper.tracker.counts.ambiguous_assignments == 0
    assert keeper.counts.ambiguous_mixed == 0
    assert all((where["a"], where["b"]) == (1, 0) for step, where in seen if step >= 10)
