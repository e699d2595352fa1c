"""A model run on frames of another size than it was exported at says so, and runs.

The sleap-nn export of ``../shared/data/sleap-flies`` was traced at 1024 x 1024; its clip,
shrunk to 384 x 384 and replayed through the real pipeline, must be analysed with a warning in
the log, in ``session.json`` -> ``warnings`` and in the command's report (the window shows the
same warning: ``tests/unit/app/gui/test_model_size_warning.py``).
"""

from __future__ import annotations

import json

import pytest

from tests.support.flies import replay_flies


@pytest.mark.slow
def test_a_sleap_export_run_at_another_frame_size_warns_everywhere(tmp_path) -> None:
    session, output = replay_flies(tmp_path, 6, size=384)

    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    # At a size the model was not exported for, it may also find no animal: that is warned too.
    (warning,) = [w for w in info["warnings"] if "exported (traced)" in w]
    others = [w for w in info["warnings"] if w != warning]
    assert all("the model found no animal in" in w for w in others), others
    assert warning.startswith("camera 'flies': the model flies_bottomup_tiny (sleap-nn)")
    assert "exported (traced) at 1024x1024" in warning and "are 384x384" in warning
    assert "not validated" in warning and "--input-height 384 --input-width 384" in warning
    assert info["pose_runs"][0]["cameras"]["flies"]["frames_analysed"] == 6  # it still runs
    assert (
        f"WARNING [replay:flies.mkv] deeplabstream.live.session.live: {warning}"
        in (session / "session.log").read_text()
    )
    assert f"warning: {warning}" in output  # the batch's report


def test_no_warning_at_the_exported_size(tmp_path) -> None:
    session, output = replay_flies(tmp_path, 2)
    info = json.loads((session / "session.json").read_text(encoding="utf-8"))
    assert info["warnings"] == []
    assert "warning:" not in output
