"""The annotated video is an output plugin (issue 37): a live session writes it from its recording.

A synthetic camera recorded and analysed with the bundled model, ``[Output annotated_video]``
chosen: after the stop the session folder holds ``<camera>.annotated.mp4`` with every recorded
frame, drawn (it differs from the recording where the keypoints are).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.files import read_video, write_settings
from tests.support.processes import only_session, run_cli

FRAMES = 45


def test_a_live_session_writes_the_annotated_video_of_its_recording(tmp_path: Path) -> None:
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nWIDTH = 320\nHEIGHT = 256\nPACING = lockstep\n\n"
        "[Recording]\nCODEC = ffv1\n\n[Output annotated_video]\nTHRESHOLD = 0.1\n",
    )
    result = run_cli(
        "--settings", str(settings), "--headless", "--pose-enabled", "--recording-enabled",
        "--frames", str(FRAMES), "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    session = only_session(tmp_path / "out")
    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    assert info["errors"] == []
    recording = info["cameras"]["arena"]["recordings"][0]
    recorded = read_video(session / recording["video"])
    annotated = read_video(session / "arena.annotated.mp4")
    assert len(annotated) == len(recorded) == info["cameras"]["arena"]["frames_recorded"]
    drawn = [
        np.abs(a.astype(int) - r.astype(int)).max(axis=2) > 60
        for a, r in zip(annotated, recorded, strict=True)
    ]
    assert sum(mask.any() for mask in drawn) >= len(recorded) // 2  # keypoints drawn
