"""Several animals: the multi-animal path's rate, identity switches and keypoint error.

Run ``python -m benchmarks.multi_animal [--seeds N] [--case NAME ...] [--seconds S]
[--out DIR] [--model PATH] [--smoke]``.

Every case runs on the simulated arena (640 x 480, 30 fps) once per seed (``--seeds N``, 5 by
default: arenas ``--first-seed`` (7301) and the N - 1 after it, none of which the models trained
on, and none the identity step's thresholds were tuned on: that was 4242; release 0.7.0's
figures were at 4242-4246), for ``--seconds`` (600 by default: 10 minutes), one frame at a
time as the live loop does (batch 1), and every figure is given as its median and its worst
over the seeds: no run is picked. The results go to ``<DIR>/multi_animal.json`` with
``--out DIR`` (nothing is written without it).

* **rate** (``--case rate``): two mice moving freely, every frame through the whole
  multi-animal path of the inference worker: pre-processing, the two-mouse model
  (``pose/bundled/arena-pair``, this project's bottom-up model), grouping into animals, and the
  identities (the motion tracker under the appearance keeper, :mod:`pose.tracking.identities`,
  its learner in its own process as in the worker). Baseline: the bundled single-animal model's
  path on the same frames in the same run. Goal: 30 fps for two animals.
* **identities** (``--case cross``, ``free``, ``cross_unmarked``, ``free_unmarked``): two mice
  crossing paths (``SOCIAL = cross``: bodies overlapping at every crossing) and walking freely
  (``SOCIAL = free``: random walks that meet, touch and lie on each other for a second or more),
  marked (the default simulation: :mod:`hardware.simulator.marks`) and unmarked
  (``MARKS = false``), each for ``--seconds`` of video. Every frame's instances go through the
  keeper as the worker runs it and through the motion-only tracker (the baseline, the same
  instances in the same run). Two truths are scored against the simulator's identities, with
  identity switches counted the MOT way (:mod:`pose.tracking.switches`), scaled to 10 minutes:

  - **rules**: what the experiments read (the keeper's rows less the animals it left unnamed
    in that frame: after a merge, while unsure, a chimera). A switch here is a rule acting on
    the other animal. Goal in the marked cases: 0 at every seed.
  - **files**: the pose files' rows, the framework's animals whole in identity order (what a
    lab analyses; ``<camera>.identity.csv``'s ``unnamed`` column applied to them gives the
    rules' view back). Measured, no goal: a chimera written whole is one animal's row under
    the other's identity for a frame.

  Beside them the share of animal-frames under no identity (misses; the files' misses are
  the animals the model did not find) and under a wrong identity (each animal's first kept),
  and the median keypoint error of the rules' view, each identity kept from its first match
  (so a switch shows as error), against one mouse alone.

  **Keypoints of another animal** (what a rule reads, keypoint by keypoint): each identity is
  the true animal it matched first; a keypoint of its row (likelihood >= 0.1) is another
  animal's when it is :data:`WRONG_MARGIN_PX` (5 px) nearer one of the other animal's true
  keypoints (hidden ones included) than its own animal's true same part. Counted as rows
  (animal-frames) holding one, per 10 minutes, for the rules and the files. Goal (marked):
  0 at every seed. The whole-animal switches above only match animals on the mean of their
  keypoints within 20 px: a single borrowed keypoint does not show there. Beside the rules'
  rows, the model's own rows with the identity known (as for the entries, below): a wrong
  keypoint of the rules that its animal's row there holds too, wrong, is the model's own (it
  put that part on the other animal); the rest are wrong **for the identity**.

  **Entries** (the rules' rows through the project's own region trigger,
  ``Region(circle, mode="entered", keypoint="body_center")``, its defaults, the keeper's
  :attr:`~pose.tracking.identities.IdentityKeeper.withheld` and the unnamed rows in the
  observation, as a live session gives them): for each
  identity, 20 px circles at the crossing point (``cross``: where the true body centres
  meet) and on a 3 x 3 grid over where the mice walk ("elsewhere"). A true entry (the true
  body centre crossing in) is found when the trigger fires from :data:`EARLY_FRAMES` before
  it to the true exit; lost otherwise; late by the frames after the true entry. Beside them
  the same rows to a trigger that takes unknown for lost (``withheld`` not given: release
  0.7.0's trigger, ``hold_s`` 0.5 s). And the model's own rows with the identity known (each
  on the true animal it is, nothing withheld) to the same trigger: an entry the rules lost and
  those rows did not is lost **for the identity**; what those rows lose is the model's own.
  Goals (marked): lost at the crossing point <= 2 %, elsewhere <= 1 %, late <= 5 frames at
  the median.
* **one_mouse**: the single-animal model on one mouse moving freely for ``--seconds``: the
  baseline of the keypoint error rows.
* **identity step** (from the identity cases): the keeper's cost per frame on the loop (p50,
  p99; goal <= 1 ms p99), on the clock and in CPU time of its thread, and the learning's CPU
  time (per fit, and per second of video).
* **sleap** (``--case sleap``): the sleap-nn flies export on its 1024 x 1024 clip
  (``../shared/data/sleap-flies``, when present), per frame: a real multi-animal model's cost on
  this machine (no baseline; one run, not per seed).

**What depends on the machine's load, and what does not.** The identity cases' decisions are
driven frame by frame: the model's output of a frame is the same whatever the load, and the
appearance learning runs on the video's clock (:class:`FrameClockLearner`: the worker's
background learner's schedule, a fit every
:data:`~live.processes.analysis.identities.POLL_S` of video when it has
:data:`~live.processes.analysis.identities.REFIT_SAMPLES` new samples, its model used from
the next frame), never on the wall clock, so the switches, misses and errors of a seed are the
same on an idle or a busy machine. (Live, a starved learner delivers its models later; here they
come as they would on a machine with a core to spare.) Only the timings (rate, identity step)
depend on the load: the load average is recorded at the start and at the end of every seed.

``--smoke`` runs a few frames of one seed and saves nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks.common import now_iso, print_table, save_result, summarize_ms
from deeplabstream.core.figures import Figure, format_number
from deeplabstream.core.machine import load_average_1m, machine_description
from deeplabstream.experiments.observation import Observation, unnamed_rows
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.regions import Region
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES, ArenaParams
from deeplabstream.hardware.simulator.herd import HerdParams, SimulatedHerd
from deeplabstream.live.processes.analysis.identities import (
    POLL_S,
    REFIT_SAMPLES,
    BackgroundLearner,
)
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.loading import BUNDLED_MODEL, load_model, open_estimator
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.tracking.appearance import AppearanceLearner, InlineLearner
from deeplabstream.pose.tracking.identities import IdentityKeeper
from deeplabstream.pose.tracking.patches import feature_count
from deeplabstream.pose.tracking.switches import (
    count_identity_switches,
    keypoint_errors,
    match_identities,
)
from deeplabstream.pose.tracking.tracker import IdentityTracker

PAIR_MODEL = BUNDLED_MODEL.parent / "arena-pair"
SLEAP_EXPORT = (
    Path(__file__).resolve().parents[2] / "shared/data/sleap-flies/onnx/flies_bottomup_tiny_onnx"
)
SLEAP_CLIP = SLEAP_EXPORT.parents[1] / "inference" / "flies_clip_first100.mp4"
# Arenas neither model trained on (the pair model: 1000-1031, 1500s, 1800s), and that the
# identity step's thresholds were not tuned on (tuned on 4242; 0.7.0's figures were 4242-4246).
FIRST_SEED = 7301
WRONG_MARGIN_PX = 5.0
"""A keypoint the rules read is another animal's when it is this much nearer one of that
animal's true keypoints than its own animal's true same part."""
REGION_RADIUS_PX = 20.0
ENTRY_KEYPOINT = "body_center"
EARLY_FRAMES = 3
"""A rule's entry this many frames before the true one still counts as that entry (the model's
keypoint is a pixel or two off the true one at the border)."""
DEFAULT_SEEDS = 5
FPS = 30.0
RATE_FRAMES = 600
DEFAULT_SECONDS = 600.0
SMOKE_FRAMES = 30
THREADS = 2
# name -> (social scenario, marked): the default simulation is marked.
IDENTITY_CASES = {
    "cross": ("cross", True),
    "free": ("free", True),
    "cross_unmarked": ("cross", False),
    "free_unmarked": ("free", False),
}
MARKED_CASES = ("cross", "free")
CASES = ("rate", *IDENTITY_CASES, "one_mouse", "sleap")
TITLES = {
    "cross": "crossing",
    "free": "free",
    "cross_unmarked": "crossing, unmarked",
    "free_unmarked": "free, unmarked",
}
TRUTHS = ("rules", "files")
# The identity step's figures: key, label, where in a seed's run, goal.
STEP_FIGURES = (
    ("identity_step.p50_ms", "identity step, p50", ("step_ms", "p50"), ""),
    ("identity_step.p99_ms", "identity step, p99", ("step_ms", "p99"), "<= 1 ms"),
    ("identity_step.cpu_p99_ms", "identity step, CPU time of its thread, p99",
     ("step_cpu_ms", "p99"), ""),
    ("learning.ms_per_s", "learning, CPU per s of video", ("learning", "ms_per_s"), ""),
)  # fmt: skip


class FrameClockLearner(InlineLearner):
    """The worker's background learner's schedule, on the video's clock instead of the wall's.

    :func:`live.processes.analysis.identities._learn` looks for new samples every ``POLL_S`` and
    fits when there are any before the first model, then every ``REFIT_SAMPLES`` new ones. Here the
    benchmark calls :meth:`poll` between frames with the frame's time, so that when a model comes
    (and so every identity decision) does not depend on how busy the machine is. The fit runs in the
    benchmark's thread, outside the identity step's timing; its CPU time is kept.
    """

    def __init__(self, identities: int, features: int) -> None:
        super().__init__(identities, features, refit_every=sys.maxsize)
        self._next_poll_s = POLL_S
        self.fit_cpu_ns = 0
        self.last_fit_ns = 0

    def poll(self, time_s: float) -> None:
        """At each ``POLL_S`` of video time: fit when the background learner would."""
        if time_s < self._next_poll_s:
            return
        self._next_poll_s += POLL_S * (1 + int((time_s - self._next_poll_s) // POLL_S))
        if self._new == 0 or (self.fits > 0 and self._new < REFIT_SAMPLES):
            return
        started = time.process_time_ns()
        with _one_blas_thread():  # as in the learner process (many spin on a busy machine)
            self.fit()
        self.last_fit_ns = time.process_time_ns() - started
        self.fit_cpu_ns += self.last_fit_ns

    def figures(self) -> dict[str, Any]:
        """The learning's figures, as the background learner reports them."""
        return {
            "fits": self.fits,
            "last_fit_ms": round(self.last_fit_ns / 1e6, 3) if self.fits else None,
            "fit_cpu_s": round(self.fit_cpu_ns / 1e9, 3),
        }


