"""The live experiment's events against what it decides offline on every frame.

Trigger changes, trial starts and ends and actions of the live ``events.csv`` are matched one to
one with the reference's events of the same kind, name, detail and animal (a trigger's also of
the same camera), nearest first. Events are placed in time by the live host time of the frame
they name: with several cameras an action is logged at whichever camera's update made it, and
that camera may differ between live and offline (live, the cameras' frames arrive in any order).
Each match says how many frames live was late (or early), in the live event's camera's frames,
and why:

``skipped``
    Live was late because it did not analyse the frames between (the model was busy), or the
    offline decision fell on a frame live skipped.
``skipped earlier``
    Live skipped frames in the ``MEMORY_S`` (1 s) before the decision, and a trigger with
    memory (``HOLD_S``, a dwell, a speed over a window) saw another history live than offline:
    its decision may move either way by more than the frames skipped right before it.
``not recorded``
    The frames between are not in the recording (the recorder lost them): the reference
    decided on the first recorded frame after them, so live was early, or live's own event
    fell on a frame the reference never saw.
``prediction``
    Live was early by no more than its forward prediction's lead.
``keypoints``
    The keypoints of the frames between differ for an explained cause (a lossy recording, a
    dynamic crop ...: :mod:`offline.verify.keypoints`).
``camera order``
    Live and offline logged the decision at the updates of different cameras, no more than one
    frame interval of the slower camera apart.

Anything else is unexplained. The switch-offs an experiment makes itself when it finishes,
pauses or stops (``reason=finish``, ``pause``, ``stop``) follow the session's end, not a frame's
pose: they are counted apart.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPARED_KINDS = ("trigger", "trial_start", "trial_end", "action")
CLOSING_REASONS = ("reason=finish", "reason=pause", "reason=stop")
MIN_WINDOW_FRAMES = 3
MEMORY_S = 1.0  # how far back frames skipped live may have moved a trigger with memory


@dataclass(frozen=True)
class Event:
    """One row of ``events.csv`` that is compared."""

    kind: str
    name: str
    detail: str
    camera: str
    animal: str
    frame: int
    row: dict[str, str] = field(compare=False, hash=False, repr=False)
    time_s: float = math.nan  # the live host time of (camera, frame); NaN: not known

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Return what must be equal for two events to be the same decision.

        A trigger reads one camera; an action or trial is the experiment's, whichever
        camera's update made it.
        """
        camera = self.camera if self.kind == "trigger" else ""
        return (self.kind, self.name, self.detail, camera, self.animal)

    def latency_ms(self) -> float | None:
        """Frame -> command written (an action), from the live record."""
        written, arrived = self.row.get("written"), self.row.get("host_timestamp")
        if not written or not arrived:
            return None
        return round((float(written) - float(arrived)) * 1000.0, 3)

    def lead_ms(self) -> float | None:
        """Return the forward prediction's lead of this decision (None: no prediction)."""
        lead = self.row.get("lead_ms")
        return float(lead) if lead else None


@dataclass
class FrameFacts:
    """Per camera: frames live skipped, and frames whose keypoints differ for a known cause."""

    skipped: set[int]
    explained_difference: set[int]
    frame_interval_ms: float
    unrecorded: set[int] = field(default_factory=set)  # captured live, not in the recording


@dataclass
class EventComparison:
    """The live events against the offline ones."""

    matched: list[dict[str, Any]] = field(default_factory=list)
    live_only: list[dict[str, Any]] = field(default_factory=list)
    offline_only: list[dict[str, Any]] = field(default_factory=list)
    closing_live: int = 0
    offline_on_skipped_frames: int = 0

    def counts(self) -> dict[str, Any]:
        """Return the summary's figures per kind."""
        by_kind: dict[str, dict[str, int]] = defaultdict(
            lambda: {"matched": 0, "exact": 0, "live_only": 0, "offline_only": 0}
        )
        for item in self.matched:
            by_kind[item["kind"]]["matched"] += 1
            by_kind[item["kind"]]["exact"] += item["frames_late"] == 0
        for item in self.live_only:
            by_kind[item["kind"]]["live_only"] += 1
        for item in self.offline_only:
            by_kind[item["kind"]]["offline_only"] += 1
        return dict(by_kind)

    def reasons(self) -> list[str]:
        """Why the events do not agree (empty: they do)."""
        reasons = []
        for label, items in (
            ("matched late or early", self.matched),
            ("live with no offline decision", self.live_only),
            ("offline decisions live never made", self.offline_only),
        ):
            bad = [item for item in items if item["explained_by"] is None]
            if bad:
                first = bad[0]
                reasons.append(
                    f"{len(bad)} {label} without a cause, the first: {first['kind']} "
                    f"{first['name']} {first['detail']!r} at frame {first['frame']} of camera "
                    f"{first['camera']}"
                )
        return reasons


