"""The progress of a batch of replays: tqdm's bars on a terminal, plain lines anywhere else."""

from __future__ import annotations

import io
from pathlib import Path

from deeplabstream.offline.replay.job import Progress, ReplayResult
from deeplabstream.offline.replay.progress import ProgressView

VIDEOS = [Path("first.mp4"), Path("second.mp4")]


def _batch(interactive: bool) -> str:
    out = io.StringIO()
    view = ProgressView(VIDEOS, out=out, interactive=interactive)
    view.update(Progress(VIDEOS[0], "starting", 0, None))
    for done in range(0, 101, 10):
        view.update(Progress(VIDEOS[0], "replaying", done, 100))
        view.update(Progress(VIDEOS[1], "replaying", done, None))  # a length not known
    view.finished(ReplayResult(VIDEOS[0], True, Path("/sessions/first"), 100, 100, 100, 0, 2.0))
    view.finished(ReplayResult(VIDEOS[1], False, errors=("second.mp4: truncated",)))
    view.close()
    return out.getvalue()


def test_plain_lines_off_a_terminal_say_the_start_each_quarter_and_the_end() -> None:
    lines = _batch(interactive=False).splitlines()
    assert lines[0] == "first.mp4: starting"
    quarters = [line for line in lines if line.startswith("first.mp4 ") and "frames" in line]
    assert [line.split("]")[1].split()[0] for line in quarters] == ["0%", "30%", "50%", "80%"]
    assert "\r" not in "".join(lines) and "\x1b" not in "".join(lines)
    assert lines[-4].startswith("done   first.mp4 -> /sessions/first (100/100 frames analysed")
    assert lines[-2] == "FAILED second.mp4: second.mp4: truncated"
    assert lines[-1].startswith("all videos") and lines[-1].endswith("2/2 done, 1 failed")


def test_bars_on_a_terminal_leave_one_line_per_video_and_the_batchs_bar() -> None:
    text = _batch(interactive=True)
    assert "\r" in text  # redrawn in place
    assert "done   first.mp4 -> /sessions/first" in text
    assert "FAILED second.mp4: second.mp4: truncated" in text
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("all videos") and "100%" in last and last.endswith("2/2 done, 1 failed")
