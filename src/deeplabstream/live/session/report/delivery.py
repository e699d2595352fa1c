"""What each camera delivers, judged against its rate: too few frames, or none for a while.

The rules: docs/cameras.md, "Cameras slower than their FRAMERATE, and stalls".
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from deeplabstream.live.session.cameras import CameraBranch

#: The window a delivered rate is taken over: long enough that a host's hiccup, caught up, is
#: no shortfall; short enough to say a slow camera within seconds.
RATE_WINDOW_S = 5.0
#: A camera delivering less than this share of FRAMERATE over the window is too slow.
RATE_TOLERANCE = 0.9
#: After a camera's first frame (and after a stall), its rate is judged only this much later.
START_UP_S = 1.0
#: A camera whose window never filled is judged whole at the end over at least this long.
WHOLE_MIN_S = 2.0
#: A session too short for that is judged from the camera's first frame, over this long at least.
SHORT_MIN_S = 1.0
#: A file's or a simulation's silence is a stall after the longest of these.
STALL_MIN_S = 2.0
STALL_FRAME_INTERVALS = 10

#: A stretch below the rate this soon after the camera's last warning is not warned of again.
REWARN_AFTER_S = 300.0

ADVICE = (
    "the camera, or this computer, cannot keep up at these settings: lower FRAMERATE or the frame "
    "size (WIDTH, HEIGHT), or shorten EXPOSURE; its recording and poses hold fewer frames than "
    "FRAMERATE says"
)
VIDEO_ADVICE = (
    "this computer cannot decode the video as fast as it plays (a busy computer, or a large or "
    "heavily compressed file): it plays slower than its own frame rate, and its poses hold "
    "fewer frames a second than the file; ease the load (a lighter model, other programs "
    "closed), or to analyse every frame offline use PACING = lockstep or utils/VideoAnalyzer.py"
)
SIMULATION_ADVICE = (
    "this computer cannot render the simulated arena at these settings: lower FRAMERATE or the "
    "frame size (WIDTH, HEIGHT); its recording and poses hold fewer frames than FRAMERATE says"
)


def advice_for(source: str | None, live: bool) -> str:
    """Return what to do about a camera below its rate: a device's, a video's, a simulation's."""
    if not live and source == "video":
        return VIDEO_ADVICE
    if not live and source == "synthetic":
        return SIMULATION_ADVICE
    return ADVICE


@dataclass(frozen=True)
class DeliveryNews:
    """Something about a camera's delivery: said live (``live``) and kept in ``session.json``.

    ``warning`` (None: unchanged) replaces ``replaces`` when that one was kept.
    """

    camera: str
    level: int
    live: str
    warning: str | None = None
    replaces: str | None = None


@dataclass
class _Slowness:
    """A camera's stretches below its rate: how long, how many frames, how often."""

    seconds: float = 0.0
    frames: int = 0
    times: int = 0
    first_at_s: float = 0.0
    since: tuple[int, int] | None = None  # (host ns, frames published) where the stretch began
    warning: str | None = None  # the text kept in session.json

    def delivered_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Stall:
    """A stall going on: since the last frame's host time, after which frame."""

    since_ns: int
    last_frame: int
    gaps_before: int
    warning: str
    # (host ns, frames published) of the first frame back when it skipped nothing: the frame
    # in hand when the stall began comes late, and the frames skipped show only with the next
    back: tuple[int, int] | None = None


@dataclass
class _Camera:
    """One paced camera as the watch follows it."""

    nominal_fps: float
    advice: str = ADVICE  # what to do when it is too slow (advice_for)
    judge_from_ns: int | None = None  # None: wait for a (new) frame
    warned_ns: int | None = None  # when a stretch below the rate was last warned of
    samples: deque[tuple[int, int]] = field(default_factory=deque)  # (host ns, published)
    slowness: _Slowness = field(default_factory=_Slowness)
    stall: _Stall | None = None
    window_whole: bool = False  # a whole window was judged once: a short session's is not
    # (host ns, published) of the first and the newest frame seen since the (re)start
    opening: tuple[int, int] | None = None
    newest: tuple[int, int] | None = None

    def restart(self, now_ns: int) -> None:
        """Judge the rate afresh, from :data:`START_UP_S` after now."""
        self.samples.clear()
        self.judge_from_ns = now_ns + round(START_UP_S * 1e9)
        self.opening = self.newest = None