def read_events(path: Path | None) -> list[dict[str, str]]:
    """Return the rows of an ``events.csv`` (none without the file)."""
    if path is None or not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def compared_events(
    rows: list[dict[str, str]],
    frame_map: dict[str, Any] | None = None,
    host_times: dict[str, dict[int, float]] | None = None,
    anchor_s: float = 0.0,
) -> tuple[list[Event], int]:
    """Return the events compared (offline: placed on the live index) and the closing count.

    An action or trial logged within ``anchor_s`` after a trigger change is placed at that
    trigger's frame: with several cameras the experiment logs it at whichever camera's update
    came next, which differs between live and a lockstep replay, while the trigger's frame is
    the pose that decided it.
    """
    events, closing = [], 0
    last_trigger: tuple[float, str, str] | None = None  # (time_s, camera, frame_index)
    for row in rows:
        if row.get("kind") not in COMPARED_KINDS or not row.get("frame_index"):
            continue
        if any(reason in (row.get("detail") or "") for reason in CLOSING_REASONS):
            closing += 1
            continue
        camera, index = _deciding_frame(row, last_trigger, anchor_s)
        if row["kind"] == "trigger":
            last_trigger = (_float(row.get("time_s")), camera, index)
        frame = int(index)
        if frame_map is not None:
            placed = frame_map.get(camera)
            if placed is None or frame >= len(placed):
                continue
            frame = int(placed[frame])
        time_s = (host_times or {}).get(camera, {}).get(frame, math.nan)
        events.append(
            Event(
                row["kind"],
                row.get("name") or "",
                row.get("detail") or "",
                camera,
                row.get("animal") or "",
                frame,
                row,
                time_s,
            )
        )
    return events, closing


def _deciding_frame(
    row: dict[str, str], last_trigger: tuple[float, str, str] | None, anchor_s: float
) -> tuple[str, str]:
    """Return the (camera, frame index) of the pose that decided ``row``."""
    own = (row.get("camera") or "", row["frame_index"])
    if row["kind"] == "trigger" or last_trigger is None:
        return own
    since = _float(row.get("time_s")) - last_trigger[0]
    return (last_trigger[1], last_trigger[2]) if 0 <= since <= anchor_s else own


