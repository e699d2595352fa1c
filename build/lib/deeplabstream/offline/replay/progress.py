"""Progress of a batch of replays: a bar per running video and one for the whole batch.

On a terminal the bars are redrawn in place a few times a second, and each finished video leaves
one line above them. Anywhere else (a log file, CI) it prints plain lines: when a video starts,
at every quarter, and when it ends.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from deeplabstream.offline.replay.job import Progress, ReplayResult

BAR_WIDTH = 24
REDRAW_INTERVAL_S = 0.2


@dataclass
class _Video:
    progress: Progress | None = None
    result: ReplayResult | None = None
    quarters_said: int = -1


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
        self._drawn_lines = 0
        self._next_draw = 0.0

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
        self._videos.setdefault(result.video, _Video()).result = result
        if self._interactive:
            self._clear()
        print(result_line(result), file=self._out, flush=True)
        if self._interactive:
            self._redraw(force=True)
        else:
            print(self._overall_line(), file=self._out, flush=True)

    def close(self) -> None:
        """Leave the terminal with the final bars drawn."""
        if self._interactive:
            self._redraw(force=True)

    # -- drawing -----------------------------------------------------------------------------

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_draw:
            return
        self._next_draw = now + REDRAW_INTERVAL_S
        lines = [
            self._video_line(video, state.progress)
            for video, state in self._videos.items()
            if state.result is None and state.progress is not None
        ]
        lines.append(self._overall_line())
        self._clear()
        self._out.write("".join(line + "\n" for line in lines))
        self._out.flush()
        self._drawn_lines = len(lines)

    def _clear(self) -> None:
        """Erase the bars drawn last (cursor up a line, clear it; as many times as lines)."""
        if self._drawn_lines:
            self._out.write("\x1b[1F\x1b[2K" * self._drawn_lines)
            self._drawn_lines = 0

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
        return (
            f"{video.name:<30.30} {bar(fraction)} {percent}{progress.done}/{total} frames "
            f"{progress.stage}"
        )

    def _overall_line(self) -> str:
        done = [s.result for s in self._videos.values() if s.result is not None]
        failed = sum(not r.ok for r in done)
        count = len(self._videos)
        fraction = sum(_video_fraction(s) for s in self._videos.values()) / max(count, 1)
        text = f"{'all videos':<30} {bar(fraction)} {fraction:4.0%} {len(done)}/{count} done"
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