def _one_blas_thread() -> AbstractContextManager[object]:
    """numpy's BLAS on one thread, where threadpoolctl is installed (it comes with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


class _Keeper:
    """The keeper as the worker runs it, timed per frame; both truths of every frame kept."""

    def __init__(self, keypoints: int, learner: AppearanceLearner) -> None:
        self.learner = learner
        self.keeper = IdentityKeeper(IdentityTracker(2, keypoints), learner)
        self.step_ns: list[int] = []
        self.step_cpu_ns: list[int] = []  # this thread's CPU time: the cost without preemption
        self.confidence: list[np.ndarray] = []
        self.files: list[np.ndarray] = []
        self.withheld: list[np.ndarray] = []  # (A, K) per frame: unknown to the rules

    def update(self, time_s: float, animals: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Return what the rules see of this frame; keep the pose files' rows."""
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        identified = self.keeper.update(time_s, animals, frame)
        self.step_ns.append(time.perf_counter_ns() - started)
        self.step_cpu_ns.append(time.thread_time_ns() - started_cpu)
        if isinstance(self.learner, FrameClockLearner):
            self.learner.poll(time_s)  # between frames, as the background learner would
        self.confidence.append(self.keeper.confidence.copy())
        self.files.append(identified)
        self.withheld.append(self.keeper.withheld.copy())
        return self.keeper.named(identified)