def _float(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def compare_events(
    live: list[Event], offline: list[Event], facts: dict[str, FrameFacts], window: int
) -> EventComparison:
    """Match ``live`` and ``offline`` one to one per key, nearest first within ``window`` frames.

    Events of one camera are compared in its frames; of two cameras, in time, ``window``
    frames of the slower camera.
    """
    result = EventComparison()
    groups: dict[tuple[str, ...], tuple[list[Event], list[Event]]] = defaultdict(lambda: ([], []))
    for event in live:
        groups[event.key][0].append(event)
    for event in offline:
        groups[event.key][1].append(event)
    for live_events, offline_events in groups.values():
        pairs, left_live, left_offline = _pair(live_events, offline_events, window, facts)
        for live_event, offline_event in pairs:
            result.matched.append(_matched(live_event, offline_event, facts))
        result.live_only += [_alone(e, facts, live_side=True) for e in left_live]
        result.offline_only += [_alone(e, facts, live_side=False) for e in left_offline]
    for item in result.offline_only:
        result.offline_on_skipped_frames += item["explained_by"] == "skipped"
    for item in result.matched:
        result.offline_on_skipped_frames += item["offline_frame_skipped_live"]
    for items in (result.matched, result.live_only, result.offline_only):
        items.sort(key=lambda item: (item["frame"], item["kind"], item["name"]))
    return result


def _pair(
    live: list[Event], offline: list[Event], window: int, facts: dict[str, FrameFacts]
) -> tuple[list[tuple[Event, Event]], list[Event], list[Event]]:
    """Pair events nearest first (in frame order on ties), each used once."""
    candidates = []
    for i, a in enumerate(live):
        for j, b in enumerate(offline):
            distance = _distance_in_frames(a, b, facts)
            if distance <= window:
                candidates.append((distance, a.frame, i, j))
    candidates.sort()
    used_live: set[int] = set()
    used_offline: set[int] = set()
    pairs = []
    for _, _, i, j in candidates:
        if i in used_live or j in used_offline:
            continue
        used_live.add(i)
        used_offline.add(j)
        pairs.append((live[i], offline[j]))
    left_live = [e for i, e in enumerate(live) if i not in used_live]
    left_offline = [e for j, e in enumerate(offline) if j not in used_offline]
    return pairs, left_live, left_offline


def _distance_in_frames(a: Event, b: Event, facts: dict[str, FrameFacts]) -> float:
    """Frames between two events: of their camera, or in time in the slower camera's frames."""
    if a.camera == b.camera:
        return abs(a.frame - b.frame)
    interval = _slower_interval_s(a, b, facts)
    if interval <= 0 or math.isnan(a.time_s) or math.isnan(b.time_s):
        return math.inf
    return abs(a.time_s - b.time_s) / interval


def _slower_interval_s(a: Event, b: Event, facts: dict[str, FrameFacts]) -> float:
    intervals = [facts[c].frame_interval_ms for c in (a.camera, b.camera) if c in facts]
    return max(intervals, default=0.0) / 1000.0


def _describe(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "name": event.name,
        "detail": event.detail,
        "camera": event.camera,
        "animal": event.animal,
        "frame": event.frame,
    }


def _matched(live: Event, offline: Event, facts: dict[str, FrameFacts]) -> dict[str, Any]:
    if live.camera != offline.camera:
        return _matched_across_cameras(live, offline, facts)
    camera = facts.get(live.camera)
    late = live.frame - offline.frame
    between = range(min(live.frame, offline.frame), max(live.frame, offline.frame))
    explained: str | None = None
    if late == 0:
        explained = "same frame"
    elif camera is not None and late > 0 and all(f in camera.skipped for f in between):
        explained = "skipped"
    elif camera is not None and all(f in camera.skipped or f in camera.unrecorded for f in between):
        explained = "not recorded"
    elif camera is not None and late < 0 and _within_lead(live, -late, camera):
        explained = "prediction"
    elif camera is not None and any(
        f in camera.explained_difference for f in (*between, live.frame, offline.frame)
    ):
        explained = "keypoints"
    elif camera is not None and _skipped_before(camera, max(live.frame, offline.frame)):
        explained = "skipped earlier"
    return {
        **_describe(live),
        "offline_frame": offline.frame,
        "offline_camera": offline.camera,
        "frames_late": late,
        "explained_by": explained,
        "offline_frame_skipped_live": bool(camera and offline.frame in camera.skipped),
        "latency_ms": live.latency_ms() if live.kind == "action" else None,
        "lead_ms": live.lead_ms(),
    }


def _matched_across_cameras(
    live: Event, offline: Event, facts: dict[str, FrameFacts]
) -> dict[str, Any]:
    """Compare in time a decision logged at one camera's update live, another's offline."""
    camera = facts.get(live.camera)
    interval_s = (camera.frame_interval_ms / 1000.0) if camera else 0.0
    lag_s = live.time_s - offline.time_s
    late = round(lag_s / interval_s) if interval_s > 0 else 0
    explained: str | None = None
    if abs(lag_s) <= _slower_interval_s(live, offline, facts) + 1e-6:
        explained = "camera order"
    elif late < 0 and camera is not None and _within_lead(live, -late, camera):
        explained = "prediction"
    other = facts.get(offline.camera)
    return {
        **_describe(live),
        "offline_frame": offline.frame,
        "offline_camera": offline.camera,
        "frames_late": late,
        "explained_by": explained,
        "offline_frame_skipped_live": bool(other and offline.frame in other.skipped),
        "latency_ms": live.latency_ms() if live.kind == "action" else None,
        "lead_ms": live.lead_ms(),
    }


def _skipped_before(camera: FrameFacts, frame: int) -> bool:
    """Return True when live skipped (or the recorder lost) a frame in MEMORY_S before ``frame``."""
    if camera.frame_interval_ms <= 0:
        return False
    reach = math.ceil(MEMORY_S * 1000.0 / camera.frame_interval_ms)
    return any(f in camera.skipped or f in camera.unrecorded for f in range(frame - reach, frame))


def _within_lead(event: Event, frames_early: int, camera: FrameFacts) -> bool:
    lead = event.lead_ms()
    if lead is None or camera.frame_interval_ms <= 0:
        return False
    return frames_early <= math.ceil(lead / camera.frame_interval_ms) + 1


def _alone(event: Event, facts: dict[str, FrameFacts], live_side: bool) -> dict[str, Any]:
    """Describe an event with no partner: why, if a cause applies."""
    camera = facts.get(event.camera)
    explained: str | None = None
    skipped_around = 0
    if camera is not None:
        near = range(event.frame - 5, event.frame + 6)
        skipped_around = sum(f in camera.skipped for f in near)
        if not live_side and event.frame in camera.skipped:
            explained = "skipped"
        elif live_side and event.frame in camera.unrecorded:
            explained = "not recorded"
        elif not live_side and event.frame - 1 in camera.unrecorded:
            explained = "not recorded"  # the first recorded frame after frames the recorder lost
        elif any(f in camera.explained_difference for f in near):
            explained = "keypoints"
    return {
        **_describe(event),
        "explained_by": explained,
        "frames_skipped_within_5": skipped_around,
        "latency_ms": event.latency_ms() if live_side and event.kind == "action" else None,
    }