class DeliveryWatch:
    """Judge every paced camera's delivery (``session_start_ns``: host clock)."""

    def __init__(self, session_start_ns: int) -> None:
        self.session_start_ns = session_start_ns
        self._cameras: dict[str, _Camera] = {}
        # A camera silent from a stall to the stop: its frames over its first frame to the stop
        # (frames/s). Its frames' own span leaves the silence out: 30 fps for a camera frozen
        # for most of the session.
        self.delivered_to_stop: dict[str, float] = {}

    def check(self, branches: list[CameraBranch]) -> list[DeliveryNews]:
        """Look at every streaming camera's ring header; return what changed."""
        now_ns = time.perf_counter_ns()
        news: list[DeliveryNews] = []
        for branch in branches:
            camera = self._follow(branch)
            ring = branch.ring
            if camera is None or ring is None or ring.header is None or ring.stop_requested:
                continue
            header = ring.header
            published = int(header["captured"])
            if published == 0:
                continue
            last_ns = int(header["last_host_ns"])
            news += self._stall_news(branch, camera, now_ns, last_ns)
            if camera.stall is None and branch.lost_after_ns is None:
                news += self._rate_news(branch.name, camera, last_ns, published)
        return news

    def close(self, branches: list[CameraBranch]) -> list[DeliveryNews]:
        """End the watch (the session stops): a stretch below the rate still going on ends now."""
        news = []
        for branch in branches:
            camera = self._cameras.get(branch.name)
            stall = camera.stall if camera is not None else None
            header = branch.ring.header if branch.ring is not None else None
            if stall is not None and stall.back is not None and header is not None:
                news.append(self._stall_ended(branch.name, stall, stall.back[0], header))
            elif stall is not None:  # still silent at the stop: its whole length, not the first
                news.append(self._stalled_to_the_end(branch.name, stall))
                self._rate_to_the_stop(branch.name, header)
            if camera is not None and camera.slowness.since is not None:
                last_ns, published = camera.samples[-1]  # its newest frame judged
                news.append(self._end_slowness(branch.name, camera, last_ns, published, False))
            elif camera is not None and not camera.window_whole and camera.stall is None:
                news += self._judged_whole(branch.name, camera)
        self._cameras.clear()
        return news

    def _judged_whole(self, name: str, camera: _Camera) -> list[DeliveryNews]:
        """Judge a camera whose window never filled over all it delivered."""
        whole = len(camera.samples) >= 2 and (
            camera.samples[-1][0] - camera.samples[0][0] >= WHOLE_MIN_S * 1e9
        )
        if whole:
            (first_ns, first), (last_ns, published) = camera.samples[0], camera.samples[-1]
            how = "so it was judged whole"
        elif camera.opening is not None and camera.newest is not None:
            (first_ns, first), (last_ns, published) = camera.opening, camera.newest
            how = (
                "and too short to leave its first second out, so it was judged from its first frame"
            )
            if last_ns - first_ns < SHORT_MIN_S * 1e9:
                return []
        else:
            return []
        span_s = (last_ns - first_ns) / 1e9
        delivered = (published - first) / span_s
        if delivered >= RATE_TOLERANCE * camera.nominal_fps:
            return []
        text = (
            f"camera {name!r} delivered {delivered:.1f} fps, below its FRAMERATE "
            f"{camera.nominal_fps:g} ({100 * delivered / camera.nominal_fps:.0f} % of it), over "
            f"the {span_s:.1f} s it was judged (the session was shorter than the "
            f"{RATE_WINDOW_S:g} s window, {how}, {self._at_s(first_ns):.1f} s "
            f"into the session to its end): {camera.advice}"
        )
        return [DeliveryNews(name, logging.WARNING, text, warning=text)]

    def below_rate(self, camera: str) -> float | None:
        """Return the camera's FRAMERATE while it delivers below it; None when it does not."""
        followed = self._cameras.get(camera)
        if followed is None or followed.slowness.since is None:
            return None
        return followed.nominal_fps

    def silent_s(self, camera: str) -> float | None:
        """Return how long the camera's stall has lasted; None when it delivers."""
        followed = self._cameras.get(camera)
        if followed is None or followed.stall is None or followed.stall.back is not None:
            return None
        return (time.perf_counter_ns() - followed.stall.since_ns) / 1e9

    def _follow(self, branch: CameraBranch) -> _Camera | None:
        """Return the camera's state, made or restarted for its rate now; None: not judged."""
        opened = branch.opened
        if opened is None or not opened.paced or not opened.nominal_fps or branch.ended:
            return None
        camera = self._cameras.get(branch.name)
        if camera is None or camera.nominal_fps != opened.nominal_fps:  # a new rate: afresh
            # (what was said of the old rate stays said; its stretch is not counted on)
            advice = advice_for(branch.settings.source, opened.live)
            camera = _Camera(float(opened.nominal_fps), advice)
            self._cameras[branch.name] = camera
        return camera

    # -- stalls (files and simulations) -------------------------------------------------------

    def _stall_news(
        self, branch: CameraBranch, camera: _Camera, now_ns: int, last_ns: int
    ) -> list[DeliveryNews]:
        assert branch.ring is not None and branch.opened is not None
        header = branch.ring.header
        interval_s = 1.0 / camera.nominal_fps
        limit_s = max(STALL_MIN_S, STALL_FRAME_INTERVALS * interval_s)
        stall = camera.stall
        if stall is not None and last_ns > stall.since_ns:  # frames came back
            if not self._stall_over(stall, header, last_ns, now_ns, limit_s):
                return []
            camera.stall = None
            camera.restart(now_ns)
            back_ns = stall.back[0] if stall.back is not None else last_ns
            return [self._stall_ended(branch.name, stall, back_ns, header)]
        if stall is not None or (now_ns - last_ns) / 1e9 < limit_s:
            if camera.judge_from_ns is None:
                camera.restart(now_ns)
            return []
        # A stall is said as one, never as a rate too: a stretch below the rate ends before it.
        ended = []
        if camera.slowness.since is not None:
            published = int(header["captured"])
            ended.append(self._end_slowness(branch.name, camera, last_ns, published, False))
        camera.samples.clear()
        if branch.opened.live:  # a device's silence is [Streaming] CAMERA_LOST_AFTER's
            camera.judge_from_ns = None
            return ended
        last_frame = int(header["last_frame_index"])
        text = (
            f"camera {branch.name!r} delivered no frame for {(now_ns - last_ns) / 1e9:.1f} s "
            f"after frame {last_frame} (one every {interval_s * 1000:.0f} ms expected): its "
            "capture process or its source is stalled"
        )
        camera.stall = _Stall(last_ns, last_frame, int(header["camera_gaps"]), text)
        return [*ended, DeliveryNews(branch.name, logging.WARNING, text, warning=text)]

    @staticmethod
    def _stall_over(stall: _Stall, header: Any, last_ns: int, now_ns: int, limit_s: float) -> bool:
        """Return whether a stall whose frames came back can be said as ended now."""
        # The first frame back may be the one the camera held when it stalled: it skips nothing, and
        # the skipped frames show with the frame after it, so such a frame waits for one more.
        if int(header["camera_gaps"]) > stall.gaps_before:
            return True
        published = int(header["captured"])
        if stall.back is None:
            stall.back = (last_ns, published)
            return False
        return published > stall.back[1] or (now_ns - stall.back[0]) / 1e9 >= limit_s

    def _stall_ended(self, name: str, stall: _Stall, back_ns: int, header: Any) -> DeliveryNews:
        """Say a stall that ended: how long, and the frames it cost (the ring header's gaps)."""
        seconds = (back_ns - stall.since_ns) / 1e9
        dropped = int(header["camera_gaps"]) - stall.gaps_before
        first, last = int(header["last_gap_first"]), int(header["last_gap_last"])
        if dropped > 0:
            which = f"frames {first}-{last}"  # the run of missing frames the camera skipped
            if dropped != last - first + 1:  # and others since the stall began
                which = f"{dropped} frames (the last of them {first}-{last})"
            missed = f"{which} were not delivered (counted as dropped by the camera)"
        else:
            missed = "the frames due meanwhile came late, after it (none was skipped)"
        text = (
            f"camera {name!r} delivered no frame for {seconds:.1f} s after frame "
            f"{stall.last_frame}, {self._at_s(stall.since_ns):.1f} s into the session: {missed}; "
            "its capture process or its source was stalled"
        )
        return DeliveryNews(name, logging.WARNING, text, warning=text, replaces=stall.warning)

    def _rate_to_the_stop(self, name: str, header: Any) -> None:
        """Keep the frames/s of a camera silent to the stop, over its first frame to now."""
        if header is None:
            return
        try:
            published, first_ns = int(header["captured"]), int(header["first_host_ns"])
        except (KeyError, ValueError):  # a header without it: the figure stays as measured
            return
        span_s = (time.perf_counter_ns() - first_ns) / 1e9
        if published > 1 and span_s > 0:
            self.delivered_to_stop[name] = round((published - 1) / span_s, 3)

    def _stalled_to_the_end(self, name: str, stall: _Stall) -> DeliveryNews:
        """Say a stall that lasted to the stop for as long as it lasted (replacing its warning)."""
        seconds = (time.perf_counter_ns() - stall.since_ns) / 1e9
        text = (
            f"camera {name!r} delivered no frame for {seconds:.1f} s after frame "
            f"{stall.last_frame}, {self._at_s(stall.since_ns):.1f} s into the session, to the "
            "session's stop: its capture process or its source was stalled"
        )
        return DeliveryNews(name, logging.WARNING, text, warning=text, replaces=stall.warning)

    # -- the rate ----------------------------------------------------------------------------

    def _rate_news(
        self, name: str, camera: _Camera, last_ns: int, published: int
    ) -> list[DeliveryNews]:
        """Judge the rate up to the newest frame (published, at ``last_ns`` on the host)."""
        if camera.judge_from_ns is not None:  # a short session is judged from these at its end
            camera.opening = camera.opening or (last_ns, published)
            camera.newest = (last_ns, published)
        if camera.judge_from_ns is None or last_ns < camera.judge_from_ns:
            return []
        samples = camera.samples
        if samples and samples[-1][1] == published:
            return []  # no new frame since the last look
        samples.append((last_ns, published))
        window_ns = round(RATE_WINDOW_S * 1e9)
        while len(samples) > 2 and samples[1][0] <= last_ns - window_ns:
            samples.popleft()
        start_ns, start_published = samples[0]
        if last_ns - start_ns < window_ns:
            return []  # the window is not whole yet
        camera.window_whole = True
        delivered = (published - start_published) / ((last_ns - start_ns) / 1e9)
        slow = delivered < RATE_TOLERANCE * camera.nominal_fps
        slowness = camera.slowness
        if slow and slowness.since is None:
            slowness.since = (start_ns, start_published)
            if not slowness.times:
                slowness.first_at_s = self._at_s(start_ns)
            slowness.times += 1
            text = (
                f"camera {name!r} delivers {delivered:.1f} fps, below its FRAMERATE "
                f"{camera.nominal_fps:g} ({100 * delivered / camera.nominal_fps:.0f} % of it) "
                f"over the last {RATE_WINDOW_S:g} s: {camera.advice}"
            )
            warned = camera.warned_ns
            if warned is not None and (last_ns - warned) / 1e9 < REWARN_AFTER_S:
                again = (
                    f"camera {name!r} delivers {delivered:.1f} fps, below its FRAMERATE "
                    f"{camera.nominal_fps:g} again ({slowness.times} times so far; warned "
                    f"{(last_ns - warned) / 1e9:.0f} s ago)"
                )
                return [self._kept(name, camera, again, text, logging.INFO)]
            camera.warned_ns = last_ns
            return [self._kept(name, camera, text, text)]
        if not slow and slowness.since is not None:
            return [self._end_slowness(name, camera, last_ns, published, True)]
        return []

    def _end_slowness(
        self, name: str, camera: _Camera, last_ns: int, published: int, back: bool
    ) -> DeliveryNews:
        """End a stretch below the rate at the frame published at ``last_ns``."""
        slowness = camera.slowness
        assert slowness.since is not None
        since_ns, since_published = slowness.since
        slowness.since = None
        slowness.seconds += (last_ns - since_ns) / 1e9
        slowness.frames += max(published - since_published, 0)
        fps = camera.nominal_fps
        text = (
            f"camera {name!r} delivered {slowness.delivered_fps():.1f} fps, below its FRAMERATE "
            f"{fps:g}, for {slowness.seconds:.1f} s ({slowness.times} time(s), first "
            f"{slowness.first_at_s:.1f} s into the session; too slow is below "
            f"{100 * RATE_TOLERANCE:.0f} % of FRAMERATE over {RATE_WINDOW_S:g} s): "
            f"{camera.advice}"
        )
        live = f"camera {name!r} delivers its FRAMERATE {fps:g} again" if back else text
        return self._kept(name, camera, live, text, logging.INFO if back else logging.WARNING)

    def _kept(
        self, name: str, camera: _Camera, live: str, warning: str, level: int = logging.WARNING
    ) -> DeliveryNews:
        """Return news whose warning replaces the camera's earlier one in ``session.json``."""
        replaces, camera.slowness.warning = camera.slowness.warning, warning
        return DeliveryNews(name, level, live, warning=warning, replaces=replaces)

    def _at_s(self, host_ns: int) -> float:
        return (host_ns - self.session_start_ns) / 1e9
