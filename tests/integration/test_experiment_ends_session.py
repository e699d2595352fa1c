"""An experiment that ends the session ends it: stream, analysis and recording stop with it.

``end_session`` (and ``[Experiment] SESSION_DURATION``) used to finish the experiment alone, the
stream and the recording running on to ``--duration``. Now the session stops, its
``stop_reason`` naming the experiment and why; ``end_experiment`` keeps the old meaning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.files import write_settings
from tests.support.processes import only_session, run_cli

ENDS = '''
from deeplabstream.experiments.base import Experiment


class EndsAfterOneSecond(Experiment):
    """Ends the {what} one second in."""

    def on_update(self, obs, t):
        if t >= 1.0:
            self.{call}("one second is enough")
        return []
'''


@pytest.mark.parametrize(
    ("call", "ends_session"), [("end_session", True), ("end_experiment", False)]
)
def test_end_session_stops_the_recording_and_end_experiment_does_not(
    tmp_path: Path, call: str, ends_session: bool
) -> None:
    (tmp_path / "experiments").mkdir()
    what = "session" if ends_session else "experiment"
    (tmp_path / "experiments" / "ender.py").write_text(ENDS.format(what=what, call=call))
    settings = write_settings(
        tmp_path,
        "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n[Experiment]\nNAME = ender\n"
        "[Device stimulus_box]\nTYPE = log\n"
        "[Streaming]\nBUFFER_SECONDS = 6\n",  # all 150 frames: a lagging recorder loses none
    )
    # --frames bounds the run either way: 150 frames (5 s) unless the experiment ends it.
    result = run_cli(
        "--settings", str(settings), "--headless", "--experiment-enabled",
        "--recording-enabled", "--frames", "150", "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads((only_session(tmp_path / "out") / "session.json").read_text())
    run = record["experiment_runs"][0]
    assert run["finish_reason"] == "one second is enough"
    captured = record["cameras"]["arena"]["frames_captured"]
    if ends_session:
        assert record["stop_reason"] == (
            "experiment 'EndsAfterOneSecond' ended the session: one second is enough"
        )
        assert captured < 150  # stopped by the experiment, not by --frames
        assert f"Stopped: {record['stop_reason']}" in result.stdout
    else:
        assert captured == 150 and "frame limit" in record["stop_reason"]
