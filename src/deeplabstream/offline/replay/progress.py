"""Progress of a batch of replays: a bar per running video and one for the whole batch.

Bars on a terminal (tqdm); plain lines elsewhere (start, every quarter, end).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from deeplabstream.offline.replay.job import Progress, ReplayResult

BAR_WIDTH = 24
REDRAW_INTERVAL_S = 0.2
NAME_WIDTH = 30
# tqdm's postfix comes with its ", ": "a.mp4   |####    |  50%, 5/10 frames replaying"
_BAR_FORMAT = "{desc} |{bar:" + str(BAR_WIDTH) + "}| {percentage:3.0f}%{postfix}"
_COUNT_FORMAT = "{desc}{postfix}"  # a video of unknown length, no bar: "b.mp4, 5/? frames ..."


@dataclass
class _Video:
    progress: Progress | None = None
    result: ReplayResult | None = None
    quarters_said: int = -1
    bar: tqdm | None = field(default=None, repr=False)


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """``[#########...........]`` for a fraction in 0..1 (unknown: a bar of dots)."""
    if fraction is None:
        return "[" + "." * width + "]"
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class ProgressView:
    """Shows the progress updates and results of the videos of one batch."""

    def __init__(
        self, videos: list[Path], out: TextIO | None = None, interactive: bool | None = None
    ) -> None:
        self._out = out if out is not None else sys.stderr
        self._interactive = self._out.isatty() if interactive is None else interactive
        self._videos = {video: _Video() for video in videos}
        self._next_draw = 0.0
        self._overall: tqdm | None = None
        if self._interactive:
            self._overall = self._new_bar(f"{'all videos':<{NAME_WIDTH}}", len(videos), 0)

    def update(self, progress: Progress) -> None:
        """Show a replay's report of how far it is."""
        state = self._videos.setdefault(progress.video, _Video())
        state.progress = progress
        if self._interactive:
            self._redraw()
        else:
            self._say_quarter(progress.video, state)

    def finished(self, result: ReplayResult) -> None:
        """Report a replay's end (done or failed): one permanent line."""
        state = self._videos.setdefault(result.video, _Video())
        state.result = result
        if not self._interactive:
            print(result_line(result), file=self._out, flush=True)
            print(self._overall_line(), file=self._out, flush=True)
            return
        if state.bar is not None:
            state.bar.close()
            state.bar = None
        tqdm.write(result_line(result), file=self._out)  # above the bars, which tqdm redraws
        self._redraw(force=True)

    def close(self) -> None:
        """Leave the terminal with the final bars drawn."""
        if not self._interactive:
            return
        self._redraw(force=True)
        for state in self._videos.values():
            if state.bar is not None:
                state.bar.close()
                state.bar = None
        if self._overall is not None:
            self._overall.close()
            self._overall = None

    # -- drawing -----------------------------------------------------------------------------

    def _new_bar(self, name: str, total: float | None, position: int | None) -> tqdm:
        """Make a bar; ``position`` None: tqdm takes the first line no open bar uses."""
        return tqdm(
            total=total,
            desc=name,
            file=self._out,
            position=position,
            leave=position is not None,  # the overall bar stays; a video's makes way for its line
            dynamic_ncols=False,
            bar_format=_BAR_FORMAT if total else _COUNT_FORMAT,
            mininterval=REDRAW_INTERVAL_S,
        )

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_draw:
            return
        self._next_draw = now + REDRAW_INTERVAL_S
        running = [
            (video, state)
            for video, state in self._videos.items()
            if state.result is None and state.progress is not None
        ]
        for video, state in running:
            progress = state.progress
            assert progress is not None
            if state.bar is None or state.bar.total != progress.total:
                if state.bar is not None:
                    state.bar.close()  # a new stage of another length: a new bar
                name = f"{video.name:<{NAME_WIDTH}.{NAME_WIDTH}}" if progress.total else video.name
                state.bar = self._new_bar(name, progress.total, None)
            state.bar.n = progress.done
            total = "?" if progress.total is None else str(progress.total)
            state.bar.set_postfix_str(f"{progress.done}/{total} frames {progress.stage}", False)
            state.bar.refresh()
        if self._overall is not None:
            self._overall.n = sum(_video_fraction(s) for s in self._videos.values())
            self._overall.set_postfix_str(self._done_words(), False)
            self._overall.refresh()

    def _say_quarter(self, video: Path, state: _Video) -> None:
        progress = state.progress
        assert progress is not None
        if progress.stage == "starting":
            print(f"{video.name}: starting", file=self._out, flush=True)
            return
        fraction = _fraction(progress)
        quarter = int(fraction * 4) if fraction is not None else 0
        if quarter > state.quarters_said and quarter < 4:
            state.quarters_said = quarter
            print(self._video_line(video, progress), file=self._out, flush=True)

    @staticmethod
    def _video_line(video: Path, progress: Progress | None) -> str:
        if progress is None:
            return f"{video.name}: waiting"
        fraction = _fraction(progress)
        total = "?" if progress.total is None else str(progress.total)
        percent = "" if fraction is None else f"{fraction:4.0%} "
        name = f"{video.name:<{NAME_WIDTH}.{NAME_WIDTH}}"
        return f"{name} {bar(fraction)} {percent}{progress.done}/{total} frames {progress.stage}"

    def _overall_line(self) -> str:
        count = len(self._videos)
        fraction = sum(_video_fraction(s) for s in self._videos.values()) / max(count, 1)
        return f"{'all videos':<{NAME_WIDTH}} {bar(fraction)} {fraction:4.0%} {self._done_words()}"

    def _done_words(self) -> str:
        done = [s.result for s in self._videos.values() if s.result is not None]
        failed = sum(not r.ok for r in done)
        text = f"{len(done)}/{len(self._videos)} done"
        return text + (f", {failed} failed" if failed else "")


def _fraction(progress: Progress) -> float | None:
    if not progress.total:
        return None
    return min(1.0, progress.done / progress.total)


def _video_fraction(state: _Video) -> float:
    """How far one video is, for the overall bar (annotating counts as the second half)."""
    if state.result is not None:
        return 1.0
    if state.progress is None:
        return 0.0
    fraction = _fraction(state.progress) or 0.0
    return 0.5 + fraction / 2 if state.progress.stage == "annotating" else fraction


def result_line(result: ReplayResult) -> str:
    """One line about a finished replay: where its session is, or what went wrong."""
    if not result.ok:
        kept = f" (what it has is in {result.session_dir})" if result.session_dir else ""
        return f"FAILED {result.video.name}: {failure_reason(result)}{kept}"
    total = "?" if result.frames_in_video is None else str(result.frames_in_video)
    rate = result.analysed_fps or 0.0
    return (
        f"done   {result.video.name} -> {result.session_dir} ({result.frames_analysed}/{total} "
        f"frames analysed, {result.frames_skipped} skipped, {rate:.1f} fps over "
        f"{result.elapsed_s:.1f} s)"
    )


def failure_reason(result: ReplayResult) -> str:
    """Say what went wrong, in words, naming the video (once: most messages name it already)."""
    text = "; ".join(result.errors or ("unknown error",))
    return text if str(result.video) in text else f"{result.video}: {text}"