def _herd(seed: int, animals: int, social: str, marked: bool = True) -> SimulatedHerd:
    arena = ArenaParams(seed=seed, framerate=FPS)
    return SimulatedHerd(HerdParams(arena, animals, social, marked))  # type: ignore[arg-type]


def _estimator(model: Path | None, shape: tuple[int, ...], max_animals: int) -> PoseEstimator:
    description = load_model(model, frame_size=(shape[0], shape[1]), max_animals=max_animals)
    if description.any_input_size:
        description = description.at_input_size(*shape[:2])
    backend = open_backend(description, "onnxruntime", "cpu", THREADS)
    backend.warm_up()
    return open_estimator(description, backend, shape)


def _analyse(
    estimator: PoseEstimator | _Recorded,
    herd: SimulatedHerd,
    count: int,
    keeper: _Keeper | None,
    raw: list[np.ndarray] | None = None,
    motion: tuple[IdentityTracker, list[np.ndarray]] | None = None,
    whole: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Render and analyse ``count`` frames one by one, as the worker does (frames not kept).

    Returns the analysed animals (T, A, K, 3) (through ``keeper``, when given: what the rules
    see), the truth (T, B, 6, 2) with keypoints hidden under another mouse NaN (nothing to
    score there), and each frame's analysis time (ns). ``raw``, when given, gets each frame's
    instances as the model gave them; ``motion``, a motion-only tracker and the list its
    output of the same instances goes to (the baseline, not timed); ``whole``, every true
    keypoint, hidden ones too (where each animal is: the wrong-keypoint and entry measures).
    """
    frame = np.empty(herd.frame_shape, np.uint8)
    out, truth, took = [], [], []
    for index in range(count):
        _, true = herd.render_next(frame)
        started = time.perf_counter_ns()
        found = estimator.estimate_animals([frame])[0]
        animals = found if keeper is None else keeper.update(index / FPS, found, frame)
        took.append(time.perf_counter_ns() - started)
        if raw is not None:
            raw.append(found)
        if motion is not None:
            motion[1].append(motion[0].update(index / FPS, found))
        out.append(animals)
        xy = true[..., :2].astype(np.float64)
        if whole is not None:
            whole.append(xy.copy())
        xy[true[..., 2] < 0.5] = np.nan
        truth.append(xy)
    return np.stack(out), np.stack(truth), took


def _wrong_share(tracked: np.ndarray, truth: np.ndarray) -> float:
    """Percentage of matched animal-frames under another identity than the animal's first.

    What a closed loop lives with: a swap corrected a few frames later counts two switches per
    animal (out and back), one never corrected counts one; this counts the frames wrong.
    """
    matched = match_identities(tracked, truth)
    first = np.array([column[column >= 0][0] if (column >= 0).any() else -1
                      for column in matched.T])  # fmt: skip
    hit = matched >= 0
    return round(100 * float((hit & (matched != first)).sum()) / max(int(hit.sum()), 1), 2)


def _switches(tracked: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Identity switches of one truth of one case, per 10 minutes, misses and wrong frames."""
    report = count_identity_switches(tracked, truth)
    minutes = len(truth) / FPS / 60
    return {
        "switches": report.switches,
        "switch_frames": list(report.switch_frames),
        "per_10_min": round(report.switches * 10 / minutes, 2),
        # Misses (MOT): a true animal under no identity (left unnamed, or not found).
        "missed_pct": round(100 * (1 - report.matched_fraction), 2),
        "wrong_identity_pct": _wrong_share(tracked, truth),
        "error_px": round(float(np.nanmedian(keypoint_errors(tracked, truth))), 3),
    }


def _owners(tracked: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(A,) the true animal each identity matched first (-1: never matched)."""
    matched = match_identities(tracked, truth)  # (T, B): the identity of each true animal
    owner = np.full(tracked.shape[1], -1, np.intp)
    for frame, animal in zip(*np.nonzero(matched >= 0), strict=True):
        identity = int(matched[frame, animal])
        if owner[identity] < 0:
            owner[identity] = animal
        if (owner >= 0).all():
            break
    return owner


def _wrong_mask(tracked: np.ndarray, owner: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """(T, A, K) the keypoints (likelihood >= 0.1) of each identity that are another animal's.

    ``owner``: the true animal of each identity (-1: none, nothing wrong). A keypoint is wrong
    when it is :data:`WRONG_MARGIN_PX` nearer any true keypoint of another animal than its own
    animal's true same part (``whole``: hidden ones included).
    """
    xy = tracked[..., :2].astype(np.float64).copy()
    xy[~(tracked[..., 2] >= 0.1)] = np.nan
    frames, animals, keypoints = xy.shape[:3]
    wrong = np.zeros((frames, animals, keypoints), bool)
    for identity, animal in enumerate(owner.tolist()):
        if animal < 0:
            continue
        own = np.hypot(*(xy[:, identity] - whole[:, animal]).transpose(2, 0, 1))  # (T, K)
        others = np.delete(whole, animal, axis=1).reshape(frames, 1, -1, 2)  # (T, 1, B'L, 2)
        gap = np.hypot(*(xy[:, identity][:, :, None] - others).transpose(3, 0, 1, 2))
        nearest = np.fmin.reduce(gap, axis=2)
        wrong[:, identity] = nearest + WRONG_MARGIN_PX < own
    return wrong


def _wrong_figures(wrong: np.ndarray) -> dict[str, Any]:
    """The counts of a (T, A, K) mask of wrong keypoints, and its rows per 10 minutes."""
    rows: np.ndarray = np.any(wrong, axis=2)
    minutes = wrong.shape[0] / FPS / 60
    return {
        "keypoints": int(wrong.sum()),
        "rows": int(rows.sum()),
        "rows_per_10_min": round(int(rows.sum()) * 10 / minutes, 2),
        "frames": np.flatnonzero(np.any(rows, axis=1))[:50].tolist(),
        "margin_px": WRONG_MARGIN_PX,
    }


def _wrong_keypoints(
    tracked: np.ndarray,
    truth: np.ndarray,
    whole: np.ndarray,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Keypoints the rules read (likelihood >= 0.1) that are another animal's, against the truth.

    Each identity is its first-matched true animal's (:func:`_owners`); a keypoint is wrong as
    :func:`_wrong_mask` says. A whole-animal swap shows as all its keypoints wrong; a borrowed
    keypoint as one. ``known``: the model's rows with the identity known (:func:`_oracle_rows`)
    and their wrong keypoints: a wrong keypoint is the model's own when its animal's row there
    holds the same point, wrong too; the others are wrong **for the identity**.
    """
    owner = _owners(tracked, truth)
    wrong = _wrong_mask(tracked, owner, whole)
    figures = _wrong_figures(wrong)
    if known is not None:
        rows, rows_wrong = known
        models = np.zeros_like(wrong)
        for identity, animal in enumerate(owner.tolist()):
            if animal >= 0:
                same = np.all(tracked[:, identity, :, :2] == rows[:, animal, :, :2], axis=2)
                models[:, identity] = rows_wrong[:, animal] & same
        for_identity = _wrong_figures(wrong & ~models)
        figures.update(
            keypoints_for_identity=for_identity["keypoints"],
            rows_for_identity=for_identity["rows"],
            rows_for_identity_per_10_min=for_identity["rows_per_10_min"],
            frames_for_identity=for_identity["frames"],
        )
    return figures


def _regions(whole: np.ndarray, social: str) -> tuple[Circle | None, list[Circle]]:
    """The crossing point's circle (``cross``; None otherwise) and a 3 x 3 grid elsewhere.

    The crossing point is where the mice's true body centres meet (their midpoint, averaged
    over the frames they are within a body width); the grid spans the middle 80 % of where the
    mice walked, less any circle within two radii of the crossing point.
    """
    centre = whole[:, :, KEYPOINT_NAMES.index(ENTRY_KEYPOINT)]  # (T, B, 2)
    crossing = None
    if social == "cross" and centre.shape[1] >= 2:
        gap = np.hypot(*(centre[:, 0] - centre[:, 1]).T)
        close = gap <= np.nanpercentile(gap, 2)
        cx, cy = np.nanmean(0.5 * (centre[close, 0] + centre[close, 1]), axis=0)
        crossing = Circle(float(cx), float(cy), REGION_RADIUS_PX)
    flat = centre.reshape(-1, 2)
    low, high = np.nanpercentile(flat, 10, axis=0), np.nanpercentile(flat, 90, axis=0)
    grid = []
    for fx in (0.0, 0.5, 1.0):
        for fy in (0.0, 0.5, 1.0):
            x, y = low + (high - low) * np.array([fx, fy])
            if crossing is None or math.hypot(x - crossing.cx, y - crossing.cy) > 2 * (
                REGION_RADIUS_PX * 2
            ):
                grid.append(Circle(float(x), float(y), REGION_RADIUS_PX))
    return crossing, grid


def _true_visits(inside: np.ndarray) -> list[tuple[int, int]]:
    """(entry frame, first frame outside again) of each visit entered from outside."""
    change = np.flatnonzero(np.diff(inside.astype(np.int8)))
    visits, start = [], None
    for frame in (change + 1).tolist():
        if inside[frame]:
            start = frame
        elif start is not None:
            visits.append((start, frame))
            start = None
    if start is not None:
        visits.append((start, inside.size))
    return visits


def _entries_of(
    rules: np.ndarray, withheld: Withheld | None, identity: int, circle: Circle
) -> tuple[list[int], list[int]]:
    """Feed a region trigger (``entered``, its defaults) each frame of one identity's rows.

    Returns the frames it fired on and the lateness its events gave.
    """
    trigger = Region(circle, mode="entered", keypoint=ENTRY_KEYPOINT)
    fired, late = [], []
    for frame in range(rules.shape[0]):
        observation = Observation(
            time_s=frame / FPS,
            camera="arena",
            frame_index=frame,
            keypoints=rules[frame, identity],
            names=KEYPOINT_NAMES,
            withheld=None if withheld is None else withheld.masks[frame, identity],
            unnamed_rows=None if withheld is None else withheld.unnamed[frame],
        )
        if trigger.update(observation):
            fired.append(frame)
            late.append(trigger.late_frames)
    return fired, late


class Withheld(NamedTuple):
    """What the identity step withheld from the rules, per frame, and the unnamed rows."""

    masks: np.ndarray  # (T, A, K)
    unnamed: list[np.ndarray | None]  # the rows an unnamed animal may be (observation.py)

    @classmethod
    def of(cls, masks: np.ndarray, files: np.ndarray) -> Withheld:
        """Return the masks with each frame's unnamed rows, as the live session makes them."""
        return cls(masks, [unnamed_rows(*pair) for pair in zip(files, masks, strict=True)])


def _oracle_rows(raw: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """(T, B, K, 3) the model's rows, each on the true animal it is: the identity known."""
    matched = match_identities(raw, whole)  # (T, B): the row of each true animal
    rows = np.full((*whole.shape[:2], raw.shape[2], 3), np.nan)
    frames, animals = np.nonzero(matched >= 0)
    rows[frames, animals] = raw[frames, matched[frames, animals]]
    return rows


def _entries(
    rules: np.ndarray, withheld: Withheld | None, truth: np.ndarray, whole: np.ndarray,
    social: str, owner: np.ndarray | None = None, floor: set[tuple] | None = None,
) -> tuple[dict[str, Any], set[tuple]]:  # fmt: skip
    """Entries of each identity's body centre into 20 px circles: lost and late, vs the truth.

    A true entry (its animal's true body centre crossing in) is found when the rule on the
    identity that animal is fired in [entry - :data:`EARLY_FRAMES`, the true exit]; late by
    the frames after the true entry. Both identities, at the crossing point (``cross``) and
    on a grid elsewhere (:func:`_regions`). ``owner``: the true animal of each identity
    (default: the one it matched first). Returns the figures and the lost entries (where,
    circle, animal, entry frame); ``floor``, the lost entries of the same model's rows with
    the identity known (:func:`_oracle_rows`): what is lost beyond them is lost for the
    identity (``lost_for_identity``).
    """
    owner = _owners(rules, truth) if owner is None else owner
    crossing, grid = _regions(whole, social)
    lost_entries: set[tuple] = set()
    centre_index = KEYPOINT_NAMES.index(ENTRY_KEYPOINT)
    out: dict[str, Any] = {}
    for where, circles in (("crossing", [crossing] if crossing else []), ("elsewhere", grid)):
        true_entries = lost = spurious = 0
        lateness: list[int] = []
        said_late: list[int] = []
        for circle_index, circle in enumerate(circles):
            for identity, animal in enumerate(owner.tolist()):
                if animal < 0:
                    continue
                centre = whole[:, animal, centre_index]
                inside = np.hypot(centre[:, 0] - circle.cx, centre[:, 1] - circle.cy) <= circle.r
                visits = _true_visits(inside)
                fired, late = _entries_of(rules, withheld, identity, circle)
                used = np.zeros(len(fired), bool)
                for start, end in visits:
                    true_entries += 1
                    window = [
                        i for i, f in enumerate(fired)
                        if not used[i] and start - EARLY_FRAMES <= f < max(end, start + 1)
                    ]  # fmt: skip
                    if not window:
                        lost += 1
                        lost_entries.add((where, circle_index, animal, start))
                        continue
                    used[window[0]] = True
                    lateness.append(max(fired[window[0]] - start, 0))
                    said_late.append(late[window[0]])
                spurious += int((~used).sum())
        out[where] = {
            "regions": len(circles),
            "true_entries": true_entries,
            "lost": lost,
            "lost_pct": round(100 * lost / true_entries, 2) if true_entries else None,
            "late_median_frames": float(np.median(lateness)) if lateness else None,
            "late_max_frames": int(max(lateness)) if lateness else None,
            "decided_late": int(np.count_nonzero(said_late)),
            "spurious": spurious,
        }
        if floor is not None:
            beyond = sum(1 for key in lost_entries - floor if key[0] == where)
            out[where]["lost_for_identity"] = beyond
            out[where]["lost_for_identity_pct"] = (
                round(100 * beyond / true_entries, 2) if true_entries else None
            )
    if crossing is not None:
        out["crossing_point"] = [round(crossing.cx, 1), round(crossing.cy, 1)]
    return out, lost_entries


class _Recorded:
    """The model's instances of an earlier run of one case and seed (``--dump``), frame by frame.

    Stands in for the model where only the identities are studied (``--instances``): the
    model's output of a frame does not depend on when it runs, so the identity figures are
    those of a run with the model; its time is not measured.
    """

    def __init__(self, path: Path, frames: int) -> None:
        if not path.is_file():
            raise SystemExit(f"--instances: {path} is missing (write it with --dump)")
        with np.load(path) as data:
            self.raw, self.truth = data["raw"], data["truth"]
        if len(self.raw) < frames:
            raise SystemExit(
                f"--instances: {path} holds {len(self.raw)} frames, {frames} are needed: "
                "write it again with --dump and these --seconds"
            )
        self.path, self.next = path, 0

    def estimate_animals(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Return the next frame's instances as the model gave them."""
        found = self.raw[self.next]
        self.next += 1
        return [found]

    def check(self, truth: np.ndarray) -> None:
        """Refuse instances recorded on other frames than this arena's (another seed, case)."""
        if not np.array_equal(self.truth[: len(truth)], truth, equal_nan=True):
            raise SystemExit(f"--instances: {self.path} was recorded on another arena or case")


def _instances_file(folder: Path, name: str, seed: int) -> Path:
    return folder / f"{name}_{seed}.npz"


def _identity_case(
    pair: PoseEstimator,
    seed: int,
    name: str,
    frames: int,
    instances: tuple[Path | None, Path | None] = (None, None),
) -> dict[str, Any]:
    """One identity case of one seed: both truths, the motion-only baseline, the step's cost.

    ``instances``: the folders to take the model's instances from (``--instances``) and to
    write them to (``--dump``), or None.
    """
    social, marked = IDENTITY_CASES[name]
    keypoints = len(pair.description.keypoints)
    learner = FrameClockLearner(2, feature_count())
    keeper = _Keeper(keypoints, learner)
    raw: list[np.ndarray] = []
    motion: list[np.ndarray] = []
    whole: list[np.ndarray] = []
    herd = _herd(seed, 2, social, marked)
    source, dump = instances
    recorded = _Recorded(_instances_file(source, name, seed), frames) if source else None
    rules, truth, _ = _analyse(
        recorded or pair, herd, frames, keeper, raw, (IdentityTracker(2, keypoints), motion),
        whole,
    )  # fmt: skip
    true_whole = np.stack(whole)
    files = np.stack(keeper.files)
    if recorded is not None:
        recorded.check(truth)
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            _instances_file(dump, name, seed), raw=np.stack(raw), truth=truth, fps=FPS
        )
    seconds = frames / FPS
    learning = learner.figures()
    # The model's own losses and wrong keypoints: its rows with the identity known, nothing
    # withheld.
    oracle, animals = _oracle_rows(np.stack(raw), true_whole), np.arange(true_whole.shape[1])
    known, floor = _entries(oracle, None, truth, true_whole, social, owner=animals)
    oracle_wrong = _wrong_mask(oracle, animals, true_whole)
    withheld = Withheld.of(np.stack(keeper.withheld), files)
    return {
        "rules": {
            **_switches(rules, truth),
            "wrong_keypoints": _wrong_keypoints(
                rules, truth, true_whole, known=(oracle, oracle_wrong)
            ),
            "wrong_keypoints_identity_known": _wrong_figures(oracle_wrong),
            "entries": _entries(rules, withheld, truth, true_whole, social, floor=floor)[0],
            # The same rows to a trigger that takes unknown for lost (0.7.0's, hold_s 0.5 s).
            "entries_unknown_as_lost": _entries(rules, None, truth, true_whole, social)[0],
            "entries_identity_known": known,
        },
        "files": {
            **_switches(files, truth),
            "wrong_keypoints": _wrong_keypoints(files, truth, true_whole),
        },
        "motion_only": _switches(np.stack(motion), truth),
        "matched_each_frame_px": round(
            float(np.nanmedian(keypoint_errors(rules, truth, per_frame=True))), 3
        ),
        "step_ms": summarize_ms(keeper.step_ns[10:]),
        "step_cpu_ms": summarize_ms(keeper.step_cpu_ns[10:]),
        "learning": {
            **learning,
            "ms_per_s": round(1000 * learning["fit_cpu_s"] / seconds, 3) if seconds else None,
        },
        "keeper": keeper.keeper.counts.as_dict(),
        "tracker": keeper.keeper.tracker.counts.as_dict(),
        "mean_confidence": round(float(np.nanmean(np.stack(keeper.confidence))), 4),
    }


def _rate_case(pair: PoseEstimator, single: PoseEstimator, seed: int, frames: int) -> dict:
    """The whole path's cost per frame for two mice (keeper and its background learner)."""
    learner = BackgroundLearner.start(2, feature_count(), label=" benchmark")
    try:
        keeper = _Keeper(len(pair.description.keypoints), learner)
        _, _, pair_ns = _analyse(pair, _herd(seed, 2, "free"), frames, keeper)
    finally:
        learner.close()
    _, _, single_ns = _analyse(single, _herd(seed, 2, "free"), frames, None)
    return {"two_mice_ms": summarize_ms(pair_ns[10:]), "one_mouse_ms": summarize_ms(single_ns[10:])}


def _one_mouse_case(single: PoseEstimator, seed: int, frames: int) -> dict[str, Any]:
    """The single-animal model on one mouse: the keypoint error baseline."""
    alone, truth, _ = _analyse(single, _herd(seed, 1, "free"), frames, None)
    return {"error_px": round(float(np.nanmedian(keypoint_errors(alone, truth))), 3)}


def _sleap_case(frames: int) -> dict[str, Any] | None:
    """Per-frame cost of the sleap-nn flies export on its clip; None without ../shared."""
    if not SLEAP_CLIP.is_file():
        return None
    import av

    with av.open(str(SLEAP_CLIP)) as video:
        images = [f.to_ndarray(format="bgr24") for f in video.decode(video=0)][:frames]
    estimator = _estimator(SLEAP_EXPORT, images[0].shape, 2)
    tracker = IdentityTracker(2, len(estimator.description.keypoints), min_likelihood=0.1)
    took = []
    for index, image in enumerate(images):
        started = time.perf_counter_ns()
        tracker.update(index / FPS, estimator.estimate_animals([image])[0])
        took.append(time.perf_counter_ns() - started)
    return {"frame_ms": summarize_ms(took[5:]), "frames": len(images)}


# --- over the seeds -----------------------------------------------------------------------


def _field(*path: str) -> Callable[[dict[str, Any]], Any]:
    """Return what reads ``run[path[0]][path[1]]...`` of a seed's run."""

    def read(run: dict[str, Any]) -> Any:
        for key in path:
            run = run[key]
        return run

    return read


def _over_seeds(
    per_seed: dict[int, dict[str, Any]],
    value: Callable[[dict[str, Any]], float | None],
    higher_is_better: bool = False,
) -> tuple[float | None, float | None]:
    """Return the median and the worst of one figure over the seeds (None where not run)."""
    values = [value(run) for run in per_seed.values()]
    found = [v for v in values if v is not None]
    if not found:
        return None, None
    worst = min(found) if higher_is_better else max(found)
    return round(float(np.median(found)), 3), worst


def _pair(
    key: str,
    label: str,
    per_seed: dict[int, dict[str, Any]],
    value: Callable[[dict[str, Any]], float | None],
    baseline: Callable[[dict[str, Any]], float | None] | None = None,
    **options: Any,
) -> list[Figure]:
    """Two figures: the median over the seeds and the worst, each beside its baseline's."""
    higher = bool(options.get("higher_is_better", False))
    median, worst = _over_seeds(per_seed, value, higher)
    base_median, base_worst = (
        _over_seeds(per_seed, baseline, higher) if baseline is not None else (None, None)
    )
    seeds = len(per_seed)
    goal = options.pop("goal", "")
    return [
        Figure(f"{key}.median", f"{label}, median of {seeds} seeds", median, base_median,
               goal=goal, **options),
        Figure(f"{key}.worst", f"{label}, worst of {seeds} seeds", worst, base_worst,
               goal=goal, **options),
    ]  # fmt: skip


def _identity_figures(name: str, runs: dict[int, dict[str, Any]], one_mouse: Any) -> list[Figure]:
    """A case's figures: the rules' and the files' switches, misses, wrong frames, error."""
    title = TITLES[name]
    marked = name in MARKED_CASES
    figures: list[Figure] = []
    for truth in TRUTHS:
        goal = "0 at every seed" if truth == "rules" and marked else ""
        figures += _pair(
            f"{name}.{truth}.switches_per_10_min",
            f"{truth}: identity switches per 10 min ({title})",
            runs, _field(truth, "per_10_min"),
            _field("motion_only", "per_10_min"), goal=goal, compare=False,
        )  # fmt: skip
    figures += _pair(
        f"{name}.rules.missed_pct",
        f"rules: animal-frames unnamed ({title})",
        runs,
        _field("rules", "missed_pct"),
        _field("motion_only", "missed_pct"),
        unit="%",
        compare=False,
    )
    for truth in TRUTHS:
        figures += _pair(
            f"{name}.{truth}.wrong_pct",
            f"{truth}: animal-frames under a wrong identity ({title})",
            runs,
            _field(truth, "wrong_identity_pct"),
            _field("motion_only", "wrong_identity_pct"),
            unit="%",
            compare=False,
        )
    figures += _pair(
        f"{name}.files.not_found_pct",
        f"files: animal-frames the model did not find ({title})",
        runs,
        _field("files", "missed_pct"),
        unit="%",
        compare=False,
    )
    figures += _pair(
        f"{name}.rules.wrong_keypoint_rows_per_10_min",
        f"rules: rows with a keypoint of another animal per 10 min ({title}; beside: files)",
        runs,
        _field("rules", "wrong_keypoints", "rows_per_10_min"),
        _field("files", "wrong_keypoints", "rows_per_10_min"),
        goal="0 at every seed" if marked else "",
        compare=False,
    )
    figures += _pair(
        f"{name}.rules.wrong_keypoint_rows_for_identity_per_10_min",
        f"rules: rows with a keypoint of another animal that the model's rows with the identity "
        f"known do not hold, per 10 min ({title}; beside: those rows' own)",
        runs,
        _field("rules", "wrong_keypoints", "rows_for_identity_per_10_min"),
        _field("rules", "wrong_keypoints_identity_known", "rows_per_10_min"),
        compare=False,
    )
    for where, goal in (("crossing", "<= 2 %"), ("elsewhere", "<= 1 %")):
        if not all(run["rules"]["entries"][where]["true_entries"] for run in runs.values()):
            continue
        label = "at the crossing point" if where == "crossing" else "elsewhere"
        # key, label, the rules' field, the figure beside (its entries and field), unit, goal
        rows = (
            ("entries_lost_pct", f"entries lost {label} ({title}; beside: unknown taken as lost)",
             "lost_pct", ("entries_unknown_as_lost", "lost_pct"), "%", goal),
            ("entries_lost_for_identity_pct",
             f"entries lost {label} that the model's rows with the identity known entered "
             f"({title}; beside: those rows' own losses)",
             "lost_for_identity_pct", ("entries_identity_known", "lost_pct"), "%", ""),
            ("entries_late_median", f"entries' lateness {label}, median ({title})",
             "late_median_frames", ("entries_unknown_as_lost", "late_median_frames"), "frames",
             "<= 5 frames"),
            ("entries_late_max", f"entries' lateness {label}, most ({title})",
             "late_max_frames", ("entries_unknown_as_lost", "late_max_frames"), "frames", ""),
        )
        for key, text, field, (beside, beside_field), unit, row_goal in rows:
            figures += _pair(
                f"{name}.rules.{key}.{where}", f"rules: {text}", runs,
                _field("rules", "entries", where, field),
                _field("rules", beside, where, beside_field),
                unit=unit, goal=row_goal if marked else "", compare=False,
            )
    figures += _pair(
        f"{name}.rules.error_px",
        f"rules: median keypoint error ({title})",
        runs,
        _field("rules", "error_px"),
        one_mouse,
        unit="px",
        goal="within 1 px of one mouse" if marked else "",
        compare=False,
    )
    return figures  # fmt: skip


def _figures(results: dict[str, Any]) -> list[Figure]:
    figures: list[Figure] = []
    rate = results.get("rate") or {}
    for quantile in ("p50", "p99") if rate else ():
        figures += _pair(
            f"rate.frame_{quantile}_ms",
            f"frame, {quantile}",
            rate,
            _field("two_mice_ms", quantile),
            _field("one_mouse_ms", quantile),
            unit="ms",
            compare=False,
        )
    if rate:
        figures += _pair(
            "rate.fps",
            "analysed per second (1 / mean)",
            rate,
            lambda r: round(1000 / r["two_mice_ms"]["mean"], 1),
            lambda r: round(1000 / r["one_mouse_ms"]["mean"], 1),
            unit="fps",
            higher_is_better=True,
            goal="two animals >= 30 fps",
            compare=False,
        )
    one_mouse_runs = results.get("one_mouse") or {}

    def one_mouse(run: dict[str, Any]) -> float | None:
        seed = run["seed"]
        return one_mouse_runs[seed]["error_px"] if seed in one_mouse_runs else None

    for name in IDENTITY_CASES:
        if results.get(name):
            figures += _identity_figures(name, results[name], one_mouse)
    for name in MARKED_CASES:  # the step's cost (the unmarked cases' is in the details)
        runs = results.get(name) or {}
        for key, label, path, goal in STEP_FIGURES if runs else ():
            figures += _pair(
                f"{name}.{key}",
                f"{label} ({TITLES[name]})",
                runs,
                _field(*path),
                unit="ms",
                goal=goal,
                compare=False,
            )
    sleap = results.get("sleap")
    if sleap is not None:
        figures.append(
            Figure(
                "sleap.frame_p50_ms",
                "sleap-nn flies 1024x1024, frame p50",
                sleap["frame_ms"]["p50"],
                None,
                unit="ms",
                compare=False,
            )
        )
    return figures  # fmt: skip


def _seed_lines(results: dict[str, Any]) -> list[str]:
    """Every seed of every identity case: the rules' and the files' figures side by side."""
    header = ("case", "seed", "rules switches", "files switches", "motion only",
              "rules unnamed %", "files wrong %", "rules wrong-kp rows (id)", "entries lost (id)/n",
              "late med/max", "step p99 ms", "load")  # fmt: skip
    rows = [header]
    for name in IDENTITY_CASES:
        for seed, run in (results.get(name) or {}).items():
            rows.append((
                name, str(seed), str(run["rules"]["switches"]), str(run["files"]["switches"]),
                str(run["motion_only"]["switches"]), format_number(run["rules"]["missed_pct"]),
                format_number(run["files"]["wrong_identity_pct"]),
                _wrong_cell(run["rules"]["wrong_keypoints"]),
                _entry_cell(run["rules"]["entries"]),
                "/".join(str(run["rules"]["entries"][w]["late_median_frames"]) + "," +
                         str(run["rules"]["entries"][w]["late_max_frames"])
                         for w in ("crossing", "elsewhere")),
                format_number(run["step_ms"]["p99"]),
                f"{run['load_at_start']}-{run['load_at_end']}",
            ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows]  # fmt: skip


def _wrong_cell(wrong: dict[str, Any]) -> str:
    """``rows(for the identity)``: rows with another animal's keypoint."""
    return f"{wrong['rows']}({wrong.get('rows_for_identity', '-')})"


def _entry_cell(entries: dict[str, Any]) -> str:
    """``lost(for the identity)/true`` at the crossing point and elsewhere."""
    return " ".join(
        f"{entries[where]['lost']}({entries[where].get('lost_for_identity', '-')})"
        f"/{entries[where]['true_entries']}"
        for where in ("crossing", "elsewhere")
    )


def _check_marked(results: dict[str, Any]) -> list[str]:
    """The marked cases' seeds whose rules switched (the goal is none at every seed)."""
    return [
        f"{name} seed {seed}: {run['rules']['switches']} switches (frames "
        f"{run['rules']['switch_frames']}), {run['rules']['wrong_keypoints']['rows']} rows with "
        f"a keypoint of another animal (frames {run['rules']['wrong_keypoints']['frames']})"
        for name in MARKED_CASES
        for seed, run in (results.get(name) or {}).items()
        if run["rules"]["switches"] or run["rules"]["wrong_keypoints"]["rows"]
    ]


def _done(run: dict[str, Any]) -> str:
    """One line of what a case of one seed gave (printed as the run goes)."""
    if "rules" not in run:
        return "done"
    return (
        ", ".join(
            f"{truth} {run[truth]['switches']} switches" for truth in (*TRUTHS, "motion_only")
        )
        + f", rules unnamed {run['rules']['missed_pct']} %"
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"arenas to run each case on (default {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=FIRST_SEED,
        help=f"the first arena's seed; the others follow it (default {FIRST_SEED})",
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=CASES,
        dest="cases",
        help="run this case only (repeat for several; default: all)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="seconds of video of each identity case and of one mouse "
        f"(default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the results to DIR/multi_animal.json (nothing is written without it)",
    )
    parser.add_argument("--model", type=Path, default=PAIR_MODEL, help="the two-mouse model")
    parser.add_argument("--smoke", action="store_true", help="a few frames of one seed")
    parser.add_argument("--quick", action="store_true", help="a quarter of the frames")
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="also write the model's instances and the truth of every identity case and seed "
        "to DIR/<case>_<seed>.npz (arrays raw (T, A, K, 3), truth (T, B, K, 2)), to work on "
        "the identities offline",
    )
    parser.add_argument(
        "--instances",
        type=Path,
        default=None,
        help="take the identity cases' model instances from DIR/<case>_<seed>.npz (written "
        "by --dump with the same model) instead of running the model: the same identity "
        "figures, without the model's time",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if not args.seconds > 0:
        parser.error("--seconds must be more than 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables; save the results under ``--out``."""
    args = _arguments(argv)
    cases = tuple(dict.fromkeys(args.cases or CASES))
    seeds = [args.first_seed + i for i in range(1 if args.smoke else args.seeds)]
    rate_frames, frames = RATE_FRAMES, round(args.seconds * FPS)
    if args.quick:
        rate_frames, frames = rate_frames // 4, frames // 4
    if args.smoke:
        rate_frames = frames = SMOKE_FRAMES
    started, machine = now_iso(), machine_description()
    wall = time.monotonic()
    shape = _herd(seeds[0], 2, "free").frame_shape
    pair = _estimator(args.model, shape, 2)
    single = _estimator(None, shape, 1)
    results: dict[str, Any] = {}
    for seed in seeds:
        for name in cases:
            load = load_average_1m()
            if name == "rate":
                run = _rate_case(pair, single, seed, rate_frames)
            elif name == "one_mouse":
                run = _one_mouse_case(single, seed, frames)
            elif name in IDENTITY_CASES:
                run = _identity_case(pair, seed, name, frames, (args.instances, args.dump))
            else:
                continue
            results.setdefault(name, {})[seed] = {
                "seed": seed,
                **run,
                "load_at_start": load,
                "load_at_end": load_average_1m(),
            }
            print(
                f"seed {seed}, {name}: {_done(run)} ({time.monotonic() - wall:.0f} s)", flush=True
            )
    if "sleap" in cases:
        results["sleap"] = _sleap_case(SMOKE_FRAMES if args.smoke else 100)
    figures = _figures(results)
    print_table("Several animals (simulated arena, 640x480)", figures, machine,
                project="two mice", baseline="motion only / one mouse")  # fmt: skip
    print("\n".join(_seed_lines(results)), "\n", sep="")
    switched = _check_marked(results)
    print("the rules on another animal in the marked cases: "
          + ("; ".join(switched) or "none at any seed"))  # fmt: skip
    if args.out is None or args.smoke:
        print("not saved (no --out)" if not args.smoke else "smoke run: not saved")
        return 0
    details = {
        "parameters": {
            "model": str(args.model),
            "seeds": seeds,
            "cases": list(cases),
            "rate_frames": rate_frames,
            "frames": frames,
            "threads": THREADS,
            # The identity cases' instances: the model's in this run, or an earlier run's.
            "instances_from": str(args.instances) if args.instances else "the model, this run",
            "wall_s": round(time.monotonic() - wall, 1),
            "load_average_1m_at_end": load_average_1m(),
        },
        "cases": {name: _jsonable(runs) for name, runs in results.items()},
    }
    path = save_result(
        "multi_animal", figures, started=started, machine=machine, details=details,
        folder=args.out,
    )  # fmt: skip
    print(f"saved {path}")
    return 0


def _jsonable(runs: Any) -> Any:
    """Per-seed results keyed by the seed as text (JSON object keys)."""
    if isinstance(runs, dict) and all(isinstance(key, int) for key in runs):
        return {str(seed): run for seed, run in runs.items()}
    return runs


if __name__ == "__main__":
    raise SystemExit(main())
